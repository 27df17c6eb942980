%%% @doc Supervises the context processes, one per context actor thread: the `default'
%%% pool (`num_contexts') and the named pools of the app env `pools' (default
%%% `[{io, 2}]'). It starts empty; `py_context_manager', started right after it, adds and
%%% removes the children, one request at a time.
%%%
%%% It also holds the `subinterp_*' handle pool (`py_subinterp_pool') while that runs,
%%% a temporary child that `stop_all/0' leaves alone: the handles are not contexts of
%%% any pool, and `py:stop_contexts/0' does not end them.
-module(py_context_sup).
-behaviour(supervisor).

-export([start_link/0, init/1, start_context/2, start_context/3, stop_all/0, stop_pool/2,
         default_count/0,
         start_subinterp_pool/1, stop_subinterp_pool/0]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    supervisor:start_link({local, ?MODULE}, ?MODULE, []).

%% @doc The size of the default pool: the app env `num_contexts', or schedulers online.
-spec default_count() -> term().
default_count() ->
    case application:get_env(erlang_python, num_contexts, default) of
        default -> erlang:system_info(schedulers_online);
        Count -> Count
    end.

-spec init([]) -> {ok, {supervisor:sup_flags(), [supervisor:child_spec()]}}.
init([]) ->
    %% A previous instance of this supervisor may have left its routing table behind;
    %% this one has no children yet.
    ok = py_context_router:set_count(0),
    {ok, {#{strategy => one_for_one, intensity => 20, period => 10}, []}}.

%% @doc Start context `Index' of `Pool' (for `py_context_manager').
-spec start_context(atom(), pos_integer()) -> supervisor:startchild_ret().
start_context(Pool, Index) ->
    start_context(Pool, Index, main).

%% @doc Start context `Index' of `Pool' in the main interpreter (`main') or in a
%% sub-interpreter of its own (`own_gil'); a restart keeps the mode.
-spec start_context(atom(), pos_integer(), py_context_router:mode()) -> supervisor:startchild_ret().
start_context(Pool, Index, Mode) ->
    supervisor:start_child(?MODULE, #{id => {py_context, Pool, Index},
                                      start => {py_context, start_link, [Pool, Index, Mode]},
                                      shutdown => 5000}).

%% @doc Stop and remove every context (for `py_context_manager'); the handle pool stays.
-spec stop_all() -> ok.
stop_all() ->
    lists:foreach(fun({{py_context, _, _} = Id, _, _, _}) ->
                          _ = supervisor:terminate_child(?MODULE, Id),
                          _ = supervisor:delete_child(?MODULE, Id);
                     (_) ->
                          ok
                  end, supervisor:which_children(?MODULE)).

%% @doc Stop and remove contexts 1..`N' of `Pool' (a pool that failed to start whole).
-spec stop_pool(atom(), non_neg_integer()) -> ok.
stop_pool(Pool, N) ->
    lists:foreach(fun(I) ->
                          _ = supervisor:terminate_child(?MODULE, {py_context, Pool, I}),
                          _ = supervisor:delete_child(?MODULE, {py_context, Pool, I})
                  end, lists:seq(1, N)).

%% @doc Start the `subinterp_*' handle pool (for `py_subinterp'): `{error, already_started}'
%% when it runs. Temporary: a pool that crashes is gone, and its handles with it.
-spec start_subinterp_pool(pos_integer()) -> ok | {error, term()}.
start_subinterp_pool(MaxHandles) ->
    Spec = #{id => py_subinterp_pool,
             start => {py_subinterp_pool, start_link, [MaxHandles]},
             restart => temporary, shutdown => 10000},
    case supervisor:start_child(?MODULE, Spec) of
        {ok, _} -> ok;
        {error, {already_started, _}} -> {error, already_started};
        {error, Reason} -> {error, Reason}
    end.

%% @doc Stop the handle pool, which stops every handle's context; `ok' when none runs.
-spec stop_subinterp_pool() -> ok.
stop_subinterp_pool() ->
    _ = supervisor:terminate_child(?MODULE, py_subinterp_pool),
    _ = supervisor:delete_child(?MODULE, py_subinterp_pool),
    ok.
