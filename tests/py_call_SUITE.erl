%%% @doc The core `py' API end to end: call shapes, eval, exec, cast, spawn_call/await,
%%% py refs, contexts, and the error shapes of the contract.
-module(py_call_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, init_per_testcase/2]).
-export([call_basic/1, call_name_types/1, call_kwargs/1, call_on_context/1,
         call_on_pool/1, call_with_timeout/1, call_opts_map/1, call_dotted_name/1,
         eval_basic/1, eval_locals_are_local/1, eval_statement_is_error/1,
         eval_code_types/1, eval_on_context/1, exec_then_call/1, exec_then_eval/1,
         namespaces_are_per_process/1, erlang_module_prebound/1,
         cast_runs/1, cast_sees_namespace/1, spawn_call_await/1,
         spawn_call_sees_namespace/1, spawn_call_error/1, await_timeout/1,
         unknown_module/1, unknown_function/1, unknown_main_function/1,
         bad_argument_types/1, python_type_error/1, non_ascii_exception/1,
         unsupported_terms/1, deep_nesting/1, unhashable_key/1, huge_terms/1,
         improper_lists/1, version/1, contexts/1, contexts_taken_in_turn/1, get_local_env/1, execution_mode/1,
         py_refs/1, py_ref_errors/1, py_ref_released/1]).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [call_basic, call_name_types, call_kwargs, call_on_context, call_on_pool,
     call_with_timeout, call_opts_map, call_dotted_name,
     eval_basic, eval_locals_are_local, eval_statement_is_error, eval_code_types,
     eval_on_context, exec_then_call, exec_then_eval, namespaces_are_per_process,
     erlang_module_prebound, cast_runs, cast_sees_namespace, spawn_call_await,
     spawn_call_sees_namespace, spawn_call_error, await_timeout,
     unknown_module, unknown_function, unknown_main_function, bad_argument_types,
     python_type_error, non_ascii_exception, unsupported_terms, deep_nesting,
     unhashable_key, huge_terms, improper_lists, version, contexts, contexts_taken_in_turn, get_local_env,
     execution_mode,
     py_refs, py_ref_errors, py_ref_released].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    {ok, none} = py:call(py_api_helpers, clear, []),
    Config.

%% Run Fun in a fresh process (a fresh namespace) and return its result.
in_new_process(Fun) ->
    {Pid, Mon} = spawn_monitor(fun() -> exit({result, Fun()}) end),
    receive {'DOWN', Mon, process, Pid, {result, R}} -> R end.


call_basic(_) ->
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    ?assertEqual({ok, 4.0}, py:call(math, sqrt, [16])),
    ?assertEqual({ok, <<"[1, 2]">>}, py:call(json, dumps, [[1, 2]])),
    ?assertEqual({ok, 0}, py:call(builtins, len, [[]])).

call_name_types(_) ->
    ?assertEqual({ok, 3}, py:call(<<"operator">>, <<"add">>, [1, 2])),
    ?assertEqual({ok, 3}, py:call("operator", "add", [1, 2])),
    ?assertEqual({ok, 3}, py:call(operator, "add", [1, 2])),
    ?assertEqual({ok, <<"a/b">>}, py:call('os.path', join, [<<"a">>, <<"b">>])),
    ?assertEqual({ok, <<"a/b">>}, py:call(<<"os.path">>, <<"join">>, [<<"a">>, <<"b">>])).

call_kwargs(_) ->
    ?assertEqual({ok, 6}, py:call(py_api_helpers, kw, [1], #{b => 2, scale => 2})),
    ?assertEqual({ok, 6}, py:call(py_api_helpers, kw, [1], #{<<"b">> => 2, "scale" => 2})),
    ?assertEqual({ok, <<"{\n  \"a\": 1\n}">>}, py:call(json, dumps, [#{a => 1}], #{indent => 2})),
    ?assertMatch({error, {'TypeError', _}}, py:call(py_api_helpers, kw, [1], #{nope => 1})).

call_on_context(_) ->
    Ctx = py:context(1),
    ?assert(is_pid(Ctx)),
    ?assertEqual({ok, 3}, py:call(Ctx, operator, add, [1, 2])),
    ?assertEqual({ok, 6}, py:call(Ctx, py_api_helpers, kw, [1], #{kwargs => #{b => 2, scale => 2}})),
    ?assertEqual({error, {badarg, context}}, py:call(self(), operator, add, [1, 2])).

call_on_pool(_) ->
    ?assertEqual({ok, 3}, py:call(default, operator, add, [1, 2])),
    ?assertEqual({ok, 6}, py:call(default, py_api_helpers, kw, [1], #{b => 2, scale => 2})),
    ?assertEqual({ok, 3}, py:call(io, operator, add, [1, 2])),
    ?assertEqual({ok, 6}, py:call(io, py_api_helpers, kw, [1], #{b => 2, scale => 2})),
    ?assertEqual({error, {unknown_pool, nopool}}, py:call(nopool, operator, add, [1, 2])),
    %% The io pool runs on threads of its own.
    {ok, IoThread} = py:call(io, threading, get_ident, []),
    {ok, DefaultThread} = py:call(default, threading, get_ident, []),
    ?assertNotEqual(IoThread, DefaultThread),
    %% Routes send a module, or one function (which wins), to a pool.
    ok = py:register_pool(io, threading),
    ?assertEqual({ok, IoThread}, py:call(threading, get_ident, [])),
    ok = py:register_pool(default, {threading, get_ident}),
    ?assertEqual({ok, DefaultThread}, py:call(threading, get_ident, [])),
    ok = py:unregister_pool({threading, get_ident}),
    ?assertEqual({ok, IoThread}, py:call(threading, get_ident, [])),
    ok = py:unregister_pool(threading),
    ?assertEqual({ok, DefaultThread}, py:call(threading, get_ident, [])),
    ?assertEqual({error, {unknown_pool, nopool}}, py:register_pool(nopool, math)),
    %% Routes registered at once are all kept.
    Parent = self(),
    Mods = [list_to_atom("py_call_route_" ++ integer_to_list(I)) || I <- lists:seq(1, 20)],
    Pids = [spawn_link(fun() -> Parent ! {self(), py:register_pool(io, M)} end) || M <- Mods],
    ?assertEqual([ok || _ <- Pids], [receive {P, R} -> R end || P <- Pids]),
    Routes = persistent_term:get({py_context_router, routes}),
    ?assertEqual([io || _ <- Mods], [maps:get(M, Routes) || M <- Mods]),
    [ok = py:unregister_pool(M) || M <- Mods],
    %% Routes do not outlive the application.
    ok = py:register_pool(io, threading),
    ok = application:stop(erlang_python),
    ok = py_test_lib:start(),
    ?assertEqual(error, maps:find(threading, persistent_term:get({py_context_router, routes}, #{}))),
    ?assertEqual(py:call(default, threading, get_ident, []), py:call(threading, get_ident, [])).

call_with_timeout(_) ->
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2], #{}, 5000)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2], #{}, infinity)),
    ?assertEqual({error, timeout}, py:call(py_api_helpers, sleep_then, [0.5, 1], #{}, 50)),
    ?assertEqual({error, {badarg, timeout}}, py:call(operator, add, [1, 2], #{}, -1)),
    %% Past what `receive ... after' takes: refused before anything is queued.
    ?assertEqual({error, {badarg, timeout}}, py:call(operator, add, [1, 2], #{}, 16#100000000)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2], #{}, 16#FFFFFFFF)),
    timer:sleep(600),
    ?assertEqual({messages, []}, process_info(self(), messages)).

call_opts_map(_) ->
    Ctx = py:context(),
    ?assertEqual({error, timeout},
                 py:call(Ctx, py_api_helpers, sleep_then, [0.5, 1], #{timeout => 50})),
    ?assertEqual({ok, 7}, py:call(Ctx, operator, add, [3, 4], #{return => term})).

call_dotted_name(_) ->
    ?assertEqual({ok, <<"x">>}, py:call(builtins, 'str.lower', [<<"X">>])),
    ?assertEqual({ok, 5}, py:call(py_api_helpers, 'Counter.incr', [py_ref_counter(), 5])).

py_ref_counter() ->
    {ok, Ref} = py:call(py:context(), py_api_helpers, 'Counter', [], #{return => ref}),
    Ref.

eval_basic(_) ->
    ?assertEqual({ok, 3}, py:eval(<<"1 + 2">>)),
    ?assertEqual({ok, 42}, py:eval(<<"x * 2">>, #{x => 21})),
    ?assertEqual({ok, [2, 4]}, py:eval(<<"[a * i for i in b]">>, #{a => 2, b => [1, 2]})),
    ?assertEqual({ok, 3}, py:eval(<<"(lambda: x + 1)()">>, #{x => 2})),
    ?assertEqual({ok, 10}, py:eval(<<"x + y">>, #{x => 4, y => 6}, 5000)),
    ?assertEqual({error, timeout}, py:eval(<<"__import__('time').sleep(0.3)">>, #{}, 30)).

eval_locals_are_local(_) ->
    ?assertEqual({ok, 5}, py:eval(<<"only_here">>, #{only_here => 5})),
    ?assertEqual({error, {'NameError', "name 'only_here' is not defined"}}, py:eval(<<"only_here">>)).

eval_statement_is_error(_) ->
    ?assertMatch({error, {'SyntaxError', _}}, py:eval(<<"x = 1">>)),
    ?assertMatch({error, {'SyntaxError', _}}, py:eval(<<"import os">>)),
    ?assertMatch({error, {'SyntaxError', _}}, py:exec(<<"def f(:">>)).

eval_code_types(_) ->
    ?assertEqual({ok, 3}, py:eval("1 + 2")),
    ?assertEqual({ok, 3}, py:eval([<<"1 ">>, "+", [<<" 2">>]])),
    ?assertEqual({ok, <<"é"/utf8>>}, py:eval(<<"'é'"/utf8>>)),
    ?assertEqual({ok, <<"é"/utf8>>}, py:eval("'é'")),
    ?assertEqual({error, {badarg, code}}, py:eval(not_code)),
    ?assertEqual({error, {badarg, locals}}, py:eval(<<"1">>, [not_a_map])).

eval_on_context(_) ->
    Ctx = py:context(),
    ok = py:exec(Ctx, <<"ctx_value = 11">>),
    ?assertEqual({ok, 11}, py:eval(Ctx, <<"ctx_value">>)),
    ?assertEqual({ok, 12}, py:eval(Ctx, <<"ctx_value + y">>, #{y => 1})).

exec_then_call(_) ->
    ok = py:exec(<<"def double(x):\n    return x * 2\n">>),
    ?assertEqual({ok, 42}, py:call('__main__', double, [21])),
    ?assertEqual({ok, 42}, py:call(<<"__main__">>, <<"double">>, [21])).

exec_then_eval(_) ->
    ok = py:exec("counter = 1"),
    ok = py:exec("counter += 1"),
    ?assertEqual({ok, 2}, py:eval(<<"counter">>)).

namespaces_are_per_process(_) ->
    ok = py:exec(<<"mine = 'parent'">>),
    Child = in_new_process(fun() ->
                                   Before = py:eval(<<"mine">>),
                                   ok = py:exec(<<"mine = 'child'">>),
                                   {Before, py:eval(<<"mine">>)}
                           end),
    ?assertMatch({{error, {'NameError', _}}, {ok, <<"child">>}}, Child),
    ?assertEqual({ok, <<"parent">>}, py:eval(<<"mine">>)).

erlang_module_prebound(_) ->
    ?assertEqual({ok, <<"module">>}, py:eval(<<"type(erlang).__name__">>)),
    ?assertEqual({ok, true}, py:eval(<<"isinstance(erlang.atom('x'), str)">>)).

cast_runs(_) ->
    ?assertEqual(ok, py:cast(py_api_helpers, record, [1])),
    ?assertEqual(ok, py:cast(py_api_helpers, record, [], #{value => 2})),
    ?assertEqual(ok, py:cast(py:context(), py_api_helpers, record, [3])),
    ?assertEqual(ok, py:cast(py:context(), py_api_helpers, record, [], #{value => 4})),
    ?assert(py_test_lib:wait_until(fun() ->
                               {ok, L} = py:call(py_api_helpers, recorded, []),
                               lists:sort(L) =:= [1, 2, 3, 4]
                       end, 2000)).

cast_sees_namespace(_) ->
    ok = py:exec(<<"from py_api_helpers import record\ndef remember(x):\n    record(('ns', x))\n">>),
    ok = py:cast('__main__', remember, [7]),
    ?assert(py_test_lib:wait_until(fun() ->
                               py:call(py_api_helpers, recorded, []) =:= {ok, [{<<"ns">>, 7}]}
                       end, 2000)).

spawn_call_await(_) ->
    Ref = py:spawn_call(operator, mul, [6, 7]),
    ?assert(is_reference(Ref)),
    ?assertEqual({ok, 42}, py:await(Ref)),
    Refs = [py:spawn_call(operator, add, [I, I]) || I <- lists:seq(1, 50)],
    ?assertEqual([{ok, 2 * I} || I <- lists:seq(1, 50)], [py:await(R, 5000) || R <- Refs]),
    ?assertEqual({ok, 6}, py:await(py:spawn_call(py_api_helpers, kw, [1], #{b => 2, scale => 2}))),
    ?assertEqual({ok, 3}, py:await(py:spawn_call(py:context(), operator, add, [1, 2]))),
    ?assertEqual({ok, 6},
                 py:await(py:spawn_call(py:context(), py_api_helpers, kw, [1], #{b => 2, scale => 2}))).

spawn_call_sees_namespace(_) ->
    ok = py:exec(<<"def triple(x):\n    return 3 * x\n">>),
    ?assertEqual({ok, 9}, py:await(py:spawn_call('__main__', triple, [3]))).

spawn_call_error(_) ->
    ?assertMatch({error, {'ZeroDivisionError', _}},
                 py:await(py:spawn_call(operator, truediv, [1, 0]))),
    ?assertEqual({error, {badarg, kwargs}},
                 py:await(py:spawn_call(operator, add, [1, 2], not_a_map))).

await_timeout(_) ->
    Ref = py:spawn_call(py_api_helpers, sleep_then, [0.4, late]),
    ?assertEqual({error, timeout}, py:await(Ref, 50)),
    timer:sleep(600),
    ?assertEqual({messages, []}, process_info(self(), messages)).

unknown_module(_) ->
    ?assertEqual({error, {'ModuleNotFoundError', "No module named 'no_such_module'"}},
                 py:call(no_such_module, f, [])).

unknown_function(_) ->
    ?assertEqual({error, {'AttributeError', "module 'math' has no attribute 'nope'"}},
                 py:call(math, nope, [])).

unknown_main_function(_) ->
    ?assertEqual({error, {'NameError', "name 'never_defined' is not defined"}},
                 in_new_process(fun() -> py:call('__main__', never_defined, []) end)).

bad_argument_types(_) ->
    ?assertEqual({error, {badarg, args}}, py:call(operator, add, not_a_list)),
    ?assertEqual({error, {badarg, args}}, py:call(operator, add, {1, 2})),
    ?assertEqual({error, {badarg, module}}, py:call({not_a, name}, add, [1])),
    ?assertEqual({error, {badarg, function}}, py:call(operator, 42, [1])),
    ?assertEqual({error, {badarg, kwargs}}, py:call(operator, add, [1, 2], [x], 1000)),
    ?assertEqual({error, {badarg, py_ref}}, py:call_method(make_ref(), foo, [])),
    %% The context keeps serving after each of these.
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% Improper lists wherever a list may come: an error answer, and the same contexts keep
%% serving (rustler's list decoding panics at an improper tail, which ended a context).
improper_lists(_) ->
    Contexts = py_context_router:pids(),
    ?assertEqual({error, {badarg, args}}, py:call(operator, add, [1 | 2])),
    ?assertEqual({error, {unsupported_term, [1 | 2]}}, py:call(operator, add, [[1 | 2], 1])),
    ?assertEqual({error, {badarg, module}}, py:call([$o | $p], add, [1, 2])),
    ?assertEqual({error, {badarg, function}}, py:call(operator, [$a | $d], [1, 2])),
    ?assertEqual({error, {unsupported_term, [1 | 2]}}, py:call(builtins, dict, [], #{a => [1 | 2]})),
    ?assertEqual({error, {unsupported_term, [1 | 2]}}, py:eval(<<"x">>, #{x => [1 | 2]})),
    %% An improper iolist is still iodata.
    ?assertEqual({ok, 2}, py:eval([<<"1+">> | <<"1">>])),
    ?assertEqual({error, {badarg, args}}, py:await(py:spawn_call(operator, add, [1 | 2]))),
    ?assertEqual({error, {badarg, args}}, py:async_await(py:async_call(operator, add, [1 | 2]))),
    ?assertEqual({error, {badarg, calls}}, py:async_gather([{operator, add, [1, 2]} | x])),
    ?assertEqual({error, {badarg, args}}, py:async_gather([{operator, add, [1 | 2]}])),
    ?assertEqual({error, {badarg, args}}, py:stream(builtins, range, [1 | 2])),
    ?assertEqual(ok, py:cast(operator, add, [1 | 2])),
    [?assertEqual({ok, 3}, py:call(operator, add, [1, 2])) || _ <- Contexts],
    ?assertEqual(Contexts, py_context_router:pids()).

python_type_error(_) ->
    ?assertMatch({error, {'TypeError', "must be real number, not str"}},
                 py:call(math, sqrt, [<<"x">>])),
    ?assertMatch({error, {'TypeError', _}}, py:call(operator, add, [1, <<"a">>])).

non_ascii_exception(_) ->
    Expected = {error, {'ValueError', unicode:characters_to_list(<<"héllo wörld ✓ 😀"/utf8>>)}},
    ?assertEqual(Expected, py:call(py_api_helpers, raise_value_error, [<<"héllo wörld ✓ 😀"/utf8>>])),
    ?assertEqual(Expected, py:eval(<<"(_ for _ in ()).throw(ValueError('héllo wörld ✓ 😀'))"/utf8>>)).

unsupported_terms(_) ->
    Fun = fun() -> ok end,
    ?assertEqual({error, {unsupported_term, Fun}}, py:call(py_api_helpers, identity, [Fun])),
    Port = open_port({spawn, "true"}, []),
    ?assertEqual({error, {unsupported_term, Port}}, py:call(py_api_helpers, identity, [[1, #{k => Port}]])),
    catch port_close(Port),
    Bits = <<1:3>>,
    ?assertEqual({error, {unsupported_term, Bits}}, py:call(py_api_helpers, identity, [Bits])),
    Improper = [1 | 2],
    ?assertEqual({error, {unsupported_term, Improper}}, py:call(py_api_helpers, identity, [Improper])),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

deep_nesting(_) ->
    Deep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 10000)),
    ?assertEqual({ok, Deep}, py:call(py_api_helpers, identity, [Deep])),
    TooDeep = lists:foldl(fun(_, Acc) -> [Acc] end, [], lists:seq(1, 100000)),
    %% 20,000 levels: the `max_nesting' default.
    ?assertEqual({error, {nesting_too_deep, 20000}}, py:call(py_api_helpers, identity, [TooDeep])),
    DeepTuple = lists:foldl(fun(_, Acc) -> {Acc} end, {}, lists:seq(1, 100000)),
    ?assertEqual({error, {nesting_too_deep, 20000}}, py:call(py_api_helpers, identity, [DeepTuple])),
    ?assertEqual({error, {nesting_too_deep, 20000}},
                 py:eval(<<"__import__('functools').reduce(lambda a, _: [a], range(100000), [])">>)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

huge_terms(_) ->
    Million = lists:seq(1, 1000000),
    ?assertEqual({ok, Million}, py:call(py_api_helpers, identity, [Million])),
    %% Maps past 32 keys are hash tries in Erlang: built key by key in replies before OTP 27
    %% (OTP 25's enif_make_map_from_arrays crashed the VM for them outside a process), from
    %% arrays from OTP 27 on; the otp27 leg of `make test-all' runs this there.
    BigMap = maps:from_list([{I, integer_to_binary(I)} || I <- lists:seq(1, 100000)]),
    ?assertEqual({ok, BigMap}, py:call(py_api_helpers, identity, [BigMap])),
    [?assertEqual({ok, maps:from_list([{I, I} || I <- lists:seq(0, N - 1)])},
                  py:eval(<<"{i: i for i in range(n)}">>, #{n => N}))
     || N <- [32, 33, 64, 1000]],
    Blob = binary:copy(<<255, 0>>, 8 * 1024 * 1024),
    ?assertEqual({ok, byte_size(Blob)}, py:call(builtins, len, [Blob])),
    ?assertEqual({ok, Blob}, py:call(py_api_helpers, identity, [Blob])).

unhashable_key(_) ->
    ?assertEqual({error, {'TypeError', "unhashable type: 'list'"}},
                 py:call(py_api_helpers, identity, [#{[1] => a}])).

version(_) ->
    {ok, Version} = py:version(),
    {ok, Expected} = py:eval(<<"__import__('sys').version">>),
    ?assertEqual(Expected, Version),
    ?assertMatch(<<"3.", _/binary>>, Version).

%% What `execution_mode/0' says of the default contexts this run started (the subinterp
%% leg of the test matrix starts them in sub-interpreters), and `num_executors/0' of N.
expected_mode() ->
    case py_test_lib:context_mode_env() of
        [] -> multi_executor;
        [{context_mode, _}] -> subinterp
    end.

expected_executors(N) ->
    case expected_mode() of
        multi_executor -> N;
        subinterp -> 1
    end.

contexts(_) ->
    ?assert(py:contexts_started()),
    N = erlang:system_info(schedulers_online),
    ?assertEqual(expected_executors(N), py:num_executors()),
    {ok, Pids} = py:start_contexts(),
    ?assertEqual(N, length(Pids)),
    ?assertEqual(Pids, [py:context(I) || I <- lists:seq(1, N)]),
    ?assert(lists:member(py:context(), Pids)),
    ?assertEqual(py:context(), py:context()),
    ok = py:stop_contexts(),
    ?assertNot(py:contexts_started()),
    ?assertEqual({error, contexts_not_started}, py:call(operator, add, [1, 2])),
    %% Sub-interpreter contexts need CPython 3.12+ (py_subinterp_api_SUITE drives them).
    case py:subinterp_supported() of
        false ->
            ?assertEqual({error, {unsupported_mode, subinterp}},
                         py:start_contexts(#{mode => subinterp}));
        true ->
            {ok, [_]} = py:start_contexts(#{mode => subinterp, contexts => 1}),
            ?assertEqual(subinterp, py:execution_mode()),
            ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
            ok = py:stop_contexts()
    end,
    {ok, Three} = py:start_contexts(#{contexts => 3}),
    ?assertEqual(3, length(Three)),
    ?assertEqual(expected_executors(3), py:num_executors()),
    ?assertEqual([{ok, 5} || _ <- Three], [py:call(C, operator, add, [2, 3]) || C <- Three]),
    ok = py:stop_contexts(),
    %% Many processes starting at once: one starts them, all get the same contexts.
    Parent = self(),
    Starters = [spawn_link(fun() -> Parent ! {self(), py:start_contexts()} end) || _ <- lists:seq(1, 10)],
    [{ok, Again} | Others] = [receive {S, R} -> R end || S <- Starters],
    ?assertEqual([{ok, Again} || _ <- Others], Others),
    ?assertEqual(N, length(Again)),
    ?assertEqual(Again, [py:context(I) || I <- lists:seq(1, N)]),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    %% The default count is the app env's `num_contexts' when set.
    ok = application:set_env(erlang_python, num_contexts, 1),
    try
        ok = py:stop_contexts(),
        {ok, One} = py:start_contexts(),
        ?assertEqual(1, length(One))
    after
        application:unset_env(erlang_python, num_contexts),
        ok = py:stop_contexts(),
        {ok, _} = py:start_contexts()
    end,
    ?assertEqual(expected_executors(N), py:num_executors()).

%% Processes spawned together (on one scheduler) take the contexts in turn: 3 per context.
contexts_taken_in_turn(_) ->
    N = py_context_router:count(),
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {self(), py:context()} end) || _ <- lists:seq(1, 3 * N)],
    Chosen = [receive {P, Ctx} -> Ctx end || P <- Pids],
    ?assertEqual([{C, 3} || C <- lists:sort(py_context_router:pids())],
                 lists:sort(maps:to_list(lists:foldl(fun(C, Acc) -> maps:update_with(C, fun(K) -> K + 1 end, 1, Acc) end,
                                                     #{}, Chosen)))).

get_local_env(_) ->
    Ctx = py:context(),
    Env = py:get_local_env(Ctx),
    ?assert(is_reference(Env)),
    ?assertEqual(Env, py:get_local_env(Ctx)).

execution_mode(_) ->
    ?assertEqual(expected_mode(), py:execution_mode()).

py_refs(_) ->
    Ctx = py:context(),
    {ok, Ref} = py:call(Ctx, builtins, list, [[1, 2, 3]], #{return => ref}),
    ?assert(py:is_ref(Ref)),
    ?assertNot(py:is_ref(make_ref())),
    ?assertNot(py:is_ref(42)),
    ?assertEqual({ok, 3}, py:call_method(Ref, '__len__', [])),
    ?assertEqual({ok, none}, py:call_method(Ref, append, [4])),
    ?assertEqual({ok, [1, 2, 3, 4]}, py:to_term(Ref)),
    {ok, Counter} = py:call(Ctx, py_api_helpers, 'Counter', [10], #{return => ref}),
    ?assertEqual({ok, 10}, py:getattr(Counter, value)),
    ?assertEqual({ok, 12}, py:call_method(Counter, incr, [2])),
    ?assertEqual({ok, 12}, py:getattr(Counter, <<"value">>)),
    %% A py ref given as an argument is the Python object itself.
    ?assertEqual({ok, 4}, py:call(builtins, len, [Ref])),
    %% Refs work from another process too.
    ?assertEqual({ok, 13}, in_new_process(fun() -> py:call_method(Counter, incr, []) end)).

py_ref_errors(_) ->
    {ok, Ref} = py:call(py:context(), builtins, object, [], #{return => ref}),
    ?assertMatch({error, {'AttributeError', _}}, py:getattr(Ref, nope)),
    ?assertMatch({error, {'AttributeError', _}}, py:call_method(Ref, nope, [])),
    ?assertMatch({ok, <<"<object object at ", _/binary>>}, py:to_term(Ref)),
    ?assertEqual({error, {badarg, py_ref}}, py:getattr(not_a_ref, x)).

py_ref_released(_) ->
    Ctx = py:context(),
    in_new_process(fun() ->
                           {ok, R} = py:call(Ctx, py_api_helpers, 'FreedProbe', [<<"ref">>],
                                             #{return => ref}),
                           true = py:is_ref(R)
                   end),
    erlang:garbage_collect(),
    ?assert(py_test_lib:wait_until(fun() ->
                               erlang:garbage_collect(),
                               py:call(Ctx, py_api_helpers, freed_tags, []) =:= {ok, [<<"ref">>]}
                       end, 3000)).
