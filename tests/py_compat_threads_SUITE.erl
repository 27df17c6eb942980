%%% @doc The `erlang' Python module from threads that Python code starts itself
%%% (`threading.Thread', `ThreadPoolExecutor'), and `erlang.async_call' awaited in
%%% asyncio loops the user's code runs (`asyncio.run' in a request, a loop in a thread),
%%% through the public API.
-module(py_compat_threads_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, fail_fun/1, after_stop_body/0]).
-export([thread_join/1, pool_map_many_threads/1, chained_calls_in_thread/1,
         error_in_one_thread_only/1, thread_outlives_request/1, call_after_stop/1,
         runner_killed_while_thread_waits/1, other_functions_from_thread/1,
         async_call_in_asyncio_run/1, async_call_in_thread_loop/1,
         async_call_without_loop_in_thread/1, many_async_calls_in_asyncio_run/1,
         async_call_cancelled_in_thread_loop/1, async_runner_killed_in_thread_loop/1]).

-define(H, py_compat_threads_helpers).
-define(GONE, <<"the Erlang process that should run the function exited before answering">>).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [thread_join, pool_map_many_threads, chained_calls_in_thread, error_in_one_thread_only,
     thread_outlives_request, call_after_stop, runner_killed_while_thread_waits,
     other_functions_from_thread, async_call_in_asyncio_run, async_call_in_thread_loop,
     async_call_without_loop_in_thread, many_async_calls_in_asyncio_run,
     async_call_cancelled_in_thread_loop, async_runner_killed_in_thread_loop].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    ok = register_functions(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

register_functions() ->
    ok = py:register_function(times_ten, fun([X]) -> 10 * X end),
    ok = py:register_function(add, fun([A, B]) -> A + B end),
    ok = py:register_function(fail, ?MODULE, fail_fun),
    ok = py:register_function(whoami, fun([]) -> self() end),
    py:register_function(block, fun([]) ->
                                        register(py_compat_blocked, self()),
                                        receive never -> ok end
                                end).

%% A registered function that fails with `{bad, N}'.
fail_fun([N]) -> erlang:error({bad, N}).

thread_join(_) ->
    ?assertEqual({ok, 71}, py:call(?H, thread_join, [7])).

%% 8 workers start together, 50 calls each: every result in its place.
pool_map_many_threads(_) ->
    Expected = [[1000 * I + J || J <- lists:seq(0, 49)] || I <- lists:seq(0, 7)],
    ?assertEqual({ok, Expected}, py:call(?H, pool_map, [8, 50])).

chained_calls_in_thread(_) ->
    ?assertEqual({ok, 1001}, py:call(?H, chained_in_thread, [])).

error_in_one_thread_only(_) ->
    ?assertEqual({ok, [{<<"ok">>, 0}, {<<"ok">>, 10},
                       {<<"error">>, {bad, 2}, <<"{bad,2} (in py_compat_threads_SUITE:fail_fun/1)">>},
                       {<<"ok">>, 30}]},
                 py:call(?H, error_in_one_thread, [])).

%% A thread may keep calling after the request that started it returned: its calls run
%% in fresh processes, not in the (long gone) caller.
thread_outlives_request(_) ->
    ?assertEqual({ok, none}, py:call(?H, start_late_caller, [self()])),
    ?assertEqual({ok, none}, py:call(?H, release_late_caller, [])),
    receive
        {<<"late">>, Runner, 40} ->
            ?assert(is_pid(Runner)),
            ?assertNotEqual(self(), Runner)
    after 5000 ->
        ct:fail(no_late_call)
    end.

%% Stopping the application is done in a VM of its own.
call_after_stop(_) ->
    ?assertEqual({ok, {<<"RuntimeError">>, <<"erlang_python is not running">>}},
                 py_isolated:run(?MODULE, after_stop_body, 60000)).

%% Runs in the isolated VM: a thread calls once the application has stopped.
after_stop_body() ->
    ok = py:register_function(times_ten, fun([X]) -> 10 * X end),
    {ok, none} = py:call(?H, call_after_stop, [self()]),
    ok = py_test_lib:stop(),
    receive Outcome -> Outcome after 15000 -> no_outcome end.

runner_killed_while_thread_waits(_) ->
    kill_blocked_runner(),
    ?assertEqual({ok, {<<"ProcessError">>, ?GONE}},
                 py:call(?H, call_blocking_in_thread, [], #{}, 10000)),
    receive {killed, Runner} -> ?assert(is_pid(Runner)) after 1000 -> ct:fail(not_killed) end.

%% Kill the runner of `block' once it has started (it registers itself).
kill_blocked_runner() ->
    Test = self(),
    _ = spawn(fun() ->
                      Runner = wait_registered(py_compat_blocked, 500),
                      exit(Runner, kill),
                      Test ! {killed, Runner}
              end),
    ok.

wait_registered(_Name, 0) ->
    erlang:error(never_registered);
wait_registered(Name, Tries) ->
    case whereis(Name) of
        undefined -> timer:sleep(10), wait_registered(Name, Tries - 1);
        Pid -> Pid
    end.

other_functions_from_thread(_) ->
    ok = py:enable_tracing(),
    ok = py:clear_traces(),
    ok = py:state_clear(),
    Dispatcher = whereis(py_callbacks),
    ?assertEqual({ok, #{<<"whereis">> => Dispatcher, <<"incr">> => 15, <<"get">> => 15,
                        <<"shared">> => <<"v">>}},
                 py:call(?H, other_functions_in_thread, [self()])),
    receive Msg -> ?assertEqual({<<"from_thread">>, 1}, Msg) after 2000 -> ct:fail(no_message) end,
    ?assertEqual({ok, 15}, py:state_fetch(<<"thread_key">>)),
    {ok, Spans} = py:get_traces(),
    ?assertEqual([<<"in_thread">>], [N || #{name := N} <- Spans]),
    ok = py:disable_tracing().

async_call_in_asyncio_run(_) ->
    ?assertEqual({ok, [[0, 10, 20, 30, 40], {<<"error">>, {bad, 7}}]},
                 py:call(?H, async_in_asyncio_run, [5])).

async_call_in_thread_loop(_) ->
    ?assertEqual({ok, [[0, 10, 20, 30, 40], {<<"error">>, {bad, 7}}]},
                 py:call(?H, async_in_thread_loop, [5])).

async_call_without_loop_in_thread(_) ->
    ?assertEqual({ok, {<<"RuntimeError">>,
                       <<"erlang.async_call needs a running asyncio loop outside an erlang_python context">>}},
                 py:call(?H, async_without_loop_in_thread, [])).

%% 200 answers in flight at once, all in place.
many_async_calls_in_asyncio_run(_) ->
    ?assertEqual({ok, lists:sum([10 * I || I <- lists:seq(0, 199)])},
                 py:call(?H, many_async_in_asyncio_run, [200])).

%% The loop gives the future up; the answer that comes later (here: the runner's exit)
%% finds it done and is dropped.
async_call_cancelled_in_thread_loop(_) ->
    ?assertEqual({ok, <<"timeout">>}, py:call(?H, async_cancelled_in_thread_loop, [])),
    Runner = wait_registered(py_compat_blocked, 500),
    exit(Runner, kill),
    wait_unregistered(py_compat_blocked, 500),
    ?assertEqual({ok, 71}, py:call(?H, thread_join, [7])).

async_runner_killed_in_thread_loop(_) ->
    kill_blocked_runner(),
    ?assertEqual({ok, {<<"ProcessError">>, ?GONE}},
                 py:call(?H, async_runner_killed_in_thread_loop, [], #{}, 10000)),
    receive {killed, Runner} -> ?assert(is_pid(Runner)) after 1000 -> ct:fail(not_killed) end.

wait_unregistered(_Name, 0) ->
    erlang:error(still_registered);
wait_unregistered(Name, Tries) ->
    case whereis(Name) of
        undefined -> ok;
        _ -> timer:sleep(10), wait_unregistered(Name, Tries - 1)
    end.
