#!/usr/bin/env escript
%%! -noshell
%% Benchmarks of erlang_python through the public `py' API.
%%
%% Usage: run_bench.escript ProjectRoot [--quick] [--rounds N] [--only id1,id2] [--out File]
%%   (`make bench', or `make bench BENCH_ARGS=--quick')
%%
%% Full mode writes bench/RESULTS.md; --quick (tiny counts, 2 rounds, well under 20 s)
%% writes bench/_out/quick.md instead. Both print the Markdown table. The exit status is
%% 0 when every scenario ran and checked its results, 1 when any crashed or got a wrong
%% result (missed targets do not change it), 2 on a setup failure.
%% Scenarios live in bench/py_bench.erl, those of sub-interpreters (CPython 3.12+ only;
%% skipped with a "needs CPython 3.12+" line before) in bench/py_bench_subinterp.erl and
%% the soak in bench/py_soak.erl (all compiled here at run time), Python helpers in
%% bench/bench_helpers.py.
-mode(compile).

main([Root | Args]) ->
    ok = io:setopts(standard_io, [{encoding, unicode}]),
    try setup(Root, parse_args(Args, #{quick => false, rounds => undefined, only => all})) of
        {Opts, Info} -> report(Root, Opts, Info, py_bench:run(Opts))
    catch
        Class:Reason:Stack ->
            io:format("benchmark setup failed: ~p:~tp~n~tp~n", [Class, Reason, Stack]),
            halt(2)
    end;
main([]) ->
    io:format("usage: run_bench.escript ProjectRoot [--quick] [--rounds N] [--only id1,id2] [--out File]~n"),
    halt(2).

parse_args([], Opts) -> Opts;
parse_args(["--quick" | Rest], Opts) -> parse_args(Rest, Opts#{quick := true});
parse_args(["--rounds", N | Rest], Opts) -> parse_args(Rest, Opts#{rounds := list_to_integer(N)});
parse_args(["--out", File | Rest], Opts) -> parse_args(Rest, Opts#{out => File});
parse_args(["--only", Ids | Rest], Opts) ->
    parse_args(Rest, Opts#{only := string:lexemes(Ids, ",")});
parse_args([Other | _], _Opts) -> error({unknown_option, Other}).

setup(Root, Opts0) ->
    Opts = case Opts0 of
               #{rounds := undefined, quick := true} -> Opts0#{rounds := 2};
               #{rounds := undefined} -> Opts0#{rounds := 5};
               _ -> Opts0
           end,
    BenchDir = filename:join(Root, "bench"),
    %% ERLANG_PYTHON_EBIN and ERLANG_PYTHON_VENV, as for the tests (tests/run_ct.escript),
    %% run the benchmarks on another leg's build: `make bench-subinterp' uses CPython 3.12's.
    true = code:add_patha(env("ERLANG_PYTHON_EBIN",
                              filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin"))),
    [load_source(filename:join(BenchDir, Name))
     || Name <- ["py_bench.erl", "py_soak.erl", "py_bench_subinterp.erl"]],
    ok = case application:load(erlang_python) of
             ok -> ok;
             {error, {already_loaded, _}} -> ok
         end,
    PythonPath = application:get_env(erlang_python, python_path, []),
    ok = application:set_env(erlang_python, python_path, [BenchDir | PythonPath]),
    %% The project's venv (made by `make bench') has numpy, for the float_array scenario.
    Venv = env("ERLANG_PYTHON_VENV", filename:join(Root, ".venv")),
    case filelib:is_dir(Venv) of
        true -> ok = application:set_env(erlang_python, venv, Venv);
        false -> ok
    end,
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, PyVersion} = py:version(),
    Info = #{python => PyVersion, contexts => py:num_executors(),
             mode => py:execution_mode(), load_start => loadavg()},
    io:format("erlang_python benchmarks (~s mode, ~b rounds, ~b contexts)~n",
              [case maps:get(quick, Opts) of true -> "quick"; false -> "full" end,
               maps:get(rounds, Opts), maps:get(contexts, Info)]),
    {Opts, Info}.

env(Name, Default) ->
    case os:getenv(Name) of
        Value when is_list(Value), Value =/= "" -> Value;
        _ -> Default
    end.

load_source(Src) ->
    {ok, Mod, Bin} = case compile:file(Src, [binary, report_errors, report_warnings]) of
                         {ok, _, _} = Ok -> Ok;
                         Error -> error({compile_failed, Src, Error})
                     end,
    {module, Mod} = code:load_binary(Mod, Src, Bin).

%%% ---------------------------------------------------------------------------
%%% Report

report(Root, Opts, Info, #{rows := Rows, errors := Errors}) ->
    Medians = maps:from_list([{{Id, Key}, median(Vs)}
                              || #{id := Id, key := Key, values := Vs, status := ok} <- Rows]),
    Table = table(Rows, Medians),
    Missed = [R || R <- Rows, target_status(R, Medians) =:= missed],
    Header = header(Root, Opts, Info),
    Footer = footer(Missed, Errors),
    io:format("~n~ts~n~ts", [Table, Footer]),
    %% What costs the time where a target is missed: written by hand, kept with the numbers.
    Analysis = case file:read_file(filename:join([Root, "bench", "ANALYSIS.md"])) of
                   {ok, Text} -> ["\n", Text];
                   {error, _} -> []
               end,
    Doc = [Header, "\n", Table, "\n", Footer, Analysis],
    File = case Opts of
               #{out := Out} -> filename:absname(Out, Root);
               #{quick := true} -> filename:join([Root, "bench", "_out", "quick.md"]);
               #{only := all} -> filename:join([Root, "bench", "RESULTS.md"]);
               _ -> filename:join([Root, "bench", "_out", "partial.md"])
           end,
    ok = filelib:ensure_dir(File),
    ok = file:write_file(File, unicode:characters_to_binary(Doc)),
    io:format("~nwrote ~ts~n", [File]),
    _ = application:stop(erlang_python),
    halt(case Errors of [] -> 0; _ -> 1 end).

header(Root, #{quick := Quick, rounds := Rounds, only := Only},
       #{python := Py, contexts := Ctx, mode := Mode, load_start := Load0}) ->
    {{Y, Mo, D}, {H, Mi, _}} = calendar:universal_time(),
    Otp = erlang:system_info(otp_release),
    OtpFull = case file:read_file(filename:join([code:root_dir(), "releases", Otp, "OTP_VERSION"])) of
                  {ok, V} -> string:trim(binary_to_list(V));
                  _ -> Otp
              end,
    [io_lib:format("# erlang_python benchmark results~n~n", []),
     io_lib:format("Generated by bench/run_bench.escript~s~s (`make bench`).~n~n",
                   [case Quick of true -> " --quick"; false -> "" end,
                    case Only of all -> ""; _ -> " --only " ++ lists:join(",", Only) end]),
     io_lib:format("- date: ~4..0b-~2..0b-~2..0b ~2..0b:~2..0b UTC~n", [Y, Mo, D, H, Mi]),
     io_lib:format("- machine: ~ts, ~s logical CPUs, ~ts RAM~n", [cpu_model(), nproc(), mem_total()]),
     io_lib:format("- Erlang/OTP ~s (erts ~s), ~b schedulers online~n",
                   [OtpFull, erlang:system_info(version), erlang:system_info(schedulers_online)]),
     io_lib:format("- Python ~ts~n", [binary:replace(Py, <<"\n">>, <<" ">>, [global])]),
     io_lib:format("- erlang_python: ~b contexts (~s), commit ~s~n", [Ctx, Mode, commit(Root)]),
     io_lib:format("- load average (1 min) at start ~ts, at end ~ts (the machine is shared)~n",
                   [Load0, loadavg()]),
     io_lib:format("- ~b rounds per scenario; median and spread (min–max) over the rounds~n",
                   [Rounds])].

loadavg() ->
    case file:read_file("/proc/loadavg") of
        {ok, L} -> hd(string:lexemes(binary_to_list(L), " "));
        _ -> "unknown"
    end.

cpu_model() ->
    case file:read_file("/proc/cpuinfo") of
        {ok, Info} ->
            case re:run(Info, "^model name\\s*:\\s*(.*)$", [multiline, {capture, all_but_first, binary}]) of
                {match, [Model]} -> string:trim(Model);
                nomatch -> "unknown CPU"
            end;
        _ -> "unknown CPU"
    end.

nproc() ->
    string:trim(os:cmd("nproc")).

mem_total() ->
    case file:read_file("/proc/meminfo") of
        {ok, Info} ->
            case re:run(Info, "MemTotal:\\s+(\\d+) kB", [{capture, all_but_first, list}]) of
                {match, [Kb]} -> io_lib:format("~.1f GiB", [list_to_integer(Kb) / 1048576]);
                nomatch -> "unknown"
            end;
        _ -> "unknown"
    end.

commit(Root) ->
    Git = "git -C '" ++ Root ++ "' ",
    case string:trim(os:cmd(Git ++ "rev-parse --short HEAD 2>/dev/null")) of
        "" -> "unknown";
        Hash ->
            case string:trim(os:cmd(Git ++ "status --porcelain --untracked-files=no 2>/dev/null")) of
                "" -> Hash;
                _ -> Hash ++ " (with uncommitted changes)"
            end
    end.

table(Rows, Medians) ->
    Head = ["| scenario | metric | median | spread (min–max) | rounds | target |\n",
            "|---|---|---:|---|---:|---|\n"],
    {Lines, _} = lists:mapfoldl(
                   fun(#{id := Id} = R, Prev) ->
                           Title = case Id of Prev -> ""; _ -> maps:get(title, R) end,
                           {row(R, Title, Medians), Id}
                   end, none, Rows),
    [Head | Lines].

row(#{label := Label, status := ok, values := Vs, rounds := _} = R, Title, Medians) ->
    cells([Title, Label, fmt(median(Vs)),
           [fmt(lists:min(Vs)), " – ", fmt(lists:max(Vs))],
           integer_to_list(length(Vs)), target_cell(R, Medians)]);
row(#{label := Label, status := error, detail := Reason} = R, Title, Medians) ->
    Short = string:slice(lists:flatten(short_reason(Reason)), 0, 160),
    cells([Title, Label, "ERROR", escape(Short), "0", target_cell(R, Medians)]).

%% A crash reason without its stack trace, plus where it happened in bench code.
short_reason({Reason, [{M, F, A, Loc} | _]}) when is_atom(M), is_list(Loc) ->
    Arity = if is_list(A) -> length(A); true -> A end,
    io_lib:format("~0tp at ~s:~s/~b line ~p",
                  [Reason, M, F, Arity, proplists:get_value(line, Loc, '?')]);
short_reason(Reason) ->
    io_lib:format("~0tp", [Reason]).

cells(Cs) ->
    ["|", lists:join("|", [[" ", C, " "] || C <- Cs]), "|\n"].

escape(S) ->
    string:replace(S, "|", "\\|", all).

target_cell(#{target := none}, _Medians) ->
    "—";
target_cell(R, Medians) ->
    Text = target_text(maps:get(target, R), Medians),
    case target_status(R, Medians) of
        met -> [Text, ": met"];
        missed -> [Text, ": **missed**"];
        not_run -> [Text, " (not run)"]
    end.

target_text({le, X}, _) -> ["≤ ", fmt(X)];
target_text({lt, X}, _) -> ["< ", fmt(X)];
target_text({ge, X}, _) -> ["≥ ", fmt(X)];
target_text({rel_ge, Id, _Key, F} = T, Medians) ->
    case threshold(T, Medians) of
        undefined -> io_lib:format("≥ ~tp× ~s", [F, Id]);
        X -> [io_lib:format("≥ ~tp× ~s = ", [F, Id]), fmt(X)]
    end.

threshold({rel_ge, Id, Key, F}, Medians) ->
    case maps:find({Id, Key}, Medians) of
        {ok, M} -> M * F;
        error -> undefined
    end.

target_status(#{target := none}, _) -> none;
target_status(#{status := Status}, _) when Status =/= ok -> not_run;
target_status(#{target := T, values := Vs}, Medians) ->
    M = median(Vs),
    Met = case T of
              {le, X} -> M =< X;
              {lt, X} -> M < X;
              {ge, X} -> M >= X;
              {rel_ge, _, _, _} ->
                  case threshold(T, Medians) of
                      undefined -> false;
                      X -> M >= X
                  end
          end,
    case Met of true -> met; false -> missed end.

footer(Missed, Errors) ->
    [case Missed of
         [] -> "Targets missed: none.\n";
         _ -> ["Targets missed:\n",
               [io_lib:format("- ~ts: ~ts~n", [T, L]) || #{title := T, label := L} <- Missed]]
     end,
     case Errors of
         [] -> "";
         _ -> ["\nScenarios that FAILED:\n",
               [io_lib:format("- ~s: ~0tp~n", [Id, Why]) || {Id, Why} <- Errors]]
     end].

median([]) -> 0;
median(Vs) ->
    S = lists:sort(Vs),
    N = length(S),
    case N rem 2 of
        1 -> lists:nth(N div 2 + 1, S);
        0 -> (lists:nth(N div 2, S) + lists:nth(N div 2 + 1, S)) / 2
    end.

fmt(X) when is_integer(X) -> thousands(X);
fmt(X) when abs(X) >= 1000 -> thousands(round(X));
fmt(X) when abs(X) >= 100 -> io_lib:format("~.1f", [X]);
fmt(X) when abs(X) >= 1 -> io_lib:format("~.2f", [X]);
fmt(X) -> io_lib:format("~.3f", [X]).

thousands(N) when N < 0 -> ["-" | thousands(-N)];
thousands(N) ->
    lists:reverse(group(lists:reverse(integer_to_list(N)))).

group([A, B, C, D | Rest]) -> [A, B, C, $, | group([D | Rest])];
group(L) -> L.
