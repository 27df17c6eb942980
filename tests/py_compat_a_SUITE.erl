%%% @doc Drop-in compatibility with what erlang_python 2.3.1 returned (issue "Drop-in
%%% for real", items 1, 3, 4, 5): SharedDict handles and `badarg' after destroy,
%%% `venv_info/0' shapes, span maps and `erlang.trace', and `erlang.whereis' names.
-module(py_compat_a_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2,
         end_per_testcase/2]).
-export([shared_dict_shapes/1, shared_dict_destroyed_badarg/1, shared_dict_destroyed_from_python/1,
         venv_info_configured_venv/1, venv_info_inactive_and_activated/1,
         span_map_shape/1, trace_decorator/1,
         trace_decorator_coroutine/1, whereis_names/1]).

-define(H, py_compat_a_helpers).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [shared_dict_shapes, shared_dict_destroyed_badarg,
     shared_dict_destroyed_from_python, venv_info_configured_venv,
     venv_info_inactive_and_activated, span_map_shape,
     trace_decorator, trace_decorator_coroutine, whereis_names].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    ok = py:disable_tracing(),
    ok = py:clear_traces(),
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    ok = py:enable_tracing(),
    ok = py:clear_traces(),
    Config.

end_per_testcase(_Case, _Config) ->
    restore_test_venv().

%%% ---------------------------------------------------------------------------
%%% Item 1: SharedDict handles

shared_dict_shapes(_) ->
    {ok, D} = py:shared_dict_new(),
    ?assert(is_reference(D)),
    Keys = [<<"bin">>, atom, 42, {tuple, [list]}, #{map => key}, self(), [1, 2], 1.5],
    [?assertEqual(ok, py:shared_dict_set(D, K, {value, K})) || K <- Keys],
    [?assertEqual({value, K}, py:shared_dict_get(D, K)) || K <- Keys],
    [?assertEqual({value, K}, py:shared_dict_get(D, K, default)) || K <- Keys],
    ?assertEqual(lists:sort(Keys), lists:sort(py:shared_dict_keys(D))),
    ?assertEqual(undefined, py:shared_dict_get(D, missing)),
    ?assertEqual(default, py:shared_dict_get(D, missing, default)),
    ?assertEqual(ok, py:shared_dict_set(D, atom, replaced)),
    ?assertEqual(replaced, py:shared_dict_get(D, atom)),
    ?assertEqual(ok, py:shared_dict_del(D, atom)),
    ?assertEqual(ok, py:shared_dict_del(D, atom)),
    ?assertEqual(undefined, py:shared_dict_get(D, atom)),
    ?assertEqual(lists:sort(Keys -- [atom]), lists:sort(py:shared_dict_keys(D))),
    %% Python sees the same entries through the same handle.
    ?assertEqual({ok, {<<"value">>, <<"bin">>}}, py:eval(<<"d['bin']">>, #{d => D})),
    ?assertEqual(ok, py:shared_dict_destroy(D)),
    %% Two dictionaries never share entries.
    {ok, D1} = py:shared_dict_new(),
    {ok, D2} = py:shared_dict_new(),
    ?assertNotEqual(D1, D2),
    ok = py:shared_dict_set(D1, k, one),
    ?assertEqual(undefined, py:shared_dict_get(D2, k)),
    ?assertEqual([], py:shared_dict_keys(D2)),
    ok = py:shared_dict_destroy(D1),
    ok = py:shared_dict_destroy(D2).

shared_dict_destroyed_badarg(_) ->
    {ok, D} = py:shared_dict_new(),
    ok = py:shared_dict_set(D, a, 1),
    ?assertEqual(ok, py:shared_dict_destroy(D)),
    ?assertError(badarg, py:shared_dict_get(D, a)),
    ?assertError(badarg, py:shared_dict_get(D, a, default)),
    ?assertError(badarg, py:shared_dict_set(D, a, 2)),
    ?assertError(badarg, py:shared_dict_del(D, a)),
    ?assertError(badarg, py:shared_dict_keys(D)),
    %% Destroying again is no error: cleanup may race the owner's exit.
    ?assertEqual(ok, py:shared_dict_destroy(D)),
    %% Something that never was a handle is a badarg too.
    ?assertError(badarg, py:shared_dict_get(make_ref(), a)),
    ?assertError(badarg, py:shared_dict_set(not_a_dict, a, 1)),
    ?assertError(badarg, py:shared_dict_destroy(not_a_dict)).

%% From Python a destroyed dictionary raises RuntimeError on every operation.
shared_dict_destroyed_from_python(_) ->
    {ok, D} = py:shared_dict_new(),
    ok = py:shared_dict_destroy(D),
    Message = <<"this SharedDict was destroyed">>,
    Ops = [getitem, setitem, delitem, contains, len, iter, keys, values, items, get],
    ?assertEqual({ok, [{atom_to_binary(Op), <<"RuntimeError">>, Message} || Op <- Ops]},
                 py:call(?H, destroyed_dict_errors, [D])),
    ?assertEqual({ok, <<"<erlang.SharedDict (destroyed)>">>}, py:eval(<<"repr(d)">>, #{d => D})).

%%% ---------------------------------------------------------------------------
%%% Item 3: venv_info/0

%% The venv the VM was started with (app env `venv', set by py_test_lib) is active.
venv_info_configured_venv(_) ->
    {Venv, SitePackages} = test_venv(),
    {ok, Path} = py:eval(<<"list(__import__('sys').path)">>),
    ?assertEqual({ok, #{<<"active">> => true, <<"venv_path">> => Venv,
                        <<"site_packages">> => SitePackages, <<"sys_path">> => Path}},
                 py:venv_info()),
    %% Both the python_path entries (tests/) and the venv's packages are on sys.path
    %% (their order depends on whether an earlier suite re-activated the venv).
    Tests = unicode:characters_to_binary(filename:join(py_test_lib:root(), "tests")),
    ?assertEqual([true, true], [lists:member(P, Path) || P <- [Tests, SitePackages]]).

venv_info_inactive_and_activated(Config) ->
    {_TestVenv, TestPackages} = test_venv(),
    ok = py:deactivate_venv(),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    {ok, Bare} = py:eval(<<"list(__import__('sys').path)">>),
    ?assertNot(lists:member(TestPackages, Bare)),
    %% Deactivating with nothing active changes nothing.
    ok = py:deactivate_venv(),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    Venv = filename:join(?config(priv_dir, Config), "compat_venv"),
    SitePackages = make_venv(Venv),
    ok = py:activate_venv(Venv),
    {ok, Path} = py:eval(<<"list(__import__('sys').path)">>),
    ?assertEqual([SitePackages | Bare], Path),
    ?assertEqual({ok, #{<<"active">> => true, <<"venv_path">> => unicode:characters_to_binary(Venv),
                        <<"site_packages">> => SitePackages, <<"sys_path">> => Path}},
                 py:venv_info()),
    ok = py:deactivate_venv(),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ?assertEqual({ok, Bare}, py:eval(<<"list(__import__('sys').path)">>)).

%%% ---------------------------------------------------------------------------
%%% Item 4: span maps and erlang.trace

span_map_shape(_) ->
    ok = py:exec(<<"with erlang.Span('fetch', url='http://x', retries=2) as s:\n"
                   "    s.event('first', n=1)\n"
                   "    s.event('second')\n"
                   "    s.event('third', ok=True, ratio=0.5)\n"
                   "    s.set_attribute('status', 200)\n">>),
    {ok, [Span]} = py:get_traces(),
    ?assertEqual([attributes, duration_us, end_attrs, end_time, events, name, parent_id,
                  span_id, start_time, status, trace_id],
                 lists:sort(maps:keys(Span))),
    #{name := Name, span_id := Id, parent_id := Parent, attributes := Attrs,
      start_time := Start, end_time := End, duration_us := Duration, status := Status,
      end_attrs := EndAttrs, events := Events, trace_id := Trace} = Span,
    ?assertEqual(<<"fetch">>, Name),
    ?assert(is_integer(Id) andalso Id > 0),
    ?assertEqual(undefined, Parent),
    ?assertEqual(#{<<"url">> => <<"http://x">>, <<"retries">> => 2, <<"status">> => 200}, Attrs),
    ?assert(is_integer(Start) andalso is_integer(End)),
    ?assertEqual(End - Start, Duration),
    ?assert(Duration >= 0),
    ?assertEqual(ok, Status),
    ?assertEqual(#{}, EndAttrs),
    ?assertEqual(32, byte_size(Trace)),
    %% Events newest first, each exactly name, attrs and time.
    ?assertEqual([<<"third">>, <<"second">>, <<"first">>], [N || #{name := N} <- Events]),
    ?assertEqual([#{<<"ok">> => true, <<"ratio">> => 0.5}, #{}, #{<<"n">> => 1}],
                 [A || #{attrs := A} <- Events]),
    ?assert(lists:all(fun(E) -> lists:sort(maps:keys(E)) =:= [attrs, name, time] end, Events)),
    Times = [T || #{time := T} <- Events],
    ?assertEqual(lists:reverse(lists:sort(Times)), Times),
    ?assert(lists:all(fun(T) -> T >= Start andalso T =< End end, Times)),
    ok = py:clear_traces(),
    ?assertEqual({ok, []}, py:get_traces()).

trace_decorator(_) ->
    ?assertEqual({ok, [2, 20, -3, 104, <<"bad input">>]}, py:call(?H, run_traced, [])),
    %% The exception reaches the caller unchanged.
    ?assertEqual({error, {'ValueError', "again"}}, py:call(?H, fails, [<<"again">>])),
    {ok, Spans} = py:get_traces(),
    ?assertEqual([{<<"py_compat_a_helpers.default_name">>, ok, #{}},
                  {<<"inside">>, ok, #{}},
                  {<<"custom.name">>, ok, #{}},
                  {<<"py_compat_a_helpers.bare">>, ok, #{}},
                  {<<"py_compat_a_helpers.Service.handle">>, ok, #{}},
                  {<<"py_compat_a_helpers.fails">>, error,
                   #{<<"exception">> => <<"ValueError: bad input">>}},
                  {<<"py_compat_a_helpers.fails">>, error,
                   #{<<"exception">> => <<"ValueError: again">>}}],
                 [{N, S, A} || #{name := N, status := S, end_attrs := A} <- Spans]),
    [Decorated, Inside | _] = Spans,
    ?assertEqual(maps:get(span_id, Decorated), maps:get(parent_id, Inside)),
    %% functools.wraps keeps the function's identity.
    ?assertEqual({ok, {<<"default_name">>, <<"py_compat_a_helpers">>}},
                 py:eval(<<"(lambda f: (f.__name__, f.__module__))"
                           "(__import__('py_compat_a_helpers').default_name)">>)).

trace_decorator_coroutine(_) ->
    ?assertEqual({ok, 14}, py:async_await(py:async_call(?H, coroutine, [7]))),
    {ok, [Span]} = py:get_traces(),
    ?assertMatch(#{name := <<"py_compat_a_helpers.coroutine">>, status := ok,
                   end_attrs := #{}, parent_id := undefined}, Span).

%%% ---------------------------------------------------------------------------
%%% Item 5: erlang.whereis

whereis_names(_) ->
    true = register(py_compat_a_probe, self()),
    %% A process has one registered name, so the Unicode one is another process's.
    Unicode = binary_to_atom(<<"py_compat_a_prøve_α"/utf8>>, utf8),
    Other = spawn_link(fun() -> receive stop -> ok end end),
    true = register(Unicode, Other),
    try
        Self = self(),
        ?assertEqual({ok, [Self, Self, Self]}, py:call(?H, whereis_all, [<<"py_compat_a_probe">>])),
        ?assertEqual({ok, [Other, Other, Other]},
                     py:call(?H, whereis_all, [atom_to_binary(Unicode, utf8)])),
        ?assertEqual({ok, [none, none, none]}, py:call(?H, whereis_all, [<<"py_compat_a_nobody">>])),
        %% Bytes that are not UTF-8 name no atom.
        ?assertEqual({ok, none}, py:eval(<<"erlang.whereis(b'\\xff\\xfe')">>)),
        ?assertEqual({error, {'TypeError', "whereis() name must be str, bytes or erlang.Atom, not int"}},
                     py:eval(<<"erlang.whereis(42)">>))
    after
        unregister(py_compat_a_probe),
        Other ! stop
    end.

%%% ---------------------------------------------------------------------------
%%% Helpers

%% The test venv as Python names it: its path and its site-packages directory.
test_venv() ->
    Venv = py_test_lib:venv(),
    {unicode:characters_to_binary(Venv), site_packages(Venv)}.

site_packages(Venv) ->
    {ok, Version} = py:eval(<<"'python%d.%d' % __import__('sys').version_info[:2]">>),
    unicode:characters_to_binary(filename:join([Venv, "lib", Version, "site-packages"])).

%% A minimal venv: just its site-packages directory.
make_venv(Venv) ->
    SitePackages = site_packages(Venv),
    ok = filelib:ensure_path(SitePackages),
    SitePackages.

%% All suites share one interpreter; put the test venv back as the active one if a case
%% deactivated it.
restore_test_venv() ->
    {Venv, _} = test_venv(),
    case py:venv_info() of
        {ok, #{<<"venv_path">> := Venv}} -> ok;
        {ok, _} -> ok = py:activate_venv(Venv)
    end.
