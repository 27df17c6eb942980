%%% @doc Starts and stops the contexts and changes the pools and routes, one request at
%%% a time: the only process that adds or removes children of `py_context_sup' on
%%% request and writes the pool sizes and routes of `py_context_router'.
%%%
%%% Serialising in one process is what keeps two callers that both find no contexts
%%% from starting the same children (where the loser would stop the winner's), and two
%%% route changes from losing one another. Calls wait as long as the work takes
%%% (`infinity'): starting a context starts an OS thread and its Python state.
%%%
%%% It comes after `py_context_sup' under `erlang_python_sup' (`rest_for_one'), and its
%%% `init/1' starts the default contexts and pools when none run: at application start,
%%% and after `py_context_sup' restarted (which restarts this server too). A restart of
%%% this server alone finds the contexts running and leaves them.
-module(py_context_manager).
-behaviour(gen_server).

-export([start_link/0, start_contexts/1, stop_contexts/0, add_route/2, remove_route/1]).
-export([init/1, handle_call/3, handle_cast/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Start `N' default contexts and the configured pools, or answer the running
%% default contexts if contexts are started.
-spec start_contexts(pos_integer()) -> {ok, [pid()]} | {error, term()}.
start_contexts(N) when is_integer(N), N > 0 ->
    gen_server:call(?MODULE, {start, N}, infinity);
start_contexts(N) ->
    {error, {badarg, {contexts, N}}}.

%% @doc Stop every context, of every pool.
-spec stop_contexts() -> ok.
stop_contexts() ->
    gen_server:call(?MODULE, stop, infinity).

%% @doc Route `Module' or `{Module, Func}' to the running pool `Pool'.
-spec add_route(atom(), term()) -> ok | {error, term()}.
add_route(Pool, Target) ->
    try
        gen_server:call(?MODULE, {add_route, Pool, Target}, infinity)
    catch
        %% The application is stopped: no pool runs.
        exit:{noproc, _} -> {error, {unknown_pool, Pool}}
    end.

%% @doc Forget the route of `Module' or `{Module, Func}'.
-spec remove_route(term()) -> ok.
remove_route(Target) ->
    try
        gen_server:call(?MODULE, {remove_route, Target}, infinity)
    catch
        %% The application is stopped, and its routes were cleared with it.
        exit:{noproc, _} -> ok
    end.

-spec init([]) -> {ok, nil} | {stop, term()}.
init([]) ->
    case py_context_router:count() of
        0 ->
            case start(py_context_sup:default_count()) of
                {ok, _} -> {ok, nil};
                {error, Reason} -> {stop, Reason}
            end;
        _ ->
            {ok, nil}
    end.

-spec handle_call(term(), gen_server:from(), nil) -> {reply, term(), nil}.
handle_call({start, N}, _From, State) ->
    {reply, start(N), State};
handle_call(stop, _From, State) ->
    {reply, stop(), State};
handle_call({add_route, Pool, Target}, _From, State) ->
    {reply, py_context_router:add_route(Pool, Target), State};
handle_call({remove_route, Target}, _From, State) ->
    {reply, py_context_router:remove_route(Target), State};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_request}, State}.

-spec handle_cast(term(), nil) -> {noreply, nil}.
handle_cast(_Msg, State) ->
    {noreply, State}.

start(N) when is_integer(N), N > 0 ->
    case py_context_router:count() of
        0 ->
            Pools = [{default, N} | application:get_env(erlang_python, pools, [{io, 2}])],
            case start_pools(Pools) of
                ok -> {ok, py_context_router:pids()};
                {error, Reason} -> stop(), {error, Reason}
            end;
        _ ->
            {ok, py_context_router:pids()}
    end;
start(N) ->
    {error, {badarg, {contexts, N}}}.

start_pools([]) ->
    ok;
start_pools([{Pool, N} | Rest]) when is_atom(Pool), is_integer(N), N > 0 ->
    py_context_router:set_count(Pool, N),
    Started = [py_context_sup:start_context(Pool, I) || I <- lists:seq(1, N)],
    case [R || {error, R} <- Started] of
        [] -> start_pools(Rest);
        [Reason | _] -> {error, Reason}
    end;
start_pools([Bad | _]) ->
    {error, {bad_pool, Bad}}.

stop() ->
    ok = py_context_sup:stop_all(),
    py_context_router:set_count(0).
