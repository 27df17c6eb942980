%%% @doc Supervises the context processes, one per context actor thread: the `default'
%%% pool (`num_contexts') and the named pools of the app env `pools' (default
%%% `[{io, 2}]'). It starts empty; `py_context_manager', started right after it, adds and
%%% removes the children, one request at a time.
-module(py_context_sup).
-behaviour(supervisor).

-export([start_link/0, init/1, start_context/2, stop_all/0, default_count/0]).

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
    supervisor:start_child(?MODULE, #{id => {py_context, Pool, Index},
                                      start => {py_context, start_link, [Pool, Index]},
                                      shutdown => 5000}).

%% @doc Stop and remove every context (for `py_context_manager').
-spec stop_all() -> ok.
stop_all() ->
    lists:foreach(fun({Id, _, _, _}) ->
                          _ = supervisor:terminate_child(?MODULE, Id),
                          _ = supervisor:delete_child(?MODULE, Id)
                  end, supervisor:which_children(?MODULE)).
