%%% @doc The runtime's promises: timeouts interrupt Python and leave no late reply,
%%% concurrency, callers that die mid-call, schedulers never blocked, crash recovery,
%%% overload, restarts of the application, and Python output reaching Erlang.
-module(py_runtime_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([timeout_interrupts_python_loop/1, timeout_in_c_call/1, timeout_infinity/1,
         concurrent_callers/1, caller_killed_mid_call/1, schedulers_never_blocked/1,
         context_crash_answers_and_restarts/1, overload_answers_at_once/1,
         app_restarts/1, stdout_reaches_group_leader/1, stderr_reaches_group_leader/1,
         python_threads_run/1, atom_limit_bounds_new_atoms/1]).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [timeout_interrupts_python_loop, timeout_in_c_call, timeout_infinity,
     concurrent_callers, caller_killed_mid_call, schedulers_never_blocked,
     context_crash_answers_and_restarts, overload_answers_at_once,
     stdout_reaches_group_leader, stderr_reaches_group_leader, python_threads_run,
     atom_limit_bounds_new_atoms, app_restarts].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(overload_answers_at_once, Config) ->
    %% A small queue bound on one context, so that overload is reachable.
    py_test_lib:stop(),
    ok = py_test_lib:start([{num_contexts, 1}, {max_queued, 5}]),
    Config;
init_per_testcase(atom_limit_bounds_new_atoms, Config) ->
    py_test_lib:stop(),
    ok = py_test_lib:start([{atom_limit, 0}]),
    Config;
init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(overload_answers_at_once, _Config) ->
    py_test_lib:stop(),
    application:unset_env(erlang_python, max_queued),
    application:unset_env(erlang_python, num_contexts),
    ok = py_test_lib:start();
end_per_testcase(atom_limit_bounds_new_atoms, _Config) ->
    py_test_lib:stop(),
    application:unset_env(erlang_python, atom_limit),
    ok = py_test_lib:start();
end_per_testcase(_Case, _Config) ->
    ok.

millis(Fun) ->
    T0 = erlang:monotonic_time(millisecond),
    R = Fun(),
    {erlang:monotonic_time(millisecond) - T0, R}.

flush_count() ->
    {messages, M} = process_info(self(), messages),
    length(M).

timeout_interrupts_python_loop(_) ->
    {Ms2, R2} = millis(fun() -> py:eval(<<"exec('while True: pass')">>, #{}, 100) end),
    ?assertEqual({error, timeout}, R2),
    ?assert(Ms2 < 1000),
    %% The loop was interrupted: the same context answers at once.
    {Ms3, R3} = millis(fun() -> py:call(operator, add, [1, 2], #{}, 1000) end),
    ?assertEqual({ok, 3}, R3),
    ?assert(Ms3 < 1000),
    timer:sleep(100),
    ?assertEqual(0, flush_count()).

timeout_in_c_call(_) ->
    {Ms, R} = millis(fun() -> py:call(time, sleep, [2], #{}, 100) end),
    ?assertEqual({error, timeout}, R),
    ?assert(Ms < 1000),
    %% The context is busy in C until the sleep returns, then serves the next request.
    {Ms2, R2} = millis(fun() -> py:call(operator, add, [1, 2], #{}, 5000) end),
    ?assertEqual({ok, 3}, R2),
    ?assert(Ms2 < 2500),
    timer:sleep(300),
    ?assertEqual(0, flush_count()).

timeout_infinity(_) ->
    ?assertEqual({ok, <<"done">>}, py:call(py_api_helpers, sleep_then, [0.1, done], #{}, infinity)).

concurrent_callers(_) ->
    Parent = self(),
    N = 10000,
    Pids = [spawn_link(fun() -> Parent ! {self(), I, py:call(operator, mul, [I, 3])} end)
            || I <- lists:seq(1, N)],
    Results = [receive {P, I, R} -> {I, R} after 60000 -> {I, missing} end
               || {P, I} <- lists:zip(Pids, lists:seq(1, N))],
    ?assertEqual([{I, {ok, I * 3}} || I <- lists:seq(1, N)], Results).

caller_killed_mid_call(_) ->
    Ctx = py:context(),
    {ok, none} = py:call(Ctx, py_api_helpers, clear, []),
    Self = self(),
    Caller = spawn(fun() ->
                           ok = py:exec(Ctx, <<"from py_api_helpers import FreedProbe\n"
                                               "probe = FreedProbe('killed')\n">>),
                           Self ! probe_made,
                           py:call(Ctx, py_api_helpers, sleep_then, [0.3, done], #{timeout => 5000})
                   end),
    receive probe_made -> ok after 5000 -> ct:fail(no_probe) end,
    timer:sleep(100),
    exit(Caller, kill),
    %% The context finishes that call, keeps serving, and frees the caller's namespace.
    ?assertEqual({ok, 3}, py:call(Ctx, operator, add, [1, 2])),
    ?assert(wait_until(fun() ->
                               py:call(Ctx, py_api_helpers, freed_tags, []) =:= {ok, [<<"killed">>]}
                       end, 5000)).

wait_until(Fun, Left) ->
    case Fun() of
        true -> true;
        false when Left =< 0 -> false;
        false -> erlang:garbage_collect(), timer:sleep(20), wait_until(Fun, Left - 20)
    end.

schedulers_never_blocked(_) ->
    Parent = self(),
    Ticker = spawn_link(fun() -> tick(Parent, erlang:monotonic_time(millisecond), 0) end),
    Busy = [py:spawn_call(C, py_api_helpers, spin, [2.0]) || C <- contexts()],
    Results = [py:await(R, 10000) || R <- Busy],
    Ticker ! stop,
    Worst = receive {worst_tick, W} -> W end,
    ct:pal("worst 10 ms tick lateness while every context spins: ~b ms", [Worst]),
    ?assert(lists:all(fun({ok, N}) -> is_integer(N); (_) -> false end, Results)),
    ?assert(Worst < 200).

contexts() ->
    [py:context(I) || I <- lists:seq(1, py:num_executors())].

tick(Parent, Last, Worst) ->
    receive
        stop -> Parent ! {worst_tick, Worst}
    after 10 ->
        Now = erlang:monotonic_time(millisecond),
        tick(Parent, Now, max(Worst, Now - Last - 10))
    end.

context_crash_answers_and_restarts(_) ->
    Ctx = py:context(1),
    {ok, {Ctx, Handle, _}} = py_context_router:by_index(1),
    Pending = py:spawn_call(Ctx, py_api_helpers, sleep_then, [0.3, never]),
    Queued = py:spawn_call(Ctx, operator, add, [1, 2]),
    timer:sleep(50),
    Mon = monitor(process, Ctx),
    ok = py_nif:context_panic(Handle),
    Behind = py:spawn_call(Ctx, operator, add, [1, 2]),
    %% The mailbox is first in, first out: the running call and the call queued before the
    %% panic finish; the call queued after it is answered with the crash.
    Why = <<"panic requested by py_nif:context_panic/1">>,
    ?assertEqual({ok, <<"never">>}, py:await(Pending, 5000)),
    ?assertEqual({ok, 3}, py:await(Queued, 5000)),
    ?assertEqual({error, {context_crashed, Why}}, py:await(Behind, 5000)),
    receive {'DOWN', Mon, process, Ctx, Reason} ->
            ?assertMatch({context_crashed, Why}, Reason)
    after 5000 -> ct:fail(context_not_restarted)
    end,
    ?assert(wait_until(fun() ->
                               case py_context_router:by_index(1) of
                                   {ok, {New, _, _}} -> New =/= Ctx;
                                   _ -> false
                               end
                       end, 5000)),
    NewCtx = py:context(1),
    ?assertEqual({ok, 3}, py:call(NewCtx, operator, add, [1, 2])).

overload_answers_at_once(_) ->
    1 = py:num_executors(),
    Blocker = py:spawn_call(py_api_helpers, sleep_then, [0.5, done]),
    timer:sleep(50),
    Queued = [py:spawn_call(operator, add, [I, 1]) || I <- lists:seq(1, 5)],
    {Ms, R} = millis(fun() -> py:call(operator, add, [1, 1]) end),
    ?assertEqual({error, {overloaded, 5, 5}}, R),
    ?assert(Ms < 100),
    ?assertEqual({ok, <<"done">>}, py:await(Blocker, 5000)),
    ?assertEqual([{ok, I + 1} || I <- lists:seq(1, 5)], [py:await(Q, 5000) || Q <- Queued]),
    ?assertEqual({ok, 2}, py:call(operator, add, [1, 1])).

app_restarts(_) ->
    Restart = fun(I) ->
                      ok = application:stop(erlang_python),
                      ?assertEqual({error, contexts_not_started}, py:call(operator, add, [1, 2])),
                      ok = py_test_lib:start(),
                      %% In a process of its own, so that no handle outlives the round.
                      Self = self(),
                      {Pid, Mon} = spawn_monitor(fun() ->
                                                         Self ! {self(), py:call(operator, add, [I, 1]),
                                                                 py:exec(<<"x = 5">>), py:eval(<<"x">>)}
                                                 end),
                      receive {Pid, Sum, Exec, Eval} ->
                              ?assertEqual({{ok, I + 1}, ok, {ok, 5}}, {Sum, Exec, Eval})
                      end,
                      receive {'DOWN', Mon, process, Pid, normal} -> ok end
              end,
    Restart(0),
    %% Contexts open their loops on their own threads after the start returns: count
    %% once every context of the round is up (the count holds still for 300 ms).
    Before = steady_fd_targets(fd_targets(), 20),
    lists:foreach(Restart, [1, 2, 3, 4, 5]),
    %% Each context start used to leak its wake-up eventfd (and its loop's fds until a
    %% cycle collection): five restarts of four contexts would hold 20 or more.
    Settled = wait_until(fun() ->
                                 [erlang:garbage_collect(P) || P <- processes()],
                                 length(fd_targets()) =< length(Before) + 2
                         end, 5000),
    %% What is open now that was not before, to tell a leak from a neighbour's file.
    ct:log("before ~b fds, after ~b; new: ~p",
           [length(Before), length(fd_targets()), fd_targets() -- Before]),
    ?assert(Settled).

steady_fd_targets(Last, 0) ->
    Last;
steady_fd_targets(Last, Tries) ->
    timer:sleep(300),
    case fd_targets() of
        Last -> Last;
        Now -> steady_fd_targets(Now, Tries - 1)
    end.

%% Open descriptors of the kinds a context holds (its eventfd, its loop's epoll and
%% self-pipe sockets), with what each refers to. Regular files are left out: Common Test
%% opens its own logs while a case runs (its unexpected-I/O log when a report is printed).
fd_targets() ->
    {ok, Fds} = file:list_dir("/proc/self/fd"),
    lists:sort([{Fd, Target} || Fd <- Fds,
                                {ok, Target} <- [file:read_link("/proc/self/fd/" ++ Fd)],
                                lists:prefix("anon_inode:", Target) orelse lists:prefix("socket:", Target)
                                    orelse lists:prefix("pipe:", Target)]).

stdout_reaches_group_leader(_) ->
    Text = capture_output(fun() -> ok = py:exec(<<"print('hello from python', 42)">>) end,
                          <<"hello from python 42\n">>),
    ?assertEqual(<<"hello from python 42\n">>, Text).

stderr_reaches_group_leader(_) ->
    Text = capture_output(fun() -> ok = py:exec(<<"import sys\nsys.stderr.write('to stderr\\n')">>) end,
                          <<"to stderr\n">>),
    ?assertEqual(<<"to stderr\n">>, Text).

python_threads_run(_) ->
    ?assertEqual({ok, 45},
                 py:eval(<<"(lambda t: (t.start(), t.join(), sum(r))[2])("
                           "__import__('threading').Thread(target=lambda: r.extend(range(10))))">>,
                         #{r => []})),
    ?assertEqual({ok, 45},
                 py:eval(<<"(lambda r, th: (th.Thread(target=lambda: r.extend(range(10))).start() or th) "
                           "and (__import__('time').sleep(0.1), sum(r))[1])([], __import__('threading'))">>)).

atom_limit_bounds_new_atoms(_) ->
    Fresh = <<"py_runtime_suite_never_an_atom_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    AtomsBefore = erlang:system_info(atom_count),
    ?assertEqual({ok, Fresh}, py:eval(<<"erlang.atom(name)">>, #{name => Fresh})),
    ?assertEqual({ok, ok}, py:eval(<<"erlang.atom('ok')">>)),
    %% Exception class names follow the same rule.
    ?assertMatch({error, {<<"PyRuntimeSuiteFreshError">>, "boom"}},
                 py:eval(<<"(_ for _ in ()).throw(type('PyRuntimeSuiteFreshError', (Exception,), {})('boom'))">>)),
    ?assertEqual(AtomsBefore, erlang:system_info(atom_count)).

%% Run Fun with a group leader that collects output until Expected arrived.
capture_output(Fun, Expected) ->
    Self = self(),
    Collector = spawn_link(fun() -> collect(Self, <<>>) end),
    Old = group_leader(),
    group_leader(Collector, self()),
    try
        Fun(),
        wait_for_output(Collector, Expected, 50)
    after
        group_leader(Old, self())
    end.

wait_for_output(Collector, Expected, Tries) ->
    Collector ! {get, self()},
    receive
        {output, Expected} -> Expected;
        {output, Other} when Tries =:= 0 -> Other;
        {output, _} -> timer:sleep(20), wait_for_output(Collector, Expected, Tries - 1)
    end.

collect(Owner, Acc) ->
    receive
        {io_request, From, ReplyAs, {put_chars, unicode, Chars}} ->
            From ! {io_reply, ReplyAs, ok},
            collect(Owner, <<Acc/binary, (unicode:characters_to_binary(Chars))/binary>>);
        {io_request, From, ReplyAs, _} ->
            From ! {io_reply, ReplyAs, {error, enotsup}},
            collect(Owner, Acc);
        {get, From} ->
            From ! {output, Acc},
            collect(Owner, Acc)
    end.
