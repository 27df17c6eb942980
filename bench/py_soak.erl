%%% @doc The soak: every kind of request at once, with timeouts that interrupt Python,
%%% callers killed mid-call, streams cancelled or abandoned, and the contexts stopped and
%%% started again, for a while; then the VM's memory, OS threads, file descriptors and
%%% processes are compared with what they were before. Nothing may grow.
%%%
%%% Each worker checks every answer it gets: an answer outside what the request may
%%% answer (the right value, `timeout' where a timeout is asked for, or a "no context"
%%% error while the contexts restart) counts as unexpected.
-module(py_soak).

-export([run/1]).

-define(MIB, 1048576).
%% Workers running the mix at once.
-define(WORKERS, 12).
%% How often the contexts are stopped and started again.
-define(RESTART_EVERY_MS, 3000).

%% @doc Soak for `DurationMs' after a warm-up of a tenth of it, in two halves. Growth is
%% what the second half added to what the first left: caches, pools and the allocators'
%% kept memory fill up in the first half, a leak keeps growing in the second. Answers
%% that growth of each resource, the growth over both halves (`*_total'), and the count
%% of requests and of unexpected answers.
-spec run(pos_integer()) -> #{atom() => number()}.
run(DurationMs) ->
    ok = py:register_function(soak_echo, fun([X]) -> X end),
    ok = py:register_function(soak_twice, fun([X]) -> {ok, Y} = py:eval(<<"x * 2">>, #{x => X}), Y end),
    {_, Bad0} = mix(max(500, DurationMs div 10)),
    Start = settled(),
    {Requests1, Bad1} = mix(DurationMs div 2),
    Middle = settled(),
    {Requests2, Bad2} = mix(DurationMs - DurationMs div 2),
    End = settled(),
    ok = py:unregister_function(soak_echo),
    ok = py:unregister_function(soak_twice),
    Growth = maps:map(fun(K, V) -> V - maps:get(K, Middle) end, End),
    Total = maps:map(fun(K, V) -> V - maps:get(K, Start) end, End),
    Growth#{requests => Requests1 + Requests2, unexpected => Bad0 + Bad1 + Bad2,
            rss_mb => maps:get(rss, Growth) / ?MIB, beam_mb => maps:get(beam, Growth) / ?MIB,
            rss_total_mb => maps:get(rss, Total) / ?MIB,
            threads_total => maps:get(threads, Total), fds_total => maps:get(fds, Total),
            processes_total => maps:get(processes, Total)}.

%%% ---------------------------------------------------------------------------
%%% The mix

mix(DurationMs) ->
    Deadline = erlang:monotonic_time(millisecond) + DurationMs,
    Counters = counters:new(2, []),
    Parent = self(),
    Workers = [spawn_monitor(fun() -> worker(I, Deadline, Counters), Parent ! {done, self()} end)
               || I <- lists:seq(1, ?WORKERS)],
    restarter(Deadline),
    [receive {'DOWN', Mon, process, Pid, Why} -> normal = Why end || {Pid, Mon} <- Workers],
    %% A restart may still be settling: make sure contexts run for what follows.
    {ok, _} = py:start_contexts(),
    {counters:get(Counters, 1), counters:get(Counters, 2)}.

restarter(Deadline) ->
    case erlang:monotonic_time(millisecond) + ?RESTART_EVERY_MS < Deadline of
        true ->
            timer:sleep(?RESTART_EVERY_MS),
            ok = py:stop_contexts(),
            {ok, _} = py:start_contexts(),
            restarter(Deadline);
        false ->
            timer:sleep(max(0, Deadline - erlang:monotonic_time(millisecond)))
    end.

worker(I, Deadline, Counters) ->
    case erlang:monotonic_time(millisecond) < Deadline of
        true ->
            Kind = element(1 + (I + erlang:unique_integer([positive])) rem tuple_size(kinds()), kinds()),
            Answer = try one(Kind)
                     catch Class:Reason -> {crashed, Class, Reason}
                     end,
            Ok = expected(Kind, Answer),
            counters:add(Counters, 1, 1),
            case Ok of
                true -> ok;
                Other ->
                    counters:add(Counters, 2, 1),
                    io:format("  soak: unexpected answer to ~p: ~0tP~n", [Kind, Other, 12])
            end,
            worker(I, Deadline, Counters);
        false ->
            ok
    end.

kinds() ->
    {call, eval, exec, cast, spawn, timeout_spin, timeout_sleep, async, async_timeout,
     async_dead_caller, gather, stream, stream_cancel, stream_dead_owner, callback,
     reentrant, state, shared_dict, py_ref, killed_caller, collect}.

%% One request of `Kind'; answers what `expected/2' checks.
one(call) -> py:call(operator, add, [1, 2]);
one(eval) -> py:eval(<<"x + y">>, #{x => 1, y => 2});
one(exec) ->
    case py:exec(<<"soak_n = 3">>) of
        ok -> py:eval(<<"soak_n">>);
        Error -> Error
    end;
one(cast) -> py:cast(operator, add, [1, 2]);
one(spawn) -> py:await(py:spawn_call(operator, add, [1, 2]), 5000);
%% Spins in Python without allocating: a list grown until the timeout would measure how
%% the heap fragments, not what leaks.
one(timeout_spin) -> py:eval(<<"next(i for i in iter(int, 1) if i)">>, #{}, 20);
one(timeout_sleep) -> py:call(time, sleep, [0.05], #{}, 10);
one(async) -> py:async_await(py:async_call(asyncio, sleep, [0.001, 3]), 5000);
one(async_timeout) -> py:async_await(py:async_call(asyncio, sleep, [5, 3]), 10);
one(async_dead_caller) ->
    {Pid, Mon} = spawn_monitor(fun() -> _ = py:async_call(asyncio, sleep, [600]), exit(gone) end),
    receive {'DOWN', Mon, process, Pid, gone} -> dead_caller end;
one(gather) -> py:async_gather([{asyncio, sleep, [0.001, 1]}, {operator, add, [1, 1]}]);
one(stream) ->
    case py:stream_start(builtins, range, [50]) of
        {ok, Ref} -> drain(Ref, 0);
        Error -> Error
    end;
one(stream_cancel) ->
    case py:stream_start(itertools, count, []) of
        {ok, Ref} ->
            ok = py:stream_cancel(Ref),
            cancelled_stream(Ref);
        Error -> Error
    end;
one(stream_dead_owner) ->
    Owner = spawn(fun() -> receive never -> ok end end),
    Started = py:stream_start(itertools, count, [], #{owner => Owner, window => 10}),
    exit(Owner, kill),
    case Started of
        {ok, _} -> dead_owner;
        Error -> Error
    end;
one(callback) -> py:eval(<<"erlang.soak_echo(7)">>);
one(reentrant) -> py:eval(<<"erlang.soak_twice(21)">>);
one(state) ->
    Key = {soak, self()},
    ok = py:state_store(Key, [1, 2, 3]),
    {ok, [1, 2, 3]} = py:state_fetch(Key),
    ok = py:state_remove(Key),
    py:state_fetch(Key);
one(shared_dict) ->
    {ok, Dict} = py:shared_dict_new(),
    ok = py:shared_dict_set(Dict, a, 1),
    Value = py:shared_dict_get(Dict, a),
    ok = py:shared_dict_destroy(Dict),
    Value;
one(py_ref) ->
    case py:call(py:context(), builtins, list, [[1, 2, 3]], #{return => ref}) of
        {ok, Ref} -> py:call_method(Ref, count, [2]);
        Error -> Error
    end;
one(killed_caller) ->
    {Pid, Mon} = spawn_monitor(fun() -> py:call(time, sleep, [0.02]) end),
    timer:sleep(1),
    exit(Pid, kill),
    receive {'DOWN', Mon, process, Pid, _} -> killed end;
one(collect) -> py:stream(builtins, range, [5]).

drain(Ref, N) ->
    receive
        {py_stream, Ref, {data, _}} -> drain(Ref, N + 1);
        {py_stream, Ref, done} -> {streamed, N};
        {py_stream, Ref, {error, _} = Error} -> Error
    after 5000 -> {stalled, N}
    end.

%% After a cancel: items that were already sent, then the end message.
cancelled_stream(Ref) ->
    receive
        {py_stream, Ref, {data, _}} -> cancelled_stream(Ref);
        {py_stream, Ref, {error, cancelled}} -> cancelled;
        {py_stream, Ref, done} -> cancelled;
        {py_stream, Ref, {error, _} = Error} -> Error
    after 5000 -> no_end_message
    end.

%% Whether `Answer' is one that a request of `Kind' may give.
expected(_Kind, {error, Stopped}) when Stopped =:= context_stopped;
                                       Stopped =:= contexts_not_started ->
    true;
expected(_Kind, {error, {context_restarting, _}}) -> true;
%% `py:context/0' has no pid to give while the contexts restart.
expected(_Kind, {crashed, error, {context_restarting, _}}) -> true;
expected(_Kind, {crashed, error, contexts_not_started}) -> true;
expected(Kind, Answer) ->
    case {Kind, Answer} of
        {call, {ok, 3}} -> true;
        {eval, {ok, 3}} -> true;
        {exec, {ok, 3}} -> true;
        {cast, ok} -> true;
        {spawn, {ok, 3}} -> true;
        {timeout_spin, {error, timeout}} -> true;
        {timeout_sleep, {error, timeout}} -> true;
        %% A caller descheduled past the 50 ms sleep (a loaded machine) finds the reply
        %% there when it gives up, and a reply that came first wins over the cancel.
        %% `timeout_spin' never finishes on its own, so it still checks the interrupt.
        {timeout_sleep, {ok, none}} -> true;
        {async, {ok, 3}} -> true;
        {async_timeout, {error, timeout}} -> true;
        {async_dead_caller, dead_caller} -> true;
        {gather, {ok, [1, 2]}} -> true;
        {stream, {streamed, 50}} -> true;
        {stream_cancel, cancelled} -> true;
        {stream_dead_owner, dead_owner} -> true;
        {callback, {ok, 7}} -> true;
        {reentrant, {ok, 42}} -> true;
        {state, {error, not_found}} -> true;
        {shared_dict, 1} -> true;
        {py_ref, {ok, 1}} -> true;
        {killed_caller, killed} -> true;
        {collect, {ok, [0, 1, 2, 3, 4]}} -> true;
        _ -> Answer
    end.

%%% ---------------------------------------------------------------------------
%%% Measuring

%% The VM after its work settled: every context idle, garbage collected.
settled() ->
    settle(50),
    [erlang:garbage_collect(P) || P <- processes()],
    {ok, _} = py:gc(),
    %% What the allocator keeps for reuse is not growth (see bench_helpers.trim_heap).
    {ok, _} = py:call(bench_helpers, trim_heap, []),
    timer:sleep(300),
    #{beam => erlang:memory(total), rss => rss_bytes(),
      threads => count_dir("/proc/self/task"), fds => count_dir("/proc/self/fd"),
      processes => erlang:system_info(process_count)}.

%% Wait until a call answers at once on every context, so no work is still draining.
settle(0) -> ok;
settle(N) ->
    Slow = [Ctx || Ctx <- contexts(), timed_call(Ctx) > 20],
    case Slow of
        [] -> ok;
        _ -> timer:sleep(100), settle(N - 1)
    end.

contexts() ->
    [py:context(I) || I <- lists:seq(1, py:num_executors())].

timed_call(Ctx) ->
    T0 = erlang:monotonic_time(millisecond),
    {ok, 3} = py:call(Ctx, operator, add, [1, 2]),
    erlang:monotonic_time(millisecond) - T0.

count_dir(Dir) ->
    {ok, Names} = file:list_dir(Dir),
    length(Names).

rss_bytes() ->
    {ok, Status} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.
