%%% @doc Where calls go: the tables of running contexts, per pool (in `persistent_term',
%%% read on every call without a message), each process's sticky choice of context in a
%%% pool, and the routes that send some modules or functions to a named pool.
%%%
%%% The pool `default' holds the contexts started with the application (`num_contexts');
%%% named pools such as `io' come from the app env `pools'.
-module(py_context_router).

-export([count/0, count/1, set_count/1, set_count/2, register/4, unregister/2,
         pids/0, pools/0, pick/0, pick/1, pick_for/2, by_index/1, by_index/2, by_pid/1,
         local_env/1, adopt/2, add_route/2, remove_route/1, clear_routes/0,
         set_mode/2, mode/1, init_turns/0, interpreters/0]).
-export([pool_of/1]).

-type pool() :: atom().
-type entry() :: {pid(), py_nif:context(), pos_integer()}.
%% How a pool's contexts run Python: in the main interpreter, or each in a
%% sub-interpreter with its own GIL (the NIF's `context_start/3' mode).
-type mode() :: main | own_gil.
-export_type([pool/0, entry/0, mode/0]).

-define(KEY(K), {?MODULE, K}).

%% The default pool keeps the short keys: it is read on every call.
key(default, count) -> ?KEY(count);
key(default, Index) -> ?KEY(Index);
key(Pool, Index) -> ?KEY({Pool, Index}).

-spec count() -> non_neg_integer().
count() ->
    persistent_term:get(?KEY(count), 0).

-spec count(pool()) -> non_neg_integer().
count(Pool) ->
    persistent_term:get(key(Pool, count), 0).

-spec set_count(non_neg_integer()) -> ok.
set_count(N) ->
    set_count(default, N).

%% @doc Set the size of `Pool'; 0 forgets the pool (all pools, for `default').
-spec set_count(pool(), non_neg_integer()) -> ok.
set_count(Pool, 0) ->
    [forget(Pool, I) || I <- lists:seq(1, count(Pool))],
    _ = persistent_term:erase(key(Pool, count)),
    _ = persistent_term:erase(?KEY({mode, Pool})),
    Others = pools() -- [default, Pool],
    case Pool of
        default ->
            [set_count(P, 0) || P <- Others],
            _ = persistent_term:erase(?KEY(pools)),
            ok;
        _ ->
            persistent_term:put(?KEY(pools), Others)
    end;
set_count(Pool, N) ->
    %% Contexts above the new size are forgotten, so that `pick/1' never finds one.
    [forget(Pool, I) || I <- lists:seq(1, count(Pool)), I > N],
    persistent_term:put(key(Pool, count), N),
    case lists:member(Pool, pools()) orelse Pool =:= default of
        true -> ok;
        false -> persistent_term:put(?KEY(pools), [Pool | pools() -- [default]])
    end.

%% @doc Record how `Pool''s contexts run (set before they start; forgotten with the pool).
-spec set_mode(pool(), mode()) -> ok.
set_mode(Pool, Mode) when Mode =:= main; Mode =:= own_gil ->
    case mode(Pool) of
        Mode -> ok;
        _ -> persistent_term:put(?KEY({mode, Pool}), Mode)
    end.

%% @doc How `Pool''s contexts run; `main' for a pool that never said otherwise.
-spec mode(pool()) -> mode().
mode(Pool) ->
    persistent_term:get(?KEY({mode, Pool}), main).

%% @doc The named pools running (not `default').
-spec pools() -> [pool()].
pools() ->
    persistent_term:get(?KEY(pools), []).

%% @doc Called by a context process once its actor runs.
-spec register(pool(), pos_integer(), pid(), py_nif:context()) -> ok.
register(Pool, Index, Pid, Ctx) ->
    Id = py_nif:context_id(Ctx),
    %% An atom: putting and erasing it starts no global literal-area scan.
    persistent_term:put(?KEY({pool_of, Id}), Pool),
    persistent_term:put(key(Pool, Index), {Pid, Ctx, Id}).

-spec unregister(pool(), pos_integer()) -> ok.
unregister(Pool, Index) ->
    forget(Pool, Index).

forget(Pool, Index) ->
    case persistent_term:get(key(Pool, Index), undefined) of
        {_, _, Id} -> _ = persistent_term:erase(?KEY({pool_of, Id}));
        undefined -> ok
    end,
    _ = persistent_term:erase(key(Pool, Index)),
    ok.

%% @doc The pool of the running context with id `Id' (`py_nif:context_id/1'), for
%% telemetry metadata; `undefined' once it stopped.
-spec pool_of(pos_integer()) -> pool() | undefined.
pool_of(Id) ->
    persistent_term:get(?KEY({pool_of, Id}), undefined).

%% @doc One context per interpreter that runs contexts now: a context of the main
%% interpreter (whichever pool it is in) and every context in a sub-interpreter of its
%% own, for changes that must reach every interpreter (`py:reload/1', say).
-spec interpreters() -> [pid()].
interpreters() ->
    Pools = [default | pools()],
    Own = [Pid || Pool <- Pools, mode(Pool) =:= own_gil, Pid <- pool_pids(Pool)],
    Main = [Pid || Pool <- Pools, mode(Pool) =:= main, Pid <- pool_pids(Pool)],
    lists:sublist(Main, 1) ++ Own.

pool_pids(Pool) ->
    [Pid || I <- lists:seq(1, count(Pool)), {Pid, _, _} <- [persistent_term:get(key(Pool, I), none)]].

%% @doc The pids of the default pool's contexts.
-spec pids() -> [pid()].
pids() ->
    pool_pids(default).

%% @doc The calling process's context in the default pool.
-spec pick() -> {ok, entry()} | {error, term()}.
pick() ->
    pick(default).

%% @doc The calling process's context in `Pool': chosen once, in turn (the first process
%% to pick gets a context, the next one the next context, ...), then sticky, so that what
%% `py:exec/1' defined stays visible to the same process. Taking turns spreads processes
%% over the contexts however the VM placed them on schedulers (callers spawned together
%% start on one scheduler, and 2.3.1's choice by scheduler id sent them all to one
%% context).
-spec pick(pool()) -> {ok, entry()} | {error, term()}.
pick(Pool) ->
    %% The common case, one lookup: this process already chose a context that runs.
    case get({'$py_context_index', Pool}) of
        I when is_integer(I) ->
            case persistent_term:get(key(Pool, I), undefined) of
                undefined -> choose(Pool);
                Entry -> {ok, Entry}
            end;
        _ ->
            choose(Pool)
    end.

choose(Pool) ->
    case count(Pool) of
        0 when Pool =:= default ->
            {error, contexts_not_started};
        0 ->
            {error, {unknown_pool, Pool}};
        N ->
            Index = case get({'$py_context_index', Pool}) of
                        I when is_integer(I), I =< N -> I;
                        _ ->
                            I = next_turn() rem N + 1,
                            put({'$py_context_index', Pool}, I),
                            I
                    end,
            by_index(Pool, Index)
    end.

%% @doc Make the counter behind the turns (`pick/1'), once per VM: the application's
%% start calls it, before any context runs. It is kept for the VM's life: a
%% `persistent_term' that is never replaced or erased costs no global scan.
-spec init_turns() -> ok.
init_turns() ->
    case persistent_term:get(?KEY(turns), undefined) of
        undefined -> persistent_term:put(?KEY(turns), atomics:new(1, [{signed, false}]));
        _ -> ok
    end.

next_turn() ->
    atomics:add_get(persistent_term:get(?KEY(turns)), 1, 1).

%% @doc The calling process's context for `Module.Func': the pool a route names
%% (`{Module, Func}' before `Module'), else the default pool.
-spec pick_for(term(), term()) -> {ok, entry()} | {error, term()}.
pick_for(Module, Func) ->
    case persistent_term:get(?KEY(routes), #{}) of
        Routes when map_size(Routes) =:= 0 ->
            pick(default);
        Routes ->
            case Routes of
                #{{Module, Func} := Pool} -> pick(Pool);
                #{Module := Pool} -> pick(Pool);
                _ -> pick(default)
            end
    end.

%% @doc Route `Module' or `{Module, Func}' to `Pool'. Routes are changed by
%% `py_context_manager' only, one change at a time, so none is lost.
-spec add_route(pool(), term()) -> ok | {error, term()}.
add_route(Pool, Target) ->
    case count(Pool) of
        0 -> {error, {unknown_pool, Pool}};
        _ -> update_routes(fun(Routes) -> Routes#{Target => Pool} end)
    end.

%% @doc Send `Module' or `{Module, Func}' back to the default pool (called by
%% `py_context_manager' only, as `add_route/2').
-spec remove_route(term()) -> ok.
remove_route(Target) ->
    update_routes(fun(Routes) -> maps:remove(Target, Routes) end).

%% @doc Forget every route (the application stops).
-spec clear_routes() -> ok.
clear_routes() ->
    _ = persistent_term:erase(?KEY(routes)),
    ok.

update_routes(Fun) ->
    persistent_term:put(?KEY(routes), Fun(persistent_term:get(?KEY(routes), #{}))).

-spec by_index(pos_integer()) -> {ok, entry()} | {error, term()}.
by_index(Index) ->
    by_index(default, Index).

-spec by_index(pool(), pos_integer()) -> {ok, entry()} | {error, term()}.
by_index(Pool, Index) when is_integer(Index), Index > 0 ->
    case persistent_term:get(key(Pool, Index), undefined) of
        undefined ->
            case count(Pool) of
                0 when Pool =:= default -> {error, contexts_not_started};
                0 -> {error, {unknown_pool, Pool}};
                N when Index > N -> {error, {badarg, context}};
                _ -> {error, {context_restarting, Index}}
            end;
        Entry ->
            {ok, Entry}
    end;
by_index(_Pool, _Index) ->
    {error, {badarg, context}}.

%% @doc The context (in any pool) whose process is `Pid'.
-spec by_pid(pid()) -> {ok, entry()} | {error, term()}.
by_pid(Pid) ->
    find_pid(Pid, [default | pools()]).

find_pid(_Pid, []) ->
    {error, {badarg, context}};
find_pid(Pid, [Pool | Rest]) ->
    case [E || I <- lists:seq(1, count(Pool)),
               {P, _, _} = E <- [persistent_term:get(key(Pool, I), {none, none, none})], P =:= Pid] of
        [Entry | _] -> {ok, Entry};
        [] -> find_pid(Pid, Rest)
    end.

%% @doc The calling process's namespace handle on a context, created on first use and
%% kept in the process dictionary: the namespace is freed when the process exits.
-spec local_env(entry()) -> reference().
local_env({_Pid, Ctx, Id}) ->
    case get({'$py_env', Id}) of
        undefined ->
            Env = py_nif:env_new(Ctx),
            put({'$py_env', Id}, Env),
            Env;
        Env ->
            Env
    end.

%% @doc Make the calling process use context `Ctx' and the namespace handle `Env' of
%% another process (for Erlang functions run on behalf of that process).
-spec adopt(py_nif:context(), reference() | undefined) -> ok.
adopt(Ctx, Env) ->
    Id = py_nif:context_id(Ctx),
    Found = [{Pool, I} || Pool <- [default | pools()], I <- lists:seq(1, count(Pool)),
                          {_, _, EntryId} <- [persistent_term:get(key(Pool, I), {none, none, none})],
                          EntryId =:= Id],
    case Found of
        [{Pool, Index} | _] -> put({'$py_context_index', Pool}, Index);
        [] -> ok
    end,
    case Env of
        undefined -> ok;
        _ -> put({'$py_env', Id}, Env)
    end,
    ok.
