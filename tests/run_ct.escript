#!/usr/bin/env escript
%%! -noshell
%% Runs the Common Test suites in tests/ against the compiled application and prints
%% a closing "N passed, N failed" line; exits non-zero when anything failed or was skipped
%% by error. Usage: run_ct.escript ProjectRoot [suite1,suite2]
%%
%% The suites are compiled here, by the VM that runs them, into a directory of their own:
%% beams of another OTP release left in tests/ would not load. A leg of the test matrix
%% (scripts/test_matrix.sh) sets ERLANG_PYTHON_EBIN (its build of the application),
%% ERLANG_PYTHON_VENV (its interpreter's venv, read by py_test_lib) and
%% ERLANG_PYTHON_LEG_DIR (where its test beams and logs go); by default they are the
%% developer build, .venv and _build/.
main([Root | Rest]) ->
    Ebin = env("ERLANG_PYTHON_EBIN", filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin")),
    true = code:add_patha(Ebin),
    TestDir = filename:join(Root, "tests"),
    Out = env("ERLANG_PYTHON_LEG_DIR", filename:join(Root, "_build")),
    BeamDir = filename:join(Out, "test_beams"),
    LogDir = filename:join(Out, "ct_logs"),
    ok = filelib:ensure_path(LogDir),
    os:putenv("ERLANG_PYTHON_ROOT", Root),
    io:format("OTP ~s, erlang_python from ~s~n", [erlang:system_info(otp_release), Ebin]),
    compile_tests(TestDir, BeamDir),
    true = code:add_patha(BeamDir),
    Which = case Rest of
                [] -> [{dir, BeamDir}];
                [Names | _] -> [{dir, BeamDir},
                                {suite, [list_to_atom(S) || S <- string:split(Names, ",", all)]}]
            end,
    Result = ct:run_test(Which ++ [{logdir, LogDir}, {auto_compile, false}, {ct_hooks, []}]),
    case Result of
        {Passed, Failed, {_UserSkipped, AutoSkipped}} ->
            io:format("~n~b passed, ~b failed~n", [Passed, Failed + AutoSkipped]),
            halt(if Failed + AutoSkipped > 0 -> 1; true -> 0 end);
        {error, Reason} ->
            io:format("~ncommon test did not run: ~p~n0 passed, 1 failed~n", [Reason]),
            halt(2)
    end.

env(Name, Default) ->
    case os:getenv(Name) of
        Value when is_list(Value), Value =/= "" -> Value;
        _ -> Default
    end.

%% Every module in tests/ (suites and their helpers), fresh for this VM.
compile_tests(TestDir, BeamDir) ->
    ok = filelib:ensure_path(BeamDir),
    [ok = file:delete(Beam) || Beam <- filelib:wildcard(filename:join(BeamDir, "*.beam"))],
    Sources = filelib:wildcard(filename:join(TestDir, "*.erl")),
    Failed = [Src || Src <- Sources,
                     error =:= compile:file(Src, [{outdir, BeamDir}, {i, TestDir}, debug_info,
                                                  report_errors])],
    case Failed of
        [] -> ok;
        _ ->
            io:format("~ntests that did not compile: ~p~n0 passed, 1 failed~n", [Failed]),
            halt(2)
    end.
