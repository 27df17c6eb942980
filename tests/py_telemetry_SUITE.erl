%%% @doc The `telemetry' events of requests and streams (docs/telemetry.md), seen through
%%% a stand-in module named `telemetry' whose `execute/3' forwards each event to the
%%% process registered as `py_telemetry_sink' (the test case). The stand-in is compiled
%%% here from source and purged after the suite, so no other suite sees it. Also: no
%%% events and no failure while the module is absent, and calls that still answer
%%% right when `execute/3' raises.
-module(py_telemetry_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([call_ok/1, call_on_pool/1, python_error/1, error_details_reason/1, timeout/1,
         overload/1, cast/1, spawn_call_await/1, spawn_call_timeout/1, async_call/1,
         eval/1, exec/1, py_ref_request/1, collected_stream/1, stream/1,
         stream_error/1, stream_cancelled/1, absent_module/1, loaded_later/1,
         raising_handler/1, span_contexts_differ/1]).

-define(SINK, py_telemetry_sink).
-define(CRASH, py_telemetry_SUITE_crash).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [call_ok, call_on_pool, python_error, error_details_reason, timeout, overload, cast,
     spawn_call_await, spawn_call_timeout, async_call, eval, exec, py_ref_request,
     collected_stream, stream, stream_error, stream_cancelled, absent_module,
     loaded_later, raising_handler, span_contexts_differ].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    unload_stand_in(),
    _ = persistent_term:erase(?CRASH),
    py_test_lib:stop().

init_per_testcase(overload, Config) ->
    %% One context with room for one queued request, so that overload is reachable.
    py_test_lib:stop(),
    ok = py_test_lib:start([{num_contexts, 1}, {max_queued, 1}]),
    setup_case(Config);
init_per_testcase(_Case, Config) ->
    setup_case(Config).

setup_case(Config) ->
    load_stand_in(),
    true = register(?SINK, self()),
    Config.

end_per_testcase(overload, Config) ->
    end_case(Config),
    py_test_lib:stop(),
    application:unset_env(erlang_python, max_queued),
    application:unset_env(erlang_python, num_contexts),
    ok = py_test_lib:start();
end_per_testcase(_Case, Config) ->
    end_case(Config).

end_case(_Config) ->
    _ = persistent_term:erase(?CRASH),
    catch unregister(?SINK),
    flush_events(),
    ok.

%%% ---------------------------------------------------------------------------
%%% Cases

call_ok(_Config) ->
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => call, module => operator, function => add, pool => default}),
    Context = maps:get(context, Meta),
    ?assert(is_integer(Context) andalso Context > 0),
    {M, _} = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    ?assert(maps:get(queue_wait, M) =< maps:get(duration, M)),
    none().

call_on_pool(_Config) ->
    ?assertEqual({ok, 7}, py:call(io, operator, add, [3, 4])),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => call, module => operator, function => add, pool => io}),
    _ = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    none().

python_error(_Config) ->
    {error, {'ValueError', _} = Reason} = py:call(py_api_helpers, raise_value_error, [<<"no">>]),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => call, module => py_api_helpers, function => raise_value_error}),
    _ = assert_stop(Stop, Meta, [queue_wait],
                    #{result => error, error => 'ValueError', reason => Reason}),
    none().

error_details_reason(_Config) ->
    {error, {'ValueError', _, #{class := <<"ValueError">>}} = Reason} =
        py:call(py:context(), py_api_helpers, raise_value_error, [<<"no">>],
                #{error_details => true}),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start, #{kind => call}),
    _ = assert_stop(Stop, Meta, [queue_wait],
                    #{result => error, error => 'ValueError', reason => Reason}),
    none().

timeout(_Config) ->
    ?assertEqual({error, timeout}, py:call(py_api_helpers, spin, [2.0], #{}, 100)),
    [Start, Timeout, Stop] = take(3),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => call, module => py_api_helpers, function => spin}),
    {[erlang_python, request, timeout], TM, TMeta} = Timeout,
    ?assertEqual([duration], maps:keys(TM)),
    ?assert(maps:get(duration, TM) >= erlang:convert_time_unit(100, millisecond, native)),
    ?assertEqual(Meta#{timeout => 100}, TMeta),
    %% The request was cancelled, so no reply told how long it queued.
    _ = assert_stop(Stop, Meta, [],
                    #{result => error, error => timeout, reason => timeout}),
    none(),
    %% The context still serves, and reports again.
    ?assertEqual({ok, 2}, py:call(operator, add, [1, 1])),
    [_, _] = take(2).

overload(_Config) ->
    1 = py:num_executors(),
    Blocker = py:spawn_call(py_api_helpers, sleep_then, [0.5, done]),
    timer:sleep(50),
    Queued = py:spawn_call(operator, add, [1, 1]),
    [_, _] = take(2),
    ?assertEqual({error, {overloaded, 1, 1}}, py:call(operator, add, [2, 2])),
    [Start, Overload, Stop] = take(3),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => call, module => operator, function => add, pool => default}),
    ?assertEqual({[erlang_python, request, overload], #{queued => 1, max_queued => 1}, Meta},
                 Overload),
    _ = assert_stop(Stop, Meta, [], #{result => error, error => overloaded,
                                      reason => {overloaded, 1, 1}}),
    %% A refused spawn_call ends its span at once; its await gives the refusal.
    Refused = py:spawn_call(operator, add, [3, 3]),
    [SStart, SOverload, SStop] = take(3),
    SMeta = assert_start([erlang_python, request, start], SStart, #{kind => spawn_call}),
    ?assertMatch({[erlang_python, request, overload], _, SMeta}, SOverload),
    _ = assert_stop(SStop, SMeta, [], #{result => error, error => overloaded,
                                        reason => {overloaded, 1, 1}}),
    ?assertEqual({error, {overloaded, 1, 1}}, py:await(Refused, 1000)),
    none(),
    ?assertEqual({ok, <<"done">>}, py:await(Blocker, 5000)),
    ?assertEqual({ok, 2}, py:await(Queued, 5000)),
    [_, _] = take(2).

cast(_Config) ->
    ?assertEqual(ok, py:cast(operator, add, [1, 2])),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => cast, module => operator, function => add, pool => default}),
    %% Nothing answers a cast: its span is the queueing, and no queue wait comes back.
    _ = assert_stop(Stop, Meta, [], #{result => ok}),
    none().

spawn_call_await(_Config) ->
    Ref = py:spawn_call(operator, mul, [6, 7]),
    [Start] = take(1),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => spawn_call, module => operator, function => mul}),
    %% The span ends when the reply is collected.
    timer:sleep(50),
    none(),
    ?assertEqual({ok, 42}, py:await(Ref, 5000)),
    [Stop] = take(1),
    {M, _} = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    ?assert(maps:get(duration, M) >= erlang:convert_time_unit(50, millisecond, native)),
    none().

spawn_call_timeout(_Config) ->
    Ref = py:spawn_call(py_api_helpers, spin, [2.0]),
    ?assertEqual({error, timeout}, py:await(Ref, 100)),
    [Start, Timeout, Stop] = take(3),
    Meta = assert_start([erlang_python, request, start], Start, #{kind => spawn_call}),
    ?assertMatch({[erlang_python, request, timeout], #{duration := _}, #{timeout := 100}},
                 Timeout),
    _ = assert_stop(Stop, Meta, [], #{result => error, error => timeout, reason => timeout}),
    none().

async_call(_Config) ->
    Ref = py:async_call(asyncio, sleep, [0, 5]),
    ?assertEqual({ok, 5}, py:async_await(Ref, 5000)),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => async_call, module => asyncio, function => sleep,
                          pool => default}),
    _ = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    none().

eval(_Config) ->
    ?assertEqual({ok, 3}, py:eval(<<"x + 1">>, #{x => 2})),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => eval, module => undefined, function => undefined,
                          pool => default}),
    _ = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    none().

exec(_Config) ->
    ?assertEqual(ok, py:exec(<<"telemetry_seen = 1">>)),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => exec, module => undefined, function => undefined}),
    _ = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    ?assertMatch({error, {'SyntaxError', _}}, py:exec(<<"def (">>)),
    [Start2, Stop2] = take(2),
    Meta2 = assert_start([erlang_python, request, start], Start2, #{kind => exec}),
    _ = assert_stop(Stop2, Meta2, [queue_wait], #{result => error, error => 'SyntaxError'}),
    none().

%% Requests on a py ref run on the object's context, which the Erlang side does not know.
py_ref_request(_Config) ->
    {ok, Counter} = py:call(py:context(), py_api_helpers, 'Counter', [10], #{return => ref}),
    [_, _] = take(2),
    ?assertEqual({ok, 11}, py:call_method(Counter, incr, [])),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => call_method, module => undefined, function => incr,
                          context => undefined, pool => undefined}),
    _ = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    none().

%% `py:stream/3' collects in one request: request events, no stream events.
collected_stream(_Config) ->
    ?assertEqual({ok, [0, 1, 2]}, py:stream(builtins, range, [3])),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, request, start], Start,
                        #{kind => stream, module => builtins, function => range}),
    _ = assert_stop(Stop, Meta, [queue_wait], #{result => ok}),
    none().

stream(_Config) ->
    {ok, Ref} = py:stream_start(builtins, range, [5]),
    ?assertEqual({[0, 1, 2, 3, 4], done}, py_test_lib:collect_stream(Ref, 5000)),
    [{_, Emitter, _, _, _} = Start, {_, Emitter, _, _, _} = Stop] = take_from(2),
    %% The stream's controller emits both, not the caller.
    ?assertNotEqual(self(), Emitter),
    Meta = assert_start([erlang_python, stream, start], drop_pid(Start),
                        #{kind => stream_start, module => builtins, function => range,
                          pool => default, owner => self()}),
    ?assertMatch({[erlang_python, stream, stop], #{items := 5}, _}, drop_pid(Stop)),
    _ = assert_stop([erlang_python, stream, stop], drop_pid(Stop), Meta, [items],
                    #{result => ok}),
    none().

stream_error(_Config) ->
    ok = py:exec(<<"def telemetry_gen():\n    yield 1\n    yield 2\n    raise KeyError('k')\n">>),
    [_, _] = take(2),
    {ok, Ref} = py:stream_start('__main__', telemetry_gen, []),
    {[1, 2], {error, {'KeyError', _} = Reason}} = py_test_lib:collect_stream(Ref, 5000),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, stream, start], Start, #{kind => stream_start}),
    {M, _} = assert_stop([erlang_python, stream, stop], Stop, Meta, [items],
                         #{result => error, error => 'KeyError', reason => Reason}),
    ?assertEqual(2, maps:get(items, M)),
    none().

stream_cancelled(_Config) ->
    {ok, Ref} = py:stream_start(itertools, count, [], #{window => 3}),
    ?assertMatch([{data, 0}, {data, 1}, {data, 2}],
                 [receive {py_stream, Ref, Event} -> Event after 5000 -> timeout end
                  || _ <- [1, 2, 3]]),
    ok = py:stream_cancel(Ref),
    {_, {error, cancelled}} = py_test_lib:collect_stream(Ref, 5000),
    [Start, Stop] = take(2),
    Meta = assert_start([erlang_python, stream, start], Start, #{function => count}),
    {M, _} = assert_stop([erlang_python, stream, stop], Stop, Meta, [items],
                         #{result => error, error => cancelled, reason => cancelled}),
    %% The owner read 3 items; the window let the producer run a few ahead.
    Items = maps:get(items, M),
    ?assert(Items >= 3 andalso Items =< 10),
    none().

%% Without the module: every kind of request answers as always, and nothing is emitted.
absent_module(_Config) ->
    unload_stand_in(),
    false = erlang:function_exported(telemetry, execute, 3),
    every_kind_answers(),
    none().

%% A module loaded after the application started is noticed at the next request.
loaded_later(_Config) ->
    unload_stand_in(),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    none(),
    load_stand_in(),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    [_, _] = take(2),
    unload_stand_in(),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    none().

%% `execute/3' raising (error, exit or throw) never reaches the caller, and the
%% context keeps serving.
raising_handler(_Config) ->
    lists:foreach(fun(How) ->
                          persistent_term:put(?CRASH, How),
                          every_kind_answers(),
                          %% The stand-in sent each event before raising.
                          ?assertEqual(19, length(take(19))),
                          none()
                  end, [error, exit, throw]).

%% Two spans never share a `telemetry_span_context'.
span_contexts_differ(_Config) ->
    {ok, 2} = py:call(operator, add, [1, 1]),
    {ok, 2} = py:call(operator, add, [1, 1]),
    [{_, _, M1}, {_, _, M2}, {_, _, M3}, {_, _, M4}] = take(4),
    ?assertEqual(maps:get(telemetry_span_context, M1), maps:get(telemetry_span_context, M2)),
    ?assertEqual(maps:get(telemetry_span_context, M3), maps:get(telemetry_span_context, M4)),
    ?assertNotEqual(maps:get(telemetry_span_context, M1), maps:get(telemetry_span_context, M3)),
    none().

%%% ---------------------------------------------------------------------------
%%% Helpers

%% Eight requests and a stream, each with its right answer: 19 events when observed
%% (two per request and two for the stream, plus the `timeout' event of the call that
%% times out).
every_kind_answers() ->
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ?assertEqual({ok, 4}, py:eval(<<"2 * 2">>)),
    ?assertEqual(ok, py:exec(<<"telemetry_absent = 1">>)),
    ?assertEqual(ok, py:cast(operator, add, [1, 2])),
    ?assertEqual({ok, 5}, py:await(py:spawn_call(operator, add, [2, 3]), 5000)),
    ?assertEqual({ok, 6}, py:async_await(py:async_call(asyncio, sleep, [0, 6]), 5000)),
    ?assertEqual({error, timeout}, py:call(py_api_helpers, spin, [1.0], #{}, 50)),
    {ok, Ref} = py:stream_start(builtins, range, [2]),
    ?assertEqual({[0, 1], done}, py_test_lib:collect_stream(Ref, 5000)),
    %% The stream's controller ends its span after the owner's last event: let it.
    timer:sleep(100),
    ?assertEqual({ok, 1}, py:eval(<<"telemetry_absent">>)).

%% The start event as expected: measurements `system_time' and `monotonic_time'
%% (integers), metadata with exactly the keys below, `Expected' among them. Answers the
%% metadata.
assert_start(Name, {Name, Measurements, Meta}, Expected) ->
    ?assertEqual([monotonic_time, system_time], lists:sort(maps:keys(Measurements))),
    ?assert(lists:all(fun is_integer/1, maps:values(Measurements))),
    Keys = case Name of
               [_, stream, _] -> [context, function, kind, module, owner, pool,
                                  telemetry_span_context];
               _ -> [context, function, kind, module, pool, telemetry_span_context]
           end,
    ?assertEqual(Keys, lists:sort(maps:keys(Meta))),
    ?assert(is_reference(maps:get(telemetry_span_context, Meta))),
    ?assertEqual(Expected, maps:with(maps:keys(Expected), Meta)),
    Meta;
assert_start(Name, Other, _Expected) ->
    ct:fail({expected_event, Name, got, Other}).

assert_stop(Stop, StartMeta, Extra, Outcome) ->
    assert_stop([erlang_python, request, stop], Stop, StartMeta, Extra, Outcome).

%% The stop event: `duration', `monotonic_time' and `Extra' measurements (integers), and the start's metadata plus exactly `Outcome' (an `Outcome' without
%% `reason' matches any reason).
assert_stop(Name, {Name, Measurements, Meta}, StartMeta, Extra, Outcome) ->
    ?assertEqual(lists:sort([duration, monotonic_time | Extra]),
                 lists:sort(maps:keys(Measurements))),
    %% Monotonic time may be negative; the spans' lengths and counts may not.
    ?assert(is_integer(maps:get(monotonic_time, Measurements))),
    ?assert(lists:all(fun(V) -> is_integer(V) andalso V >= 0 end,
                      maps:values(maps:remove(monotonic_time, Measurements)))),
    Expected = case maps:get(result, Outcome) of
                   error when not is_map_key(reason, Outcome) ->
                       maps:merge(StartMeta, Outcome#{reason => maps:get(reason, Meta)});
                   _ ->
                       maps:merge(StartMeta, Outcome)
               end,
    ?assertEqual(Expected, Meta),
    {Measurements, Meta};
assert_stop(Name, Other, _StartMeta, _Extra, _Outcome) ->
    ct:fail({expected_event, Name, got, Other}).

%% The next `N' events, without the emitting process.
take(N) ->
    [drop_pid(E) || E <- take_from(N)].

take_from(0) ->
    [];
take_from(N) ->
    receive
        {telemetry, Pid, Event, Measurements, Meta} ->
            [{Event, Pid, Event, Measurements, Meta} | take_from(N - 1)]
    after 5000 ->
        ct:fail({missing_events, N})
    end.

drop_pid({Event, _Pid, Event, Measurements, Meta}) -> {Event, Measurements, Meta}.

%% No further event comes.
none() ->
    receive
        {telemetry, _, Event, Measurements, Meta} ->
            ct:fail({unexpected_event, Event, Measurements, Meta})
    after 100 ->
        ok
    end.

flush_events() ->
    receive {telemetry, _, _, _, _} -> flush_events() after 0 -> ok end.

%% The stand-in: forwards each event to the sink, then raises when the case asks it to.
-define(STAND_IN,
        "-module(telemetry).\n"
        "-export([execute/3]).\n"
        "execute(Event, Measurements, Metadata) ->\n"
        "    case whereis(py_telemetry_sink) of\n"
        "        undefined -> ok;\n"
        "        Sink -> Sink ! {telemetry, self(), Event, Measurements, Metadata}\n"
        "    end,\n"
        "    case persistent_term:get(py_telemetry_SUITE_crash, false) of\n"
        "        error -> error(handler_crashed);\n"
        "        exit -> exit(handler_exited);\n"
        "        throw -> throw(handler_threw);\n"
        "        false -> ok\n"
        "    end.\n").

load_stand_in() ->
    case erlang:function_exported(telemetry, execute, 3) of
        true ->
            ok;
        false ->
            {ok, Tokens, _} = erl_scan:string(?STAND_IN),
            Forms = [begin {ok, F} = erl_parse:parse_form(Ts), F end || Ts <- split_forms(Tokens)],
            {ok, telemetry, Bin} = compile:forms(Forms, [binary, report_errors]),
            {module, telemetry} = code:load_binary(telemetry, "py_telemetry_SUITE stand-in", Bin),
            ok
    end.

unload_stand_in() ->
    _ = code:purge(telemetry),
    _ = code:delete(telemetry),
    _ = code:purge(telemetry),
    ok.

split_forms(Tokens) ->
    split_forms(Tokens, [], []).

split_forms([], [], Forms) ->
    lists:reverse(Forms);
split_forms([{dot, _} = Dot | Rest], Acc, Forms) ->
    split_forms(Rest, [], [lists:reverse([Dot | Acc]) | Forms]);
split_forms([T | Rest], Acc, Forms) ->
    split_forms(Rest, [T | Acc], Forms).
