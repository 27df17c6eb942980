%%% @doc A context's loop driver and its bookkeeping under re-entry: Python code that
%%% calls Erlang or starts tasks from the points where the context is busy with its own
%%% asyncio state (checking the loop for work, a task's done-callback, a finalizer run
%%% while a stream is produced or closed), and a context start that fails with a clear
%%% reason when a private asyncio attribute the driver needs is missing.
-module(py_layout_loop_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2]).
-export([reentry_while_checking_for_work/1, done_callback_calls_erlang_and_starts_task/1,
         finalizer_in_sync_stream/1, finalizer_in_async_stream/1,
         finalizer_in_cancelled_stream/1, missing_private_api_fails_start/1]).
%% Bodies run in isolated VMs.
-export([reentry_while_checking_for_work_body/0, missing_private_api_body/0]).

-define(H, py_layout_loop_helpers).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [reentry_while_checking_for_work, done_callback_calls_erlang_and_starts_task,
     finalizer_in_sync_stream, finalizer_in_async_stream, finalizer_in_cancelled_stream,
     missing_private_api_fails_start].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    ok = py:register_function(layout_echo, fun([_]) -> 42 end),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    {ok, none} = py:call(?H, reset, []),
    Config.

%%% ---------------------------------------------------------------------------
%%% Re-entry

%% Between mailbox messages the context asks its loop whether it has work, reading the
%% length of the loop's timer heap. Python code can run there (a heap whose `__len__` is
%% Python), and it calls Erlang, whose function starts an async request on this very
%% context: the context serves that request inside the check. Before the loop state was
%% split, the check held a borrow of it and the start needed another, and the context
%% crashed ("already borrowed"). Run with one context, in a VM of its own.
reentry_while_checking_for_work(_) ->
    Vm = py_isolated:start([{num_contexts, 1}]),
    try
        ?assertMatch({ok, {{ok, 3}, [<<"hook:ok">>], {ok, 5}, Same, Same}},
                     py_isolated:call(Vm, ?MODULE, reentry_while_checking_for_work_body, []))
    after
        py_isolated:stop(Vm)
    end.

reentry_while_checking_for_work_body() ->
    Self = self(),
    ok = py:register_function(layout_start_async, fun([]) ->
        %% A process of its own submits the request and waits for it (this function must
        %% return for the context to run the task); the request reaches the context's
        %% mailbox before this function's answer does.
        Runner = self(),
        spawn(fun() ->
            Ref = py:async_call(?H, add_later, [1, 2]),
            Runner ! submitted,
            Self ! {async_result, py:async_await(Ref, 10000)}
        end),
        receive submitted -> ok after 5000 -> error(not_submitted) end
    end),
    Ctx = py:context(1),
    {ok, true} = py:call(?H, arm_timer_heap_hook, []),
    Result = receive {async_result, R} -> R after 15000 -> no_async_result end,
    {ok, Events} = py:call(?H, events, []),
    %% The context is the one that was armed: it did not crash and restart.
    {Result, Events, py:call(operator, add, [2, 3]), Ctx, py:context(1)}.

%% A task's done-callback calls Erlang and starts another task; the reply of the task
%% itself is not disturbed.
done_callback_calls_erlang_and_starts_task(_) ->
    Ref = py:async_call(?H, with_reentering_done_callback, [<<"t1">>]),
    ?assertEqual({ok, <<"t1">>}, py:async_await(Ref, 10000)),
    ?assertEqual([<<"callback:t1:42">>, <<"later:t1">>],
                 wait_for_events(fun(Es) -> lists:member(<<"later:t1">>, Es) end)).

%% A finalizer that calls Erlang (both ways) runs as a sync stream's generator ends.
finalizer_in_sync_stream(_) ->
    {ok, Ref} = py:stream_start(?H, items_with_finalizer, [<<"s1">>, 3000], #{window => 50}),
    ?assertEqual({lists:seq(0, 2999), done}, py_test_lib:collect_stream(Ref, 10000)),
    ?assertEqual([<<"del:s1:42">>], wait_for_events(fun(Es) -> Es =/= [] end)).

%% The same in an async generator: the finalizer runs inside the stream's task.
finalizer_in_async_stream(_) ->
    {ok, Ref} = py:stream_start(?H, async_items_with_finalizer, [<<"a1">>, 300], #{window => 7}),
    ?assertEqual({lists:seq(0, 299), done}, py_test_lib:collect_stream(Ref, 10000)),
    ?assertEqual([<<"del:a1:42">>], wait_for_events(fun(Es) -> Es =/= [] end)).

%% A stream cancelled while it waits for credit closes its generator: the finalizer
%% runs while the context handles the cancel.
finalizer_in_cancelled_stream(_) ->
    {ok, Ref} = py:stream_start(?H, items_with_finalizer, [<<"c1">>, 100000], #{window => 5}),
    receive {py_stream, Ref, {data, 0}} -> ok after 10000 -> ct:fail(no_first_item) end,
    ok = py:stream_cancel(Ref),
    ?assertEqual([<<"del:c1:42">>], wait_for_events(fun(Es) -> Es =/= [] end)),
    %% The context still serves.
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%%% ---------------------------------------------------------------------------
%%% Start-up checks of the private asyncio API

%% With `BaseEventLoop._run_once' gone, a context start fails and names it, with the
%% Python version; contexts started before keep working (they looked it up at their
%% start). In a VM of its own: the interpreter's asyncio stays broken.
missing_private_api_fails_start(_) ->
    Vm = py_isolated:start([{num_contexts, 1}]),
    try
        {ok, {Why, Version, Still}} = py_isolated:call(Vm, ?MODULE, missing_private_api_body, []),
        Expected = iolist_to_binary(["asyncio private API missing: BaseEventLoop._run_once (Python ",
                                     Version, ")"]),
        ?assertEqual(Expected, Why),
        ?assertEqual({ok, 3}, Still)
    after
        py_isolated:stop(Vm)
    end.

missing_private_api_body() ->
    {ok, Version} = py:eval(<<"'%d.%d.%d' % __import__('sys').version_info[:3]">>),
    ok = py:exec(<<"import asyncio.base_events\n"
                   "del asyncio.base_events.BaseEventLoop._run_once\n">>),
    {ok, Ctx} = py_nif:context_start(99, 10),
    Why = receive {py_context_crashed, W} -> W after 10000 -> no_crash end,
    Id = py_nif:context_id(Ctx),
    receive {py_context_exited, Id} -> ok after 10000 -> error(no_exit) end,
    {Why, Version, py:call(operator, add, [1, 2])}.

%%% ---------------------------------------------------------------------------
%%% Helpers

%% The helpers' events once `Done(Events)' holds (they are recorded on the context's
%% thread, possibly after the reply went out).
wait_for_events(Done) ->
    wait_for_events(Done, 100).

wait_for_events(_Done, 0) ->
    {ok, Events} = py:call(?H, events, []),
    ct:fail({events_incomplete, Events});
wait_for_events(Done, Tries) ->
    {ok, Events} = py:call(?H, events, []),
    case Done(Events) of
        true -> Events;
        false ->
            timer:sleep(50),
            wait_for_events(Done, Tries - 1)
    end.

