%%% @doc Where calls go: the table of running contexts (in `persistent_term', read on
%%% every call without a message) and each process's sticky choice of context.
-module(py_context_router).

-export([count/0, set_count/1, register/3, unregister/1, pids/0,
         pick/0, by_index/1, by_pid/1, local_env/1, adopt/2]).

-type entry() :: {pid(), py_nif:context(), pos_integer()}.
-export_type([entry/0]).

-define(KEY(K), {?MODULE, K}).

-spec count() -> non_neg_integer().
count() ->
    persistent_term:get(?KEY(count), 0).

-spec set_count(non_neg_integer()) -> ok.
set_count(0) ->
    [persistent_term:erase(?KEY(I)) || I <- lists:seq(1, count())],
    _ = persistent_term:erase(?KEY(count)),
    ok;
set_count(N) ->
    persistent_term:put(?KEY(count), N).

%% @doc Called by a context process once its actor runs.
-spec register(pos_integer(), pid(), py_nif:context()) -> ok.
register(Index, Pid, Ctx) ->
    persistent_term:put(?KEY(Index), {Pid, Ctx, py_nif:context_id(Ctx)}).

-spec unregister(pos_integer()) -> ok.
unregister(Index) ->
    _ = persistent_term:erase(?KEY(Index)),
    ok.

-spec pids() -> [pid()].
pids() ->
    [Pid || I <- lists:seq(1, count()), {Pid, _, _} <- [persistent_term:get(?KEY(I), none)]].

%% @doc The calling process's context: chosen once by scheduler, then sticky, so that
%% what `py:exec/1' defined stays visible to the same process.
-spec pick() -> {ok, entry()} | {error, contexts_not_started}.
pick() ->
    case count() of
        0 ->
            {error, contexts_not_started};
        N ->
            Index = case get('$py_context_index') of
                        I when is_integer(I), I =< N -> I;
                        _ ->
                            I = erlang:system_info(scheduler_id) rem N + 1,
                            put('$py_context_index', I),
                            I
                    end,
            by_index(Index)
    end.

-spec by_index(pos_integer()) -> {ok, entry()} | {error, term()}.
by_index(Index) ->
    case persistent_term:get(?KEY(Index), undefined) of
        undefined when Index > 0 ->
            case count() of
                0 -> {error, contexts_not_started};
                _ -> {error, {context_restarting, Index}}
            end;
        undefined -> {error, {badarg, context}};
        Entry -> {ok, Entry}
    end.

-spec by_pid(pid()) -> {ok, entry()} | {error, term()}.
by_pid(Pid) ->
    find_pid(Pid, count()).

find_pid(_Pid, 0) ->
    {error, {badarg, context}};
find_pid(Pid, I) ->
    case persistent_term:get(?KEY(I), undefined) of
        {Pid, _, _} = Entry -> {ok, Entry};
        _ -> find_pid(Pid, I - 1)
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
    case [I || I <- lists:seq(1, count()),
               {_, _, EntryId} <- [persistent_term:get(?KEY(I), none)], EntryId =:= Id] of
        [Index | _] -> put('$py_context_index', Index);
        [] -> ok
    end,
    case Env of
        undefined -> ok;
        _ -> put({'$py_env', Id}, Env)
    end,
    ok.
