%%% @doc Drop-in behaviour of `eval' with locals and of the frame-dependent builtins
%%% (`eval', `exec', `globals', `locals', `vars', `dir') called from Erlang: both run
%%% against the caller's own process namespace (docs/api.md, "Following 2.3.1").
%%% Each case runs in a process of its own, so it starts with a fresh namespace.
-module(py_compat_eval_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([locals_write_reaches_namespace/1, locals_eval3_and_context_forms/1,
         nested_scopes_see_locals/1, locals_shadow_globals/1,
         globals_visible_with_locals/1, locals_do_not_leak/1,
         namespace_is_per_process/1, reentrant_call_sees_writes/1,
         keys_that_are_not_names/1, walrus_with_locals/1, locals_errors/1, eval_without_locals/1,
         stream_eval_locals/1,
         builtin_eval/1, builtin_exec/1, builtin_namespace_getters/1,
         builtin_dir/1, builtin_globals_as_ref/1, builtins_with_arguments/1,
         builtins_in_spawn_call/1, builtins_per_process/1]).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [locals_write_reaches_namespace, locals_eval3_and_context_forms,
     nested_scopes_see_locals, locals_shadow_globals, globals_visible_with_locals,
     locals_do_not_leak, namespace_is_per_process, reentrant_call_sees_writes,
     keys_that_are_not_names, walrus_with_locals, locals_errors, eval_without_locals, stream_eval_locals,
     builtin_eval, builtin_exec, builtin_namespace_getters, builtin_dir,
     builtin_globals_as_ref, builtins_with_arguments, builtins_in_spawn_call,
     builtins_per_process].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

%% Run Fun in a fresh process (a fresh namespace) and return its result.
in_new_process(Fun) ->
    {Pid, Mon} = spawn_monitor(fun() -> exit({result, Fun()}) end),
    receive {'DOWN', Mon, process, Pid, {result, R}} -> R end.

name_error(Name) ->
    {error, {'NameError', "name '" ++ Name ++ "' is not defined"}}.

%% What a fresh namespace holds, converted (modules arrive as their str()).
fresh_namespace() ->
    #{<<"__builtins__">> => <<"<module 'builtins' (built-in)>">>,
      <<"__name__">> => <<"__main__">>,
      <<"erlang">> => <<"<module 'erlang' (built-in)>">>}.

%%% eval with locals ----------------------------------------------------------

%% The issue's example: a write to globals() during eval with locals stays.
locals_write_reaches_namespace(_) ->
    ?assertEqual({ok, none}, py:eval(<<"globals().__setitem__('h', x)">>, #{x => 1})),
    ok = py:exec(<<"y = h + 1">>),
    ?assertEqual({ok, 2}, py:eval(<<"y">>)),
    ?assertEqual({ok, 1}, py:eval(<<"h">>)).

locals_eval3_and_context_forms(_) ->
    ?assertEqual({ok, none}, py:eval(<<"globals().update(t3=x)">>, #{x => 3}, 5000)),
    Ctx = py:context(),
    ?assertEqual({ok, none}, py:eval(Ctx, <<"globals().update(c3=x + t3)">>, #{x => 1})),
    ?assertEqual({ok, {3, 4}}, py:eval(<<"(t3, c3)">>)).

%% Lambdas, comprehensions and generator expressions inside the expression see the
%% locals, also after the evaluation (closures keep them).
nested_scopes_see_locals(_) ->
    ?assertEqual({ok, 3}, py:eval(<<"(lambda: x + 1)()">>, #{x => 2})),
    ?assertEqual({ok, [2, 4]}, py:eval(<<"[a * i for i in b]">>, #{a => 2, b => [1, 2]})),
    ?assertEqual({ok, #{1 => 10, 2 => 20}},
                 py:eval(<<"{i: i * k for i in l}">>, #{k => 10, l => [1, 2]})),
    ?assertEqual({ok, 6}, py:eval(<<"sum(i * k for i in range(n))">>, #{k => 2, n => 3})),
    ?assertEqual({ok, [3, 2, 1]}, py:eval(<<"sorted(l, key=lambda v: v * s)">>,
                                          #{l => [1, 3, 2], s => -1})),
    ?assertEqual({ok, 7}, py:eval(<<"(lambda: lambda: x)()()">>, #{x => 7})),
    %% A closure made with locals and kept in the namespace still sees them later.
    ?assertEqual({ok, none}, py:eval(<<"globals().__setitem__('get_x', lambda: x)">>, #{x => 8})),
    ?assertEqual({ok, 8}, py:eval(<<"get_x()">>)).

locals_shadow_globals(_) ->
    ok = py:exec(<<"v = 'global'">>),
    ?assertEqual({ok, <<"local">>}, py:eval(<<"v">>, #{v => <<"local">>})),
    ?assertEqual({ok, <<"local">>}, py:eval(<<"(lambda: v)()">>, #{v => <<"local">>})),
    ?assertEqual({ok, <<"global">>}, py:eval(<<"globals()['v']">>, #{v => <<"local">>})),
    ?assertEqual({ok, <<"global">>}, py:eval(<<"v">>)).

%% Names the process defined with exec, and builtins, are there; functions defined
%% with exec write to the namespace as usual.
globals_visible_with_locals(_) ->
    ok = py:exec(<<"n = 10\ndef bump(by):\n    global n\n    n += by\n    return n\n">>),
    ?assertEqual({ok, 13}, py:eval(<<"bump(x) + len([])">>, #{x => 3})),
    ?assertEqual({ok, 13}, py:eval(<<"n">>)),
    ?assertEqual({ok, <<"erlang">>}, py:eval(<<"erlang.__name__[:w]">>, #{w => 6})).

locals_do_not_leak(_) ->
    ?assertEqual({ok, 5}, py:eval(<<"only_here">>, #{only_here => 5})),
    ?assertEqual(name_error("only_here"), py:eval(<<"only_here">>)),
    ?assertEqual({ok, false}, py:eval(<<"'x' in globals()">>, #{x => 1})),
    ?assertEqual({ok, #{<<"x">> => 1, <<"y">> => [2]}}, py:eval(<<"locals()">>, #{x => 1, y => [2]})),
    ?assertEqual({ok, #{<<"x">> => 1}}, py:eval(<<"vars()">>, #{x => 1})),
    ?assertEqual({ok, fresh_namespace()}, py:eval(<<"globals()">>, #{x => 1})),
    %% `:=' binds a name of the evaluation only (in Python's eval(code, g, l) it lands
    %% in the separate locals too).
    ?assertEqual({ok, 2}, py:eval(<<"(w := x + 1)">>, #{x => 1})),
    ?assertEqual(name_error("w"), py:eval(<<"w">>)),
    ?assertEqual({ok, fresh_namespace()}, py:eval(<<"globals()">>)).

namespace_is_per_process(_) ->
    {ok, none} = py:eval(<<"globals().__setitem__('h', x)">>, #{x => 1}),
    Other = in_new_process(fun() ->
                                   Before = py:eval(<<"h">>),
                                   {ok, none} = py:eval(<<"globals().__setitem__('h', x)">>, #{x => 2}),
                                   {Before, py:eval(<<"h">>)}
                           end),
    ?assertEqual({name_error("h"), {ok, 2}}, Other),
    ?assertEqual({ok, 1}, py:eval(<<"h">>)).

%% An Erlang function called from the expression runs in the calling process, whose
%% own eval sees what the expression already wrote to the namespace.
reentrant_call_sees_writes(_) ->
    Name = compat_eval_peek,
    ok = py:register_function(Name, fun([]) -> {ok, V} = py:eval(<<"h + 1">>), V end),
    try
        ?assertEqual({ok, 5},
                     py:eval(<<"(globals().__setitem__('h', x), erlang.call('compat_eval_peek'))[1]">>,
                             #{x => 4}))
    after
        ok = py:unregister_function(Name)
    end.

%% Keys that cannot be parameter names: Python's eval(code, namespace, locals), so the
%% locals are in locals() but nested scopes do not see them; globals still stay.
keys_that_are_not_names(_) ->
    Locals = #{<<"my-var">> => 2, b => 1},
    ?assertEqual({ok, #{<<"my-var">> => 2, <<"b">> => 1}}, py:eval(<<"locals()">>, Locals)),
    ?assertEqual({ok, 3}, py:eval(<<"b + locals()['my-var']">>, Locals)),
    ?assertEqual(name_error("b"), py:eval(<<"(lambda: b)()">>, Locals)),
    ?assertEqual({ok, none}, py:eval(<<"globals().__setitem__('kept', b)">>, Locals)),
    ?assertEqual({ok, 1}, py:eval(<<"kept">>)),
    ?assertEqual({ok, <<"a">>}, py:eval(<<"locals()[1]">>, #{1 => a})),
    ?assertEqual({ok, 1}, py:eval(<<"locals()['class']">>, #{class => 1})),
    %% A key that would change the code if pasted into it is only a key.
    ?assertEqual({ok, [<<"a=1">>, <<"b): 0 or (lambda c">>]},
                 py:eval(<<"sorted(locals())">>, #{<<"a=1">> => 5, <<"b): 0 or (lambda c">> => 6})),
    ?assertEqual({ok, 5}, py:eval(<<"locals()['a=1']">>, #{<<"a=1">> => 5})).

%% `:=' binds a name of the evaluation. Where the expression has a nested scope it runs
%% as a function body, so reading that name before the binding is Python's
%% UnboundLocalError, as in the same code inside a lambda.
walrus_with_locals(_) ->
    ok = py:exec(<<"v = 'global'">>),
    ?assertEqual({ok, {<<"global">>, 5}}, py:eval(<<"(v, (v := 5))">>, #{x => 1})),
    ?assertEqual({ok, {1, 1}}, py:eval(<<"((v := x), (lambda: v)())">>, #{x => 1})),
    {error, {'UnboundLocalError', _}} = Unbound =
        py:eval(<<"(lambda: (v, (v := 5), (lambda: 0)))()">>),
    ?assertEqual(Unbound, py:eval(<<"(v, (v := 5), (lambda: x)())">>, #{x => 1})),
    ?assertEqual({ok, <<"global">>}, py:eval(<<"v">>)).

locals_errors(_) ->
    %% The errors of the expression are those of eval/1 (the message depends on the
    %% Python version, so it is compared with eval/1's).
    {error, {'SyntaxError', _}} = Statement = py:eval(<<"a = 1">>),
    ?assertEqual(Statement, py:eval(<<"a = 1">>, #{a => 1})),
    {error, {'SyntaxError', _}} = Yield = py:eval(<<"yield a">>),
    ?assertEqual(Yield, py:eval(<<"yield a">>, #{a => 1})),
    ?assertEqual({error, {'ZeroDivisionError', "division by zero"}}, py:eval(<<"1 / a">>, #{a => 0})),
    ?assertEqual(name_error("nope"), py:eval(<<"a + nope">>, #{a => 1})),
    ?assertEqual(name_error("nope"), py:eval(<<"(lambda: nope)()">>, #{a => 1})),
    ?assertEqual({error, {badarg, locals}}, py:eval(<<"1">>, [{a, 1}])),
    ?assertEqual({error, {badarg, locals}}, py:eval(<<"1">>, [{a, 1}], 1000)),
    ?assertEqual({error, {badarg, code}}, py:eval(not_code, #{a => 1})),
    Nul = {error, {'ValueError', "source code contains a NUL byte"}},
    ?assertEqual(Nul, py:eval(<<"1", 0, "a">>)),
    ?assertEqual(Nul, py:eval(<<"1", 0, "a">>, #{a => 1})),
    F = fun() -> ok end,
    ?assertEqual({error, {unsupported_term, F}}, py:eval(<<"a">>, #{a => F})),
    ?assertMatch({error, {'TypeError', _}}, py:eval(<<"a">>, #{[1] => 1})),
    %% The same source with other names compiles anew; the failed one left nothing behind.
    ?assertEqual({ok, 2}, py:eval(<<"a + 1">>, #{a => 1})),
    ?assertEqual({ok, 2}, py:eval(<<"a + 1">>, #{a => 1, b => 0})).

%% Without locals nothing changes: the namespace is globals and locals, as for module
%% code, and the frame-dependent builtins work inside the expression.
eval_without_locals(_) ->
    ?assertEqual({ok, 2}, py:eval(<<"eval('1+1')">>)),
    ?assertEqual({ok, 3}, py:eval(<<"(q := 3)">>)),
    ?assertEqual({ok, 3}, py:eval(<<"q">>)),
    ?assertEqual({ok, 4}, py:eval(<<"(r := 4)">>, #{})),
    ?assertEqual({ok, 4}, py:eval(<<"r">>)),
    ?assertEqual({ok, 6}, py:eval(<<"eval('x * 2')">>, #{x => 3})),
    ?assertEqual({ok, true}, py:eval(<<"locals() is globals()">>)).

stream_eval_locals(_) ->
    ?assertEqual({ok, [0, 3, 6]}, py:stream_eval(<<"(x * k for x in range(n))">>, #{k => 3, n => 3})),
    ?assertEqual({ok, [none]},
                 py:stream_eval(<<"(globals().__setitem__('s', k) for _ in range(1))">>, #{k => 9})),
    ?assertEqual({ok, 9}, py:eval(<<"s">>)),
    ?assertEqual(name_error("k"), py:eval(<<"k">>)).

%%% builtins that read the caller's frame --------------------------------------

builtin_eval(_) ->
    ?assertEqual({ok, 3}, py:call(builtins, eval, [<<"1+2">>])),
    ok = py:exec(<<"a = 4">>),
    ?assertEqual({ok, 8}, py:call(builtins, eval, [<<"a * 2">>])),
    ?assertEqual({ok, 8}, py:call(<<"builtins">>, <<"eval">>, [<<"a * 2">>])),
    %% Python writes a := to the caller's locals, here the namespace.
    ?assertEqual({ok, 6}, py:call(builtins, eval, [<<"(r := 6)">>])),
    ?assertEqual({ok, 6}, py:eval(<<"r">>)),
    %% Explicit globals keep Python's meaning; None globals are the caller's.
    ?assertEqual({ok, 7}, py:call(builtins, eval, [<<"q">>, #{q => 7}])),
    ?assertEqual(name_error("a"), py:call(builtins, eval, [<<"a">>, #{}])),
    ?assertEqual({ok, 5}, py:call(builtins, eval, [<<"a + q">>, none, #{q => 1}])),
    ?assertEqual({ok, 4}, py:call(builtins, eval, [<<"a">>, none])),
    ?assertEqual({ok, 4}, py:call(builtins, eval, [<<"a">>, none, none])).

builtin_exec(_) ->
    ?assertEqual({ok, none}, py:call(builtins, exec, [<<"z = 5">>])),
    ?assertEqual({ok, 5}, py:eval(<<"z">>)),
    ?assertEqual({ok, none}, py:call(builtins, exec, [<<"def triple(v):\n    return v * 3\n">>])),
    ?assertEqual({ok, 15}, py:call('__main__', triple, [5])),
    %% Explicit globals: the namespace is untouched.
    ?assertEqual({ok, none}, py:call(builtins, exec, [<<"w = 1">>, #{}])),
    ?assertEqual(name_error("w"), py:eval(<<"w">>)),
    ?assertEqual({ok, none}, py:call(builtins, exec, [<<"u = z + 1">>, none])),
    ?assertEqual({ok, 6}, py:eval(<<"u">>)).

%% globals(), locals() and vars() with no argument: the namespace, converted like any
%% dict (so the modules in it arrive as their str()), as `py:eval("globals()")' gives.
builtin_namespace_getters(_) ->
    Fresh = fresh_namespace(),
    ?assertEqual({ok, Fresh}, py:call(builtins, globals, [])),
    ok = py:exec(<<"g = [1]">>),
    WithG = Fresh#{<<"g">> => [1]},
    ?assertEqual({ok, WithG}, py:call(builtins, globals, [])),
    ?assertEqual({ok, WithG}, py:call(builtins, locals, [])),
    ?assertEqual({ok, WithG}, py:call(builtins, vars, [])),
    ?assertEqual({ok, WithG}, py:eval(<<"globals()">>)).

builtin_dir(_) ->
    ?assertEqual({ok, [<<"__builtins__">>, <<"__name__">>, <<"erlang">>]}, py:call(builtins, dir, [])),
    ok = py:exec(<<"b = 1\nA = 2">>),
    ?assertEqual({ok, [<<"A">>, <<"__builtins__">>, <<"__name__">>, <<"b">>, <<"erlang">>]},
                 py:call(builtins, dir, [])),
    ?assertEqual(py:eval(<<"dir()">>), py:call(builtins, dir, [])),
    ?assertEqual({ok, true}, py:eval(<<"dir(1) == d">>, #{d => element(2, py:call(builtins, dir, [1]))})).

%% With return => ref, globals() is the live namespace itself.
builtin_globals_as_ref(_) ->
    Ctx = py:context(),
    {ok, Ns} = py:call(Ctx, builtins, globals, [], #{return => ref}),
    ?assertEqual({ok, none}, py:call(Ctx, operator, setitem, [Ns, <<"via_ref">>, 3], #{})),
    ?assertEqual({ok, 3}, py:eval(<<"via_ref">>)).

%% With arguments they are the plain builtins.
builtins_with_arguments(_) ->
    Ctx = py:context(),
    {ok, Obj} = py:call(Ctx, types, 'SimpleNamespace', [], #{kwargs => #{a => 1}, return => ref}),
    ?assertEqual({ok, #{<<"a">> => 1}}, py:call(Ctx, builtins, vars, [Obj], #{})),
    ?assertEqual({error, {'TypeError', "vars() argument must have __dict__ attribute"}},
                 py:call(builtins, vars, [1])),
    ?assertEqual({error, {'TypeError', "globals() takes no arguments (1 given)"}},
                 py:call(builtins, globals, [1])),
    ?assertEqual({error, {'TypeError', "locals() takes no arguments (1 given)"}},
                 py:call(builtins, locals, [1])),
    %% The text changed in Python 3.13: as Python's own `eval()` with no argument says.
    {error, {'TypeError', _}} = NoArgument = py:eval(<<"eval()">>),
    ?assertEqual(NoArgument, py:call(builtins, eval, [])),
    %% As Python's own eval called from Python code (file name `<string>').
    {error, {'SyntaxError', _}} = Bad = py:eval(<<"eval('1 +')">>),
    ?assertEqual(Bad, py:call(builtins, eval, [<<"1 +">>])),
    ?assertEqual(name_error("nope"), py:call(builtins, eval, [<<"nope">>])),
    ?assertEqual({error, {'ZeroDivisionError', "division by zero"}},
                 py:call(builtins, exec, [<<"1 / 0">>])).

builtins_in_spawn_call(_) ->
    ?assertEqual({ok, none}, py:await(py:spawn_call(builtins, exec, [<<"sp = 1">>]))),
    ?assertEqual({ok, 2}, py:await(py:spawn_call(builtins, eval, [<<"sp + 1">>]))),
    ?assertEqual({ok, 3}, py:async_await(py:async_call(builtins, eval, [<<"sp + 2">>]))).

builtins_per_process(_) ->
    {ok, none} = py:call(builtins, exec, [<<"mine = 'parent'">>]),
    Child = in_new_process(fun() ->
                                   Before = py:call(builtins, eval, [<<"mine">>]),
                                   {ok, none} = py:call(builtins, exec, [<<"mine = 'child'">>]),
                                   {Before, py:call(builtins, eval, [<<"mine">>]),
                                    py:call(builtins, dir, [])}
                           end),
    ?assertEqual({name_error("mine"), {ok, <<"child">>},
                  {ok, [<<"__builtins__">>, <<"__name__">>, <<"erlang">>, <<"mine">>]}}, Child),
    ?assertEqual({ok, <<"parent">>}, py:eval(<<"mine">>)).
