#!/usr/bin/env escript
%%! -noshell
%% What tracing costs per call, in one sitting: `call_1' (py:call operator.add),
%% `callback' (Python -> Erlang -> Python, erlang.call) and `span_call' (a call whose
%% Python opens one erlang.Span), each with tracing off, on in memory, and on with OTLP
%% export to a live receiver (tests/otlp_receiver.py in a Python process of its own, as
%% a collector would be, so its decoding does not take this VM's GIL). The modes take turns round by
%% round, so load on the machine hits them alike; medians over the rounds are printed
%% with their ratio to "off". Usage: escript bench/otlp_cost.escript ProjectRoot [Rounds]
%% (docs/tracing.md, "Export over OTLP", quotes its numbers).
-mode(compile).

main([Root | Rest]) ->
    Rounds = case Rest of [R | _] -> list_to_integer(R); [] -> 5 end,
    true = code:add_patha(filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin")),
    ok = application:load(erlang_python),
    ok = application:set_env(erlang_python, venv, filename:join(Root, ".venv")),
    ok = application:set_env(erlang_python, python_path,
                             [filename:join(Root, "bench"), filename:join(Root, "tests")]),
    {ok, _} = application:ensure_all_started(erlang_python),
    ok = py:register_function(bench_add, fun([A, B]) -> A + B end),
    Port = start_receiver(Root),
    Url = <<"http://127.0.0.1:", (integer_to_binary(Port))/binary>>,
    Modes = [{off, fun() -> py:disable_tracing() end},
             {memory, fun() -> py:enable_tracing(#{exporter => memory}) end},
             {otlp, fun() -> py:enable_tracing(#{exporter => otlp, endpoint => Url}) end}],
    Work = [{call_1, 20000, fun(N) -> [{ok, 3} = py:call(operator, add, [1, 2]) || _ <- lists:seq(1, N)] end},
            {callback, 2000, fun(N) -> {ok, N} = py:call(bench_helpers, callback_loop, [<<"bench_add">>, N]) end},
            {span_call, 20000, fun(N) -> [{ok, _} = py:call(py_otlp_helpers, one_span, [<<"s">>]) || _ <- lists:seq(1, N)] end}],
    Times = [{{W, M}, per_op_ns(Start, Fun, N)}
             || _ <- lists:seq(1, Rounds), {W, N, Fun} <- Work, {M, Start} <- Modes],
    ok = py:disable_tracing(),
    io:format("~-10s ~12s ~12s ~12s ~8s ~8s~n", [work, "off ns/op", "memory", "otlp", "mem/off", "otlp/off"]),
    [begin
         [Off, Mem, Otlp] = [median([T || {{W1, M1}, T} <- Times, W1 =:= W, M1 =:= M]) || {M, _} <- Modes],
         io:format("~-10s ~12b ~12b ~12b ~8.2f ~8.2f~n", [W, Off, Mem, Otlp, Mem / Off, Otlp / Off])
     end || {W, _, _} <- Work],
    io:format("export: ~p~n", [py_nif:tracing_export_stats()]),
    ok = application:stop(erlang_python).

%% The receiver as an OS process; it ends when its stdin closes (with this VM).
start_receiver(Root) ->
    Python = filename:join(Root, ".venv/bin/python"),
    Code = "import sys, otlp_receiver; print(otlp_receiver.start(), flush=True); sys.stdin.read()",
    P = open_port({spawn_executable, Python},
                  [{args, ["-c", Code]}, {line, 64}, {cd, filename:join(Root, "tests")}]),
    receive {P, {data, {eol, Line}}} -> list_to_integer(Line) after 20000 -> error(no_receiver) end.

per_op_ns(Start, Fun, N) ->
    ok = Start(),
    ok = py:clear_traces(),
    Fun(N div 10),
    T0 = erlang:monotonic_time(nanosecond),
    Fun(N),
    (erlang:monotonic_time(nanosecond) - T0) div N.

median(L) ->
    lists:nth((length(L) + 1) div 2, lists:sort(L)).
