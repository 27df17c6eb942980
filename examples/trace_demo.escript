#!/usr/bin/env escript
%%! -noshell
%% A traced request pipeline exported over OTLP: an aiohttp handler on a context's event
%% loop (examples/trace_demo.py) calls the Erlang function `quote`, which calls Python
%% again. Spans go to a small OTLP/HTTP receiver (tests/otlp_receiver.py, standing in for
%% an OpenTelemetry collector); the demo posts one order and prints the trace it got, as
%% an indented tree with durations.
%% Run with `make demo` (which builds everything and makes .venv first), or:
%%   escript examples/trace_demo.escript ProjectRoot
-mode(compile).

main([Root | _]) ->
    true = code:add_patha(filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin")),
    ok = application:load(erlang_python),
    ok = application:set_env(erlang_python, venv, filename:join(Root, ".venv")),
    ok = application:set_env(erlang_python, python_path,
                             [filename:join(Root, "examples"), filename:join(Root, "tests")]),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, _} = application:ensure_all_started(inets),
    {ok, Collector} = py:call(otlp_receiver, start, []),
    ok = py:register_function(quote, fun quote/1),
    {ok, Shop} = py:async_await(py:async_call(trace_demo, start_shop, []), 10000),
    Endpoint = <<"http://127.0.0.1:", (integer_to_binary(Collector))/binary>>,
    ok = py:enable_tracing(#{exporter => otlp, endpoint => Endpoint, service_name => <<"shop">>}),
    Url = "http://127.0.0.1:" ++ integer_to_list(Shop) ++ "/order",
    Body = <<"{\"items\": [40, 25, 60]}">>,
    io:format("~nPOST ~s ~s~n", [Url, Body]),
    {ok, {{_, Status, _}, _, Reply}} =
        httpc:request(post, {Url, [], "application/json", Body}, [{timeout, 10000}], []),
    io:format("  -> ~b ~s~n", [Status, Reply]),
    %% Disabling sends what the exporter still holds before it returns.
    ok = py:disable_tracing(),
    {ok, Spans} = py:call(otlp_receiver, spans, [Collector]),
    io:format("~nThe collector received ~b spans (service.name ~ts):~n",
              [length(Spans), service(Spans)]),
    print_traces(Spans),
    {ok, _} = py:call(otlp_receiver, stop_all, []),
    ok = application:stop(erlang_python).

%% The Erlang step: a little work of its own, then Python prices the order.
quote([Items]) ->
    timer:sleep(2),
    {ok, Total} = py:call(trace_demo, price, [Items]),
    Total.

service([#{<<"resource">> := #{<<"service.name">> := Name}} | _]) -> Name;
service([]) -> <<"-">>.

%% One tree per trace id; a span whose parent did not arrive counts as a root.
print_traces(Spans) ->
    Ids = maps:from_list([{Id, true} || #{<<"span_id">> := Id} <- Spans]),
    Children = lists:foldl(fun(#{<<"parent_span_id">> := P} = S, Acc) ->
                                   maps:update_with(P, fun(L) -> [S | L] end, [S], Acc)
                           end, #{}, Spans),
    Roots = [S || #{<<"parent_span_id">> := P} = S <- Spans, not maps:is_key(P, Ids)],
    Traces = lists:usort([T || #{<<"trace_id">> := T} <- Roots]),
    lists:foreach(fun(T) ->
                          io:format("~ntrace ~s~n", [T]),
                          [print_span(R, Children, 1) || R <- by_start([R || #{<<"trace_id">> := T1} = R <- Roots, T1 =:= T])]
                  end, Traces).

print_span(#{<<"name">> := Name, <<"span_id">> := Id, <<"duration_us">> := Us,
             <<"attributes">> := Attrs, <<"status">> := Status}, Children, Depth) ->
    Label = io_lib:format("~s~ts", [lists:duplicate(2 * Depth, $\s), Name]),
    io:format("~-40ts ~9.3f ms~ts~ts~n", [Label, Us / 1000, attrs(Attrs), status(Status)]),
    [print_span(C, Children, Depth + 1) || C <- by_start(maps:get(Id, Children, []))].

by_start(Spans) ->
    lists:sort(fun(#{<<"start_ns">> := A}, #{<<"start_ns">> := B}) -> A =< B end, Spans).

attrs(Attrs) when map_size(Attrs) =:= 0 -> "";
attrs(Attrs) ->
    ["  ", lists:join(" ", [[K, $=, value(V)] || {K, V} <- lists:sort(maps:to_list(Attrs))])].

value(V) when is_binary(V) -> V;
value(V) -> io_lib:format("~tp", [V]).

status(<<"error">>) -> "  ERROR";
status(_) -> "".
