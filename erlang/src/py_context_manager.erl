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
%%%
%%% Each pool has a mode (`py_subinterp'): the default pool's comes from the start request
%%% or the app env `context_mode' (default `worker'), a named pool's from its `pools'
%%% entry: `{Pool, N}' (worker) or `{Pool, N, #{mode => Mode}}'. Every mode is checked
%%% before any context starts, so an unsupported one starts nothing.
-module(py_context_manager).
-behaviour(gen_server).

-export([start_link/0, start_contexts/1, start_contexts/2, stop_contexts/0,
         add_route/2, remove_route/1, ensure_pool/3]).
-export([init/1, handle_call/3, handle_cast/2]).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Start `N' default contexts and the configured pools, or answer the running
%% default contexts if contexts are started.
-spec start_contexts(pos_integer()) -> {ok, [pid()]} | {error, term()}.
start_contexts(N) ->
    start_contexts(N, default_mode()).

%% @doc `start_contexts/1' with the default pool in `Mode' (`worker', `subinterp' or
%% `owngil'). Contexts already running in another mode are an error, not an answer.
-spec start_contexts(pos_integer(), term()) -> {ok, [pid()]} | {error, term()}.
start_contexts(N, Mode) when is_integer(N), N > 0 ->
    gen_server:call(?MODULE, {start, N, Mode}, infinity);
start_contexts(N, _Mode) ->
    {error, {badarg, {contexts, N}}}.

%% @doc Start the named pool `Pool' with `N' contexts in `Mode' unless it runs in that
%% mode already (for `py:parallel/1'). Answers `{error, contexts_not_started}' when the
%% contexts are stopped: a stop stops every pool, and this does not undo it.
-spec ensure_pool(atom(), pos_integer(), term()) -> ok | {error, term()}.
ensure_pool(Pool, N, Mode) ->
    try
        gen_server:call(?MODULE, {ensure_pool, Pool, N, Mode}, infinity)
    catch
        exit:{noproc, _} -> {error, contexts_not_started}
    end.

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
            case start(py_context_sup:default_count(), default_mode()) of
                {ok, _} -> {ok, nil};
                {error, Reason} -> {stop, Reason}
            end;
        _ ->
            {ok, nil}
    end.

-spec handle_call(term(), gen_server:from(), nil) -> {reply, term(), nil}.
handle_call({start, N, Mode}, _From, State) ->
    {reply, start(N, Mode), State};
handle_call({ensure_pool, Pool, N, Mode}, _From, State) ->
    {reply, ensure(Pool, N, Mode), State};
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

start(N, Mode) when is_integer(N), N > 0 ->
    Entries = [{default, N, #{mode => Mode}}
               | application:get_env(erlang_python, pools, [{io, 2}])],
    case {pool_specs(Entries, []), py_context_router:count()} of
        {{error, Reason}, _} ->
            {error, Reason};
        {{ok, Specs}, 0} ->
            case start_pools(Specs) of
                ok -> {ok, py_context_router:pids()};
                {error, Reason} -> stop(), {error, Reason}
            end;
        {{ok, [{default, _, Wanted} | _]}, _} ->
            case py_context_router:mode(default) of
                Wanted -> {ok, py_context_router:pids()};
                Running -> {error, {already_started, py_subinterp:user_mode(Running)}}
            end
    end;
start(N, _Mode) ->
    {error, {badarg, {contexts, N}}}.

ensure(Pool, N, Mode) ->
    case {py_subinterp:resolve_mode(Mode), py_context_router:count()} of
        {{error, Reason}, _} ->
            {error, Reason};
        {_, 0} ->
            {error, contexts_not_started};
        {{ok, Wanted}, _} ->
            case {py_context_router:count(Pool), py_context_router:mode(Pool)} of
                {Running, Wanted} when Running > 0 ->
                    ok;
                {0, _} ->
                    case start_pools([{Pool, N, Wanted}]) of
                        ok -> ok;
                        {error, _} = Error -> stop_pool(Pool), Error
                    end;
                {_, Other} ->
                    {error, {pool_mode, Pool, py_subinterp:user_mode(Other)}}
            end
    end.

%% Each entry as `{Pool, N, Mode}' with the NIF's mode, or the first bad one's error.
pool_specs([], Acc) ->
    {ok, lists:reverse(Acc)};
pool_specs([{Pool, N} | Rest], Acc) ->
    pool_specs([{Pool, N, #{}} | Rest], Acc);
pool_specs([{Pool, N, Opts} = Entry | Rest], Acc)
  when is_atom(Pool), is_integer(N), N > 0, is_map(Opts) ->
    case py_subinterp:resolve_mode(maps:get(mode, Opts, worker)) of
        {ok, Mode} -> pool_specs(Rest, [{Pool, N, Mode} | Acc]);
        {error, {badarg, _}} -> {error, {bad_pool, Entry}};
        {error, _} = Error -> Error
    end;
pool_specs([Bad | _], _Acc) ->
    {error, {bad_pool, Bad}}.

start_pools([]) ->
    ok;
start_pools([{Pool, N, Mode} | Rest]) ->
    py_context_router:set_count(Pool, N),
    py_context_router:set_mode(Pool, Mode),
    Started = [py_context_sup:start_context(Pool, I, Mode) || I <- lists:seq(1, N)],
    case [R || {error, R} <- Started] of
        [] -> start_pools(Rest);
        [Reason | _] -> {error, start_error(Reason)}
    end.

%% A context whose `init/1' stopped answers its reason; the supervisor adds its child.
start_error({Reason, Child}) when element(1, Child) =:= child -> Reason;
start_error(Reason) -> Reason.

%% Stop the contexts of one named pool (one that failed to start whole).
stop_pool(Pool) ->
    ok = py_context_sup:stop_pool(Pool, py_context_router:count(Pool)),
    py_context_router:set_count(Pool, 0).

%% The default pool's mode as the app env `context_mode' sets it (default `worker').
default_mode() ->
    application:get_env(erlang_python, context_mode, worker).

stop() ->
    ok = py_context_sup:stop_all(),
    py_context_router:set_count(0).
