%%% @doc Supervises the context processes, one per context actor thread: the `default'
%%% pool (`num_contexts') and the named pools of the app env `pools' (default
%%% `[{io, 2}]'). Contexts are started with the application and can be stopped and started
%%% again with `py:stop_contexts/0' and `py:start_contexts/0,1'.
-module(py_context_sup).
-behaviour(supervisor).

-export([start_link/0, init/1, start_contexts/1, stop_contexts/0, default_count/0]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    case supervisor:start_link({local, ?MODULE}, ?MODULE, []) of
        {ok, Pid} ->
            case start_contexts(default_count()) of
                {ok, _} ->
                    {ok, Pid};
                {error, Reason} ->
                    %% Do not leave a registered supervisor behind for the next attempt.
                    unlink(Pid),
                    exit(Pid, shutdown),
                    {error, Reason}
            end;
        Error ->
            Error
    end.

%% @doc The size of the default pool: the app env `num_contexts', or schedulers online.
-spec default_count() -> term().
default_count() ->
    case application:get_env(erlang_python, num_contexts, default) of
        default -> erlang:system_info(schedulers_online);
        Count -> Count
    end.

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    %% A previous instance of this supervisor may have left its routing table behind.
    ok = py_context_router:set_count(0),
    {ok, {#{strategy => one_for_one, intensity => 20, period => 10}, []}}.

%% @doc Start `N' default contexts and the configured pools, or answer the running
%% default contexts if contexts are started.
-spec start_contexts(pos_integer()) -> {ok, [pid()]} | {error, term()}.
start_contexts(N) when is_integer(N), N > 0 ->
    serialized(fun() -> start_unlocked(N) end);
start_contexts(N) ->
    {error, {badarg, {contexts, N}}}.

%% Starting and stopping run one at a time: two callers that both found no contexts
%% would otherwise start the same children, and the loser would stop the winner's.
serialized(Fun) ->
    global:trans({?MODULE, self()}, Fun, [node()]).

start_unlocked(N) ->
    case py_context_router:count() of
        0 ->
            Pools = [{default, N} | application:get_env(erlang_python, pools, [{io, 2}])],
            case start_pools(Pools) of
                ok -> {ok, py_context_router:pids()};
                {error, Reason} -> stop_unlocked(), {error, Reason}
            end;
        _ ->
            {ok, py_context_router:pids()}
    end.

start_pools([]) ->
    ok;
start_pools([{Pool, N} | Rest]) when is_atom(Pool), is_integer(N), N > 0 ->
    py_context_router:set_count(Pool, N),
    Started = [supervisor:start_child(?MODULE, child_spec(Pool, I)) || I <- lists:seq(1, N)],
    case [R || {error, R} <- Started] of
        [] -> start_pools(Rest);
        [Reason | _] -> {error, Reason}
    end;
start_pools([Bad | _]) ->
    {error, {bad_pool, Bad}}.

-spec stop_contexts() -> ok.
stop_contexts() ->
    serialized(fun stop_unlocked/0).

stop_unlocked() ->
    Ids = [Id || {Id, _, _, _} <- supervisor:which_children(?MODULE)],
    lists:foreach(fun(Id) ->
                          _ = supervisor:terminate_child(?MODULE, Id),
                          supervisor:delete_child(?MODULE, Id)
                  end, Ids),
    py_context_router:set_count(0).

child_spec(Pool, I) ->
    #{id => {py_context, Pool, I}, start => {py_context, start_link, [Pool, I]}, shutdown => 5000}.
