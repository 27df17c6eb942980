%%% @doc Python code that tears down the `erlang' module: an application restart brings
%%% it back. Each case runs in a VM of its own (`py_isolated'), since it breaks the
%%% interpreter's module table on purpose.
-module(py_harden_modules_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0]).
-export([deleted_erlang_module_comes_back/1, replaced_erlang_module_comes_back/1]).
-export([delete_and_restart/0, replace_and_restart/0]).

suite() -> [{timetrap, {minutes, 2}}].

all() -> [deleted_erlang_module_comes_back, replaced_erlang_module_comes_back].

deleted_erlang_module_comes_back(_Config) ->
    in_own_vm(delete_and_restart).

replaced_erlang_module_comes_back(_Config) ->
    in_own_vm(replace_and_restart).

in_own_vm(Body) ->
    ?assertEqual({ok, ok}, py_isolated:run(?MODULE, Body, 60000)).

%% Run in the isolated VM.
delete_and_restart() ->
    ok = break_modules(<<"import sys\n"
                         "for name in [n for n in sys.modules if n == 'erlang' or n.startswith('erlang_shim')]:\n"
                         "    del sys.modules[name]\n">>,
                       <<"'erlang' in __import__('sys').modules">>, 10),
    after_restart().

replace_and_restart() ->
    ok = break_modules(<<"import sys, types\nsys.modules['erlang'] = types.ModuleType('erlang')\n">>,
                       <<"hasattr(__import__('sys').modules['erlang'], 'call')">>, 10),
    after_restart().

%% Run `Breaking' until `Intact' says it held. `application:start' returns before every
%% context has opened its loop, and a context puts the modules back when it starts: one
%% that starts after the first attempt undoes it (each context does so once).
break_modules(Breaking, Intact, Tries) ->
    ok = py:exec(Breaking),
    timer:sleep(200),
    case py:eval(Intact) of
        {ok, false} -> ok;
        {ok, true} when Tries > 1 -> break_modules(Breaking, Intact, Tries - 1)
    end.

%% After a restart, the module is the real one again: new namespaces have it, `import
%% erlang' finds it, and Python reaches Erlang through it.
after_restart() ->
    ok = application:stop(erlang_python),
    ok = application:start(erlang_python),
    ok = py:register_function(plus_one, fun([X]) -> X + 1 end),
    {ok, true} = py:eval(<<"hasattr(__import__('erlang'), 'call')">>),
    {ok, 42} = py:eval(<<"erlang.plus_one(41)">>),
    {ok, a} = py:eval(<<"__import__('erlang').atom('a')">>),
    {ok, true} = py:eval(<<"__import__('sys').modules['erlang'] is erlang">>),
    ok.
