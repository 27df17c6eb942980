%%% Benchmark scenarios for erlang_python, run by bench/run_bench.escript (which compiles
%%% this module at run time; it is not part of the application).
%%%
%%% Every scenario goes through the public `py' API and checks every result against the
%%% exact expected value, so a broken API fails the run instead of producing a number.
%%% Each round runs in a fresh process; a round that crashes, returns a wrong value or
%%% overruns its time limit marks the scenario as an error (and the run exits non-zero).
-module(py_bench).

-export([run/1]).
%% Run in the VM of the state_entries scenario.
-export([fill_state/1]).

%% Latency histogram: 10 ns buckets up to 2 ms, slower samples kept exactly.
-define(BUCKET_NS, 10).
-define(NBUCKETS, 200000).
-define(MIB, 1048576).

%%% ---------------------------------------------------------------------------
%%% Entry point

%% Opts: #{quick := boolean(), rounds := pos_integer(), only := all | [string()]}.
%% Answers #{rows := [Row], errors := [{Id, Reason}]}.
-spec run(map()) -> map().
run(#{quick := Quick} = Opts) ->
    Cfg = config(Quick),
    Rounds = maps:get(rounds, Opts),
    {module, py} = code:ensure_loaded(py),
    Scenarios = [S || S = #{id := Id} <- scenarios(Cfg) ++ py_bench_subinterp:scenarios(Cfg),
                      selected(Id, maps:get(only, Opts, all))],
    lists:foldl(fun(S, Acc) -> run_scenario(S, Cfg, Rounds, Acc) end,
                #{rows => [], errors => []}, Scenarios).

selected(_Id, all) -> true;
selected(Id, Names) -> lists:member(atom_to_list(Id), Names).

config(true) ->
    #{quick => true, single => 5000, concurrent_total => 5000, eval => 5000, cast => 5000,
      spawn_batches => 50, mib => 50, spin_s => 0.3, idle_ms => 180, memory => 20000,
      add_loop => 1000000, erl_rt => 10000, stream => 10000, callback => 2000,
      state_entries => 300000, soak_s => 5, array_calls => 2, round_limit_ms => 15000};
config(false) ->
    #{quick => false, single => 200000, concurrent_total => 200000, eval => 100000,
      cast => 40000, spawn_batches => 1000, mib => 2000, spin_s => 1.0, idle_ms => 880,
      memory => 1000000, add_loop => 1000000, erl_rt => 200000, stream => 1000000,
      callback => 100000, state_entries => 300000, soak_s => 180, array_calls => 10,
      round_limit_ms => 240000}.

%%% ---------------------------------------------------------------------------
%%% The scenarios
%%%
%%% A scenario is a map: id, title,
%%% run (fun(Cfg) -> #{MetricKey => number()}), metrics ([{Key, Label, Target}]).
%%% Targets: none | {le, X} | {lt, X} | {ge, X} | {rel_ge, Id, Key, Factor}.

scenarios(Cfg) ->
    #{memory := MemN, soak_s := SoakS} = Cfg,
    RssTarget = case MemN of 1000000 -> {lt, 5.0}; _ -> none end,
    [#{id => call_1, title => "py:call operator.add, 1 caller",
       run => fun single_caller/1,
       metrics => [{p50, "p50 latency (µs)", {le, 5}},
                   {p99, "p99 latency (µs)", {le, 20}},
                   {p999, "p99.9 latency (µs)", none},
                   {rate, "calls/s", {ge, 200000}}]}]
    ++ [#{id => list_to_atom("call_" ++ integer_to_list(P)),
          title => "py:call operator.add, " ++ integer_to_list(P) ++ " callers",
          run => fun(C) -> concurrent(P, C) end,
          metrics => [{rate, "total calls/s",
                       if P =:= 8; P =:= 64 -> {rel_ge, call_1, rate, 1.5};
                          true -> none
                       end}]}
        || P <- [2, 8, 64, 1024]]
    ++ [#{id => call_1_traced,
          title => "py:call operator.add, 1 caller, tracing on, in a trace context",
          run => fun traced_single_caller/1,
          metrics => [{p50, "p50 latency (µs)", none},
                      {p99, "p99 latency (µs)", none},
                      {rate, "calls/s", none}]}]
    ++ [#{id => eval, title => "py:eval x + y, small locals",
          run => fun eval/1,
          metrics => [{rate, "calls/s", {ge, 100000}}]},
        #{id => cast, title => "py:cast of a C counter (until a final py:call returns)",
          run => fun cast/1,
          metrics => [{rate, "casts/s", none},
                      {enqueue_rate, "casts/s enqueued (caller side only)", none}]},
        #{id => spawn_await, title => "py:spawn_call + py:await, batches of 100",
          run => fun spawn_await/1,
          metrics => [{rate, "calls/s", none}]},
        #{id => bin_arg, title => "1 MiB binary argument (builtins.len)",
          run => fun bin_arg/1,
          metrics => [{rate, "calls/s", {ge, 20000}}, {mbps, "MB/s", none}]},
        #{id => bin_result, title => "1 MiB bytes result",
          run => fun bin_result/1,
          metrics => [{rate, "calls/s", none}, {mbps, "MB/s", none}]},
        #{id => float_array, title => "1000x1000 float64 numpy array result: nested lists, then arrays => binary",
          run => fun float_array/1,
          metrics => [{lists_ms, "ms per call, default (nested lists)", none},
                      {binary_ms, "ms per call, arrays => binary", {lt, 10}}]},
        #{id => timer, title => "timer lateness, every context spinning in Python",
          run => fun timer_lateness/1,
          metrics => [{loaded_send_after, "worst send_after 1 ms lateness (ms)", {lt, 2}},
                      {loaded_after, "worst receive-after 1 ms lateness (ms)", {lt, 2}},
                      {idle_send_after, "floor: same, send_after, no Python load (ms)", none},
                      {idle_after, "floor: same, receive-after, no Python load (ms)", none}]},
        #{id => memory, title => "memory over " ++ thousands(MemN) ++ " py:call",
          run => fun memory/1,
          metrics => [{rss, "OS RSS growth (MB)", RssTarget},
                      {beam, "erlang:memory(total) growth (MB)", none}]},
        #{id => floor_py, title => "floor: operator.add in a Python loop",
          run => fun floor_python/1,
          metrics => [{ns, "ns per add", none}]},
        #{id => floor_erl, title => "floor: Erlang message round trip",
          run => fun floor_erlang/1,
          metrics => [{p50, "p50 (µs)", none}, {rate, "round trips/s", none}]},
        #{id => stream, title => "py:stream_start, generator of ints",
          run => fun stream/1,
          metrics => [{rate, "items/s", {ge, 1000000}}]},
        #{id => async_gather_1000, title => "py:async_gather 1,000 x asyncio.sleep(50 ms)",
          run => fun(C) -> async_gather(1000, C) end,
          metrics => [{wall, "wall time (ms)", {lt, 60}}]},
        #{id => floor_gather, title => "floor: asyncio.gather 1,000 x sleep(50 ms), plain asyncio.run in Python",
          run => fun floor_gather/1,
          metrics => [{wall, "wall time (ms)", none}]},
        #{id => async_gather_10000, title => "py:async_gather 10,000 x asyncio.sleep(50 ms)",
          run => fun(C) -> async_gather(10000, C) end,
          metrics => [{wall, "wall time (ms)", none}]},
        #{id => callback, title => "Python -> Erlang -> Python callback (erlang.call)",
          run => fun callback/1,
          metrics => [{rate, "round trips/s", none}]},
        #{id => state_entries,
          title => "py:state_store of 300,000 small entries ({key, I} => {value, I}), fresh VM",
          run => fun state_entries/1,
          metrics => [{bytes, "OS RSS growth per entry (bytes)", {lt, 300}},
                      {rate, "stores/s", none}]},
        #{id => soak, title => "soak: every request kind, timeouts, kills, restarts ("
                               ++ integer_to_list(SoakS) ++ " s)",
          run => fun soak/1, rounds => 1,
          metrics => [{requests, "requests answered", none},
                      {unexpected, "unexpected answers", {le, 0}},
                      {rss_mb, "OS RSS growth, second half (MB)", {lt, 10}},
                      {beam_mb, "erlang:memory(total) growth, second half (MB)", {lt, 5}},
                      {rss_total_mb, "OS RSS growth, both halves (MB)", none},
                      {threads_total, "OS thread growth", {le, 0}},
                      {fds_total, "file descriptor growth", {le, 0}},
                      {processes_total, "Erlang process growth", {le, 0}}]}].

%% The soak (bench/py_soak.erl): fails the round when an answer was wrong or a resource
%% that must not grow did, so that `make test' (quick mode) catches it too.
soak(#{soak_s := Seconds}) ->
    #{unexpected := Bad, threads_total := Threads, fds_total := Fds,
      processes_total := Procs} = Result = py_soak:run(Seconds * 1000),
    case Bad =:= 0 andalso Threads =< 0 andalso Fds =< 0 andalso Procs =< 0 of
        true -> Result;
        false -> error({soak_failed, Result})
    end.

%% 1. One caller: per-call latency and calls/s.
single_caller(#{single := N}) ->
    warm_up(1000),
    H = hist_new(),
    T0 = now_ns(),
    timed_calls(N, H),
    T1 = now_ns(),
    #{p50 => hist_pct(H, N, 0.50) / 1000,
      p99 => hist_pct(H, N, 0.99) / 1000,
      p999 => hist_pct(H, N, 0.999) / 1000,
      rate => per_second(N, T1 - T0)}.

%% 1b. The same with tracing on: a `py.call' span per call (the store keeps the newest
%% 100,000), each a child of the caller's traceparent.
traced_single_caller(Cfg) ->
    ok = py:enable_tracing(#{}),
    try
        py:with_trace_context(<<"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01">>,
                              fun() -> single_caller(Cfg) end)
    after
        ok = py:disable_tracing(),
        ok = py:clear_traces()
    end.

timed_calls(0, _H) ->
    ok;
timed_calls(N, H) ->
    A = erlang:monotonic_time(nanosecond),
    {ok, 3} = py:call(operator, add, [1, 2]),
    B = erlang:monotonic_time(nanosecond),
    hist_add(H, B - A),
    timed_calls(N - 1, H).

%% 2. P concurrent callers sharing a fixed total of calls.
concurrent(P, #{concurrent_total := Total}) ->
    Per = max(1, Total div P),
    Parent = self(),
    Tag = make_ref(),
    Pids = [spawn_link(fun() ->
                               {ok, 3} = py:call(operator, add, [1, 2]),
                               Parent ! {Tag, ready},
                               receive {Tag, go} -> ok end,
                               ok = calls(Per),
                               Parent ! {Tag, done}
                       end)
            || _ <- lists:seq(1, P)],
    ok = collect(Tag, ready, P),
    T0 = now_ns(),
    [Pid ! {Tag, go} || Pid <- Pids],
    ok = collect(Tag, done, P),
    T1 = now_ns(),
    #{rate => per_second(Per * P, T1 - T0)}.

collect(_Tag, _What, 0) ->
    ok;
collect(Tag, What, N) ->
    receive {Tag, What} -> collect(Tag, What, N - 1) end.

%% 3. eval with small locals.
eval(#{eval := N}) ->
    {ok, 3} = py:eval(<<"x + y">>, #{x => 1, y => 2}),
    T0 = now_ns(),
    ok = evals(N),
    T1 = now_ns(),
    #{rate => per_second(N, T1 - T0)}.

evals(0) -> ok;
evals(N) ->
    {ok, 3} = py:eval(<<"x + y">>, #{x => 1, y => 2}),
    evals(N - 1).

%% 4. cast throughput, closed by a call on the same process (same sticky context, served
%% in order, so when it answers every cast has run).
%% The casts advance a counter (a C call, like operator.add); the final call reads it, so
%% every cast is checked to have run, in order, before the call.
cast(#{cast := N}) ->
    warm_up(100),
    {ok, none} = py:call(bench_helpers, reset_ticks, []),
    T0 = now_ns(),
    ok = casts(N),
    T1 = now_ns(),
    {ok, N} = py:call(bench_helpers, tick, []),
    T2 = now_ns(),
    #{rate => per_second(N, T2 - T0), enqueue_rate => per_second(N, T1 - T0)}.

casts(0) -> ok;
casts(N) ->
    ok = py:cast(bench_helpers, tick, []),
    casts(N - 1).

%% 5. spawn_call + await in batches of 100.
spawn_await(#{spawn_batches := B}) ->
    warm_up(100),
    T0 = now_ns(),
    ok = batches(B),
    T1 = now_ns(),
    #{rate => per_second(B * 100, T1 - T0)}.

batches(0) -> ok;
batches(B) ->
    Refs = [py:spawn_call(operator, add, [1, 2]) || _ <- lists:seq(1, 100)],
    [{ok, 3} = py:await(R) || R <- Refs],
    batches(B - 1).

%% 6. 1 MiB in (a binary that is not UTF-8, so Python sees bytes) and 1 MiB out.
bin_arg(#{mib := N}) ->
    Bin = binary:copy(<<255>>, ?MIB),
    {ok, ?MIB} = py:call(builtins, len, [Bin]),
    T0 = now_ns(),
    ok = repeat(N, fun() -> {ok, ?MIB} = py:call(builtins, len, [Bin]) end),
    T1 = now_ns(),
    #{rate => per_second(N, T1 - T0), mbps => per_second(N, T1 - T0) * ?MIB / 1.0e6}.

bin_result(#{mib := N}) ->
    Expected = binary:copy(<<"x">>, ?MIB),
    {ok, Expected} = py:call(bench_helpers, mib, []),
    T0 = now_ns(),
    ok = repeat(N, fun() -> {ok, Expected} = py:call(bench_helpers, mib, []) end),
    T1 = now_ns(),
    #{rate => per_second(N, T1 - T0), mbps => per_second(N, T1 - T0) * ?MIB / 1.0e6}.

%% The same cached array returned both ways; each result is checked against the exact
%% expected value outside the timed call.
float_array(#{array_calls := N}) ->
    Rows = [[float(R * 1000 + C) || C <- lists:seq(0, 999)] || R <- lists:seq(0, 999)],
    Data = << <<X:64/float-native>> || Row <- Rows, X <- Row >>,
    Binary = {py_array, <<"float64">>, [1000, 1000], Data},
    ListsNs = timed_results(N, fun() -> py:call(bench_helpers, float_matrix, []) end, {ok, Rows}),
    BinaryNs = timed_results(N, fun() -> py:call(bench_helpers, float_matrix, [], #{},
                                                 #{arrays => binary}) end, {ok, Binary}),
    #{lists_ms => ListsNs / N / 1.0e6, binary_ms => BinaryNs / N / 1.0e6}.

timed_results(0, _Call, _Expected) ->
    0;
timed_results(N, Call, Expected) ->
    T0 = now_ns(),
    Result = Call(),
    T1 = now_ns(),
    Expected = Result,
    T1 - T0 + timed_results(N - 1, Call, Expected).

%% 7. Timer lateness while every context spins in Python, after a no-load floor.
timer_lateness(#{spin_s := Spin, idle_ms := IdleMs}) ->
    Ctxs = [py:context(I) || I <- lists:seq(1, py:num_executors())],
    %% Import the helper and create this process's namespace on every context first:
    %% this scenario measures a running CPU-bound loop, not a cold start.
    [{ok, _} = py:call(Ctx, bench_helpers, spin, [0.0]) || Ctx <- Ctxs],
    {IdleSend, IdleAfter} = lateness(IdleMs),
    Refs = [py:spawn_call(Ctx, bench_helpers, spin, [Spin]) || Ctx <- Ctxs],
    timer:sleep(20),
    {Send, After} = lateness(round(Spin * 1000) - 120),
    [begin
         {ok, Iterations} = py:await(R, 30000),
         true = is_integer(Iterations) andalso Iterations > 0
     end || R <- Refs],
    #{loaded_send_after => Send, loaded_after => After,
      idle_send_after => IdleSend, idle_after => IdleAfter}.

%% Alternates erlang:send_after(1, ...) and receive-after 1 for Ms milliseconds; answers
%% the worst lateness (ms) of each.
lateness(Ms) ->
    Deadline = now_ns() + Ms * 1000000,
    lateness(Deadline, 0, 0).

lateness(Deadline, Send, After) ->
    case now_ns() >= Deadline of
        true ->
            {Send / 1.0e6, After / 1.0e6};
        false ->
            Tag = make_ref(),
            T0 = now_ns(),
            _ = erlang:send_after(1, self(), Tag),
            receive Tag -> ok end,
            T1 = now_ns(),
            receive after 1 -> ok end,
            T2 = now_ns(),
            lateness(Deadline, max(Send, T1 - T0 - 1000000), max(After, T2 - T1 - 1000000))
    end.

%% 8. Memory growth over many calls.
memory(#{memory := N}) ->
    warm_up(1000),
    {Beam0, Rss0} = settled_memory(),
    ok = calls(N),
    {Beam1, Rss1} = settled_memory(),
    #{beam => (Beam1 - Beam0) / ?MIB, rss => (Rss1 - Rss0) / ?MIB}.

settled_memory() ->
    [erlang:garbage_collect(P) || P <- processes()],
    timer:sleep(200),
    {erlang:memory(total), rss_bytes()}.

rss_bytes() ->
    {ok, Status} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.

%% 8b. What a shared-state entry costs: 300,000 entries stored in a VM of their own (a
%% fresh peer, so memory freed by earlier rounds cannot hide any), every one read back.
state_entries(#{state_entries := N}) ->
    {ok, Peer, _} = peer:start(#{connection => standard_io,
                                 args => ["-pa", filename:dirname(code:which(py))]}),
    try
        Env = application:get_all_env(erlang_python),
        ok = peer:call(Peer, application, load, [erlang_python]),
        [ok = peer:call(Peer, application, set_env, [erlang_python, K, V]) || {K, V} <- Env],
        {ok, _} = peer:call(Peer, application, ensure_all_started, [erlang_python], 60000),
        {ok, Bin} = own_object_code(),
        {module, ?MODULE} = peer:call(Peer, code, load_binary, [?MODULE, "py_bench.erl", Bin]),
        #{rss := Rss, ns := Ns, keys := N} = peer:call(Peer, ?MODULE, fill_state, [N], 120000),
        #{bytes => Rss / N, rate => per_second(N, Ns)}
    after
        peer:stop(Peer)
    end.

own_object_code() ->
    Src = proplists:get_value(source, ?MODULE:module_info(compile)),
    case compile:file(Src, [binary]) of
        {ok, ?MODULE, Bin} -> {ok, Bin};
        Error -> Error
    end.

%% In the peer: store N entries from a process of its own, check them all, and answer
%% the RSS growth.
-spec fill_state(pos_integer()) -> map().
fill_state(N) ->
    ok = py:state_store(warm, up),
    ok = py:state_clear(),
    {_, Rss0} = settled_memory(),
    T0 = now_ns(),
    {_, Mon} = spawn_monitor(fun() -> ok = store_entries(1, N) end),
    receive {'DOWN', Mon, process, _, normal} -> ok end,
    T1 = now_ns(),
    {_, Rss1} = settled_memory(),
    Keys = py:state_keys(),
    N = length(Keys),
    true = lists:sort(Keys) =:= [{key, I} || I <- lists:seq(1, N)],
    ok = check_entries(1, N),
    #{rss => Rss1 - Rss0, ns => T1 - T0, keys => N}.

store_entries(I, N) when I > N -> ok;
store_entries(I, N) ->
    ok = py:state_store({key, I}, {value, I}),
    store_entries(I + 1, N).

check_entries(I, N) when I > N -> ok;
check_entries(I, N) ->
    {ok, {value, I}} = py:state_fetch({key, I}),
    check_entries(I + 1, N).

%% 9. Floors.
floor_python(#{add_loop := N}) ->
    {ok, Ns} = py:call(bench_helpers, add_loop, [N]),
    true = is_float(Ns) andalso Ns > 0,
    #{ns => Ns}.

%% What asyncio itself costs for the async_gather scenario, with no bridge involved.
floor_gather(_Cfg) ->
    {ok, Ms} = py:call(bench_helpers, gather_floor, [1000, 50]),
    true = is_float(Ms) andalso Ms >= 50,
    #{wall => Ms}.

floor_erlang(#{erl_rt := N}) ->
    Echo = spawn_link(fun Loop() -> receive {From, M} -> From ! {self(), M}, Loop() end end),
    [rt(Echo, I) || I <- lists:seq(1, 1000)],
    H = hist_new(),
    T0 = now_ns(),
    timed_rts(Echo, N, H),
    T1 = now_ns(),
    unlink(Echo),
    exit(Echo, kill),
    #{p50 => hist_pct(H, N, 0.50) / 1000, rate => per_second(N, T1 - T0)}.

rt(Echo, M) ->
    Echo ! {self(), M},
    receive {Echo, M} -> ok end.

timed_rts(_Echo, 0, _H) ->
    ok;
timed_rts(Echo, N, H) ->
    A = erlang:monotonic_time(nanosecond),
    ok = rt(Echo, N),
    B = erlang:monotonic_time(nanosecond),
    hist_add(H, B - A),
    timed_rts(Echo, N - 1, H).

%%% Scenarios for APIs that do not exist yet (run only when py exports them).

%% py:stream_start(M, F, A) -> {ok, Ref}; the owner receives {py_stream, Ref, {data, V}}
%% per item, then {py_stream, Ref, done}.
stream(#{stream := N}) ->
    ok = stream_once(100),
    T0 = now_ns(),
    ok = stream_once(N),
    T1 = now_ns(),
    #{rate => per_second(N, T1 - T0)}.

stream_once(N) ->
    {ok, Ref} = py:stream_start(bench_helpers, count_gen, [N]),
    stream_recv(Ref, 0, N).

stream_recv(Ref, I, N) ->
    receive
        {py_stream, Ref, {data, V}} when V =:= I -> stream_recv(Ref, I + 1, N);
        {py_stream, Ref, {data, V}} -> error({stream_item, {expected, I}, {got, V}});
        {py_stream, Ref, done} when I =:= N -> ok;
        {py_stream, Ref, done} -> error({stream_ended_early, {items, I}, {expected, N}});
        {py_stream, Ref, Other} -> error({stream_message, Other})
    after 30000 ->
        error({stream_stalled, {items, I}})
    end.

%% py:async_gather([{M, F, A}]) -> {ok, [V]}.
async_gather(N, _Cfg) ->
    {ok, [1]} = py:async_gather([{bench_helpers, async_sleep, [1]}]),
    Calls = lists:duplicate(N, {bench_helpers, async_sleep, [50]}),
    Expected = lists:duplicate(N, 50),
    T0 = now_ns(),
    {ok, Expected} = py:async_gather(Calls),
    T1 = now_ns(),
    #{wall => (T1 - T0) / 1.0e6}.

%% py:register_function(Name, Fun) with Fun taking the list of arguments; Python calls
%% erlang.call('name', *args).
callback(#{callback := N}) ->
    ok = py:register_function(bench_add, fun([A, B]) -> A + B end),
    {ok, 100} = py:call(bench_helpers, callback_loop, [<<"bench_add">>, 100]),
    T0 = now_ns(),
    {ok, N} = py:call(bench_helpers, callback_loop, [<<"bench_add">>, N]),
    T1 = now_ns(),
    ok = py:unregister_function(bench_add),
    #{rate => per_second(N, T1 - T0)}.

%%% ---------------------------------------------------------------------------
%%% Shared call loops

warm_up(N) -> calls(N).

calls(0) -> ok;
calls(N) ->
    {ok, 3} = py:call(operator, add, [1, 2]),
    calls(N - 1).

repeat(0, _F) -> ok;
repeat(N, F) -> F(), repeat(N - 1, F).

%%% ---------------------------------------------------------------------------
%%% Running rounds

run_scenario(#{id := Id, title := Title} = S, Cfg, Rounds, Acc) ->
    io:format("  ~-20s ~ts~n", [Id, Title]),
    case run_rounds(S, Cfg, maps:get(rounds, S, Rounds), []) of
        {ok, Results} ->
            add_rows(S, ok, Results, maps:get(rounds, S, Rounds), Acc);
        {error, Reason, Done} ->
            io:format("  ~-20s ERROR after ~b round(s): ~0tp~n", [Id, length(Done), Reason]),
            add_rows(S, error, Reason, maps:get(rounds, S, Rounds),
                     Acc#{errors := maps:get(errors, Acc) ++ [{Id, Reason}]})
    end.

run_rounds(_S, _Cfg, 0, Acc) ->
    {ok, lists:reverse(Acc)};
run_rounds(#{run := Run, metrics := Metrics} = S, #{round_limit_ms := Limit} = Cfg, N, Acc) ->
    Parent = self(),
    Tag = make_ref(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       Parent ! {Tag, try {ok, Run(Cfg)}
                                                      catch Class:Reason:Stack ->
                                                              {crashed, {Class, Reason, Stack}}
                                                      end}
                               end),
    Outcome = receive
                  {Tag, {ok, Result}} ->
                      erlang:demonitor(Mon, [flush]),
                      check_result(Result, Metrics);
                  {Tag, {crashed, {error, Reason, Stack}}} ->
                      erlang:demonitor(Mon, [flush]),
                      {error, {Reason, Stack}};
                  {Tag, {crashed, {Class, Reason, Stack}}} ->
                      erlang:demonitor(Mon, [flush]),
                      {error, {{Class, Reason}, Stack}};
                  {'DOWN', Mon, process, Pid, Reason} ->
                      {error, Reason}
              after Limit ->
                  exit(Pid, kill),
                  receive {'DOWN', Mon, process, Pid, _} -> ok end,
                  {error, {round_timeout, Limit}}
              end,
    case Outcome of
        {ok, Values} -> run_rounds(S, Cfg, N - 1, [Values | Acc]);
        {error, Why} -> {error, Why, Acc}
    end.

check_result(Result, Metrics) when is_map(Result) ->
    case [K || {K, _, _} <- Metrics, not is_number(maps:get(K, Result, undefined))] of
        [] -> {ok, Result};
        Missing -> {error, {metrics_missing, Missing, Result}}
    end;
check_result(Other, _Metrics) ->
    {error, {bad_scenario_result, Other}}.

%% Rows: #{id, title, label, target, status := ok | error, values, detail}.
add_rows(#{id := Id, title := Title, metrics := Metrics}, Status, Data, Rounds, Acc) ->
    Rows = [#{id => Id, title => Title, key => Key, label => Label, target => Target,
              status => Status, rounds => Rounds,
              values => case Status of
                            ok -> [maps:get(Key, R) || R <- Data];
                            _ -> []
                        end,
              detail => case Status of ok -> none; _ -> Data end}
            || {Key, Label, Target} <- Metrics],
    Acc#{rows := maps:get(rows, Acc) ++ Rows}.

%%% ---------------------------------------------------------------------------
%%% Small utilities

now_ns() -> erlang:monotonic_time(nanosecond).

per_second(N, Ns) when Ns > 0 -> N * 1.0e9 / Ns;
per_second(_N, _Ns) -> 0.0.

hist_new() ->
    erase('$bench_overflow'),
    counters:new(?NBUCKETS + 1, []).

hist_add(H, Ns) ->
    case Ns div ?BUCKET_NS + 1 of
        I when I =< ?NBUCKETS ->
            counters:add(H, I, 1);
        _ ->
            counters:add(H, ?NBUCKETS + 1, 1),
            put('$bench_overflow', [Ns | case get('$bench_overflow') of
                                              undefined -> [];
                                              L -> L
                                          end])
    end.

%% The P-quantile (nanoseconds, bucket midpoint) of the Total samples in H.
hist_pct(H, Total, P) ->
    Rank = max(1, ceil(P * Total)),
    hist_walk(H, 1, 0, Rank).

hist_walk(_H, I, Cum, Rank) when I > ?NBUCKETS ->
    Overflow = lists:sort(case get('$bench_overflow') of undefined -> []; L -> L end),
    lists:nth(Rank - Cum, Overflow);
hist_walk(H, I, Cum, Rank) ->
    case Cum + counters:get(H, I) of
        C when C >= Rank -> (I - 1) * ?BUCKET_NS + ?BUCKET_NS / 2;
        C -> hist_walk(H, I + 1, C, Rank)
    end.

thousands(N) when is_integer(N) ->
    S = integer_to_list(N),
    lists:reverse(group(lists:reverse(S))).

group([A, B, C, D | Rest]) -> [A, B, C, $, | group([D | Rest])];
group(L) -> L.
