#!/usr/bin/env escript
%%! -noshell
%% A short tour of erlang_python against the real application: calls, keyword
%% arguments, eval with locals, exec then call, an error, and a timeout.
%% Run with `make demo` (which builds everything first).
main([Root | _]) ->
    true = code:add_patha(filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin")),
    {ok, _} = application:ensure_all_started(erlang_python),
    {ok, Version} = py:version(),
    io:format("Python ~ts~n~n", [hd(binary:split(Version, <<" ">>))]),
    show("py:call(math, sqrt, [16])", py:call(math, sqrt, [16])),
    show("py:call(operator, add, [1, 2])", py:call(operator, add, [1, 2])),
    show("py:call(json, dumps, [#{name => <<\"Ada\">>, langs => [erlang, python]}], #{sort_keys => true})",
         py:call(json, dumps, [#{name => <<"Ada">>, langs => [erlang, python]}], #{sort_keys => true})),
    show("py:eval(<<\"[x * i for i in range(n)]\">>, #{x => 3, n => 5})",
         py:eval(<<"[x * i for i in range(n)]">>, #{x => 3, n => 5})),
    show("py:exec(<<\"def greet(name):\\n    return f'hello, {name}!'\\n\">>)",
         py:exec(<<"def greet(name):\n    return f'hello, {name}!'\n">>)),
    show("py:call('__main__', greet, [<<\"BEAM\">>])", py:call('__main__', greet, [<<"BEAM">>])),
    show("py:eval(<<\"2 ** 100\">>)", py:eval(<<"2 ** 100">>)),
    show("py:call(math, sqrt, [-1])", py:call(math, sqrt, [-1])),
    show("py:call(no_such_module, f, [])", py:call(no_such_module, f, [])),
    T0 = erlang:monotonic_time(millisecond),
    Timeout = py:eval(<<"exec('while True: pass')">>, #{}, 200),
    Ms = erlang:monotonic_time(millisecond) - T0,
    show(io_lib:format("py:eval(<<\"exec('while True: pass')\">>, #{}, 200)  % after ~b ms", [Ms]), Timeout),
    show("py:call(operator, mul, [6, 7])  % the same context, right after the interrupted loop",
         py:call(operator, mul, [6, 7])),
    ok = application:stop(erlang_python).

show(Expr, Result) ->
    io:format("~ts~n    -> ~tp~n", [Expr, Result]).
