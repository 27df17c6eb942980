%%% @doc Runtime spans and one trace across the Erlang/Python boundary: request spans
%%% (`py.call', `py.async_call', `py.spawn_call', `py.stream'), `erlang.call' spans,
%%% `erlang.Span's inside them, W3C trace context in (`py:with_trace_context/2') and out
%%% (`py:current_traceparent/0'), and `py:get_traces/1' (fetch and clear one trace).
%%% Every tree is asserted exactly: names, parent links, one trace id, attributes, status.
-module(py_trace_pipeline_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([round_trip/1, span_inside_request/1, async_step/1, spawned_call/1, stream/1,
         timeout/1, error_status/1, continues_given_context/1, malformed_traceparent/1,
         traceparent_in_callback/1, many_spans_bounded/1, other_callers_trace/1,
         caller_dies/1, disabled_makes_nothing/1, python_spans_only/1]).

-define(H, py_trace_pipeline_helpers).
-define(REQUEST_KEYS, [<<"py.context">>, <<"py.convert_us">>, <<"py.function">>,
                       <<"py.module">>, <<"py.outcome">>, <<"py.queue_wait_us">>,
                       <<"py.run_us">>]).

suite() ->
    [{timetrap, {minutes, 5}}].

all() ->
    [round_trip, span_inside_request, async_step, spawned_call, stream, timeout,
     error_status, continues_given_context, malformed_traceparent, traceparent_in_callback,
     many_spans_bounded, other_callers_trace, caller_dies, disabled_makes_nothing,
     python_spans_only].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    ok = py:register_function(tp_inner, fun([X]) ->
                                                {ok, V} = py:call(?H, leaf, [X]),
                                                [py:current_traceparent(), V]
                                        end),
    ok = py:register_function(tp_current, fun([]) -> py:current_traceparent() end),
    Config.

end_per_suite(_Config) ->
    ok = py:disable_tracing(),
    ok = py:clear_traces(),
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    %% The runtime's spans with Python's (enable_tracing/0 records Python's only).
    ok = py:enable_tracing(#{}),
    ok = py:clear_traces(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok = py:disable_tracing(),
    ok = py:clear_traces().

%%% ---------------------------------------------------------------------------
%%% Cases

%% Erlang -> Python -> Erlang -> Python, one trace: py.call > erlang.call > py.call >
%% leaf.work, the first request a child of the caller's traceparent.
round_trip(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    {ok, [CallbackTP, 42]} = py:with_trace_context(TP, fun() -> py:call(?H, outer, [21]) end),
    Spans = await_trace(Trace, 4),
    [Outer, Callback, Inner, Leaf] = Spans,
    assert_tree([{Outer, Parent}, {Callback, Outer}, {Inner, Callback}, {Leaf, Inner}], Trace),
    check_request(Outer, <<"py.call">>, <<"outer">>, <<"ok">>),
    check_request(Inner, <<"py.call">>, <<"leaf">>, <<"ok">>),
    check_callback(Callback, <<"tp_inner">>),
    ?assertMatch(#{name := <<"leaf.work">>, status := ok, attributes := #{<<"x">> := 21}}, Leaf),
    %% The function saw the erlang.call span's context.
    ?assertEqual(traceparent(Trace, maps:get(span_id, Callback)), CallbackTP),
    %% Fetch and clear: nothing of that trace is left.
    ?assertEqual({ok, []}, py:get_traces(Trace)).

%% An erlang.Span open around erlang.call is the call span's parent.
span_inside_request(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    {ok, [_, 8]} = py:with_trace_context(TP, fun() -> py:call(?H, outer_in_span, [4]) end),
    [Outer, Prepare, Callback, Inner, Leaf] = await_trace(Trace, 5),
    assert_tree([{Outer, Parent}, {Prepare, Outer}, {Callback, Prepare}, {Inner, Callback},
                 {Leaf, Inner}], Trace),
    ?assertMatch(#{name := <<"prepare">>, attributes := #{<<"x">> := 4}}, Prepare),
    check_callback(Callback, <<"tp_inner">>).

%% A coroutine awaiting erlang.async_call: the task keeps the request's span, and the
%% function (run by a runner process) continues the trace.
async_step(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    Ref = py:with_trace_context(TP, fun() -> py:async_call(?H, async_outer, [5]) end),
    {ok, [CallbackTP, 10]} = py:async_await(Ref, 10000),
    [Outer, Callback, Inner, Leaf] = await_trace(Trace, 4),
    assert_tree([{Outer, Parent}, {Callback, Outer}, {Inner, Callback}, {Leaf, Inner}], Trace),
    check_request(Outer, <<"py.async_call">>, <<"async_outer">>, <<"ok">>),
    check_request(Inner, <<"py.call">>, <<"leaf">>, <<"ok">>),
    check_callback(Callback, <<"tp_inner">>),
    ?assertEqual(traceparent(Trace, maps:get(span_id, Callback)), CallbackTP).

%% spawn_call: the callback runs in a runner process, which continues the trace.
spawned_call(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    Ref = py:with_trace_context(TP, fun() -> py:spawn_call(?H, outer, [1]) end),
    {ok, [_, 2]} = py:await(Ref, 10000),
    [Outer, Callback, Inner, Leaf] = await_trace(Trace, 4),
    assert_tree([{Outer, Parent}, {Callback, Outer}, {Inner, Callback}, {Leaf, Inner}], Trace),
    check_request(Outer, <<"py.spawn_call">>, <<"outer">>, <<"ok">>).

%% A pushed stream: one py.stream span for its lifetime, with the items it sent; the
%% generator's spans are its children. A collected stream likewise.
stream(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    {ok, Ref} = py:with_trace_context(TP, fun() -> py:stream_start(?H, items, [3]) end),
    ?assertEqual({[0, 1, 2], done}, py_test_lib:collect_stream(Ref, 10000)),
    [Stream | Items] = await_trace(Trace, 4),
    assert_tree([{Stream, Parent} | [{I, Stream} || I <- Items]], Trace),
    check_request(Stream, <<"py.stream">>, <<"items">>, <<"ok">>, [<<"py.items">>]),
    ?assertMatch(#{attributes := #{<<"py.items">> := 3}}, Stream),
    ?assertEqual([0, 1, 2], [I || #{name := <<"item">>, attributes := #{<<"i">> := I}} <- Items]),
    {TP2, Trace2, Parent2} = new_traceparent(),
    {ok, [0, 1]} = py:with_trace_context(TP2, fun() -> py:stream(?H, items, [2]) end),
    [Collected | _] = await_trace(Trace2, 3),
    assert_tree([{Collected, Parent2}], Trace2),
    ?assertMatch(#{name := <<"py.stream">>,
                   attributes := #{<<"py.items">> := 2, <<"py.outcome">> := <<"ok">>}}, Collected).

%% A call that times out: its span ends once the interrupted code stops, as `timeout'.
timeout(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    {error, timeout} = py:with_trace_context(TP, fun() -> py:call(?H, spin, [], #{}, 200) end),
    [Span] = await_trace(Trace, 1),
    assert_tree([{Span, Parent}], Trace),
    check_request(Span, <<"py.call">>, <<"spin">>, <<"timeout">>),
    ?assertMatch(#{status := ok}, Span).

%% A Python exception: status error with the exception's text, and its class.
error_status(_) ->
    {TP, Trace, _} = new_traceparent(),
    {error, {'ValueError', _}} = py:with_trace_context(TP, fun() -> py:call(?H, fail, []) end),
    [Span] = await_trace(Trace, 1),
    check_request(Span, <<"py.call">>, <<"fail">>, <<"error">>, [<<"error.type">>]),
    ?assertMatch(#{status := error, end_attrs := #{<<"exception">> := <<"bad input">>},
                   attributes := #{<<"error.type">> := <<"ValueError">>}}, Span).

%% with_trace_context: the given trace id and parent span id; nested contexts restore
%% the outer one; without one, requests start traces of their own.
continues_given_context(_) ->
    ?assertEqual(undefined, py:current_traceparent()),
    {TP, Trace, Parent} = new_traceparent(),
    {TP2, Trace2, Parent2} = new_traceparent(),
    py:with_trace_context(TP, fun() ->
        ?assertEqual(TP, py:current_traceparent()),
        {ok, 2} = py:call(?H, leaf, [1]),
        py:with_trace_context(TP2, fun() -> {ok, 4} = py:call(?H, leaf, [2]) end),
        ?assertEqual(TP, py:current_traceparent()),
        ?assertError(boom, py:with_trace_context(TP2, fun() -> error(boom) end)),
        ?assertEqual(TP, py:current_traceparent())
    end),
    ?assertEqual(undefined, py:current_traceparent()),
    [A, LeafA] = await_trace(Trace, 2),
    [B, LeafB] = await_trace(Trace2, 2),
    assert_tree([{A, Parent}, {LeafA, A}], Trace),
    assert_tree([{B, Parent2}, {LeafB, B}], Trace2),
    %% A caller's trace that is not sampled (flags 00) records nothing, as W3C says.
    {_, Trace3, Span3} = new_traceparent(),
    Unsampled = <<"00-", Trace3/binary, "-", Span3/binary, "-00">>,
    {ok, [_, 6]} = py:with_trace_context(Unsampled, fun() -> py:call(?H, outer, [3]) end),
    timer:sleep(50),
    ?assertEqual({ok, []}, py:get_traces(Trace3)),
    ?assertEqual({ok, []}, py:get_traces()),
    %% Untraced caller: a root span in a trace of its own.
    ok = py:clear_traces(),
    {ok, 6} = py:call(?H, leaf, [3]),
    {ok, [Root, Leaf]} = py:get_traces(),
    ?assertMatch(#{name := <<"py.call">>, parent_id := undefined}, Root),
    assert_tree([{Leaf, Root}], maps:get(trace_id, Root)).

%% A malformed traceparent is ignored: the call works and starts a trace of its own.
malformed_traceparent(_) ->
    {_, Trace, Span} = new_traceparent(),
    Bad = [<<"garbage">>, <<>>,
           <<"01-", Trace/binary, "-", Span/binary, "-01">>,                  % version
           <<"00-", (string:uppercase(Trace))/binary, "-", Span/binary, "-01">>,  % case
           <<"00-00000000000000000000000000000000-", Span/binary, "-01">>,   % zero id
           <<"00-", Trace/binary, "-", Span/binary, "-01-extra">>,
           <<"00-", Trace/binary, "-", Span/binary, "-0">>,
           binary:copy(<<"x">>, 100000)],
    lists:foreach(
      fun(TP) ->
              ok = py:clear_traces(),
              ?assertEqual({ok, 2}, py:with_trace_context(TP, fun() -> py:call(?H, leaf, [1]) end)),
              {ok, [Root, _]} = py:get_traces(),
              ?assertMatch(#{name := <<"py.call">>, parent_id := undefined}, Root),
              ?assertNotEqual(Trace, maps:get(trace_id, Root))
      end, Bad),
    ?assertError(function_clause, py:with_trace_context(not_a_binary, fun() -> ok end)),
    ?assertError(badarg, py:get_traces(<<"not a trace id">>)).

%% Inside a callback, current_traceparent/0 is the erlang.call span's context; outside
%% any, undefined.
traceparent_in_callback(_) ->
    ok = py:clear_traces(),
    {ok, Seen} = py:call(?H, traceparent_seen, []),
    {ok, [Request, Callback]} = py:get_traces(),
    Trace = maps:get(trace_id, Request),
    assert_tree([{Callback, Request}], Trace),
    ?assertEqual(traceparent(Trace, maps:get(span_id, Callback)), Seen),
    ?assertEqual(undefined, py:current_traceparent()).

%% 10,000 spans in one request come back whole; past the store's bound (100,000) the
%% oldest go, and memory stays flat when that is done again.
many_spans_bounded(_) ->
    {TP, Trace, _} = new_traceparent(),
    {ok, 10000} = py:with_trace_context(TP, fun() -> py:call(?H, many_spans, [10000]) end),
    {ok, Spans} = py:get_traces(Trace),
    ?assertEqual(10001, length(Spans)),
    [Request | Children] = Spans,
    RequestId = maps:get(span_id, Request),
    ?assert(lists:all(fun(#{parent_id := P, trace_id := T}) -> P =:= RequestId andalso T =:= Trace end,
                      Children)),
    Fill = fun() ->
                   {TPx, Tx, _} = new_traceparent(),
                   {ok, 120000} = py:with_trace_context(TPx, fun() -> py:call(?H, many_spans, [120000], #{}, 120000) end),
                   Tx
           end,
    %% Once the store is full, more spans replace the oldest: the memory a full store
    %% takes is reached once and then reused.
    T1 = Fill(),
    {ok, Kept} = py:get_traces(T1),
    ?assertEqual(100000, length(Kept)),
    %% The request span ended last, so it is among the newest kept.
    ?assertMatch([#{name := <<"py.call">>} | _], Kept),
    Full = rss_after(fun() -> Fill() end),
    Again = rss_after(fun() -> Fill(), Fill(), Fill() end),
    ct:pal("RSS with a full store: ~p KiB; after 360,000 more spans: ~p KiB", [Full, Again]),
    ?assert(Again - Full < 32 * 1024),
    ?assertEqual(100000, length(element(2, py:get_traces()))).

%% Callers sharing the node each take their own trace; another's stays in the store.
other_callers_trace(_) ->
    Self = self(),
    Callers = [spawn_link(fun() ->
                                  {TP, Trace, _} = new_traceparent(),
                                  {ok, _} = py:with_trace_context(TP, fun() -> py:call(?H, outer, [N]) end),
                                  Self ! {done, self(), Trace}
                          end) || N <- lists:seq(1, 4)],
    Traces = [receive {done, C, T} -> T end || C <- Callers],
    [First | Rest] = Traces,
    ?assertEqual(4, length(await_trace(First, 4))),
    ?assertEqual({ok, []}, py:get_traces(First)),
    lists:foreach(fun(T) ->
                          Spans = await_trace(T, 4),
                          ?assert(lists:all(fun(#{trace_id := Id}) -> Id =:= T end, Spans))
                  end, Rest),
    {_, Unknown, _} = new_traceparent(),
    ?assertEqual({ok, []}, py:get_traces(Unknown)),
    ?assertEqual({ok, []}, py:get_traces()).

%% A caller that dies while its coroutine runs: the task is cancelled, and its span
%% still ends, as `cancelled'.
caller_dies(_) ->
    {TP, Trace, Parent} = new_traceparent(),
    Self = self(),
    Caller = spawn(fun() ->
                           _ = py:with_trace_context(TP, fun() -> py:async_call(?H, sleeper, [30]) end),
                           Self ! started,
                           receive never -> ok end
                   end),
    receive started -> ok end,
    timer:sleep(50),
    exit(Caller, kill),
    [Span] = await_trace(Trace, 1),
    assert_tree([{Span, Parent}], Trace),
    check_request(Span, <<"py.async_call">>, <<"sleeper">>, <<"cancelled">>),
    %% The context keeps serving.
    ?assertEqual({ok, 2}, py:call(?H, leaf, [1])).

%% Tracing off: no spans, and callbacks carry no context.
disabled_makes_nothing(_) ->
    ok = py:disable_tracing(),
    {TP, Trace, _} = new_traceparent(),
    %% `undefined' reaches Python as None, and comes back as `none'.
    {ok, [none, 2]} = py:call(?H, outer, [1]),
    {ok, [TP, 2]} = py:with_trace_context(TP, fun() -> py:call(?H, outer, [1]) end),
    {ok, _} = py:with_trace_context(TP, fun() -> py:async_await(py:async_call(?H, async_outer, [1])) end),
    timer:sleep(50),
    ?assertEqual({ok, []}, py:get_traces()),
    ?assertEqual({ok, []}, py:get_traces(Trace)).

%% `enable_tracing/0' records Python's spans only, as 2.3.1 did, and so does
%% `runtime_spans => false': no request or callback spans, so a span opened at the top of
%% a request's code is the root of a trace of its own, whatever the caller's traceparent.
python_spans_only(_) ->
    [begin
         ok = Enable(),
         ok = py:clear_traces(),
         {TP, Trace, _} = new_traceparent(),
         {ok, 6} = py:with_trace_context(TP, fun() -> py:call(?H, leaf, [3]) end),
         {ok, [TP, 2]} = py:with_trace_context(TP, fun() -> py:call(?H, outer, [1]) end),
         {ok, Spans} = py:get_traces(),
         ?assertEqual([{<<"leaf.work">>, undefined, #{<<"x">> => 3}},
                       {<<"leaf.work">>, undefined, #{<<"x">> => 1}}],
                      [{N, P, A} || #{name := N, parent_id := P, attributes := A} <- Spans]),
         [#{trace_id := T1}, #{trace_id := T2}] = Spans,
         ?assertNotEqual(T1, T2),
         ?assertEqual({ok, []}, py:get_traces(Trace))
     end || Enable <- [fun py:enable_tracing/0,
                       fun() -> py:enable_tracing(#{runtime_spans => false}) end]],
    ?assertEqual({error, {invalid_option, {runtime_spans, yes}}},
                 py:enable_tracing(#{runtime_spans => yes})).

%%% ---------------------------------------------------------------------------
%%% Helpers

%% A fresh traceparent, its trace id and span id (lowercase hex).
new_traceparent() ->
    Trace = hex(crypto:strong_rand_bytes(16)),
    Span = hex(crypto:strong_rand_bytes(8)),
    {<<"00-", Trace/binary, "-", Span/binary, "-01">>, Trace, Span}.

hex(Bytes) ->
    string:lowercase(binary:encode_hex(Bytes)).

traceparent(Trace, SpanId) ->
    Hex = string:lowercase(iolist_to_binary(io_lib:format("~16.16.0b", [SpanId]))),
    <<"00-", Trace/binary, "-", Hex/binary, "-01">>.

%% The spans of `Trace', taken as they are recorded, until `N' came (spans end as their
%% work ends, which may be just after the caller got its answer).
await_trace(Trace, N) ->
    await_trace(Trace, N, [], erlang:monotonic_time(millisecond) + 10000).

await_trace(Trace, N, Acc, Deadline) ->
    {ok, More} = py:get_traces(Trace),
    Spans = lists:keysort(1, [{S, X} || #{start_time := S} = X <- Acc ++ More]),
    All = [X || {_, X} <- Spans],
    case length(All) >= N orelse erlang:monotonic_time(millisecond) > Deadline of
        true ->
            timer:sleep(20),
            {ok, Late} = py:get_traces(Trace),
            ?assertEqual([], Late),
            ?assertEqual(N, length(All)),
            All;
        false ->
            timer:sleep(10),
            await_trace(Trace, N, All, Deadline)
    end.

%% Each span's parent is the given span (or span id hex for the remote parent), and all
%% are of `Trace'.
assert_tree(Links, Trace) ->
    lists:foreach(
      fun({#{trace_id := T, parent_id := P}, Parent}) ->
              ?assertEqual(Trace, T),
              ?assertEqual(parent_id(Parent), P)
      end, Links).

parent_id(#{span_id := Id}) -> Id;
parent_id(Hex) when is_binary(Hex) -> binary_to_integer(Hex, 16).

check_request(Span, Name, Function, Outcome) ->
    check_request(Span, Name, Function, Outcome, []).

check_request(#{name := Name, attributes := Attrs}, Name, Function, Outcome, ExtraKeys) ->
    ?assertEqual(lists:sort(?REQUEST_KEYS ++ ExtraKeys), lists:sort(maps:keys(Attrs))),
    ?assertMatch(#{<<"py.module">> := <<"py_trace_pipeline_helpers">>,
                   <<"py.function">> := Function, <<"py.outcome">> := Outcome}, Attrs),
    [?assert(is_integer(maps:get(K, Attrs)) andalso maps:get(K, Attrs) >= 0)
     || K <- [<<"py.context">>, <<"py.queue_wait_us">>, <<"py.run_us">>, <<"py.convert_us">>]],
    ok;
check_request(Span, Name, _Function, _Outcome, _ExtraKeys) ->
    ct:fail({not_a, Name, Span}).

check_callback(#{name := <<"erlang.call">>, attributes := Attrs, status := ok}, Function) ->
    ?assertMatch(#{<<"erlang.function">> := Function, <<"py.context">> := Ctx}
                   when is_integer(Ctx), Attrs),
    ?assertEqual(2, map_size(Attrs)).

%% The VM's resident memory after `Fun', with this process's garbage collected.
rss_after(Fun) ->
    Fun(),
    garbage_collect(),
    rss_kb().

rss_kb() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS">>) =/= nomatch],
    [_, Kb | _] = binary:split(Line, [<<" ">>, <<"\t">>], [global, trim_all]),
    binary_to_integer(Kb).
