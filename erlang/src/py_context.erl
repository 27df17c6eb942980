%%% @doc One context: the supervised process that owns a context actor (an OS thread
%%% running Python). Calls do not pass through this process; it exists so that the
%%% actor is started, stopped and restarted under OTP supervision. A context runs in the
%%% main interpreter (`main') or in a sub-interpreter with its own GIL (`own_gil'), which
%%% its thread creates and ends.
-module(py_context).
-behaviour(gen_server).

-export([start_link/2, start_link/3]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

%% How long `terminate' waits for the context's thread (the child's shutdown is 5000).
-define(EXIT_WAIT_MS, 4000).
%% How long `init' waits for the context's thread to serve (a sub-interpreter imports
%% the shim and asyncio first: tens of milliseconds).
-define(READY_WAIT_MS, 30000).

-record(state, {pool :: atom(), index :: pos_integer(), ctx :: py_nif:context(),
                mode :: py_context_router:mode()}).

-spec start_link(atom(), pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Index) ->
    start_link(Pool, Index, main).

-spec start_link(atom(), pos_integer(), py_context_router:mode()) -> {ok, pid()} | {error, term()}.
start_link(Pool, Index, Mode) ->
    gen_server:start_link(?MODULE, {Pool, Index, Mode}, []).

-spec init({atom(), pos_integer(), py_context_router:mode()}) -> {ok, #state{}} | {stop, term()}.
init({Pool, Index, Mode}) ->
    process_flag(trap_exit, true),
    MaxQueued = application:get_env(erlang_python, max_queued, 50000),
    case py_nif:context_start(Index, MaxQueued, Mode) of
        {ok, Ctx} ->
            case await_ready(Ctx) of
                ok ->
                    replay_changes(Mode, {self(), Ctx, py_nif:context_id(Ctx)}),
                    ok = py_context_router:register(Pool, Index, self(), Ctx),
                    {ok, #state{pool = Pool, index = Index, ctx = Ctx, mode = Mode}};
                {error, Why} ->
                    {stop, {context_crashed, Why}}
            end;
        {error, Reason} ->
            %% An interpreter this Python cannot make: the pool's start answers why.
            {stop, Reason}
    end.

%% A sub-interpreter starts as the app env says; the venv and logging changes made since
%% in the running interpreters are made in it too, before anyone else's request.
replay_changes(own_gil, Entry) -> py_interp_changes:replay(Entry);
replay_changes(main, _Entry) -> ok.

%% The context's thread tells when it serves (its interpreter and loop are open), or why
%% it could not start: a start that fails is the start's error, not a crash right after.
-spec await_ready(py_nif:context()) -> ok | {error, term()}.
await_ready(Ctx) ->
    Id = py_nif:context_id(Ctx),
    receive
        {py_context_ready, Id} -> ok;
        {py_context_crashed, Why} -> {error, Why}
    after ?READY_WAIT_MS ->
        ok = py_nif:context_stop(Ctx),
        {error, start_timeout}
    end.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_request}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}} | {stop, term(), #state{}}.
handle_info({py_context_crashed, Why}, State = #state{pool = Pool, index = Index}) ->
    ?LOG_ERROR("Python context ~p/~b crashed: ~ts", [Pool, Index, Why]),
    {stop, {context_crashed, Why}, State};
handle_info(_Info, State) ->
    {noreply, State}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{pool = Pool, index = Index, ctx = Ctx, mode = Mode}) ->
    py_context_router:unregister(Pool, Index),
    ok = py_nif:context_stop(Ctx),
    %% The thread answers what is queued, lets its loop's tasks wind down (a second at
    %% most) and closes the loop: a stop returns once that is done, so a restart finds
    %% the sockets those tasks held closed. Bounded below the child's shutdown time.
    Id = py_nif:context_id(Ctx),
    receive
        {py_context_exited, Id} -> ok
    after ?EXIT_WAIT_MS ->
        ?LOG_WARNING("Python context ~p/~b still winding down after ~b ms~ts",
                     [Pool, Index, ?EXIT_WAIT_MS, winding_down_hint(Mode)])
    end.

%% A sub-interpreter ends only once its non-daemon threads have: the usual reason a
%% sub-interpreter context takes long to stop (its thread then waits for them, and the
%% contexts started after it serve meanwhile).
winding_down_hint(own_gil) ->
    "; its sub-interpreter ends once the threads its Python code started have ended";
winding_down_hint(main) ->
    "".

