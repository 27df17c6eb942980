%%% @doc The Erlang process layout: stream controllers under `py_stream_sup', callback
%%% runners linked `proc_lib' processes, context start/stop and route changes serialised
%%% by `py_context_manager', each ETS table owned by the process of the module that uses
%%% it (and what a restart of that process does to it), and `py_request''s give-up path
%%% leaving nothing in the caller's mailbox.
-module(py_layout_erl_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([tree_has_new_children/1, controller_under_supervisor/1,
         controller_ends_with_owner/1, controller_refused_start/1, runner_is_linked_proc_lib/1,
         concurrent_start_stop_contexts/1, concurrent_route_changes/1, table_owners/1,
         stream_sup_restart_renews_index/1, zero_timeout_leaves_no_message/1,
         callback_timeout_leaves_no_message/1]).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [tree_has_new_children, controller_under_supervisor, controller_ends_with_owner,
     controller_refused_start, runner_is_linked_proc_lib, concurrent_start_stop_contexts,
     concurrent_route_changes, table_owners, zero_timeout_leaves_no_message,
     callback_timeout_leaves_no_message,
     %% Last: it restarts part of the tree.
     stream_sup_restart_renews_index].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

end_per_testcase(_Case, _Config) ->
    %% Every case leaves the contexts running for the next one.
    {ok, _} = py:start_contexts(),
    ok.

%%% ---------------------------------------------------------------------------
%%% Cases

tree_has_new_children(_) ->
    Ids = [Id || {Id, Pid, _, _} <- supervisor:which_children(erlang_python_sup), is_pid(Pid)],
    ?assertEqual([py_output, py_callbacks, py_stream_sup, py_context_sup, py_context_manager,
                  py_semaphore],
                 lists:reverse(Ids)).

%% A running stream's controller is a child of `py_stream_sup', started by `proc_lib',
%% and is gone from it once the stream is cancelled; one that runs to its end goes too.
controller_under_supervisor(_) ->
    Before = controllers(),
    {ok, Ref} = py:stream_start(itertools, count, [], #{window => 5}),
    [{Ref, Controller}] = ets:lookup(py_streams, Ref),
    ?assertEqual(lists:sort([Controller | Before]), controllers()),
    {dictionary, Dict} = process_info(Controller, dictionary),
    ?assertEqual({py_stream, init, 6}, proplists:get_value('$initial_call', Dict)),
    ?assertEqual(py_stream_sup, hd(proplists:get_value('$ancestors', Dict))),
    Mon = monitor(process, Controller),
    ok = py:stream_cancel(Ref),
    receive {'DOWN', Mon, process, Controller, normal} -> ok after 6000 -> ct:fail(still_running) end,
    ?assertEqual(Before, controllers()),
    ?assertEqual([], ets:lookup(py_streams, Ref)),
    flush_stream(Ref),

    %% A window of 1 holds the stream at its first item until this process reads it, so
    %% that it cannot end before its controller is looked up.
    {ok, Ref2} = py:stream_start(builtins, range, [3], #{window => 1}),
    [{Ref2, Controller2}] = ets:lookup(py_streams, Ref2),
    Mon2 = monitor(process, Controller2),
    ?assertEqual([{data, 0}, {data, 1}, {data, 2}, done], py_test_lib:stream_events(Ref2, 3000)),
    receive {'DOWN', Mon2, process, Controller2, normal} -> ok after 3000 -> ct:fail(still_running) end,
    ?assertEqual(Before, controllers()).

%% The owner's exit ends the stream and its controller.
controller_ends_with_owner(_) ->
    Before = controllers(),
    Self = self(),
    Owner = spawn(fun() -> receive stop -> ok end end),
    {ok, Ref} = py:stream_start(itertools, count, [], #{owner => Owner, window => 5}),
    [{Ref, Controller}] = ets:lookup(py_streams, Ref),
    ?assert(lists:member(Controller, controllers())),
    Mon = monitor(process, Controller),
    Owner ! stop,
    receive {'DOWN', Mon, process, Controller, normal} -> ok after 6000 -> ct:fail(still_running) end,
    ?assertEqual(Before, controllers()),
    ?assertEqual(Self, self()),
    ?assertEqual({messages, []}, process_info(self(), messages)).

%% A stream the context refuses (contexts stopped after routing) answers the refusal
%% and leaves no controller behind.
controller_refused_start(_) ->
    Before = controllers(),
    %% This process's namespace on the context exists before the context stops.
    {ok, 3} = py:call(operator, add, [1, 2]),
    {ok, Entry} = py_context_router:pick(),
    ok = py:stop_contexts(),
    ?assertMatch({error, _}, py_stream:start(Entry, builtins, range, [3], #{}, self(), 10)),
    ?assertEqual(Before, controllers()),
    ?assertEqual({messages, []}, process_info(self(), messages)).

%% An Erlang function called from a `cast' runs in a `proc_lib' process linked to
%% `py_callbacks', which outlives it.
runner_is_linked_proc_lib(_) ->
    Self = self(),
    ok = py:register_function(layout_runner_probe,
                              fun([Tag]) ->
                                      {links, Links} = process_info(self(), links),
                                      Self ! {Tag, self(), Links, get('$ancestors')},
                                      ok
                              end),
    try
        ok = py:cast(py_callback_helpers, call_back, [<<"layout_runner_probe">>, <<"probe">>]),
        receive
            {<<"probe">>, Runner, Links, Ancestors} ->
                Callbacks = whereis(py_callbacks),
                ?assertEqual([Callbacks], Links),
                ?assertEqual(py_callbacks, hd(Ancestors)),
                Mon = monitor(process, Runner),
                receive {'DOWN', Mon, process, Runner, _} -> ok after 3000 -> ct:fail(runner_stays) end,
                ?assertEqual(Callbacks, whereis(py_callbacks))
        after 5000 ->
            ct:fail(runner_never_ran)
        end
    after
        ok = py:unregister_function(layout_runner_probe)
    end.

%% Many processes starting and stopping contexts at once: every call answers, and the
%% end state is consistent, with the router's table, the supervisor's children and the
%% live processes agreeing.
concurrent_start_stop_contexts(_) ->
    Parent = self(),
    Workers = [spawn_link(fun() -> Parent ! {self(), churn(I, 6, [])} end) || I <- lists:seq(1, 16)],
    Answers = [receive {W, A} -> A after 120000 -> ct:fail(worker_stuck) end || W <- Workers],
    ?assertEqual([], [A || As <- Answers, A <- As, not acceptable(A)]),
    assert_consistent(),
    ok = py:stop_contexts(),
    ?assertEqual([], supervisor:which_children(py_context_sup)),
    ?assertEqual(0, py_context_router:count()),
    ?assertEqual([], py_context_router:pools()),
    ?assertEqual({error, contexts_not_started}, py:call(operator, add, [1, 2])),
    {ok, Pids} = py:start_contexts(#{contexts => 3}),
    ?assertEqual(3, length(Pids)),
    assert_consistent(),
    ok = py:stop_contexts(),
    {ok, _} = py:start_contexts(),
    assert_consistent().

churn(_I, 0, Acc) ->
    lists:reverse(Acc);
churn(I, N, Acc) ->
    A = case (I + N) rem 3 of
            0 -> py:stop_contexts();
            1 -> py:start_contexts(#{contexts => 1 + (I rem 3)});
            2 -> py:start_contexts()
        end,
    churn(I, N - 1, [A | Acc]).

acceptable(ok) -> true;
%% Pids a concurrent stop may have ended already: liveness is checked at the end.
acceptable({ok, Pids}) -> Pids =/= [] andalso lists:all(fun erlang:is_pid/1, Pids);
acceptable(_) -> false.

assert_consistent() ->
    Children = supervisor:which_children(py_context_sup),
    Pools = [default | py_context_router:pools()],
    Registered = [{Pool, I} || Pool <- Pools, I <- lists:seq(1, py_context_router:count(Pool))],
    ?assertEqual(lists:sort([{py_context, P, I} || {P, I} <- Registered]),
                 lists:sort([Id || {Id, _, _, _} <- Children])),
    ?assert(lists:all(fun({_, Pid, _, _}) -> is_pid(Pid) andalso is_process_alive(Pid) end, Children)),
    [begin
         {ok, {Pid, _, _}} = py_context_router:by_index(Pool, I),
         ?assert(lists:keymember(Pid, 2, Children)),
         ?assertEqual({ok, 3}, py:call(Pid, operator, add, [1, 2]))
     end || {Pool, I} <- Registered],
    ok.

%% Route changes from many processes at once: none is lost.
concurrent_route_changes(_) ->
    Parent = self(),
    Modules = [list_to_atom("layout_route_" ++ integer_to_list(I)) || I <- lists:seq(1, 40)],
    Workers = [spawn_link(fun() -> Parent ! {self(), py:register_pool(io, M)} end) || M <- Modules],
    ?assertEqual([ok || _ <- Workers],
                 [receive {W, A} -> A after 10000 -> timeout end || W <- Workers]),
    Routes = persistent_term:get({py_context_router, routes}),
    ?assertEqual([io || _ <- Modules], [maps:get(M, Routes, none) || M <- Modules]),
    Removers = [spawn_link(fun() -> Parent ! {self(), py:unregister_pool(M)} end) || M <- Modules],
    [receive {W, ok} -> ok after 10000 -> ct:fail(remove_stuck) end || W <- Removers],
    After = persistent_term:get({py_context_router, routes}, #{}),
    ?assertEqual([], [M || M <- Modules, maps:is_key(M, After)]),
    ?assertEqual({error, {unknown_pool, no_such_pool}}, py:register_pool(no_such_pool, layout_x)).

table_owners(_) ->
    ?assertEqual(whereis(py_callbacks), ets:info(py_functions, owner)),
    ?assertEqual(whereis(py_stream_sup), ets:info(py_streams, owner)),
    %% No heir: each table goes with its owner (see the modules' docs for why).
    ?assertEqual(none, ets:info(py_functions, heir)),
    ?assertEqual(none, ets:info(py_streams, heir)).

%% A zero timeout gives up at once: the answer is the reply when it was already on its
%% way, else `{error, timeout}', and no message is left behind either way.
zero_timeout_leaves_no_message(_) ->
    Answers = [py:call(operator, add, [1, 2], #{}, 0) || _ <- lists:seq(1, 300)],
    ?assertEqual([], [A || A <- Answers, A =/= {ok, 3}, A =/= {error, timeout}]),
    timer:sleep(200),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% A call whose Python code keeps calling Erlang and times out: callback requests sent
%% before the cancel are flushed with the rest.
callback_timeout_leaves_no_message(_) ->
    ok = py:register_function(layout_tick, fun([X]) -> X + 1 end),
    try
        Code = <<"[erlang.call('layout_tick', i) for i in range(2000000)]">>,
        [?assertEqual({error, timeout}, py:eval(Code, #{}, T)) || T <- [0, 1, 5, 20, 50]],
        timer:sleep(300),
        ?assertEqual({messages, []}, process_info(self(), messages)),
        ?assertEqual({ok, 2}, py:eval(<<"erlang.call('layout_tick', 1)">>))
    after
        ok = py:unregister_function(layout_tick)
    end.

%% The index of streams goes with its owner: a new `py_stream_sup' makes a new one, with
%% no stale entry, and a stream whose controller was killed with the old one is over.
stream_sup_restart_renews_index(_) ->
    {ok, Ref} = py:stream_start(itertools, count, [], #{window => 5}),
    [{Ref, Controller}] = ets:lookup(py_streams, Ref),
    OldSup = whereis(py_stream_sup),
    OldTable = ets:info(py_streams, id),
    Mon = monitor(process, Controller),
    exit(OldSup, kill),
    receive {'DOWN', Mon, process, Controller, _} -> ok after 5000 -> ct:fail(controller_stays) end,
    NewSup = wait_for(fun() -> whereis(py_stream_sup) end, 100),
    ?assertNotEqual(OldSup, NewSup),
    ?assertEqual(NewSup, ets:info(py_streams, owner)),
    ?assertNotEqual(OldTable, ets:info(py_streams, id)),
    ?assertEqual([], ets:lookup(py_streams, Ref)),
    ?assertEqual(ok, py:stream_cancel(Ref)),
    %% The contexts were restarted after it (rest_for_one): wait until they answer.
    wait_for(fun() -> case py:call(operator, add, [1, 2]) of {ok, 3} -> true; _ -> undefined end end, 200),
    {ok, Ref2} = py:stream_start(builtins, range, [2]),
    ?assertEqual([{data, 0}, {data, 1}, done], py_test_lib:stream_events(Ref2, 5000)),
    flush_stream(Ref).

%%% ---------------------------------------------------------------------------
%%% Helpers

controllers() ->
    lists:sort([Pid || {_, Pid, _, _} <- supervisor:which_children(py_stream_sup)]).

flush_stream(Ref) ->
    receive {py_stream, Ref, _} -> flush_stream(Ref) after 100 -> ok end.

wait_for(_Fun, 0) ->
    ct:fail(never_ready);
wait_for(Fun, Tries) ->
    case Fun() of
        undefined -> timer:sleep(50), wait_for(Fun, Tries - 1);
        Value -> Value
    end.
