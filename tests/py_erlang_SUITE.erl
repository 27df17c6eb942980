%%% @doc Python calling Erlang: registered functions (`erlang.call', attribute and import
%%% syntax), re-entrancy at any depth, messages, whereis, sleep, shared state and
%%% SharedDict, through the public APIs.
-module(py_erlang_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2, echo/1]).
-export([readme_round_trip/1, call_forms/1, register_mfa/1, unknown_names/1,
         unregister/1, erlang_error/1, nested_twenty_levels/1, concurrent_nested/1,
         side_effect_once/1, inner_timeout_shorter/1, outer_timeout_while_in_erlang/1,
         values_cross_intact/1, callbacks_from_cast_and_spawn/1, runner_dies_unanswered/1,
         send_message/1, send_to_dead_pid/1, whereis/1, sleep_sync/1,
         state_from_both_sides/1, state_incr_concurrent/1, state_incr_not_integer/1,
         big_values_in_state/1,
         shared_dict_both_sides/1, shared_dict_owner_exit/1, shared_dict_destroyed/1,
         module_reads_well/1, caller_killed_in_erlang_function/1,
         erlang_from_coroutines_streams_threads/1]).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [readme_round_trip, call_forms, register_mfa, unknown_names, unregister,
     erlang_error, nested_twenty_levels, concurrent_nested, side_effect_once,
     inner_timeout_shorter, outer_timeout_while_in_erlang, values_cross_intact,
     callbacks_from_cast_and_spawn, send_message, send_to_dead_pid, whereis, sleep_sync,
     state_from_both_sides, state_incr_concurrent, state_incr_not_integer, big_values_in_state,
     shared_dict_both_sides, shared_dict_owner_exit, shared_dict_destroyed,
     module_reads_well, caller_killed_in_erlang_function,
     erlang_from_coroutines_streams_threads, runner_dies_unanswered].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    ok = py:state_clear(),
    Config.

%% Echo used by several cases.
echo([Value]) -> Value.

readme_round_trip(_) ->
    ok = py:exec(<<"def double(x):\n    return x * 2\n">>),
    ok = py:register_function(compute, fun([X]) ->
                                               {ok, Doubled} = py:call('__main__', double, [X]),
                                               Doubled + 1
                                       end),
    ok = py:exec(<<"def process(x):\n    return erlang.call('compute', x)\n">>),
    ?assertEqual({ok, 21}, py:call('__main__', process, [10])).

call_forms(_) ->
    ok = py:register_function(add, fun([A, B]) -> A + B end),
    ?assertEqual({ok, 5}, py:eval(<<"erlang.call('add', 2, 3)">>)),
    ?assertEqual({ok, 5}, py:eval(<<"erlang.add(2, 3)">>)),
    ok = py:exec(<<"from erlang import add\nimported = add(20, 22)">>),
    ?assertEqual({ok, 42}, py:eval(<<"imported">>)),
    ?assertEqual({ok, 9}, py:call(py_callback_helpers, call_back, [<<"add">>, 4, 5])),
    ok = py:register_function("string_name", fun([]) -> str end),
    ok = py:register_function(<<"binary_name">>, fun([]) -> bin end),
    ?assertEqual({ok, [<<"str">>, <<"bin">>]},
                 py:eval(<<"[erlang.string_name(), erlang.binary_name()]">>)).

register_mfa(_) ->
    ok = py:register_function(echo, ?MODULE, echo),
    ?assertEqual({ok, <<"hi">>}, py:eval(<<"erlang.echo('hi')">>)).

unknown_names(_) ->
    ?assertEqual({error, {'AttributeError', "module 'erlang' has no attribute 'never_registered'"}},
                 py:eval(<<"erlang.never_registered(1)">>)),
    ?assertMatch({error, {'ImportError', "cannot import name 'never_registered'" ++ _}},
                 py:exec(<<"from erlang import never_registered">>)),
    ?assertEqual({error, {'NameError', "no Erlang function is registered as 'never_registered'"}},
                 py:eval(<<"erlang.call('never_registered')">>)).

unregister(_) ->
    ok = py:register_function(temporary, fun([]) -> here end),
    ?assertEqual({ok, <<"here">>}, py:eval(<<"erlang.temporary()">>)),
    ok = py:unregister_function(temporary),
    ?assertEqual({error, {'AttributeError', "module 'erlang' has no attribute 'temporary'"}},
                 py:eval(<<"erlang.temporary()">>)).

erlang_error(_) ->
    ok = py:register_function(fails, fun([]) -> error({bad, thing}) end),
    ok = py:register_function(exits, fun([]) -> exit(gone) end),
    ok = py:register_function(throws, fun([]) -> throw(ball) end),
    ?assertMatch({error, {'ErlangError', "{bad,thing}" ++ _}}, py:eval(<<"erlang.fails()">>)),
    ?assertMatch({ok, {<<"caught">>, {bad, thing}, <<"{bad,thing}", _/binary>>}},
                 py:call(py_callback_helpers, catch_erlang_error, [<<"fails">>])),
    ?assertMatch({ok, {<<"caught">>, {exit, gone}, _}},
                 py:call(py_callback_helpers, catch_erlang_error, [<<"exits">>])),
    ?assertMatch({ok, {<<"caught">>, {throw, ball}, _}},
                 py:call(py_callback_helpers, catch_erlang_error, [<<"throws">>])),
    ?assertEqual({ok, true}, py:call(py_callback_helpers, is_subclass_of_exception, [])),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

nested_twenty_levels(_) ->
    ok = py:register_function(down, fun([N]) -> {ok, V} = py:call('__main__', level, [N - 1]), V end),
    ok = py:exec(<<"def level(n):\n    return 0 if n == 0 else 1 + erlang.down(n)\n">>),
    ?assertEqual({ok, 20}, py:call('__main__', level, [20])),
    ?assertEqual({ok, 50}, py:call('__main__', level, [50])).

concurrent_nested(_) ->
    ok = py:register_function(nest_down, fun([N]) ->
                                                {ok, V} = py:call('__main__', nest_level, [N - 1]),
                                                V
                                        end),
    Parent = self(),
    Pids = [spawn_link(fun() ->
                               ok = py:exec(<<"def nest_level(n):\n"
                                              "    return 0 if n == 0 else n + erlang.nest_down(n)\n">>),
                               Parent ! {self(), py:call('__main__', nest_level, [I rem 7 + 1])}
                       end) || I <- lists:seq(1, 100)],
    Results = [receive {P, R} -> R after 30000 -> timeout end || P <- Pids],
    Expected = [{ok, lists:sum(lists:seq(1, I rem 7 + 1))} || I <- lists:seq(1, 100)],
    ?assertEqual(Expected, Results).

side_effect_once(_) ->
    ok = py:register_function(after_effect, fun([Tag]) ->
                                                   {ok, L} = py:call(py_callback_helpers, effects, []),
                                                   {Tag, length(L)}
                                           end),
    ?assertEqual({ok, {<<"one">>, 1}}, py:call(py_callback_helpers, effect_then_call, [<<"one">>])),
    ?assertEqual({ok, [<<"one">>]}, py:call(py_callback_helpers, effects, [])).

inner_timeout_shorter(_) ->
    ok = py:register_function(slow_inner, fun([]) -> py:call(time, sleep, [0.5], #{}, 50) end),
    {Micros, Result} = timer:tc(fun() -> py:eval(<<"erlang.slow_inner()">>, #{}, 5000) end),
    ?assertEqual({ok, {<<"error">>, <<"timeout">>}}, Result),
    ?assert(Micros < 2000000),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2], #{}, 5000)),
    timer:sleep(600),
    ?assertEqual({messages, []}, process_info(self(), messages)).

outer_timeout_while_in_erlang(_) ->
    %% The Erlang function runs in the caller, so the caller notices its timeout when the
    %% function returns; the Python code waiting for it is interrupted, nothing leaks.
    Self = self(),
    ok = py:register_function(slow_erlang, fun([]) -> timer:sleep(300), Self ! returned, ok end),
    ok = py:exec(<<"def wait_then_more():\n    erlang.slow_erlang()\n"
                   "    import time\n    time.sleep(1)\n    return 'late'\n">>),
    ?assertEqual({error, timeout}, py:call('__main__', wait_then_more, [], #{}, 100)),
    receive returned -> ok after 1000 -> ct:fail(function_not_run) end,
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)),
    timer:sleep(1200),
    ?assertEqual({messages, []}, process_info(self(), messages)).

values_cross_intact(_) ->
    ok = py:register_function(echo, ?MODULE, echo),
    Pid = self(),
    Ref = make_ref(),
    Values = [<<"quote \" backslash \\ newline \n tab \t">>, [], 0.1, 1.0e300, -0.5,
              1 bsl 200, -(1 bsl 100), Pid, Ref, #{<<"a">> => #{<<"b">> => [1, {2, 3}]}},
              {1, <<"two">>, [3.5]}, <<"ünïcödé ✓"/utf8>>, true, false, none],
    [?assertEqual({ok, V}, py:call(py_callback_helpers, echo_through_erlang, [V])) || V <- Values],
    %% And Erlang-side values produced by the function reach Python intact.
    ok = py:register_function(produce, fun([]) -> [1 bsl 70, 3.141592653589793, <<"x\"y">>, Pid] end),
    ?assertEqual({ok, true},
                 py:eval(<<"erlang.produce() == [2**70, 3.141592653589793, 'x\"y', p]">>, #{p => Pid})).

%% The process running an Erlang function for a request whose caller does not wait (a
%% cast, a spawn_call, a coroutine's `erlang.async_call') dies without answering: the
%% call fails in Python, and the context (its loop too) keeps serving.
runner_dies_unanswered(_) ->
    Self = self(),
    ok = py:register_function(dies_unanswered, fun(_) -> exit(self(), kill) end),
    ok = py:register_function(report, fun([X]) -> Self ! {reported, X}, ok end),
    ok = py:exec(<<"def call_and_report():\n"
                   "    erlang.report(__import__('py_callback_helpers').call_back_caught('dies_unanswered'))\n">>),
    Died = [<<"ProcessError">>, <<"the Erlang process running the function exited without answering">>],
    ok = py:cast('__main__', call_and_report, []),
    ?assertEqual(Died, receive {reported, R1} -> R1 after 5000 -> timeout end),
    _ = py:spawn_call('__main__', call_and_report, []),
    ?assertEqual(Died, receive {reported, R2} -> R2 after 5000 -> timeout end),
    ?assertEqual({ok, Died},
                 py:async_await(py:async_call(py_callback_helpers, async_call_back, [<<"dies_unanswered">>]), 5000)),
    %% Every context's loop still runs tasks.
    [?assertEqual({ok, 5}, py:async_await(py:async_call(asyncio, sleep, [0.01, 5]), 5000))
     || _ <- py_context_router:pids()].

callbacks_from_cast_and_spawn(_) ->
    Self = self(),
    ok = py:register_function(notify, fun([X]) -> Self ! {notified, X}, ok end),
    ok = py:exec(<<"def note(x):\n    erlang.notify(x)\n    return x\n">>),
    ok = py:cast('__main__', note, [1]),
    receive {notified, 1} -> ok after 2000 -> ct:fail(no_cast_callback) end,
    ?assertEqual({ok, 2}, py:await(py:spawn_call('__main__', note, [2]), 5000)),
    receive {notified, 2} -> ok after 2000 -> ct:fail(no_spawn_callback) end,
    %% A function run for a cast sees the caster's namespace.
    ok = py:exec(<<"secret = 'mine'">>),
    ok = py:register_function(peek, fun([]) -> Self ! {peeked, py:eval(<<"secret">>)}, ok end),
    ok = py:exec(<<"def peek_later():\n    erlang.peek()\n">>),
    ok = py:cast('__main__', peek_later, []),
    receive {peeked, Seen} -> ?assertEqual({ok, <<"mine">>}, Seen) after 2000 -> ct:fail(no_peek) end.

send_message(_) ->
    ?assertEqual({ok, none}, py:eval(<<"erlang.send(p, ('hello', 1, [2.5]))">>, #{p => self()})),
    receive Msg -> ?assertEqual({<<"hello">>, 1, [2.5]}, Msg) after 1000 -> ct:fail(no_message) end.

send_to_dead_pid(_) ->
    Dead = spawn(fun() -> ok end),
    Mon = monitor(process, Dead),
    receive {'DOWN', Mon, _, _, _} -> ok end,
    ?assertMatch({error, {'ProcessError', "process <erlang.Pid <0." ++ _}},
                 py:eval(<<"erlang.send(p, 1)">>, #{p => Dead})).

whereis(_) ->
    register(py_erlang_suite_probe, self()),
    ?assertEqual({ok, self()}, py:eval(<<"erlang.whereis('py_erlang_suite_probe')">>)),
    ?assertEqual({ok, none}, py:eval(<<"erlang.whereis('py_erlang_suite_nobody')">>)),
    erlang:unregister(py_erlang_suite_probe).

sleep_sync(_) ->
    {Micros, Result} = timer:tc(fun() -> py:eval(<<"erlang.sleep(0.05)">>) end),
    ?assertEqual({ok, none}, Result),
    ?assert(Micros >= 50000).

state_from_both_sides(_) ->
    ok = py:state_store(<<"greeting">>, <<"hello">>),
    ?assertEqual({ok, <<"hello">>}, py:eval(<<"erlang.state_get('greeting')">>)),
    ?assertEqual({ok, none}, py:eval(<<"erlang.state_get('missing')">>)),
    ?assertEqual({ok, 7}, py:eval(<<"erlang.state_get('missing', 7)">>)),
    ?assertEqual({ok, none}, py:eval(<<"erlang.state_set('from_py', {'a': [1, 2]})">>)),
    ?assertEqual({ok, #{<<"a">> => [1, 2]}}, py:state_fetch(<<"from_py">>)),
    ?assertEqual({error, not_found}, py:state_fetch(nope)),
    ok = py:state_store({tuple, key}, 1),
    ?assertEqual({ok, 1}, py:state_fetch({tuple, key})),
    ?assertEqual(lists:sort([<<"greeting">>, <<"from_py">>, {tuple, key}]), lists:sort(py:state_keys())),
    ?assertEqual({ok, 5}, py:eval(<<"erlang.state_incr('n', 5)">>)),
    ?assertEqual(6, py:state_incr(<<"n">>)),
    ?assertEqual(4, py:state_decr(<<"n">>, 2)),
    ?assertEqual({ok, 3}, py:eval(<<"erlang.state_decr('n')">>)),
    ok = py:state_remove(<<"greeting">>),
    ?assertEqual({error, not_found}, py:state_fetch(<<"greeting">>)),
    ?assertEqual({ok, none}, py:eval(<<"erlang.state_delete('n')">>)),
    ?assertEqual({error, not_found}, py:state_fetch(<<"n">>)),
    ?assertEqual({ok, none}, py:eval(<<"erlang.state_clear()">>)),
    ?assertEqual([], py:state_keys()).

state_incr_concurrent(_) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {self(), py:state_incr(counter)} end) || _ <- lists:seq(1, 1000)],
    Seen = [receive {P, V} -> V after 10000 -> ct:fail({no_answer, P}) end || P <- Pids],
    ?assertEqual({ok, 1000}, py:state_fetch(counter)),
    ?assertEqual(lists:seq(1, 1000), lists:sort(Seen)),
    %% Python increments race with Erlang ones and none is lost.
    Py = [spawn_link(fun() -> Parent ! {self(), py:eval(<<"erlang.state_incr('pc')">>)} end)
          || _ <- lists:seq(1, 200)],
    Er = [spawn_link(fun() -> Parent ! {self(), {ok, py:state_incr(<<"pc">>)}} end) || _ <- lists:seq(1, 200)],
    [receive {P, {ok, _}} -> ok after 10000 -> ct:fail({no_answer, P}) end || P <- Py ++ Er],
    ?assertEqual({ok, 400}, py:state_fetch(<<"pc">>)).

big_values_in_state(_) ->
    %% Maps past 32 keys read back on both sides (before OTP 27 they are copied, never
    %% decoded from the external format in a process-independent environment, which
    %% crashed OTP 25; from OTP 27 on they are decoded: the otp27 leg runs this there).
    Big = maps:from_list([{I, I} || I <- lists:seq(1, 10000)]),
    ok = py:state_store(big, Big),
    ?assertEqual({ok, Big}, py:state_fetch(big)),
    ?assertEqual({ok, 10000}, py:eval(<<"len(erlang.state_get(erlang.atom('big')))">>)),
    {ok, D} = py:shared_dict_new(),
    ok = py:shared_dict_set(D, Big, Big),
    ?assertEqual(Big, py:shared_dict_get(D, Big)),
    ?assertEqual([Big], py:shared_dict_keys(D)),
    ?assertEqual({ok, 10000}, py:eval(<<"len(d.items()[0][0])">>, #{d => D})),
    ok = py:shared_dict_destroy(D).

state_incr_not_integer(_) ->
    ok = py:state_store(text, <<"abc">>),
    ?assertError(badarith, py:state_incr(text)),
    ?assertMatch({error, {'TypeError', _}}, py:eval(<<"erlang.state_incr(erlang.atom('text'))">>)).

shared_dict_both_sides(_) ->
    {ok, D} = py:shared_dict_new(),
    ok = py:shared_dict_set(D, <<"k">>, 1),
    ok = py:shared_dict_set(D, {any, [term]}, #{x => y}),
    ?assertEqual(1, py:shared_dict_get(D, <<"k">>)),
    ?assertEqual(undefined, py:shared_dict_get(D, nope)),
    ?assertEqual(dflt, py:shared_dict_get(D, nope, dflt)),
    Code = <<"(d['k'], len(d), 'k' in d, 'zz' in d, d.get('zz', 0), sorted(d.keys(), key=str))">>,
    ?assertEqual({ok, {1, 2, true, false, 0, [{<<"any">>, [<<"term">>]}, <<"k">>]}}, py:eval(Code, #{d => D})),
    ?assertEqual({ok, none}, py:eval(<<"d.__setitem__('from_py', [1, 2])">>, #{d => D})),
    ?assertEqual([1, 2], py:shared_dict_get(D, <<"from_py">>)),
    ?assertMatch({error, {'KeyError', _}}, py:eval(<<"d['absent']">>, #{d => D})),
    ?assertEqual({ok, none}, py:eval(<<"d.__delitem__('k')">>, #{d => D})),
    ?assertEqual(undefined, py:shared_dict_get(D, <<"k">>)),
    ok = py:shared_dict_del(D, {any, [term]}),
    ?assertEqual([<<"from_py">>], py:shared_dict_keys(D)),
    ?assertEqual({ok, D}, py:eval(<<"d">>, #{d => D})),
    ok = py:shared_dict_destroy(D).

shared_dict_owner_exit(_) ->
    Self = self(),
    Owner = spawn(fun() ->
                          {ok, D} = py:shared_dict_new(),
                          ok = py:shared_dict_set(D, a, 1),
                          Self ! {dict, D},
                          receive stop -> ok end
                  end),
    D = receive {dict, Dict} -> Dict end,
    ?assertEqual(1, py:shared_dict_get(D, a)),
    Mon = monitor(process, Owner),
    Owner ! stop,
    receive {'DOWN', Mon, _, _, _} -> ok end,
    ?assertError(badarg, py:shared_dict_get(D, a)),
    ?assertError(badarg, py:shared_dict_set(D, a, 2)),
    ?assertError(badarg, py:shared_dict_del(D, a)),
    ?assertError(badarg, py:shared_dict_keys(D)),
    ?assertEqual(ok, py:shared_dict_destroy(D)),
    ?assertMatch({error, {'RuntimeError', "this SharedDict was destroyed"}},
                 py:eval(<<"d['a']">>, #{d => D})).

shared_dict_destroyed(_) ->
    {ok, D} = py:shared_dict_new(),
    ok = py:shared_dict_destroy(D),
    ?assertError(badarg, py:shared_dict_set(D, a, 1)),
    ?assertError(badarg, py:shared_dict_keys(D)),
    ?assertError(badarg, py:shared_dict_del(D, a)),
    ?assertEqual(ok, py:shared_dict_destroy(D)).

module_reads_well(_) ->
    ?assertEqual({ok, true}, py:eval(<<"len(erlang.__doc__ or '') > 40">>)),
    ?assertEqual({ok, true},
                 py:eval(<<"all(getattr(erlang, n).__doc__ for n in "
                           "['call', 'send', 'whereis', 'sleep', 'atom', 'state_get', 'state_set', "
                           "'state_incr', 'SharedDict', 'ErlangError', 'ProcessError', 'Pid', 'Ref', 'Atom'])">>)),
    {ok, Help} = py:eval(<<"__import__('pydoc').render_doc(erlang, renderer=__import__('pydoc').plaintext)">>),
    ?assertNotEqual(nomatch, binary:match(Help, <<"state_get">>)),
    ?assertEqual({ok, true},
                 py:eval(<<"__import__('os').path.exists(__import__('os').path.join("
                           "__import__('os').path.dirname(__import__('erlang_shim').__file__), 'py.typed'))">>)).

caller_killed_in_erlang_function(_) ->
    %% The caller runs the Erlang function; when it dies there, the Python code waiting
    %% for the answer is interrupted and the context goes on serving.
    Self = self(),
    ok = py:register_function(hang_here, fun([]) -> Self ! {hanging, self()}, timer:sleep(infinity) end),
    Ctx = py:context(),
    Caller = spawn(fun() -> py:call(Ctx, py_callback_helpers, wait_for_erlang, []) end),
    receive {hanging, Caller} -> ok after 5000 -> ct:fail(function_not_called) end,
    exit(Caller, kill),
    %% Until the death reaches the context, it serves these calls nested inside the
    %% waiting frame, so the frame's unwinding is awaited rather than expected at once.
    ?assert(py_test_lib:wait_until(
              fun() ->
                      {ok, Effects} = py:call(Ctx, py_callback_helpers, effects, [], #{timeout => 5000}),
                      lists:member(<<"unwound">>, Effects)
              end, 5000)),
    ?assertEqual({ok, 3}, py:call(Ctx, operator, add, [1, 2], #{timeout => 5000})).

erlang_from_coroutines_streams_threads(_) ->
    ok = py:register_function(times_ten, fun([X]) -> 10 * X end),
    ?assertEqual({ok, 70}, py:async_await(py:async_call(py_callback_helpers, sync_call_in_coroutine, [7]), 5000)),
    ?assertEqual({ok, [0, 10, 20]}, py:stream(py_callback_helpers, generate_via_erlang, [3])),
    {ok, S} = py:stream_start(py_callback_helpers, generate_via_erlang, [2]),
    ?assertEqual([{data, 0}, {data, 10}, done],
                 [receive {py_stream, S, E} -> E after 5000 -> timeout end || _ <- [1, 2, 3]]),
    ?assertEqual({ok, none}, py:call(py_callback_helpers, send_from_thread, [self(), <<"from a thread">>])),
    receive Msg -> ?assertEqual(<<"from a thread">>, Msg) after 2000 -> ct:fail(no_message) end,
    ?assertEqual({ok, <<"called">>}, py:call(py_callback_helpers, call_from_thread, [])).
