%%% @doc Tracing: spans from `erlang.Span' (context manager, decorator, events,
%%% attributes, error status, parents across asyncio tasks) through
%%% `enable_tracing/0', `get_traces/0', `clear_traces/0', `disable_tracing/0'.
-module(py_tracing_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2]).
-export([span_fields/1, nesting_and_errors/1, decorators/1, async_children/1,
         disabled_records_nothing/1, attributes_changed_while_read/1]).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [span_fields, nesting_and_errors, decorators, async_children, disabled_records_nothing,
     attributes_changed_while_read].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    ok = py:disable_tracing(),
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    ok = py:enable_tracing(),
    ok = py:clear_traces(),
    Config.

span_fields(_) ->
    ok = py:exec(<<"with erlang.Span('fetch', url='http://x', retries=2, ok=True, ratio=0.5) as s:\n"
                   "    s.event('sent', bytes=10)\n"
                   "    s.set_attribute('status', 200)\n">>),
    {ok, [Span]} = py:get_traces(),
    #{name := <<"fetch">>, span_id := Id, parent_id := undefined, trace_id := Trace,
      start_time := Start, end_time := End, duration_us := Duration, status := ok,
      end_attrs := EndAttrs, attributes := Attrs, events := [Event]} = Span,
    ?assert(is_integer(Id) andalso Id > 0),
    ?assertEqual(#{}, EndAttrs),
    ?assertEqual(32, byte_size(Trace)),
    ?assertEqual(End - Start, Duration),
    ?assert(Duration >= 0),
    ?assertEqual(#{<<"url">> => <<"http://x">>, <<"retries">> => 2, <<"ok">> => true,
                   <<"ratio">> => 0.5, <<"status">> => 200}, Attrs),
    #{time := T} = Event,
    ?assertEqual(#{name => <<"sent">>, attrs => #{<<"bytes">> => 10}, time => T}, Event),
    ?assert(T >= Start andalso T =< End).

nesting_and_errors(_) ->
    ok = py:exec(<<"with erlang.Span('outer'):\n"
                   "    with erlang.Span('inner'):\n"
                   "        pass\n"
                   "try:\n"
                   "    with erlang.Span('fails'):\n"
                   "        raise KeyError('k')\n"
                   "except KeyError:\n"
                   "    pass\n">>),
    {ok, Spans} = py:get_traces(),
    %% Oldest first: in the order the spans started (the outer one ended last).
    ?assertEqual([<<"outer">>, <<"inner">>, <<"fails">>], [N || #{name := N} <- Spans]),
    [Outer, Inner, Fails] = Spans,
    ?assertEqual(maps:get(span_id, Outer), maps:get(parent_id, Inner)),
    ?assertEqual(maps:get(trace_id, Outer), maps:get(trace_id, Inner)),
    ?assertEqual(undefined, maps:get(parent_id, Outer)),
    ?assertEqual(undefined, maps:get(parent_id, Fails)),
    ?assertEqual([ok, ok, error], [St || #{status := St} <- Spans]),
    ?assertEqual([#{}, #{}, #{<<"exception">> => <<"KeyError: 'k'">>}],
                 [A || #{end_attrs := A} <- Spans]),
    ok = py:clear_traces(),
    ?assertEqual({ok, []}, py:get_traces()).

decorators(_) ->
    ?assertEqual({ok, 4}, py:call(py_tracing_helpers, decorated_sync, [2])),
    ?assertMatch({error, {'ValueError', "negative"}}, py:call(py_tracing_helpers, decorated_sync, [-1])),
    ?assertEqual({ok, <<"done">>}, py:async_await(py:async_call(py_tracing_helpers, decorated_async, []))),
    {ok, Spans} = py:get_traces(),
    ?assertEqual([{<<"decorated_sync">>, ok, #{}},
                  {<<"decorated_sync">>, error, #{<<"exception">> => <<"ValueError: negative">>}},
                  {<<"decorated_async">>, ok, #{}}],
                 [{N, St, A} || #{name := N, status := St, end_attrs := A} <- Spans]),
    [_, _, #{attributes := Attrs}] = Spans,
    ?assertEqual(#{<<"kind">> => <<"coroutine">>}, Attrs).

async_children(_) ->
    ?assertEqual({ok, [0, 1, 2, 3]}, py:async_await(py:async_call(py_tracing_helpers, pipeline, [4]))),
    {ok, Spans} = py:get_traces(),
    [Root] = [S || #{name := <<"pipeline">>} = S <- Spans],
    Steps = [S || #{name := <<"step">>} = S <- Spans],
    ?assertEqual(4, length(Steps)),
    RootId = maps:get(span_id, Root),
    ?assert(lists:all(fun(#{parent_id := P}) -> P =:= RootId end, Steps)),
    ?assertEqual([0, 1, 2, 3], lists:sort([I || #{attributes := #{<<"index">> := I}} <- Steps])),
    %% The steps ran concurrently: the root lasted about one step, not four.
    ?assert(maps:get(duration_us, Root) < 4 * 10000).

disabled_records_nothing(_) ->
    ok = py:disable_tracing(),
    ok = py:exec(<<"with erlang.Span('quiet') as s:\n    s.event('x')\n    s.set_attribute('a', 1)\n">>),
    ?assertEqual({ok, []}, py:get_traces()).


%% A span attribute whose `__str__' adds attributes to the span while they are read (at
%% the start and for an event): the span keeps what the copy held, and the context serves
%% on, whether tracing is on or off (iterating the live dict panicked and ended it).
attributes_changed_while_read(_) ->
    Contexts = py_context_router:pids(),
    Code = <<"import erlang\n"
             "class M:\n"
             "    def __str__(self):\n"
             "        sp.attributes['k%d' % len(sp.attributes)] = 1\n"
             "        return 'm'\n"
             "sp = erlang.Span('grows', a=M(), b=1)\n"
             "with sp:\n"
             "    sp.event('e', c=M())\n">>,
    ?assertEqual(ok, py:exec(Code)),
    ok = py:enable_tracing(),
    ok = py:clear_traces(),
    ?assertEqual(ok, py:exec(Code)),
    {ok, [#{name := <<"grows">>, attributes := Attrs, events := [#{attrs := EventAttrs}]}]} = py:get_traces(),
    ok = py:disable_tracing(),
    ok = py:clear_traces(),
    ?assertEqual(#{<<"a">> => <<"m">>, <<"b">> => 1}, Attrs),
    ?assertEqual(#{<<"c">> => <<"m">>}, EventAttrs),
    ?assertEqual(Contexts, py_context_router:pids()).
