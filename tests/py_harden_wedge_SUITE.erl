%%% @doc Requests that used to wedge a context: user code exiting the event loop
%%% (`sys.exit' in a coroutine), timeouts that did not interrupt (plain functions and
%%% coroutines spinning, endless generators collected), nesting that deadlocked, work of
%%% dead callers living on, stopped contexts keeping threads and descriptors, and a
%%% cancelled queued stream that never ended. Cases that could break the interpreter for
%%% good, or leave a context spinning, run in a VM of their own (`py_isolated').
%%% Python side: tests/py_harden_wedge_helpers.py.
-module(py_harden_wedge_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([stop_runs_task_cleanup/1, stop_cleanup_body/0]).
-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
%% Cases.
-export([sys_exit_async_call/1, sys_exit_stream_start/1, sys_exit_collected/1,
         sys_exit_loop_callback/1, base_exceptions_async_call/1,
         async_plain_spin_interrupted/1, async_coroutine_spin_interrupted/1,
         async_child_task_spin_interrupted/1, async_gather_spin_interrupted/1,
         stream_repeat_bounded/1, stream_generator_spin_interrupted/1,
         stream_eval_endless_interrupted/1, stream_start_spin_cancelled/1,
         coroutine_waiting_for_erlang_cancelled/1,
         nesting_8_callers/1, nesting_16_callers/1, nesting_64_callers/1,
         chain_out_of_stack/1,
         dead_caller_cancels_5000_sleeps/1, dead_caller_stops_collection/1,
         dead_caller_cancels_gather/1, caller_gone_before_start/1,
         stop_start_cycles_free_threads/1,
         stream_cancel_while_queued/1]).
%% Bodies run in an isolated VM (each in a process of its own there).
-export([sys_exit_async_call_body/0, sys_exit_stream_start_body/0,
         sys_exit_collected_body/0, sys_exit_loop_callback_body/0,
         base_exceptions_body/0, chain_out_of_stack_body/0, timed_out_then_idle/2, stream_repeat_body/0,
         stream_start_spin_body/0, cycles_body/0, block_in_erlang_body/0]).

-define(H, py_harden_wedge_helpers).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [{group, exits}, {group, interrupts},
     nesting_8_callers, nesting_16_callers, nesting_64_callers, chain_out_of_stack,
     dead_caller_cancels_5000_sleeps, dead_caller_stops_collection,
     dead_caller_cancels_gather, caller_gone_before_start, stop_start_cycles_free_threads,
     stream_cancel_while_queued, stop_runs_task_cleanup].

%% `exits': each case in a VM of its own (before the fix, each finalized Python).
%% `interrupts': one VM with a short default timeout (`py:stream' takes no timeout).
groups() ->
    [{exits, [], [sys_exit_async_call, sys_exit_stream_start, sys_exit_collected,
                  sys_exit_loop_callback, base_exceptions_async_call]},
     {interrupts, [sequence],
      [async_plain_spin_interrupted, async_coroutine_spin_interrupted,
       async_child_task_spin_interrupted, async_gather_spin_interrupted,
       stream_repeat_bounded, stream_generator_spin_interrupted,
       stream_eval_endless_interrupted, stream_start_spin_cancelled,
       coroutine_waiting_for_erlang_cancelled]}].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_group(interrupts, Config) ->
    [{vm, py_isolated:start([{default_timeout, 500}])} | Config];
init_per_group(_, Config) ->
    Config.

end_per_group(interrupts, Config) ->
    py_isolated:stop(?config(vm, Config));
end_per_group(_, _Config) ->
    ok.

%%% ---------------------------------------------------------------------------
%%% Item 4: no BaseException from user code reaches an API that exits

%% What every exit case checks afterwards, in the same VM: the context that ran the
%% exit still serves calls and coroutines, and every context still has `asyncio.to_thread'
%% (it fails for good once the interpreter began to finalize).
after_exit_checks() ->
    Contexts = lists:seq(1, py_context_sup:default_count()),
    #{call => py:call(?H, add, [1, 2]),
      coroutine => py:async_await(py:async_call(?H, sleep_value, [0.01, 17]), 5000),
      to_thread_here => py:async_await(py:async_call(?H, to_thread_add_async, [20, 22]), 5000),
      to_thread_everywhere => [py:call(py:context(N), ?H, to_thread_add, [N, 100]) || N <- Contexts]}.

expected_after_exit() ->
    Contexts = lists:seq(1, py_context_sup:default_count()),
    #{call => {ok, 3}, coroutine => {ok, 17}, to_thread_here => {ok, 42},
      to_thread_everywhere => [{ok, N + 100} || N <- Contexts]}.

in_own_vm(Body) ->
    py_isolated:run(?MODULE, Body, 30000).

sys_exit_async_call(_Config) ->
    {ok, {Exit, Again, After}} = in_own_vm(sys_exit_async_call_body),
    ?assertEqual({error, {'SystemExit', "7"}}, Exit),
    ?assertEqual({error, {'SystemExit', "8"}}, Again),
    ?assertEqual(expected_after_exit(), After).

sys_exit_async_call_body() ->
    Exit = py:async_await(py:async_call(?H, exit_after_await, [7]), 5000),
    Again = py:async_await(py:async_call(?H, exit_after_await, [8]), 5000),
    {Exit, Again, after_exit_checks()}.

sys_exit_stream_start(_Config) ->
    {ok, {Events, After}} = in_own_vm(sys_exit_stream_start_body),
    ?assertEqual([{data, 1}, {data, 2}, {error, {'SystemExit', "3"}}], Events),
    ?assertEqual(expected_after_exit(), After).

sys_exit_stream_start_body() ->
    {ok, Ref} = py:stream_start(?H, agen_exit, [3]),
    Events = py_test_lib:stream_events(Ref, 5000),
    {Events, after_exit_checks()}.

sys_exit_collected(_Config) ->
    {ok, {Async, Sync, Pushed, After}} = in_own_vm(sys_exit_collected_body),
    ?assertEqual({error, {'SystemExit', "4"}}, Async),
    ?assertEqual({error, {'SystemExit', "5"}}, Sync),
    ?assertEqual([{data, 1}, {error, {'SystemExit', "6"}}], Pushed),
    ?assertEqual(expected_after_exit(), After).

sys_exit_collected_body() ->
    Async = py:stream(?H, agen_exit, [4]),
    Sync = py:stream(?H, gen_exit, [5]),
    {ok, Ref} = py:stream_start(?H, gen_exit, [6]),
    {Async, Sync, py_test_lib:stream_events(Ref, 5000), after_exit_checks()}.

%% A bare callback on the loop has nobody to answer: the exit is logged, not printed.
sys_exit_loop_callback(_Config) ->
    {ok, {Scheduled, After}} = in_own_vm(sys_exit_loop_callback_body),
    ?assertEqual({ok, <<"scheduled">>}, Scheduled),
    ?assertEqual(expected_after_exit(), After).

sys_exit_loop_callback_body() ->
    Scheduled = py:call(?H, schedule_exit, [9]),
    %% Let the loop run the callback before checking.
    timer:sleep(100),
    {Scheduled, after_exit_checks()}.

base_exceptions_async_call(_Config) ->
    {ok, {Results, After}} = in_own_vm(base_exceptions_body),
    ?assertEqual([{error, {'KeyboardInterrupt', "ki"}},
                  {error, {'GeneratorExit', "ge"}},
                  {error, {'Halt', "mine"}}], Results),
    ?assertEqual(expected_after_exit(), After).

base_exceptions_body() ->
    Results = [py:async_await(py:async_call(?H, raise_base, [Kind, Text]), 5000)
               || {Kind, Text} <- [{<<"keyboard">>, <<"ki">>},
                                   {<<"generator_exit">>, <<"ge">>},
                                   {<<"halt">>, <<"mine">>}]],
    {Results, after_exit_checks()}.

%%% ---------------------------------------------------------------------------
%%% Item 5: every kind of request is interrupted on timeout

%% Run `Start' (answers the timed-out result), then time a plain call on the same
%% context: `{Result, ElapsedMs, FollowUpResult, FollowUpMs, PendingTasks}' (pending
%% tasks once they are 0, or after 1 s).
timed_out_then_idle(Start, _) ->
    T0 = erlang:monotonic_time(millisecond),
    Result = Start(),
    T1 = erlang:monotonic_time(millisecond),
    FollowUp = py:call(py:context(), ?H, add, [2, 3], #{timeout => 5000}),
    T2 = erlang:monotonic_time(millisecond),
    %% Tasks ended by the interruption finish on the loop's next turns.
    {Result, T1 - T0, FollowUp, T2 - T1, wait_pending(py:context(), 0, 1000)}.

check_interrupted(Config, Start) ->
    {ok, {Result, Elapsed, FollowUp, FollowMs, Pending}} =
        py_isolated:call(?config(vm, Config), ?MODULE, timed_out_then_idle, [Start, x], 30000),
    ct:log("timed out after ~b ms; follow-up call took ~b ms", [Elapsed, FollowMs]),
    ?assertEqual({error, timeout}, Result),
    ?assert(Elapsed >= 300 andalso Elapsed < 1500),
    ?assertEqual({ok, 5}, FollowUp),
    ?assert(FollowMs < 1000),
    ?assertEqual({ok, 0}, Pending).

async_plain_spin_interrupted(Config) ->
    check_interrupted(Config, fun() -> py:async_await(py:async_call(?H, spin, []), 300) end).

async_coroutine_spin_interrupted(Config) ->
    check_interrupted(Config, fun() -> py:async_await(py:async_call(?H, spin_async, []), 300) end).

async_child_task_spin_interrupted(Config) ->
    check_interrupted(Config, fun() -> py:async_await(py:async_call(?H, spin_in_child, []), 300) end).

%% `async_gather' waits with the default timeout (500 ms in this VM).
async_gather_spin_interrupted(Config) ->
    check_interrupted(Config, fun() -> py:async_gather([{?H, spin_async, []}, {?H, add, [1, 2]}]) end).

stream_generator_spin_interrupted(Config) ->
    check_interrupted(Config, fun() -> py:stream(?H, gen_spin_in_next, []) end).

stream_eval_endless_interrupted(Config) ->
    check_interrupted(Config, fun() -> py:stream_eval(<<"(x for x in __import__('itertools').count())">>) end).

%% Collecting `itertools.repeat(1)' (a C iterator no interruption reaches) stops at the
%% timeout, and the memory it took is given back.
stream_repeat_bounded(Config) ->
    {ok, {Check, Before, Peak, After}} =
        py_isolated:call(?config(vm, Config), ?MODULE, stream_repeat_body, [], 30000),
    {Result, Elapsed, FollowUp, FollowMs, Pending} = Check,
    ct:log("rss before ~b KiB, right after the timeout ~b KiB, 1 s later ~b KiB; "
           "timed out after ~b ms, follow-up ~b ms", [Before, Peak, After, Elapsed, FollowMs]),
    ?assertEqual({error, timeout}, Result),
    ?assert(Elapsed < 1500),
    ?assertEqual({ok, 5}, FollowUp),
    ?assert(FollowMs < 1000),
    ?assertEqual({ok, 0}, Pending),
    %% Before: 4.6 GB in 6 s and growing. 500 ms of collecting took ~120 MB here.
    ?assert(Peak - Before < 600 * 1024),
    ?assert(After - Before < 100 * 1024).

stream_repeat_body() ->
    Before = rss_kb(),
    Check = timed_out_then_idle(fun() -> py:stream(itertools, repeat, [1]) end, x),
    Peak = rss_kb(),
    timer:sleep(1000),
    {Check, Before, Peak, rss_kb()}.

stream_start_spin_cancelled(Config) ->
    {ok, {Events, FollowUp, FollowMs}} =
        py_isolated:call(?config(vm, Config), ?MODULE, stream_start_spin_body, [], 30000),
    ?assertEqual([{data, 1}, {error, cancelled}], Events),
    ?assertEqual({ok, 5}, FollowUp),
    ?assert(FollowMs < 1000).

stream_start_spin_body() ->
    {ok, Ref} = py:stream_start(?H, gen_spin_in_next, []),
    First = receive {py_stream, Ref, E} -> E after 5000 -> no_data end,
    timer:sleep(100),
    ok = py:stream_cancel(Ref),
    Rest = py_test_lib:stream_events(Ref, 2000),
    T0 = erlang:monotonic_time(millisecond),
    FollowUp = py:call(py:context(), ?H, add, [2, 3], #{timeout => 5000}),
    {[First | Rest], FollowUp, erlang:monotonic_time(millisecond) - T0}.

%% A coroutine blocked in a synchronous `erlang.call' holds up the whole loop; its
%% timeout abandons the wait (the Erlang function is left to run on its own).
coroutine_waiting_for_erlang_cancelled(Config) ->
    {ok, {Check, Sleep}} =
        py_isolated:call(?config(vm, Config), ?MODULE, block_in_erlang_body, [], 30000),
    {Result, Elapsed, FollowUp, FollowMs, Pending} = Check,
    ?assertEqual({error, timeout}, Result),
    ?assert(Elapsed < 1500),
    ?assertEqual({ok, 5}, FollowUp),
    ?assert(FollowMs < 1000),
    ?assertEqual({ok, 0}, Pending),
    %% Other coroutines run on that loop again.
    ?assertEqual({ok, 7}, Sleep).

block_in_erlang_body() ->
    ok = py:register_function(wedge_block, fun([]) -> receive never -> ok after 600000 -> ok end end),
    Check = timed_out_then_idle(fun() -> py:async_await(py:async_call(?H, block_in_erlang, []), 300) end, x),
    {Check, py:async_await(py:async_call(?H, sleep_value, [0.01, 7]), 2000)}.

%%% ---------------------------------------------------------------------------
%%% Item 6: no pattern of callers deadlocks a context

%% Each caller's Python asks Erlang for a value that a freshly spawned process gets by
%% calling the same context: past the unrelated nesting limit, every waiting level
%% depends on a request from outside all waiting call chains.
nesting_8_callers(_Config) -> nesting(8).
nesting_16_callers(_Config) -> nesting(16).
nesting_64_callers(_Config) -> nesting(64).

nesting(Callers) ->
    Ctx = py:context(1),
    ok = py:register_function(wedge_via_helper, fun([N]) -> via_helper(Ctx, N) end),
    Self = self(),
    T0 = erlang:monotonic_time(millisecond),
    Pids = [spawn_link(fun() -> Self ! {self(), N, py:call(Ctx, ?H, via_helper, [N], #{timeout => 20000})} end)
            || N <- lists:seq(1, Callers)],
    Results = [receive {Pid, N, R} -> {N, R} after 25000 -> {N, no_answer} end
               || {Pid, N} <- lists:zip(Pids, lists:seq(1, Callers))],
    Elapsed = erlang:monotonic_time(millisecond) - T0,
    py:unregister_function(wedge_via_helper),
    ct:log("~b callers answered in ~b ms", [Callers, Elapsed]),
    ?assertEqual([{N, {ok, (N + 1) * 2}} || N <- lists:seq(1, Callers)], Results),
    ?assert(Elapsed < 5000),
    ?assertEqual({ok, 3}, py:call(Ctx, ?H, add, [1, 2], #{timeout => 1000})).

via_helper(Ctx, N) ->
    Self = self(),
    Helper = spawn(fun() -> Self ! {helped, self(), py:call(Ctx, ?H, add, [N, 1], #{timeout => 20000})} end),
    receive {helped, Helper, {ok, V}} -> V after 20000 -> error(helper_timeout) end.

%% A call chain (Python -> Erlang -> the same context, again and again) with Python's
%% recursion limit out of the way: the level that would leave too little stack ends with
%% a Python `RecursionError' from `erlang.call' instead of overflowing the thread's stack
%% (a crash of the VM); the context's own guard for nested requests (a quarter of the
%% stack) lies below it, as a backstop. From CPython 3.12 on, CPython's own limit of
%% C-level recursion (which `sys.setrecursionlimit' does not raise) stops the chain first
%% with its own message: at some 750 levels on 3.12.1 (limit 1,500), 5,000 on 3.13
%% (limit 10,000).
chain_out_of_stack(_Config) ->
    {ok, {Result, After}} = in_own_vm(chain_out_of_stack_body),
    ct:log("chain ended with ~p", [Result]),
    %% The atoms made the round trip through Python, so they come back as strings.
    {<<"error_at">>, Level, {<<"RecursionError">>, Message}} = Result,
    ?assertEqual(chain_stop_message(), Message),
    %% About 4 KiB of stack a level: some 10,000 levels fit before 20 MiB are left.
    Depth = 1000000 - Level + 1,
    ct:log("~b levels", [Depth]),
    ?assert(Depth > min_chain_levels()),
    ?assertEqual({ok, 3}, After).

%% What stops the chain: erlang.call's guard up to CPython 3.11, CPython's own limit of
%% C-level recursion from 3.12 on.
chain_stop_message() ->
    case python_version() >= [3, 12] of
        true -> "maximum recursion depth exceeded";
        false -> "erlang.call nested too deeply: less than 20 MiB of the context's stack is left"
    end.

min_chain_levels() ->
    case python_version() of
        [3, 12] -> 500;
        _ -> 1000
    end.

python_version() ->
    {ok, Version} = py:eval(<<"list(__import__('sys').version_info[:2])">>),
    Version.

chain_out_of_stack_body() ->
    Ctx = py:context(),
    {ok, none} = py:call(Ctx, ?H, set_recursion_limit, [10000000]),
    ok = py:register_function(wedge_recurse, fun([N]) ->
                                                     case py:call(Ctx, ?H, recurse, [N - 1], #{timeout => 60000}) of
                                                         {ok, V} -> V;
                                                         {error, E} -> {error_at, N, E}
                                                     end
                                             end),
    {ok, Result} = py:call(Ctx, ?H, recurse, [1000000], #{timeout => 60000}),
    {Result, py:call(Ctx, ?H, add, [1, 2])}.

%%% ---------------------------------------------------------------------------
%%% Item 11: work of dead callers is cancelled; stopped contexts free their thread

dead_caller_cancels_5000_sleeps(_Config) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
        Refs = [py:async_call(asyncio, sleep, [600]) || _ <- lists:seq(1, 5000)],
        Self ! {started, self(), py:context(), length(Refs)},
        receive exit -> ok end
    end),
    {Ctx, 5000} = receive {started, Pid, C, N} -> {C, N} after 30000 -> error(not_started) end,
    ?assertEqual({ok, 5000}, wait_pending(Ctx, 5000, 10000)),
    T0 = erlang:monotonic_time(millisecond),
    Pid ! exit,
    receive {'DOWN', Mon, process, Pid, normal} -> ok end,
    ?assertEqual({ok, 0}, wait_pending(Ctx, 0, 2000)),
    ct:log("5000 tasks cancelled ~b ms after their caller exited", [erlang:monotonic_time(millisecond) - T0]).

%% A sync generator collected by `py:stream' (slowly: the collection stays in its first
%% batches for seconds) stops when its caller is killed.
dead_caller_stops_collection(_Config) ->
    Self = self(),
    Pid = spawn(fun() ->
                        Self ! {ctx, self(), py:context()},
                        py:stream_eval(<<"(__import__('time').sleep(0.002) or i for i in range(10 ** 6))">>)
                end),
    Ctx = receive {ctx, Pid, C} -> C end,
    ?assertEqual({ok, 1}, wait_pending(Ctx, 1, 2000)),
    exit(Pid, kill),
    ?assertEqual({ok, 0}, wait_pending(Ctx, 0, 2000)),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual({ok, 3}, py:call(Ctx, ?H, add, [1, 2])),
    ?assert(erlang:monotonic_time(millisecond) - T0 < 500).

%% The gather task and its two children.
dead_caller_cancels_gather(_Config) ->
    Self = self(),
    Pid = spawn(fun() ->
                        Self ! {ctx, self(), py:context()},
                        py:async_gather([{asyncio, sleep, [600]}, {asyncio, sleep, [600]}])
                end),
    Ctx = receive {ctx, Pid, C} -> C end,
    ?assertEqual({ok, 3}, wait_pending(Ctx, 3, 2000)),
    exit(Pid, kill),
    ?assertEqual({ok, 0}, wait_pending(Ctx, 0, 2000)).

%% The caller exits while its 100 coroutines still wait in the mailbox (behind a blocking
%% call): they are cancelled as soon as they start.
caller_gone_before_start(_Config) ->
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       Self ! {ctx, self(), py:context()},
                                       receive go -> ok end,
                                       [py:async_call(asyncio, sleep, [600]) || _ <- lists:seq(1, 100)]
                               end),
    Ctx = receive {ctx, Pid, C} -> C end,
    Blocker = spawn_monitor(fun() -> exit(py:call(Ctx, time, sleep, [0.3])) end),
    timer:sleep(50),
    Pid ! go,
    receive {'DOWN', Mon, process, Pid, normal} -> ok end,
    {BPid, BMon} = Blocker,
    receive {'DOWN', BMon, process, BPid, Slept} -> ?assertEqual({ok, none}, Slept) end,
    %% Without the cancel, 100 tasks would sit in `sleep(600)' on this loop.
    ?assertEqual({ok, 0}, wait_pending(Ctx, 0, 2000)),
    ?assertEqual({ok, 3}, py:call(Ctx, ?H, add, [1, 2])).

%% Poll the context's loop until `Want' tasks are pending or `Ms' passed.
wait_pending(Ctx, Want, Ms) ->
    Deadline = erlang:monotonic_time(millisecond) + Ms,
    wait_pending_until(Ctx, Want, Deadline).

wait_pending_until(Ctx, Want, Deadline) ->
    case py:call(Ctx, ?H, pending_tasks, []) of
        {ok, Want} ->
            {ok, Want};
        Other ->
            case erlang:monotonic_time(millisecond) < Deadline of
                true -> timer:sleep(20), wait_pending_until(Ctx, Want, Deadline);
                false -> Other
            end
    end.

stop_start_cycles_free_threads(_Config) ->
    {ok, Result} = in_own_vm(cycles_body),
    #{threads := {Threads0, Threads1}, fds := {Fds0, Fds1}, late := Late, late_ms := LateMs,
      ns_held := NsHeld, works := Works} = Result,
    ct:log("threads ~b -> ~b, fds ~b -> ~b after 20 cycles; late call ~p in ~b ms",
           [Threads0, Threads1, Fds0, Fds1, Late, LateMs]),
    %% No growth at all (fewer is fine: a thread of the VM's own may have ended).
    ?assert(Threads1 =< Threads0),
    ?assert(Fds1 =< Fds0),
    ?assertEqual({error, context_stopped}, Late),
    ?assertEqual(22, NsHeld),
    ?assert(LateMs < 100),
    ?assertEqual({ok, 3}, Works).

%% This process holds, across 20 stop/start cycles, a namespace handle on each context
%% it called (in its process dictionary) and a py ref from each cycle.
cycles_body() ->
    Cycle = fun() ->
                    {ok, 3} = py:call(?H, add, [1, 2]),
                    {ok, PyRef} = py:call(py:context(), builtins, list, [[1, 2]], #{return => ref}),
                    ok = py:stop_contexts(),
                    {ok, _} = py:start_contexts(),
                    PyRef
            end,
    _ = Cycle(),
    {ok, 3} = py:call(?H, add, [1, 2]),
    %% The warm-up cycle's stopped threads leave on their own time.
    timer:sleep(500),
    Threads0 = count_dir("/proc/self/task"),
    Fds0 = count_dir("/proc/self/fd"),
    Refs = [Cycle() || _ <- lists:seq(1, 20)],
    {ok, 3} = py:call(?H, add, [1, 2]),
    Threads1 = settle(fun() -> count_dir("/proc/self/task") end, Threads0, 2000),
    Fds1 = settle(fun() -> count_dir("/proc/self/fd") end, Fds0, 2000),
    T0 = erlang:monotonic_time(millisecond),
    Late = py:call_method(hd(Refs), copy, []),
    LateMs = erlang:monotonic_time(millisecond) - T0,
    %% The namespace handles of the stopped contexts are still held here.
    NsHeld = length([E || {{'$py_env', _}, E} <- get()]),
    #{threads => {Threads0, Threads1}, fds => {Fds0, Fds1}, late => Late, late_ms => LateMs,
      ns_held => NsHeld, works => py:call(?H, add, [1, 2])}.

count_dir(Dir) ->
    {ok, Names} = file:list_dir(Dir),
    length(Names).

%% The value of `Fun' once it is back to `Want' or below, or its last value after `Ms'.
settle(Fun, _Want, Ms) when Ms =< 0 ->
    Fun();
settle(Fun, Want, Ms) ->
    case Fun() of
        N when N =< Want -> N;
        _ -> timer:sleep(50), settle(Fun, Want, Ms - 50)
    end.

%%% ---------------------------------------------------------------------------
%%% Item 13: a stream cancelled while still queued still ends

stream_cancel_while_queued(_Config) ->
    Ctx = py:context(),
    Blocker = spawn(fun() -> py:call(Ctx, time, sleep, [0.5]) end),
    timer:sleep(50),
    {ok, Ref} = py:stream_start(builtins, range, [3]),
    ok = py:stream_cancel(Ref),
    ?assertEqual([{error, cancelled}], py_test_lib:stream_events(Ref, 3000)),
    timer:sleep(100),
    %% The controller heard that the stream finished and is gone.
    ?assertEqual([], ets:lookup(py_streams, Ref)),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    exit(Blocker, kill).

%%% ---------------------------------------------------------------------------
%%% Helpers


rss_kb() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(binary_to_list(Line), " \t"),
    list_to_integer(Kb).

%% Stopping the contexts cancels the tasks still on their loops and lets their cleanup
%% run (a `finally' after an `await', an async generator's `finally') before the loop
%% closes; their callers were answered `{error, context_stopped}' already.
stop_runs_task_cleanup(_Config) ->
    ?assertEqual({ok, ok}, in_own_vm(stop_cleanup_body)).

stop_cleanup_body() ->
    Task = py:async_call(?H, sleep_then_mark, [<<"task_key">>]),
    Gen = py:async_call(?H, hold_agen, [<<"agen_key">>]),
    %% Both run on the loop before the stop (on a loaded machine that may take a while).
    ok = wait_for_key(<<"task_key_started">>, 100),
    ok = wait_for_key(<<"agen_key_started">>, 100),
    {error, not_found} = py:state_fetch(<<"task_key">>),
    ok = py:stop_contexts(),
    {error, context_stopped} = py:async_await(Task, 1000),
    {error, context_stopped} = py:async_await(Gen, 1000),
    {ok, <<"cleaned up">>} = py:state_fetch(<<"task_key">>),
    {ok, <<"finalized">>} = py:state_fetch(<<"agen_key">>),
    {ok, _} = py:start_contexts(),
    ok.

wait_for_key(_Key, 0) ->
    timeout;
wait_for_key(Key, Tries) ->
    case py:state_fetch(Key) of
        {ok, true} -> ok;
        {error, not_found} -> timer:sleep(50), wait_for_key(Key, Tries - 1)
    end.

