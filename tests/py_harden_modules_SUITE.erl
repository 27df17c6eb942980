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
    ok = py:exec(<<"import sys\n"
                   "for name in [n for n in sys.modules if n == 'erlang' or n.startswith('erlang_shim')]:\n"
                   "    del sys.modules[name]\n">>),
    {ok, false} = py:eval(<<"'erlang' in __import__('sys').modules">>),
    after_restart().

replace_and_restart() ->
    ok = py:exec(<<"import sys, types\nsys.modules['erlang'] = types.ModuleType('erlang')\n">>),
    {ok, false} = py:eval(<<"hasattr(__import__('sys').modules['erlang'], 'call')">>),
    after_restart().

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
