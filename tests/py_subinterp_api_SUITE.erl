%%% @doc The sub-interpreter API: context modes (`start_contexts/1', the `pools' and
%%% `context_mode' app env, `register_pool/2'), `execution_mode/0', `num_executors/0',
%%% `parallel/1' and the `subinterp_*' handles.
%%%
%%% Which cases run depends on the leg's Python, read from its venv before anything
%%% starts: before 3.12 every function's unsupported answer is checked exactly; from 3.12
%%% on the real behaviour is, and each case first asserts that sub-interpreters are
%%% supported, so a 3.12+ leg whose sub-interpreters do not work fails, never skips.
-module(py_subinterp_api_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([leg_python_is_the_nifs/1,
         unsupported_answers/1, unsupported_modes_start_nothing/1,
         handle_shapes/1, handle_errors_before_start_and_after_stop/1,
         handles_are_isolated/1, handle_threads_end/1, handle_limit/1,
         parallel_order_and_first_error/1, mode_contexts/1, mode_pools_and_routes/1,
         changes_reach_every_interpreter/1, later_contexts_make_the_changes/1,
         lingering_thread_does_not_hold_a_stop/1]).
-export([log/2]).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    case leg_minor() >= 12 of
        false ->
            [leg_python_is_the_nifs, unsupported_answers, unsupported_modes_start_nothing];
        true ->
            [leg_python_is_the_nifs, handle_shapes, handle_errors_before_start_and_after_stop,
             handles_are_isolated, handle_threads_end, handle_limit,
             parallel_order_and_first_error, mode_contexts, mode_pools_and_routes,
             changes_reach_every_interpreter, later_contexts_make_the_changes,
             lingering_thread_does_not_hold_a_stop]
    end.

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(Case, Config) when Case =:= leg_python_is_the_nifs;
                                     Case =:= unsupported_answers;
                                     Case =:= unsupported_modes_start_nothing ->
    Config;
init_per_testcase(_Case, Config) ->
    %% A 3.12+ leg must have them: failing here fails the case (loudly), not skips it.
    true = py:subinterp_supported(),
    Config.

end_per_testcase(_Case, _Config) ->
    ok = py:subinterp_pool_stop(),
    [application:unset_env(erlang_python, K) || K <- [pools, context_mode, num_contexts]],
    case {py:contexts_started(), py:execution_mode(), py_context_router:pools()} of
        {true, multi_executor, [io]} -> ok;
        _ -> ok = py:stop_contexts(), {ok, _} = py:start_contexts()
    end,
    ok.

%%% ---------------------------------------------------------------------------
%%% Every leg

%% The Python the NIF runs is the one this suite chose its cases for.
leg_python_is_the_nifs(_) ->
    ?assertEqual({ok, [3, leg_minor()]}, py:eval(<<"list(__import__('sys').version_info[:2])">>)),
    ?assertEqual(leg_minor() >= 12, py:subinterp_supported()).

%%% ---------------------------------------------------------------------------
%%% Before CPython 3.12

unsupported_answers(_) ->
    NotSupported = {error, subinterpreters_not_supported},
    ?assertEqual(false, py:subinterp_supported()),
    ?assertEqual(false, py:subinterp_pool_ready()),
    ?assertEqual(NotSupported, py:subinterp_pool_start()),
    ?assertEqual(NotSupported, py:subinterp_pool_start(4)),
    ?assertEqual(false, py:subinterp_pool_ready()),
    ?assertEqual(#{ready => false, max_handles => 0, handles => 0, workers => 0, created => 0,
                   destroyed => 0, collected => 0, calls => 0, errors => 0},
                 py:subinterp_pool_stats()),
    ?assertEqual(NotSupported, py:subinterp_create()),
    Fake = make_ref(),
    ?assertEqual(NotSupported, py:subinterp_call(Fake, math, sqrt, [4.0])),
    ?assertEqual(NotSupported, py:subinterp_call(Fake, math, sqrt, [4.0], #{})),
    ?assertEqual(NotSupported, py:subinterp_eval(Fake, <<"1">>)),
    ?assertEqual(NotSupported, py:subinterp_eval(Fake, <<"x">>, #{x => 1})),
    ?assertEqual(NotSupported, py:subinterp_exec(Fake, <<"x = 1">>)),
    ?assertEqual(NotSupported, py:subinterp_cast(Fake, math, sqrt, [4.0])),
    ?assertEqual(NotSupported, py:subinterp_async_call(Fake, math, sqrt, [4.0])),
    ?assertEqual({error, not_a_request}, py:subinterp_await(Fake)),
    ?assertEqual({error, not_a_request}, py:subinterp_await(Fake, 10)),
    ?assertEqual(ok, py:subinterp_destroy(Fake)),
    ?assertEqual(ok, py:subinterp_pool_stop()),
    ?assertEqual(NotSupported, py:parallel([{operator, add, [1, 2]}])),
    ?assertEqual(NotSupported, py:parallel([])),
    ?assertEqual(multi_executor, py:execution_mode()),
    ?assertEqual(py_context_router:count(), py:num_executors()),
    %% Still serving.
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% Every way to ask for a sub-interpreter mode answers with the user's own atom and
%% starts nothing.
unsupported_modes_start_nothing(_) ->
    Running = py:start_contexts(),
    ?assertEqual({error, {unsupported_mode, subinterp}}, py:start_contexts(#{mode => subinterp})),
    ?assertEqual({error, {unsupported_mode, owngil}}, py:start_contexts(#{mode => owngil, contexts => 2})),
    ?assertEqual({error, {badarg, mode}}, py:start_contexts(#{mode => threads})),
    ?assertEqual(Running, py:start_contexts(#{mode => worker})),
    ok = py:stop_contexts(),
    ?assertEqual({error, {unsupported_mode, owngil}}, py:start_contexts(#{mode => owngil})),
    ?assertNot(py:contexts_started()),
    ok = application:set_env(erlang_python, pools, [{io, 2}, {cpu, 2, #{mode => subinterp}}]),
    ?assertEqual({error, {unsupported_mode, subinterp}}, py:start_contexts()),
    ?assertNot(py:contexts_started()),
    ?assertEqual([], py_context_router:pools()),
    ok = application:set_env(erlang_python, pools, [{io, 2}, {cpu, 2, #{mode => vapour}}]),
    ?assertEqual({error, {bad_pool, {cpu, 2, #{mode => vapour}}}}, py:start_contexts()),
    %% The three-element form with the worker mode is a pool like `{Pool, N}'.
    ok = application:set_env(erlang_python, pools, [{io, 2}, {plain, 1, #{mode => worker}}]),
    {ok, _} = py:start_contexts(),
    ?assertEqual({ok, 7}, py:call(plain, operator, add, [3, 4])),
    ?assertEqual(main, py_context_router:mode(plain)),
    ok = py:register_pool(plain, {operator, mul}),
    ?assertEqual({ok, 12}, py:call(operator, mul, [3, 4])),
    ok = py:unregister_pool({operator, mul}),
    ok = py:stop_contexts(),
    ok = application:unset_env(erlang_python, pools),
    ok = application:set_env(erlang_python, context_mode, owngil),
    ?assertEqual({error, {unsupported_mode, owngil}}, py:start_contexts()),
    ?assertNot(py:contexts_started()),
    ok = application:unset_env(erlang_python, context_mode),
    {ok, _} = py:start_contexts(),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%%% ---------------------------------------------------------------------------
%%% CPython 3.12 and newer

handle_shapes(_) ->
    ok = py:subinterp_pool_start(),
    ?assert(py:subinterp_pool_ready()),
    {ok, H} = py:subinterp_create(),
    ?assertEqual({ok, 4.0}, py:subinterp_call(H, math, sqrt, [16.0])),
    ?assertEqual({ok, 255}, py:subinterp_call(H, builtins, int, [<<"ff">>], #{base => 16})),
    ?assertEqual({ok, 3}, py:subinterp_eval(H, <<"1 + 2">>)),
    ?assertEqual({ok, 42}, py:subinterp_eval(H, "x * 2", #{x => 21})),
    %% One namespace per handle, whoever calls.
    ?assertEqual(ok, py:subinterp_exec(H, <<"y = 5\ndef mark(v):\n    global marked\n    marked = v\n">>)),
    ?assertEqual({ok, 5}, py:subinterp_eval(H, <<"y">>)),
    Self = self(),
    spawn_link(fun() -> Self ! {other, py:subinterp_eval(H, <<"y + 1">>)} end),
    ?assertEqual({ok, 6}, receive {other, R} -> R after 10000 -> timeout end),
    ?assertEqual(ok, py:subinterp_cast(H, '__main__', mark, [7])),
    ?assertEqual({ok, 7}, poll(fun() -> py:subinterp_eval(H, <<"globals().get('marked')">>) end, {ok, 7})),
    {ok, Ref} = py:subinterp_async_call(H, operator, add, [1, 2]),
    ?assert(is_reference(Ref)),
    ?assertEqual({ok, 3}, py:subinterp_await(Ref)),
    {ok, Slow} = py:subinterp_async_call(H, time, sleep, [2]),
    ?assertEqual({error, timeout}, py:subinterp_await(Slow, 50)),
    ?assertMatch({error, {'ValueError', _}}, py:subinterp_call(H, math, sqrt, [-1.0])),
    ?assertMatch({error, {'NameError', _}}, py:subinterp_eval(H, <<"nowhere">>)),
    ?assertEqual({error, {badarg, locals}}, py:subinterp_eval(H, <<"1">>, [])),
    ?assertEqual({error, {badarg, code}}, py:subinterp_exec(H, [-1])),
    %% Counted: every request made with the handle (13, and more polls); errors: the two
    %% Python exceptions (arguments refused before any request count as neither).
    #{ready := true, handles := 1, workers := 1, created := 1, calls := Calls,
      errors := Errors} = py:subinterp_pool_stats(),
    ?assert(Calls >= 13),
    ?assertEqual(2, Errors),
    ?assertEqual(ok, py:subinterp_destroy(H)),
    ?assertEqual({error, {badarg, handle}}, py:subinterp_call(H, math, sqrt, [4.0])),
    ?assertEqual(ok, py:subinterp_destroy(H)),
    ?assertMatch(#{handles := 0, destroyed := 1}, py:subinterp_pool_stats()),
    %% Terms that are no handle, and a main context's own resource.
    ?assertEqual({error, {badarg, handle}}, py:subinterp_call(make_ref(), math, sqrt, [4.0])),
    ?assertEqual({error, {badarg, handle}}, py:subinterp_call(self(), math, sqrt, [4.0])),
    {ok, {_, MainCtx, _}} = py_context_router:pick(),
    ?assertEqual({error, {badarg, handle}}, py:subinterp_eval(MainCtx, <<"1">>)),
    ?assertEqual(ok, py:subinterp_destroy(MainCtx)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

handle_errors_before_start_and_after_stop(_) ->
    ok = py:subinterp_pool_stop(),
    ?assertNot(py:subinterp_pool_ready()),
    ?assertMatch(#{ready := false, handles := 0}, py:subinterp_pool_stats()),
    ?assertEqual({error, pool_not_started}, py:subinterp_create()),
    ?assertEqual({error, pool_not_started}, py:subinterp_call(make_ref(), math, sqrt, [4.0])),
    ok = py:subinterp_pool_start(2),
    ok = py:subinterp_pool_start(2),
    {ok, H} = py:subinterp_create(),
    {ok, Tid} = py:subinterp_call(H, threading, get_native_id, []),
    ok = py:subinterp_pool_stop(),
    %% The handle is still held here, yet its interpreter and thread are gone.
    ?assertEqual([], wait_for_exit([Tid])),
    ?assertEqual({error, pool_not_started}, py:subinterp_call(H, math, sqrt, [4.0])),
    ?assertEqual({error, pool_not_started}, py:subinterp_eval(H, <<"1">>)),
    ?assertEqual({error, pool_not_started}, py:subinterp_exec(H, <<"x = 1">>)),
    ?assertEqual({error, pool_not_started}, py:subinterp_cast(H, math, sqrt, [4.0])),
    ?assertEqual({error, pool_not_started}, py:subinterp_async_call(H, math, sqrt, [4.0])),
    ?assertEqual(ok, py:subinterp_destroy(H)),
    %% A handle of an earlier pool is no handle of the next one.
    ok = py:subinterp_pool_start(),
    ?assertEqual({error, {badarg, handle}}, py:subinterp_call(H, math, sqrt, [4.0])),
    {ok, H2} = py:subinterp_create(),
    ?assertEqual({ok, 2.0}, py:subinterp_call(H2, math, sqrt, [4.0])).

%% Each handle is an interpreter of its own: a builtin set in one is a NameError in the
%% other and in the main interpreter, and its modules are its own.
handles_are_isolated(_) ->
    ok = py:subinterp_pool_start(),
    {ok, A} = py:subinterp_create(),
    {ok, B} = py:subinterp_create(),
    ok = py:subinterp_exec(A, <<"import builtins, sys\nbuiltins.iso_marker = 11\nsys.iso_flag = 1\n">>),
    ?assertEqual({ok, 11}, py:subinterp_eval(A, <<"iso_marker">>)),
    ?assertMatch({error, {'NameError', _}}, py:subinterp_eval(B, <<"iso_marker">>)),
    ?assertMatch({error, {'NameError', _}}, py:eval(<<"iso_marker">>)),
    ?assertEqual({ok, false}, py:subinterp_eval(B, <<"hasattr(__import__('sys'), 'iso_flag')">>)),
    ?assertEqual({ok, false}, py:eval(<<"hasattr(__import__('sys'), 'iso_flag')">>)),
    {ok, IdA} = py:subinterp_eval(A, <<"id(__import__('sys'))">>),
    {ok, IdB} = py:subinterp_eval(B, <<"id(__import__('sys'))">>),
    ?assertNotEqual(IdA, IdB).

%% A handle's thread ends when the handle is destroyed and when it is garbage collected.
handle_threads_end(_) ->
    ok = py:subinterp_pool_start(),
    {ok, Kept} = py:subinterp_create(),
    {ok, KeptTid} = py:subinterp_call(Kept, threading, get_native_id, []),
    ok = py:subinterp_destroy(Kept),
    ?assertEqual([], wait_for_exit([KeptTid])),
    Self = self(),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       {ok, H} = py:subinterp_create(),
                                       {ok, Tid} = py:subinterp_call(H, threading, get_native_id, []),
                                       Self ! {tid, Tid}
                                   end),
    Tid = receive {tid, T} -> T after 20000 -> error(no_tid) end,
    receive {'DOWN', Mon, process, Pid, normal} -> ok end,
    ?assertEqual([], wait_for_exit([Tid])),
    ?assertMatch({ok, #{handles := 0, collected := 1, destroyed := 1, created := 2}},
                 poll(fun() -> {ok, py:subinterp_pool_stats()} end,
                      fun({ok, #{collected := C}}) -> C =:= 1 end)).

handle_limit(_) ->
    ok = py:subinterp_pool_start(2),
    {ok, A} = py:subinterp_create(),
    {ok, _B} = py:subinterp_create(),
    ?assertEqual({error, {too_many_handles, 2}}, py:subinterp_create()),
    ok = py:subinterp_destroy(A),
    {ok, C} = py:subinterp_create(),
    ?assertEqual({ok, 3}, py:subinterp_call(C, operator, add, [1, 2])),
    ?assertEqual({error, {badarg, workers}}, py:subinterp_pool_start(-1)).

parallel_order_and_first_error(_) ->
    ?assertEqual({ok, [2 * I || I <- lists:seq(1, 10)]},
                 py:parallel([{operator, add, [I, I]} || I <- lists:seq(1, 10)])),
    ?assertEqual(own_gil, py_context_router:mode(parallel)),
    ?assertEqual({ok, []}, py:parallel([])),
    ?assertEqual({ok, [255, 3]},
                 py:parallel([{builtins, int, [<<"ff">>], #{base => 16}}, {operator, add, [1, 2]}])),
    %% The first error in the calls' order, not the first in time.
    ?assertMatch({error, {'ValueError', _}},
                 py:parallel([{time, sleep, [0.2]}, {math, sqrt, [-1.0]}, {operator, truediv, [1, 0]}])),
    ?assertMatch({error, {'ZeroDivisionError', _}},
                 py:parallel([{time, sleep, [0.2]}, {operator, truediv, [1, 0]}, {math, sqrt, [-1.0]}])),
    %% Once the error is known, calls still running are cancelled, not waited for.
    {Micros, Result} = timer:tc(fun() -> py:parallel([{math, sqrt, [-1.0]}, {time, sleep, [3]}]) end),
    ?assertMatch({error, {'ValueError', _}}, Result),
    ?assert(Micros < 2500000),
    ?assertEqual({ok, [1.0]}, py:parallel([{math, sqrt, [1.0]}])),
    ?assertEqual({error, {badarg, calls}}, py:parallel(not_a_list)),
    ?assertEqual({error, {badarg, calls}}, py:parallel([{operator, add}])),
    ?assertEqual({error, {badarg, calls}}, py:parallel([{operator, add, not_a_list}])),
    %% The calls ran in sub-interpreters: the main interpreter's builtins are not theirs.
    ok = py:exec(<<"import builtins\nbuiltins.par_marker = 1\n">>),
    ?assertMatch({ok, [false, false]},
                 py:parallel([{builtins, eval, [<<"'par_marker' in __import__('builtins').__dict__">>]}
                              || _ <- [1, 2]])).

%% Default contexts in sub-interpreters: by `start_contexts/1' and by `context_mode'.
mode_contexts(_) ->
    ok = py:stop_contexts(),
    {ok, [P1, P2] = Pids} = py:start_contexts(#{mode => subinterp, contexts => 2}),
    ?assertEqual(subinterp, py:execution_mode()),
    ?assertEqual(1, py:num_executors()),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ok = py:exec(P1, <<"import builtins\nbuiltins.ctx_marker = 1\n">>),
    ?assertEqual({ok, 1}, py:eval(P1, <<"ctx_marker">>)),
    ?assertMatch({error, {'NameError', _}}, py:eval(P2, <<"ctx_marker">>)),
    ?assertEqual({ok, Pids}, py:start_contexts(#{mode => owngil})),
    ?assertEqual({error, {already_started, subinterp}}, py:start_contexts(#{mode => worker})),
    ok = py:stop_contexts(),
    ok = application:set_env(erlang_python, context_mode, owngil),
    {ok, _} = py:start_contexts(#{contexts => 1}),
    ?assertEqual(subinterp, py:execution_mode()),
    ?assertEqual({ok, 5}, py:call(operator, add, [2, 3])),
    ok = application:unset_env(erlang_python, context_mode),
    ok = py:stop_contexts(),
    {ok, _} = py:start_contexts(),
    ?assertEqual(multi_executor, py:execution_mode()),
    ?assertEqual(py_context_router:count(), py:num_executors()).

%% A named pool in a sub-interpreter mode from the `pools' app env; routes reach it.
mode_pools_and_routes(_) ->
    ok = application:set_env(erlang_python, pools, [{io, 2}, {subpool, 2, #{mode => owngil}}]),
    ok = py:stop_contexts(),
    {ok, _} = py:start_contexts(),
    ?assertEqual(multi_executor, py:execution_mode()),
    ?assertEqual(own_gil, py_context_router:mode(subpool)),
    ?assertEqual(main, py_context_router:mode(io)),
    Probe = <<"'route_marker' in __import__('builtins').__dict__">>,
    ok = py:exec(<<"import builtins\nbuiltins.route_marker = 1\n">>),
    ?assertEqual({ok, true}, py:call(builtins, eval, [Probe])),
    ?assertEqual({ok, false}, py:call(subpool, builtins, eval, [Probe])),
    ok = py:register_pool(subpool, {builtins, eval}),
    ?assertEqual({ok, false}, py:call(builtins, eval, [Probe])),
    ok = py:unregister_pool({builtins, eval}),
    ?assertEqual({ok, true}, py:call(builtins, eval, [Probe])),
    %% A context of the mode pool that crashes comes back in the same mode.
    {ok, {_, Ctx, _}} = py_context_router:by_index(subpool, 1),
    ok = py_nif:context_panic(Ctx),
    ?assertMatch({ok, false},
                 poll(fun() -> py:call(subpool, builtins, eval, [Probe]) end,
                      fun(R) -> R =:= {ok, false} end)),
    ?assertEqual(own_gil, py_context_router:mode(subpool)).

%% `reload/1', `activate_venv/1' and `deactivate_venv/0' change every interpreter that
%% runs contexts: the main one (default pool) and each context of an own-GIL pool.
changes_reach_every_interpreter(Config) ->
    ok = application:set_env(erlang_python, pools, [{subpool, 2, #{mode => owngil}}]),
    ok = py:stop_contexts(),
    {ok, _} = py:start_contexts(),
    Dir = filename:join(?config(priv_dir, Config), "reach"),
    ok = filelib:ensure_path(Dir),
    Source = filename:join(Dir, "reach_mod.py"),
    ok = file:write_file(Source, <<"VALUE = 1\n">>),
    AddPath = <<"import sys\nsys.path.insert(0, d) if d not in sys.path else None\n">>,
    Contexts = [py:context(1) | [Pid || I <- [1, 2], {ok, {Pid, _, _}} <- [py_context_router:by_index(subpool, I)]]],
    ?assertEqual(3, length(Contexts)),
    Value = fun(Ctx) ->
                    ok = py:exec(Ctx, <<"d = '", (list_to_binary(Dir))/binary, "'\n", AddPath/binary>>),
                    py:eval(Ctx, <<"__import__('reach_mod').VALUE">>)
            end,
    ?assertEqual([{ok, 1}, {ok, 1}, {ok, 1}], [Value(C) || C <- Contexts]),
    %% A new mtime and size, so that the import system does not reuse the cached bytecode.
    ok = file:write_file(Source, <<"VALUE = 22\n">>),
    ok = py:reload(reach_mod),
    ?assertEqual([{ok, 22}, {ok, 22}, {ok, 22}], [Value(C) || C <- Contexts]),
    %% A venv (a directory with a site-packages) goes first on every `sys.path'.
    {Venv, SitePackages} = make_venv(Dir),
    First = <<"__import__('sys').path[0]">>,
    ok = py:activate_venv(Venv),
    Expected = {ok, list_to_binary(SitePackages)},
    ?assertEqual([Expected, Expected, Expected], [py:eval(C, First) || C <- Contexts]),
    ok = py:deactivate_venv(),
    ?assertEqual([true, true, true], [py:eval(C, First) =/= Expected || C <- Contexts]).

%% A venv activated and logging configured before a sub-interpreter context starts: the
%% context starts with them, as the interpreters running at the time of the change do;
%% a venv deactivated later is gone from contexts started after that.
later_contexts_make_the_changes(Config) ->
    {Venv, SitePackages} = make_venv(filename:join(?config(priv_dir, Config), "later")),
    First = <<"__import__('sys').path[0]">>,
    Later = fun() ->
                    ok = application:set_env(erlang_python, pools, [{later, 1, #{mode => owngil}}]),
                    ok = py:stop_contexts(),
                    {ok, _} = py:start_contexts(),
                    {ok, {Pid, _, _}} = py_context_router:by_index(later, 1),
                    Pid
            end,
    #{level := PrimaryLevel} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(later_probe, ?MODULE, #{config => #{pid => self()}}),
    try
        ok = py:activate_venv(Venv),
        ok = py:configure_logging(#{level => info, format => "later:%(message)s"}),
        Ctx = Later(),
        ?assertEqual({ok, list_to_binary(SitePackages)}, py:eval(Ctx, First)),
        ok = py:exec(Ctx, <<"import logging\nlogging.getLogger('later').info('hello')">>),
        ?assertEqual(<<"later:hello">>, receive {later_log, Text} -> Text after 5000 -> timeout end),
        ok = py:deactivate_venv(),
        Ctx2 = Later(),
        ?assertNotEqual({ok, list_to_binary(SitePackages)}, py:eval(Ctx2, First))
    after
        logger:remove_handler(later_probe),
        logger:set_primary_config(level, PrimaryLevel),
        %% The main interpreter as the suites after this one expect it (the test venv
        %% active), and their sub-interpreter contexts as the app env says.
        py:activate_venv(py_test_lib:venv()),
        persistent_term:erase({py_interp_changes, changes})
    end.

%% logger handler callback: Python records of the `later' logger to the test process.
log(#{msg := {"~ts", [Text]}, meta := #{python_logger := <<"later">>}}, #{config := #{pid := Pid}}) ->
    Pid ! {later_log, Text},
    ok;
log(_, _) ->
    ok.

%% A sub-interpreter ends only once its non-daemon threads have. A context whose Python
%% started one that outlives it: the stop returns after its bounded wait (4 s) with a
%% warning that says why, contexts started next serve at once, and the old context's
%% thread ends when the Python thread does.
lingering_thread_does_not_hold_a_stop(_) ->
    ok = application:set_env(erlang_python, pools, [{lingering, 1, #{mode => owngil}}]),
    ok = py:stop_contexts(),
    {ok, _} = py:start_contexts(),
    {ok, {Old, _, _}} = py_context_router:by_index(lingering, 1),
    {ok, OldTid} = py:call(Old, threading, get_native_id, []),
    ok = py:exec(Old, <<"import threading, time\n"
                        "threading.Thread(target=time.sleep, args=(7,)).start()\n">>),
    Started = erlang:monotonic_time(millisecond),
    ok = py:stop_contexts(),
    Waited = erlang:monotonic_time(millisecond) - Started,
    ct:log("stop took ~b ms", [Waited]),
    ?assert(Waited < 6000),
    {ok, _} = py:start_contexts(),
    ?assertEqual({ok, 3}, py:call(lingering, operator, add, [1, 2])),
    ?assertEqual([OldTid], py_test_lib:wait_for_threads_exit([OldTid], 0)),
    %% The Python thread sleeps 7 s from about the start of the stop.
    ?assertEqual([], py_test_lib:wait_for_threads_exit([OldTid], 100)).

%%% ---------------------------------------------------------------------------
%%% Helpers

%% The least `activate_venv/1' takes for a venv, under `Dir': `{Venv, SitePackages}'.
make_venv(Dir) ->
    Venv = filename:join(Dir, "venv"),
    {ok, [Minor]} = py:eval(<<"[__import__('sys').version_info[1]]">>),
    SitePackages = filename:join([Venv, "lib", "python3." ++ integer_to_list(Minor), "site-packages"]),
    ok = filelib:ensure_path(SitePackages),
    ok = file:write_file(filename:join(Venv, "pyvenv.cfg"), <<"home = /usr/bin\n">>),
    {Venv, SitePackages}.

%% The minor version of the leg's CPython: its venv's `pyvenv.cfg', else `python3'.
leg_minor() ->
    Cfg = filename:join(py_test_lib:venv(), "pyvenv.cfg"),
    Text = case file:read_file(Cfg) of
               {ok, Bin} -> Bin;
               {error, _} -> list_to_binary(os:cmd("python3 -c 'import sys; print(\"version =\", sys.version.split()[0])'"))
           end,
    {match, [Minor]} = re:run(Text, "^version\\s*=\\s*3\\.(\\d+)", [multiline, {capture, all_but_first, list}]),
    list_to_integer(Minor).

%% Call `Fun' until its answer is `Expected' (or satisfies it, a predicate), 10 s at most.
poll(Fun, Expected) ->
    poll(Fun, Expected, 100).

poll(Fun, Expected, Tries) ->
    Answer = Fun(),
    Done = case is_function(Expected, 1) of
               true -> Expected(Answer);
               false -> Answer =:= Expected
           end,
    case Done orelse Tries =:= 0 of
        true -> Answer;
        false -> timer:sleep(100), poll(Fun, Expected, Tries - 1)
    end.

%% Those of the OS threads `Tids' still alive after at most 10 s.
wait_for_exit(Tids) ->
    py_test_lib:wait_for_threads_exit(Tids, 100).
