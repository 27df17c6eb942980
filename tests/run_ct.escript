#!/usr/bin/env escript
%%! -noshell
%% Runs the Common Test suites in tests/ against the compiled application and prints
%% a closing "N passed, N failed" line; exits non-zero when anything failed or was skipped
%% by error. Usage: run_ct.escript ProjectRoot [suite1,suite2]
main([Root | Rest]) ->
    Ebin = filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin"),
    true = code:add_patha(Ebin),
    TestDir = filename:join(Root, "tests"),
    LogDir = filename:join(Root, "_build/ct_logs"),
    ok = filelib:ensure_path(LogDir),
    os:putenv("ERLANG_PYTHON_ROOT", Root),
    Which = case Rest of
                [] -> [{dir, TestDir}];
                [Names | _] -> [{dir, TestDir},
                                {suite, [list_to_atom(S) || S <- string:split(Names, ",", all)]}]
            end,
    Result = ct:run_test(Which ++ [{logdir, LogDir}, {auto_compile, true},
                                   {include, [TestDir]}, {ct_hooks, []}]),
    case Result of
        {Passed, Failed, {_UserSkipped, AutoSkipped}} ->
            io:format("~n~b passed, ~b failed~n", [Passed, Failed + AutoSkipped]),
            halt(if Failed + AutoSkipped > 0 -> 1; true -> 0 end);
        {error, Reason} ->
            io:format("~ncommon test did not run: ~p~n0 passed, 1 failed~n", [Reason]),
            halt(2)
    end.
