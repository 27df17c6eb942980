%%% @doc The overload-protection semaphore: slot accounting, blocking with timeouts
%%% and no leaked slot, FIFO wake-ups, holders and waiters that die, run-time limit
%%% changes, a 1,000-process stress test and event-driven (not polled) wake-ups.
-module(py_semaphore_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, end_per_testcase/2]).
-export([default_max/1, max_from_app_env/1, acquire_release_current/1,
         release_without_slot/1, several_slots_per_holder/1, blocks_then_times_out/1,
         zero_timeout/1, fifo_wakeups/1, killed_holder_frees_slot/1,
         killed_multi_holder_frees_all/1, killed_waiter_leaves_queue/1,
         raise_max_wakes_waiters/1, lower_max_keeps_holders/1, timeout_race_no_leak/1,
         thousand_processes_max_ten/1, wakeup_is_prompt/1]).

-define(WAIT, 2000).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [default_max, acquire_release_current, release_without_slot, several_slots_per_holder,
     blocks_then_times_out, zero_timeout, fifo_wakeups, killed_holder_frees_slot,
     killed_multi_holder_frees_all, killed_waiter_leaves_queue, raise_max_wakes_waiters,
     lower_max_keeps_holders, timeout_race_no_leak, thousand_processes_max_ten,
     wakeup_is_prompt, max_from_app_env].

init_per_suite(Config) ->
    application:unset_env(erlang_python, max_concurrent),
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(max_from_app_env, Config) ->
    py_test_lib:stop(),
    ok = py_test_lib:start([{max_concurrent, 3}]),
    Config;
init_per_testcase(_Case, Config) ->
    [{saved_max, py_semaphore:max_concurrent()} | Config].

end_per_testcase(max_from_app_env, _Config) ->
    py_test_lib:stop(),
    application:unset_env(erlang_python, max_concurrent),
    ok = py_test_lib:start();
end_per_testcase(_Case, Config) ->
    %% Every case kills what it spawned: nothing may stay held or queued. A crash here
    %% would only be a warning, so a leak fails the case explicitly.
    Held = wait_until(fun() -> py_semaphore:current() =:= 0 end),
    Queued = wait_until(fun() -> py_semaphore:waiting() =:= 0 end),
    ok = py_semaphore:set_max_concurrent(?config(saved_max, Config)),
    case {Held, Queued} of
        {ok, ok} -> ok;
        Leak -> {fail, {leaked_slots, Leak}}
    end.

%%% Cases

default_max(_Config) ->
    ?assertEqual(erlang:system_info(schedulers_online) * 2 + 1,
                 py_semaphore:max_concurrent()),
    ?assert(is_pid(whereis(py_semaphore))).

max_from_app_env(_Config) ->
    ?assertEqual(3, py_semaphore:max_concurrent()),
    ok = py_semaphore:set_max_concurrent(5),
    ?assertEqual(5, py_semaphore:max_concurrent()).

acquire_release_current(_Config) ->
    ok = py_semaphore:set_max_concurrent(3),
    ?assertEqual(0, py_semaphore:current()),
    ok = py_semaphore:acquire(1000),
    ?assertEqual(1, py_semaphore:current()),
    ok = py_semaphore:acquire(infinity),
    ?assertEqual(2, py_semaphore:current()),
    ok = py_semaphore:release(),
    ?assertEqual(1, py_semaphore:current()),
    ok = py_semaphore:release(),
    ?assertEqual(0, py_semaphore:current()).

release_without_slot(_Config) ->
    ok = py_semaphore:set_max_concurrent(2),
    ?assertEqual(ok, py_semaphore:release()),
    ?assertEqual(0, py_semaphore:current()),
    %% Another process's slot is not released by a process that holds none.
    H = holder(1),
    ?assertEqual(ok, py_semaphore:release()),
    ?assertEqual(1, py_semaphore:current()),
    kill(H).

several_slots_per_holder(_Config) ->
    ok = py_semaphore:set_max_concurrent(3),
    [ok = py_semaphore:acquire(100) || _ <- [1, 2, 3]],
    ?assertEqual(3, py_semaphore:current()),
    ?assertEqual({error, timeout}, py_semaphore:acquire(20)),
    [ok = py_semaphore:release() || _ <- [1, 2, 3]],
    ?assertEqual(ok, py_semaphore:release()),
    ?assertEqual(0, py_semaphore:current()).

blocks_then_times_out(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    H = holder(1),
    {Ms, R} = millis(fun() -> py_semaphore:acquire(100) end),
    ?assertEqual({error, timeout}, R),
    ?assert(Ms >= 100 andalso Ms < 1000, Ms),
    %% No leaked slot, no queued ghost, no late reply.
    ?assertEqual(1, py_semaphore:current()),
    ?assertEqual(0, py_semaphore:waiting()),
    kill(H),
    ok = wait_until(fun() -> py_semaphore:current() =:= 0 end),
    ?assertEqual(0, py_semaphore:current()),
    ?assertEqual({message_queue_len, 0}, process_info(self(), message_queue_len)),
    %% The slot is usable again.
    ok = py_semaphore:acquire(0),
    ok = py_semaphore:release().

zero_timeout(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    ok = py_semaphore:acquire(0),
    {Ms, R} = millis(fun() -> py_semaphore:acquire(0) end),
    ?assertEqual({error, timeout}, R),
    ?assert(Ms < 50, Ms),
    ok = py_semaphore:release(),
    ?assertEqual(0, py_semaphore:current()).

fifo_wakeups(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    ok = py_semaphore:acquire(0),
    Waiters = queue_waiters(5, infinity),
    %% Each release hands the single slot to exactly one waiter, the oldest one; that
    %% waiter then holds it, so the next release picks the next waiter.
    ok = py_semaphore:release(),
    Order = [begin
                 I = receive {got, N, _Pid, _T} -> N after ?WAIT -> ct:fail(no_wakeup) end,
                 ?assertEqual(1, py_semaphore:current()),
                 release_by(lists:nth(I, Waiters)),
                 I
             end || _ <- Waiters],
    ?assertEqual([1, 2, 3, 4, 5], Order),
    [kill(W) || W <- Waiters].

killed_holder_frees_slot(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    H = holder(1),
    [W] = queue_waiters(1, infinity),
    ?assertEqual(1, py_semaphore:waiting()),
    kill(H),
    receive {got, 1, W, _} -> ok after ?WAIT -> ct:fail(no_wakeup) end,
    ?assertEqual(1, py_semaphore:current()),
    ?assertEqual(0, py_semaphore:waiting()),
    kill(W).

killed_multi_holder_frees_all(_Config) ->
    ok = py_semaphore:set_max_concurrent(3),
    H = holder(3),
    ?assertEqual(3, py_semaphore:current()),
    Ws = queue_waiters(3, infinity),
    kill(H),
    Got = lists:sort([receive {got, I, _, _} -> I after ?WAIT -> ct:fail(no_wakeup) end
                      || _ <- Ws]),
    ?assertEqual([1, 2, 3], Got),
    ?assertEqual(3, py_semaphore:current()),
    [kill(W) || W <- Ws].

killed_waiter_leaves_queue(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    ok = py_semaphore:acquire(0),
    [W1, W2, W3] = queue_waiters(3, infinity),
    kill(W2),
    ok = wait_until(fun() -> py_semaphore:waiting() =:= 2 end),
    ok = py_semaphore:release(),
    receive {got, 1, W1, _} -> ok after ?WAIT -> ct:fail(no_wakeup) end,
    release_by(W1),
    %% The dead waiter is skipped: the slot goes to the third one.
    receive {got, 3, W3, _} -> ok after ?WAIT -> ct:fail(no_wakeup) end,
    ?assertEqual(1, py_semaphore:current()),
    ?assertEqual(0, py_semaphore:waiting()),
    [kill(W) || W <- [W1, W3]].

raise_max_wakes_waiters(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    H = holder(1),
    Ws = queue_waiters(4, infinity),
    ok = py_semaphore:set_max_concurrent(4),
    %% Three new slots go to the three oldest waiters; the fourth still waits. (Their
    %% reports may arrive in any order: they are sent by three processes.)
    Got = [receive {got, I, _, _} -> I after ?WAIT -> ct:fail(no_wakeup) end
           || _ <- [1, 2, 3]],
    ?assertEqual([1, 2, 3], lists:sort(Got)),
    ?assertEqual(4, py_semaphore:current()),
    ?assertEqual(1, py_semaphore:waiting()),
    ok = py_semaphore:set_max_concurrent(5),
    receive {got, 4, _, _} -> ok after ?WAIT -> ct:fail(no_wakeup) end,
    ?assertEqual(5, py_semaphore:current()),
    [kill(P) || P <- [H | Ws]].

lower_max_keeps_holders(_Config) ->
    ok = py_semaphore:set_max_concurrent(4),
    Hs = [holder(1) || _ <- [1, 2, 3, 4]],
    ok = py_semaphore:set_max_concurrent(2),
    ?assertEqual(2, py_semaphore:max_concurrent()),
    ?assertEqual(4, py_semaphore:current()),
    [?assert(is_process_alive(H)) || H <- Hs],
    ?assertEqual({error, timeout}, py_semaphore:acquire(30)),
    [H1, H2, H3, H4] = Hs,
    release_by(H1),
    release_by(H2),
    %% Two in use, limit two: still full.
    ?assertEqual(2, py_semaphore:current()),
    ?assertEqual({error, timeout}, py_semaphore:acquire(30)),
    release_by(H3),
    ok = py_semaphore:acquire(0),
    ?assertEqual(2, py_semaphore:current()),
    ok = py_semaphore:release(),
    [kill(H) || H <- [H1, H2, H3, H4]].

%% Grants racing with waiter timeouts: whatever the interleaving, every slot a
%% waiter got is released and no slot stays in use.
timeout_race_no_leak(_Config) ->
    ok = py_semaphore:set_max_concurrent(2),
    Self = self(),
    Churners = [spawn_link(fun() -> churn(Self, 300) end) || _ <- [1, 2]],
    Racers = [spawn_link(fun() ->
                                 R = py_semaphore:acquire(rand:uniform(4) - 1),
                                 R =:= ok andalso py_semaphore:release(),
                                 Self ! {raced, self(), R}
                         end) || _ <- lists:seq(1, 300)],
    Results = [receive {raced, P, R} -> R after 5000 -> ct:fail(racer_stuck) end
               || P <- Racers],
    [receive {churned, P} -> ok after 5000 -> ct:fail(churner_stuck) end || P <- Churners],
    ct:pal("racers: ~b got a slot, ~b timed out",
           [length([ok || ok <- Results]), length([t || {error, timeout} <- Results])]),
    ?assertEqual(0, py_semaphore:current()),
    ?assertEqual(0, py_semaphore:waiting()).

thousand_processes_max_ten(_Config) ->
    ok = py_semaphore:set_max_concurrent(10),
    Counters = atomics:new(2, [{signed, true}]),   % 1: holders now, 2: peak
    Self = self(),
    Work = fun() ->
                   ok = py_semaphore:acquire(infinity),
                   Now = atomics:add_get(Counters, 1, 1),
                   bump_peak(Counters, Now),
                   receive after rand:uniform(2) - 1 -> ok end,
                   atomics:sub(Counters, 1, 1),
                   ok = py_semaphore:release(),
                   Self ! {done, self()}
           end,
    {Ms, ok} = millis(fun() ->
                              Pids = [spawn_link(Work) || _ <- lists:seq(1, 1000)],
                              [receive {done, P} -> ok after 10000 -> ct:fail(stuck) end
                               || P <- Pids],
                              ok
                      end),
    Peak = atomics:get(Counters, 2),
    ct:pal("1000 processes, max 10: peak ~b concurrent holders, ~b ms", [Peak, Ms]),
    ?assert(Peak =< 10, Peak),
    ?assert(Peak >= 2, Peak),
    ?assertEqual(0, atomics:get(Counters, 1)),
    ?assertEqual(0, py_semaphore:current()).

%% A waiter blocked with an infinite timeout wakes as soon as the slot frees: well
%% under any polling interval that could pass unnoticed.
wakeup_is_prompt(_Config) ->
    ok = py_semaphore:set_max_concurrent(1),
    ok = py_semaphore:acquire(0),
    Delays = [begin
                  [W] = queue_waiters(1, infinity),
                  T0 = erlang:monotonic_time(microsecond),
                  ok = py_semaphore:release(),
                  T1 = receive {got, 1, W, T} -> T after ?WAIT -> ct:fail(no_wakeup) end,
                  %% Take the slot back for the next round.
                  release_by(W),
                  ok = py_semaphore:acquire(1000),
                  kill(W),
                  T1 - T0
              end || _ <- lists:seq(1, 5)],
    ct:pal("wake-up after release (us): ~p", [Delays]),
    [?assert(D < 50000, D) || D <- Delays],
    ok = py_semaphore:release().

%%% Helpers

millis(Fun) ->
    T0 = erlang:monotonic_time(millisecond),
    R = Fun(),
    {erlang:monotonic_time(millisecond) - T0, R}.

wait_until(Fun) ->
    wait_until(Fun, 200).

wait_until(Fun, 0) ->
    {error, Fun()};
wait_until(Fun, N) ->
    case Fun() of
        true -> ok;
        false -> timer:sleep(10), wait_until(Fun, N - 1)
    end.

%% A process holding N slots until killed or told to release them one by one.
holder(N) ->
    Self = self(),
    %% Linked: if the case fails, its holders and waiters die with it and free their slots.
    Pid = spawn_link(fun() ->
                        [ok = py_semaphore:acquire(1000) || _ <- lists:seq(1, N)],
                        Self ! {holding, self()},
                        hold_loop()
                end),
    receive {holding, Pid} -> Pid after ?WAIT -> ct:fail(holder_blocked) end.

hold_loop() ->
    receive
        {release, From} ->
            ok = py_semaphore:release(),
            From ! {released, self()},
            hold_loop()
    end.

%% N waiters queued in a known order: each joins the queue only once the previous
%% one is in it. Waiter I sends {got, I, Pid, MicrosecondTime} when it gets a slot,
%% then holds it like holder/1.
queue_waiters(N, Timeout) ->
    Self = self(),
    Base = py_semaphore:waiting(),
    [begin
         Pid = spawn_link(fun() ->
                             ok = py_semaphore:acquire(Timeout),
                             Self ! {got, I, self(), erlang:monotonic_time(microsecond)},
                             hold_loop()
                     end),
         ok = wait_until(fun() -> py_semaphore:waiting() =:= Base + I end),
         Pid
     end || I <- lists:seq(1, N)].

release_by(Pid) ->
    Pid ! {release, self()},
    receive {released, Pid} -> ok after ?WAIT -> ct:fail(release_blocked) end.

kill(Pid) ->
    unlink(Pid),
    MRef = erlang:monitor(process, Pid),
    exit(Pid, kill),
    receive {'DOWN', MRef, process, Pid, _} -> ok end.

%% Acquire and release in a loop, so that grants race with racers' timeouts.
churn(Parent, 0) ->
    Parent ! {churned, self()};
churn(Parent, N) ->
    case py_semaphore:acquire(5) of
        ok -> erlang:yield(), ok = py_semaphore:release();
        {error, timeout} -> ok
    end,
    churn(Parent, N - 1).

bump_peak(Counters, Now) ->
    Peak = atomics:get(Counters, 2),
    case Now > Peak of
        true ->
            case atomics:compare_exchange(Counters, 2, Peak, Now) of
                ok -> ok;
                _ -> bump_peak(Counters, Now)
            end;
        false ->
            ok
    end.
