%%% @doc Coroutines and streams end to end: async_call/async_await/async_gather,
%%% stream/async_stream/stream_eval (collected), stream_start/stream_cancel (pushed, with
%%% flow control), `erlang.async_call' from coroutines, and a real aiohttp server and
%%% client running on a context's event loop. Python side: tests/py_async_helpers.py.
-module(py_async_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2, init_per_testcase/2, end_per_testcase/2]).
-export([async_call_coroutine/1, async_call_kwargs/1, async_call_plain_function/1,
         async_call_returns_at_once/1, async_call_erlang_sleep/1, async_await_any_order/1,
         async_await_default_timeout/1, async_coroutine_raises/1, async_call_start_error/1,
         async_await_timeout_cancels/1,
         async_gather_in_order/1, async_gather_first_error/1, async_gather_empty/1,
         async_gather_not_a_list/1,
         async_gather_1000_sleeps/1, async_5000_in_flight/1,
         erlang_async_call_concurrent/1, erlang_async_call_error/1,
         stream_sync_generator/1, stream_async_generator/1, stream_kwargs/1,
         async_stream_sync_generator/1, async_stream_async_generator/1, async_stream_kwargs/1,
         stream_eval_sync_generator/1, stream_eval_async_generator/1,
         collect_error_midway/1,
         stream_start_sync_generator/1, stream_start_async_generator/1,
         stream_start_kwargs_and_window/1, stream_start_owner_option/1,
         stream_start_error_midway_sync/1, stream_start_error_midway_async/1,
         stream_start_call_fails/1, stream_start_bad_options/1,
         stream_start_two_streams_in_turn/1, stream_start_unrelated_messages/1,
         stream_cancel_sync/1, stream_cancel_async/1, stream_cancel_after_end/1,
         owner_exit_sync/1, owner_exit_async/1,
         stalled_owner_sync/1, stalled_owner_async/1,
         aiohttp_json/1, aiohttp_200_concurrent/1, aiohttp_chunked_stream/1,
         aiohttp_stop_server/1]).

-define(H, py_async_helpers).
-define(MB, (1024 * 1024)).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [async_call_coroutine, async_call_kwargs, async_call_plain_function,
     async_call_returns_at_once, async_call_erlang_sleep, async_await_any_order,
     async_await_default_timeout, async_coroutine_raises, async_call_start_error,
     async_await_timeout_cancels,
     async_gather_in_order, async_gather_first_error, async_gather_empty,
     async_gather_not_a_list,
     async_gather_1000_sleeps, async_5000_in_flight,
     erlang_async_call_concurrent, erlang_async_call_error,
     stream_sync_generator, stream_async_generator, stream_kwargs,
     async_stream_sync_generator, async_stream_async_generator, async_stream_kwargs,
     stream_eval_sync_generator, stream_eval_async_generator,
     collect_error_midway,
     stream_start_sync_generator, stream_start_async_generator,
     stream_start_kwargs_and_window, stream_start_owner_option,
     stream_start_error_midway_sync, stream_start_error_midway_async,
     stream_start_call_fails, stream_start_bad_options,
     stream_start_two_streams_in_turn, stream_start_unrelated_messages,
     stream_cancel_sync, stream_cancel_async, stream_cancel_after_end,
     owner_exit_sync, owner_exit_async,
     stalled_owner_sync, stalled_owner_async,
     {group, aiohttp}].

%% The aiohttp cases run in order against one server; every Python call of the group is
%% made by one driver process, so that server and clients share one context's loop.
groups() ->
    [{aiohttp, [sequence],
      [aiohttp_json, aiohttp_200_concurrent, aiohttp_chunked_stream, aiohttp_stop_server]}].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_group(aiohttp, Config) ->
    Driver = start_driver(),
    {ok, Port} = on_driver(Driver, fun() -> py:async_await(py:async_call(?H, start_server, []), 10000) end),
    ?assert(is_integer(Port) andalso Port > 0),
    [{driver, Driver}, {port, Port} | Config].

end_per_group(aiohttp, Config) ->
    Driver = ?config(driver, Config),
    %% Normally aiohttp_stop_server stopped it already; this answers {ok, false} then.
    _ = on_driver(Driver, fun() -> py:async_await(py:async_call(?H, stop_server, []), 10000) end),
    exit(Driver, shutdown),
    ok.

init_per_testcase(_Case, Config) ->
    {ok, none} = py:call(?H, reset, []),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

%%% ---------------------------------------------------------------------------
%%% async_call / async_await

async_call_coroutine(_) ->
    Ref = py:async_call(?H, add, [1, 2]),
    ?assert(is_reference(Ref)),
    ?assertEqual({ok, 3}, py:async_await(Ref, 5000)),
    ?assertEqual({ok, <<"ab">>}, py:async_await(py:async_call(?H, add, [<<"a">>, <<"b">>]), 5000)).

async_call_kwargs(_) ->
    Ref = py:async_call(?H, add, [40, 2], #{delay => 0.01}),
    ?assertEqual({ok, 42}, py:async_await(Ref, 5000)),
    ?assertEqual({ok, [1, 2]},
                 py:async_await(py:async_call(?H, add, [], #{a => [1], b => [2]}), 5000)).

%% A function that answers a plain value (not an awaitable) works too.
async_call_plain_function(_) ->
    ?assertEqual({ok, 4.0}, py:async_await(py:async_call(math, sqrt, [16]), 5000)),
    ?assertEqual({ok, 3}, py:async_await(py:async_call(operator, add, [1, 2]), 5000)).

async_call_returns_at_once(_) ->
    {Micros, Ref} = timer:tc(fun() -> py:async_call(?H, sleep_and_return, [<<"late">>, 0.3]) end),
    ?assert(Micros < 100000),
    %% Nothing has arrived yet: the coroutine is still sleeping.
    receive {py_reply, Ref, Early} -> ct:fail({early_reply, Early}) after 50 -> ok end,
    ?assertEqual({ok, <<"late">>}, py:async_await(Ref, 5000)).

async_call_erlang_sleep(_) ->
    {Micros, Result} = timer:tc(fun() ->
                                        py:async_await(py:async_call(?H, erlang_sleep_and_return,
                                                                     [slept, 0.05]), 5000)
                                end),
    ?assertEqual({ok, <<"slept">>}, Result),
    ?assert(Micros >= 50000).

async_await_any_order(_) ->
    Refs = [py:async_call(?H, sleep_and_return, [I, 0.01 * (5 - I)]) || I <- lists:seq(1, 4)],
    ?assertEqual([{ok, I} || I <- lists:seq(4, 1, -1)],
                 [py:async_await(R, 5000) || R <- lists:reverse(Refs)]).

async_await_default_timeout(_) ->
    ?assertEqual({ok, <<"done">>}, py:async_await(py:async_call(?H, sleep_and_return, [done, 0.02]))),
    %% Without a timeout, `default_timeout' (read at start) applies and cancels the task.
    py_test_lib:stop(),
    ok = py_test_lib:start([{default_timeout, 100}]),
    try
        {ok, none} = py:call(?H, reset, []),
        {Micros, Result} = timer:tc(fun() ->
                                            py:async_await(py:async_call(?H, slow_with_finally, [<<"d">>, 5.0]))
                                    end),
        ?assertEqual({error, timeout}, Result),
        ?assert(Micros < 3000000),
        ?assert(wait_for_event(<<"cancelled:d">>, 3000)),
        ?assertEqual({error, timeout}, py:call(py_api_helpers, sleep_then, [1.0, x]))
    after
        application:unset_env(erlang_python, default_timeout),
        py_test_lib:stop(),
        ok = py_test_lib:start()
    end.

async_coroutine_raises(_) ->
    {Micros, Result} = timer:tc(fun() ->
                                        py:async_await(py:async_call(?H, fail_after,
                                                                     [<<"bad input">>, 0.01]), 10000)
                                end),
    ?assertEqual({error, {'ValueError', "bad input"}}, Result),
    ?assert(Micros < 5000000),
    %% Raising before the first await is the same.
    ?assertEqual({error, {'ValueError', "at once"}},
                 py:async_await(py:async_call(?H, fail_after, [<<"at once">>]), 10000)).

%% Failing to even make the coroutine is an error from async_await, not a crash.
async_call_start_error(_) ->
    ?assertEqual({error, {'AttributeError', "module 'py_async_helpers' has no attribute 'no_such_coroutine'"}},
                 py:async_await(py:async_call(?H, no_such_coroutine, []), 5000)),
    ?assertEqual({error, {'ModuleNotFoundError', "No module named 'no_such_module_here'"}},
                 py:async_await(py:async_call(no_such_module_here, f, []), 5000)),
    ?assertMatch({error, {'TypeError', _}},
                 py:async_await(py:async_call(?H, add, [1]), 5000)),
    ?assertEqual({error, {badarg, kwargs}}, py:async_await(py:async_call(?H, add, [1, 2], not_a_map), 5000)).

async_await_timeout_cancels(_) ->
    Ref = py:async_call(?H, slow_with_finally, [<<"t1">>, 5.0]),
    {Micros, Result} = timer:tc(fun() -> py:async_await(Ref, 100) end),
    ?assertEqual({error, timeout}, Result),
    ?assert(Micros < 1000000),
    ?assert(wait_for_event(<<"finally:t1">>, 3000)),
    {ok, Events} = py:call(?H, events, []),
    ?assertEqual([<<"cancelled:t1">>, <<"finally:t1">>], Events),
    %% No late reply is left in the mailbox.
    receive {py_reply, Ref, Late} -> ct:fail({late_reply, Late}) after 300 -> ok end,
    ?assertEqual({messages, []}, process_info(self(), messages)),
    %% The context goes on serving.
    ?assertEqual({ok, 3}, py:async_await(py:async_call(?H, add, [1, 2]), 5000)).

%%% ---------------------------------------------------------------------------
%%% async_gather

async_gather_in_order(_) ->
    %% Later entries finish first; results still come in the order asked.
    Calls = [{?H, sleep_and_return, [first, 0.06]},
             {?H, add, [1, 2], #{delay => 0.03}},
             {?H, sleep_and_return, [third, 0.0]},
             {math, sqrt, [9]}],
    ?assertEqual({ok, [<<"first">>, 3, <<"third">>, 3.0]}, py:async_gather(Calls)).

async_gather_first_error(_) ->
    Calls = [{?H, sleep_and_return, [fine, 0.01]},
             {?H, fail_after, [<<"second fails">>, 0.02]},
             {?H, sleep_and_return, [fine_too, 0.01]}],
    ?assertEqual({error, {'ValueError', "second fails"}}, py:async_gather(Calls)),
    ?assertEqual({error, {'ValueError', "kw fails"}},
                 py:async_gather([{?H, fail_after, [], #{message => <<"kw fails">>}}])).

async_gather_empty(_) ->
    ?assertEqual({ok, []}, py:async_gather([])).

%% docs/api.md: wrong argument types give `{error, {badarg, What}}', never a crash.
async_gather_not_a_list(_) ->
    ?assertEqual({error, {badarg, calls}}, py:async_gather([not_a_call])),
    ?assertEqual({error, {badarg, calls}}, catch py:async_gather(not_a_list)).

async_gather_1000_sleeps(_) ->
    Calls = [{?H, sleep_and_return, [I, 0.05]} || I <- lists:seq(1, 1000)],
    {Micros, Result} = timer:tc(fun() -> py:async_gather(Calls) end),
    ?assertEqual({ok, lists:seq(1, 1000)}, Result),
    ct:log("1000 concurrent 50 ms sleeps: ~b ms", [Micros div 1000]),
    ?assert(Micros < 1000000).

%% Thousands of coroutines in flight on one context (this process's) at once.
async_5000_in_flight(_) ->
    N = 5000,
    Refs = [py:async_call(?H, inflight, [I, 0.5]) || I <- lists:seq(1, N)],
    Results = [py:async_await(R, 30000) || R <- Refs],
    ?assertEqual([{ok, I} || I <- lists:seq(1, N)], Results),
    {ok, Max} = py:call(?H, max_inflight, []),
    ct:log("most coroutines in flight at once: ~b", [Max]),
    ?assert(Max >= N div 2).

%%% ---------------------------------------------------------------------------
%%% erlang.async_call

erlang_async_call_concurrent(_) ->
    ok = py:register_function(slow_double, fun([X]) -> timer:sleep(50), X * 2 end),
    {Micros, Result} = timer:tc(fun() ->
                                        py:async_await(py:async_call(?H, call_erlang_concurrently,
                                                                     [<<"slow_double">>, 20]), 10000)
                                end),
    {ok, #{<<"results">> := Results, <<"elapsed_ms">> := ElapsedMs, <<"ticks">> := Ticks}} = Result,
    ct:log("20 concurrent 50 ms Erlang calls: ~.1f ms inside Python, ~b ms in all, ~b ticks",
           [ElapsedMs, Micros div 1000, Ticks]),
    ?assertEqual([2 * I || I <- lists:seq(0, 19)], Results),
    %% One after the other they would take 1000 ms.
    ?assert(ElapsedMs < 500),
    ?assert(Micros < 1000000),
    %% The other coroutine kept ticking (every 5 ms) while Erlang worked.
    ?assert(Ticks >= 3).

erlang_async_call_error(_) ->
    ok = py:register_function(async_fails, fun([]) -> error({bad, thing}) end),
    ?assertMatch({error, {'ErlangError', "{bad,thing}" ++ _}},
                 py:async_await(py:async_call(?H, await_erlang, [<<"async_fails">>]), 5000)),
    ok = py:register_function(async_echo, fun([X]) -> X end),
    ?assertEqual({ok, [1, <<"two">>]},
                 py:async_await(py:async_call(?H, await_erlang, [<<"async_echo">>, [1, <<"two">>]]), 5000)).

%%% ---------------------------------------------------------------------------
%%% Collected streams

stream_sync_generator(_) ->
    ?assertEqual({ok, [0, 1, 2, 3, 4]}, py:stream(?H, count_sync, [5])),
    ?assertEqual({ok, []}, py:stream(?H, count_sync, [0])),
    %% Any iterable.
    ?assertEqual({ok, [0, 1, 2]}, py:stream(builtins, range, [3])).

stream_async_generator(_) ->
    ?assertEqual({ok, [0, 1, 2, 3, 4]}, py:stream(?H, count_async, [5])),
    ?assertEqual({ok, []}, py:stream(?H, count_async, [0])).

stream_kwargs(_) ->
    ?assertEqual({ok, [10, 11, 12]}, py:stream(?H, count_sync, [3], #{start => 10})),
    ?assertEqual({ok, [10, 11, 12]}, py:stream(?H, count_async, [3], #{start => 10, delay => 0.001})).

async_stream_sync_generator(_) ->
    ?assertEqual({ok, lists:seq(0, 999)}, py:async_stream(?H, count_sync, [1000])).

async_stream_async_generator(_) ->
    ?assertEqual({ok, lists:seq(0, 999)}, py:async_stream(?H, count_async, [1000])),
    ?assertEqual({ok, [0, 1, 2]}, py:async_stream(?H, count_async, [3, 0, 0.01])).

async_stream_kwargs(_) ->
    ?assertEqual({ok, [5, 6]}, py:async_stream(?H, count_async, [2], #{start => 5})),
    ?assertEqual({ok, [5, 6]}, py:async_stream(?H, count_sync, [2], #{start => 5})).

stream_eval_sync_generator(_) ->
    ?assertEqual({ok, [0, 2, 4, 6]}, py:stream_eval(<<"(x * 2 for x in range(4))">>)),
    ?assertEqual({ok, [0, 3, 6]}, py:stream_eval(<<"(x * k for x in range(n))">>, #{k => 3, n => 3})),
    ?assertEqual({ok, [1, 2]},
                 py:stream_eval(<<"__import__('py_async_helpers').count_sync(2, 1)">>)).

stream_eval_async_generator(_) ->
    ?assertEqual({ok, [0, 10, 20]},
                 py:stream_eval(<<"(x * 10 async for x in __import__('py_async_helpers').count_async(3))">>)),
    ?assertEqual({ok, [7, 8]},
                 py:stream_eval(<<"__import__('py_async_helpers').count_async(n, s, 0.001)">>,
                                #{n => 2, s => 7})).

%% A generator that fails midway fails the whole collection, sync or async, through
%% every collecting function.
collect_error_midway(_) ->
    Boom = {error, {'ValueError', "boom"}},
    ?assertEqual(Boom, py:stream(?H, sync_fail_after, [3, <<"boom">>])),
    ?assertEqual(Boom, py:stream(?H, async_fail_after, [3, <<"boom">>])),
    ?assertEqual(Boom, py:async_stream(?H, sync_fail_after, [3, <<"boom">>])),
    ?assertEqual(Boom, py:async_stream(?H, async_fail_after, [3, <<"boom">>])),
    ?assertEqual(Boom, py:stream_eval(<<"__import__('py_async_helpers').sync_fail_after(3, 'boom')">>)),
    ?assertEqual(Boom, py:stream_eval(<<"__import__('py_async_helpers').async_fail_after(3, 'boom')">>)),
    IntBoom = {error, {'ValueError', "invalid literal for int() with base 10: 'boom'"}},
    ?assertEqual(IntBoom, py:stream_eval(<<"(x if x < 3 else int('boom') for x in range(5))">>)),
    ?assertEqual(IntBoom, py:stream_eval(<<"(x if x < 3 else int('boom') async for x in "
                                           "__import__('py_async_helpers').count_async(5))">>)),
    %% Not iterable at all.
    ?assertMatch({error, {'TypeError', _}}, py:stream(math, sqrt, [4])).

%%% ---------------------------------------------------------------------------
%%% stream_start

stream_start_sync_generator(_) ->
    {ok, Ref} = py:stream_start(?H, count_sync, [2500]),
    ?assert(is_reference(Ref)),
    ?assertEqual({lists:seq(0, 2499), done}, py_test_lib:collect_stream(Ref, 10000)),
    no_more(Ref).

stream_start_async_generator(_) ->
    {ok, Ref} = py:stream_start(?H, count_async, [2500]),
    ?assertEqual({lists:seq(0, 2499), done}, py_test_lib:collect_stream(Ref, 10000)),
    no_more(Ref),
    {ok, Ref2} = py:stream_start(?H, count_async, [5, 0, 0.01]),
    ?assertEqual({[0, 1, 2, 3, 4], done}, py_test_lib:collect_stream(Ref2, 10000)),
    no_more(Ref2).

stream_start_kwargs_and_window(_) ->
    {ok, R1} = py:stream_start(?H, count_sync, [300], #{kwargs => #{start => 100}, window => 7}),
    {ok, R2} = py:stream_start(?H, count_async, [300], #{kwargs => #{start => 100}, window => 1}),
    ?assertEqual({lists:seq(100, 399), done}, py_test_lib:collect_stream(R1, 10000)),
    ?assertEqual({lists:seq(100, 399), done}, py_test_lib:collect_stream(R2, 10000)),
    no_more(R1),
    no_more(R2).

stream_start_owner_option(_) ->
    Self = self(),
    Owner = spawn_link(fun() ->
                               receive {go, Ref} -> Self ! {collected, py_test_lib:collect_stream(Ref, 10000)} end
                       end),
    {ok, Ref} = py:stream_start(?H, count_async, [50], #{owner => Owner}),
    Owner ! {go, Ref},
    receive {collected, Got} -> ?assertEqual({lists:seq(0, 49), done}, Got)
    after 15000 -> ct:fail(owner_got_nothing)
    end,
    %% Nothing came to the starter.
    no_more(Ref).

stream_start_error_midway_sync(_) ->
    {ok, Ref} = py:stream_start(?H, sync_fail_after, [3, <<"midway">>]),
    ?assertEqual({[0, 1, 2], {error, {'ValueError', "midway"}}}, py_test_lib:collect_stream(Ref, 10000)),
    no_more(Ref).

stream_start_error_midway_async(_) ->
    {ok, Ref} = py:stream_start(?H, async_fail_after, [3, <<"midway">>]),
    ?assertEqual({[0, 1, 2], {error, {'ValueError', "midway"}}}, py_test_lib:collect_stream(Ref, 10000)),
    no_more(Ref).

%% A function that cannot be called, or answers something not iterable, ends the stream
%% with the error at once.
stream_start_call_fails(_) ->
    {ok, R1} = py:stream_start(?H, no_such_generator, []),
    ?assertEqual({[], {error, {'AttributeError', "module 'py_async_helpers' has no attribute 'no_such_generator'"}}},
                 py_test_lib:collect_stream(R1, 5000)),
    {ok, R2} = py:stream_start(math, sqrt, [4]),
    ?assertMatch({[], {error, {'TypeError', _}}}, py_test_lib:collect_stream(R2, 5000)),
    no_more(R1),
    no_more(R2).

stream_start_bad_options(_) ->
    ?assertEqual({error, {badarg, stream_options}}, py:stream_start(?H, count_sync, [3], #{window => 0})),
    ?assertEqual({error, {badarg, stream_options}}, py:stream_start(?H, count_sync, [3], #{owner => not_a_pid})),
    ?assertEqual({error, {badarg, stream_options}}, py:stream_start(?H, count_sync, [3], #{window => 1 bsl 70})),
    %% A pid of another node (made from its external format: no distribution needed).
    Remote = binary_to_term(<<131, 88, 118, 0, 3, "a@b", 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1>>),
    ?assertEqual({error, {badarg, stream_options}}, py:stream_start(?H, count_sync, [3], #{owner => Remote})),
    ?assertEqual({error, {badarg, kwargs}}, py:stream_start(?H, count_sync, [3], #{kwargs => not_a_map})),
    ?assertEqual({messages, []}, process_info(self(), messages)).

%% Two streams to one owner, read one after the other: the items of the second, waiting
%% in the owner's mailbox, must not pause the first (the window counts the owner's unread
%% items of a stream, not every message in its mailbox).
stream_start_two_streams_in_turn(_) ->
    %% B first, until its first window (1,000 items) waits unread in this mailbox.
    {ok, B} = py:stream_start(?H, count_sync, [3000]),
    ?assert(py_test_lib:wait_until(fun() -> element(2, process_info(self(), message_queue_len)) >= 1000 end, 3000)),
    {ok, A} = py:stream_start(?H, count_async, [3000]),
    {ItemsA, EndA} = py_test_lib:collect_stream(A, 3000),
    {ItemsB, EndB} = py_test_lib:collect_stream(B, 3000),
    ok = py:stream_cancel(A),
    ok = py:stream_cancel(B),
    ct:log("stream A: ~b items then ~p; stream B: ~b items then ~p",
           [length(ItemsA), EndA, length(ItemsB), EndB]),
    ?assertEqual({3000, done}, {length(ItemsA), EndA}),
    ?assertEqual({3000, done}, {length(ItemsB), EndB}),
    ?assertEqual(lists:seq(0, 2999), ItemsA),
    ?assertEqual(lists:seq(0, 2999), ItemsB).

%% An owner with other messages waiting (a busy server, say) still gets the whole stream.
stream_start_unrelated_messages(_) ->
    [self() ! {unrelated, N} || N <- lists:seq(1, 600)],
    {ok, Ref} = py:stream_start(?H, count_sync, [2000]),
    {Items, End} = py_test_lib:collect_stream(Ref, 3000),
    ok = py:stream_cancel(Ref),
    ct:log("~b items then ~p", [length(Items), End]),
    ?assertEqual({2000, done}, {length(Items), End}),
    ?assertEqual(lists:seq(0, 1999), Items).

%%% ---------------------------------------------------------------------------
%%% stream_cancel and owner exit

stream_cancel_sync(_) ->
    cancel_runs_finally(sync_tracked, [<<"cs">>], <<"cs">>).

stream_cancel_async(_) ->
    cancel_runs_finally(async_tracked, [<<"ca">>, none, 0.005], <<"ca">>).

cancel_runs_finally(Fun, Args, Tag) ->
    {ok, Ref} = py:stream_start(?H, Fun, Args),
    receive {py_stream, Ref, {data, 0}} -> ok after 5000 -> ct:fail(no_first_item) end,
    ?assertEqual(ok, py:stream_cancel(Ref)),
    %% Items already sent may still be queued; then the stream ends as cancelled.
    {Items, End} = py_test_lib:collect_stream(Ref, 5000),
    ?assertEqual({error, cancelled}, End),
    ?assertEqual(lists:seq(1, length(Items)), Items),
    ?assert(wait_for_event(<<"finally:", Tag/binary>>, 3000)),
    no_more(Ref),
    %% Cancelling again is a no-op.
    ?assertEqual(ok, py:stream_cancel(Ref)),
    no_more(Ref).

stream_cancel_after_end(_) ->
    {ok, Ref} = py:stream_start(?H, count_sync, [3]),
    ?assertEqual({[0, 1, 2], done}, py_test_lib:collect_stream(Ref, 5000)),
    ?assertEqual(ok, py:stream_cancel(Ref)),
    no_more(Ref),
    ?assertEqual(ok, py:stream_cancel(make_ref())).

owner_exit_sync(_) ->
    owner_exit_runs_finally(sync_tracked, [<<"os">>], <<"os">>).

owner_exit_async(_) ->
    owner_exit_runs_finally(async_tracked, [<<"oa">>, none, 0.005], <<"oa">>).

%% An owner that exits after its first item: the generator is closed.
owner_exit_runs_finally(Fun, Args, Tag) ->
    Self = self(),
    {Owner, Mon} = spawn_monitor(fun() ->
                                         Ref = receive {go, R} -> R end,
                                         receive {py_stream, Ref, {data, V}} -> Self ! {first, V} end,
                                         exit(done_after_first)
                                 end),
    {ok, Ref} = py:stream_start(?H, Fun, Args, #{owner => Owner}),
    Owner ! {go, Ref},
    receive {first, First} -> ?assertEqual(0, First) after 5000 -> ct:fail(owner_got_nothing) end,
    receive {'DOWN', Mon, process, Owner, done_after_first} -> ok after 5000 -> ct:fail(owner_alive) end,
    ?assert(wait_for_event(<<"finally:", Tag/binary>>, 3000)),
    %% Flow control held the producer near the owner (window 1000), not running ahead.
    {ok, Produced} = py:call(?H, produced, [Tag]),
    ?assert(Produced >= 1 andalso Produced =< 2 * 1000),
    no_more(Ref).

%% An owner that never reads a 10-million-item stream: the producer pauses, so the
%% owner's queue stays near the window and VM memory stays flat; killing the owner
%% closes the generator.
stalled_owner_sync(_) ->
    stalled_owner(sync_tracked, [<<"ss">>, 10000000], <<"ss">>, #{}, 1000).

stalled_owner_async(_) ->
    stalled_owner(async_tracked, [<<"sa">>, 10000000], <<"sa">>, #{window => 100}, 100).

stalled_owner(Fun, Args, Tag, Opts, Window) ->
    erlang:garbage_collect(),
    Mem0 = erlang:memory(total),
    Owner = spawn(fun() -> receive never_sent -> ok end end),
    {ok, _Ref} = py:stream_start(?H, Fun, Args, Opts#{owner => Owner}),
    timer:sleep(1000),
    {message_queue_len, Q1} = process_info(Owner, message_queue_len),
    {ok, P1} = py:call(?H, produced, [Tag]),
    timer:sleep(300),
    {message_queue_len, Q2} = process_info(Owner, message_queue_len),
    {ok, P2} = py:call(?H, produced, [Tag]),
    Mem1 = erlang:memory(total),
    ct:log("window ~b: queue ~b then ~b, produced ~b then ~b, memory +~.1f MB",
           [Window, Q1, Q2, P1, P2, (Mem1 - Mem0) / ?MB]),
    ?assert(Q1 > 0),
    ?assert(Q1 =< 2 * Window),
    ?assert(Q2 =< 2 * Window),
    %% The owner read nothing, so all it was sent is in its queue, and the producer paused.
    ?assert(P2 =< 2 * Window),
    ?assertEqual(P1, P2),
    ?assert(Mem1 - Mem0 < 50 * ?MB),
    exit(Owner, kill),
    ?assert(wait_for_event(<<"finally:", Tag/binary>>, 3000)),
    {ok, P3} = py:call(?H, produced, [Tag]),
    ?assert(P3 =< P2 + 1).

%%% ---------------------------------------------------------------------------
%%% aiohttp: a server on the driver's context loop, clients on the same loop

aiohttp_json(Config) ->
    {Driver, Port} = {?config(driver, Config), ?config(port, Config)},
    ?assertEqual({ok, #{<<"n">> => 7, <<"square">> => 49, <<"name">> => <<"ada">>}},
                 on_driver(Driver, fun() ->
                                           py:async_await(py:async_call(?H, fetch_json, [Port, 7, <<"ada">>]), 10000)
                                   end)).

aiohttp_200_concurrent(Config) ->
    {Driver, Port} = {?config(driver, Config), ?config(port, Config)},
    Calls = [{?H, fetch_json, [Port, I], #{name => integer_to_binary(I)}} || I <- lists:seq(1, 200)],
    {Micros, Result} = timer:tc(fun() -> on_driver(Driver, fun() -> py:async_gather(Calls) end) end),
    ct:log("200 concurrent requests: ~b ms", [Micros div 1000]),
    Expected = [#{<<"n">> => I, <<"square">> => I * I, <<"name">> => integer_to_binary(I)}
                || I <- lists:seq(1, 200)],
    ?assertEqual({ok, Expected}, Result).

aiohttp_chunked_stream(Config) ->
    {Driver, Port} = {?config(driver, Config), ?config(port, Config)},
    Self = self(),
    {ok, Ref} = on_driver(Driver, fun() -> py:stream_start(?H, fetch_chunks, [Port], #{owner => Self}) end),
    {Chunks, End} = py_test_lib:collect_stream(Ref, 10000),
    ?assertEqual(done, End),
    ?assert(length(Chunks) >= 1),
    ?assert(lists:all(fun is_binary/1, Chunks)),
    {ok, Expected} = on_driver(Driver, fun() -> py:call(?H, expected_stream_body, []) end),
    ?assertEqual(Expected, iolist_to_binary(Chunks)),
    ct:log("~b chunks received", [length(Chunks)]),
    no_more(Ref).

aiohttp_stop_server(Config) ->
    {Driver, Port} = {?config(driver, Config), ?config(port, Config)},
    ?assertEqual({ok, true},
                 on_driver(Driver, fun() -> py:async_await(py:async_call(?H, stop_server, []), 10000) end)),
    %% Nobody listens there any more.
    ?assertMatch({error, {'ClientConnectorError', _}},
                 on_driver(Driver, fun() -> py:async_await(py:async_call(?H, fetch_json, [Port, 1]), 10000) end)),
    ?assertEqual({ok, false},
                 on_driver(Driver, fun() -> py:async_await(py:async_call(?H, stop_server, []), 10000) end)).

%%% ---------------------------------------------------------------------------
%%% Helpers

%% A process that runs funs for the aiohttp cases, so that they all use its context.
start_driver() ->
    spawn(fun driver_loop/0).

driver_loop() ->
    receive
        {run, From, Tag, Fun} ->
            From ! {Tag, catch Fun()},
            driver_loop()
    end.

on_driver(Driver, Fun) ->
    Tag = make_ref(),
    Driver ! {run, self(), Tag, Fun},
    receive {Tag, Result} -> Result after 60000 -> ct:fail(driver_timeout) end.


%% Nothing more arrives for stream `Ref'.
no_more(Ref) ->
    receive {py_stream, Ref, _} = Msg -> ct:fail({unexpected, Msg}) after 100 -> ok end.


%% Wait until the helpers recorded `Event'.
wait_for_event(Event, Ms) ->
    {ok, Events} = py:call(?H, events, []),
    case lists:member(Event, Events) of
        true -> true;
        false when Ms =< 0 -> ct:log("events: ~p", [Events]), false;
        false -> timer:sleep(20), wait_for_event(Event, Ms - 20)
    end.
