%%% @doc The `subinterp_*' handle pool: creates handles and keeps the table callers read.
%%%
%%% A handle is a context of its own (its own sub-interpreter with its own GIL, on its own
%%% OS thread), in no pool of `py_context_router': the handle the caller gets is that
%%% context's resource itself, so when the last copy of it is garbage collected the
%%% context's thread ends and takes its interpreter with it. This process starts the
%%% contexts (so it is their owner, told when each thread exits) and keeps, per live
%%% handle, only a namespace handle of its context (`py_nif:env_new/1'), which does not
%%% keep the thread alive: all calls on a handle share that namespace, and
%%% `subinterp_pool_stop' stops each context through it.
%%%
%%% Callers never pass through this process for calls: they read the table
%%% `py_subinterp_handles' (`{ContextId, Env, Counters}', protected, owned here), so the
%%% table's absence is how a call learns that the pool is not running, and a row's
%%% absence that the handle was destroyed, collected, or is no handle at all.
-module(py_subinterp_pool).
-behaviour(gen_server).

-export([start_link/1, create/0, destroy/1, stats/0, table/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, handle_continue/2,
         terminate/2]).

-define(TABLE, py_subinterp_handles).
%% Handle contexts' thread names (`py-context-N') start here, apart from pools' indexes.
-define(FIRST_INDEX, 10001).
%% How long a new handle's interpreter may take to serve.
-define(READY_WAIT_MS, 30000).
%% How long `terminate' waits for the handles' threads to end.
-define(EXIT_WAIT_MS, 8000).

-record(state, {max :: pos_integer(),
                next_index = ?FIRST_INDEX :: pos_integer(),
                live = #{} :: #{non_neg_integer() => reference()},
                counters :: counters:counters_ref(),
                created = 0 :: non_neg_integer(),
                destroyed = 0 :: non_neg_integer(),
                collected = 0 :: non_neg_integer()}).

%% Indexes of the counters callers bump (in each table row).
-define(CALLS, 1).
-define(ERRORS, 2).

-spec start_link(pos_integer()) -> {ok, pid()} | {error, term()}.
start_link(MaxHandles) ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, MaxHandles, []).

%% @doc A new handle: `{ok, Ctx}', `{error, {too_many_handles, Max}}', or the reason the
%% interpreter could not be made.
-spec create() -> {ok, py_nif:context()} | {error, term()}.
create() ->
    call(create).

%% @doc Stop the handle's context and forget it; `ok' also for an unknown handle.
-spec destroy(non_neg_integer()) -> ok.
destroy(Id) ->
    case call({destroy, Id}) of
        {error, pool_not_started} -> ok;
        Ok -> Ok
    end.

%% @doc Counts: see `py:subinterp_pool_stats/0'.
-spec stats() -> map().
stats() ->
    case call(stats) of
        {error, pool_not_started} ->
            #{ready => false, max_handles => 0, handles => 0, workers => 0, created => 0,
              destroyed => 0, collected => 0, calls => 0, errors => 0};
        Stats ->
            Stats
    end.

%% @doc The name of the table callers read.
-spec table() -> atom().
table() ->
    ?TABLE.

call(Request) ->
    try
        gen_server:call(?MODULE, Request, infinity)
    catch
        exit:{noproc, _} -> {error, pool_not_started};
        exit:{shutdown, _} -> {error, pool_not_started};
        exit:{normal, _} -> {error, pool_not_started}
    end.

-spec init(pos_integer()) -> {ok, #state{}}.
init(MaxHandles) ->
    process_flag(trap_exit, true),
    _ = ets:new(?TABLE, [named_table, protected, set, {read_concurrency, true}]),
    {ok, #state{max = MaxHandles, counters = counters:new(2, [write_concurrency])}}.

-spec handle_call(term(), gen_server:from(), #state{}) ->
          {reply, term(), #state{}} | {reply, term(), #state{}, {continue, collect}}.
handle_call(create, _From, #state{max = Max, live = Live} = S) when map_size(Live) >= Max ->
    {reply, {error, {too_many_handles, Max}}, S};
handle_call(create, _From, #state{next_index = Index, live = Live, counters = C} = S) ->
    MaxQueued = application:get_env(erlang_python, max_queued, 50000),
    case start_context(Index, MaxQueued) of
        {ok, Ctx} ->
            Id = py_nif:context_id(Ctx),
            Env = py_nif:env_new(Ctx),
            true = ets:insert(?TABLE, {Id, Env, C}),
            %% This process must not keep the resource: the caller's copy is the handle.
            {reply, {ok, Ctx},
             S#state{next_index = Index + 1, live = Live#{Id => Env},
                     created = S#state.created + 1},
             {continue, collect}};
        {error, _} = Error ->
            {reply, Error, S#state{next_index = Index + 1}, {continue, collect}}
    end;
handle_call({destroy, Id}, _From, #state{live = Live} = S) ->
    case maps:take(Id, Live) of
        {Env, Rest} ->
            true = ets:delete(?TABLE, Id),
            ok = py_nif:env_context_stop(Env),
            {reply, ok, S#state{live = Rest, destroyed = S#state.destroyed + 1}};
        error ->
            {reply, ok, S}
    end;
handle_call(stats, _From, #state{live = Live, counters = C} = S) ->
    {reply, #{ready => true, max_handles => S#state.max, handles => map_size(Live),
              workers => map_size(Live), created => S#state.created,
              destroyed => S#state.destroyed, collected => S#state.collected,
              calls => counters:get(C, ?CALLS), errors => counters:get(C, ?ERRORS)}, S};
handle_call(_Request, _From, S) ->
    {reply, {error, unknown_request}, S}.

-spec handle_continue(collect, #state{}) -> {noreply, #state{}}.
handle_continue(collect, S) ->
    %% The reply's copy of a new handle is garbage now; collect it, or this heap would
    %% hold the resource (and its thread) until some later collection.
    _ = erlang:garbage_collect(),
    {noreply, S}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, S) ->
    {noreply, S}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({py_context_exited, Id}, #state{live = Live} = S) ->
    %% A handle's thread ended without `destroy': its handle was garbage collected (or it
    %% crashed, reported just before).
    case maps:take(Id, Live) of
        {_Env, Rest} ->
            true = ets:delete(?TABLE, Id),
            {noreply, S#state{live = Rest, collected = S#state.collected + 1}};
        error ->
            {noreply, S}
    end;
handle_info({py_context_crashed, Why}, S) ->
    logger:error("Python sub-interpreter handle crashed: ~ts", [Why]),
    {noreply, S};
handle_info(_Info, S) ->
    {noreply, S}.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{live = Live}) ->
    %% Callers find no table from here on and answer `{error, pool_not_started}'.
    ets:delete(?TABLE),
    [ok = py_nif:env_context_stop(Env) || Env <- maps:values(Live)],
    await_exits(maps:keys(Live), erlang:monotonic_time(millisecond) + ?EXIT_WAIT_MS).

%% Each handle's thread ends its interpreter before it exits; a stop returns once they
%% did (bounded), so a pool started again does not overlap the old one's threads.
await_exits([], _Deadline) ->
    ok;
await_exits(Ids, Deadline) ->
    receive
        {py_context_exited, Id} -> await_exits(lists:delete(Id, Ids), Deadline)
    after max(0, Deadline - erlang:monotonic_time(millisecond)) ->
        logger:warning("~b Python sub-interpreter handles still winding down", [length(Ids)])
    end.

start_context(Index, MaxQueued) ->
    try py_nif:context_start(Index, MaxQueued, own_gil) of
        {ok, Ctx} -> await_ready(Ctx);
        {error, _} = Error -> Error
    catch
        error:Reason -> {error, Reason}
    end.

%% A handle is answered once its interpreter serves, or with why it could not start
%% (handles start one at a time here, so a crash notice now is this one's).
await_ready(Ctx) ->
    Id = py_nif:context_id(Ctx),
    receive
        {py_context_ready, Id} -> {ok, Ctx};
        {py_context_crashed, Why} -> {error, {context_crashed, Why}}
    after ?READY_WAIT_MS ->
        ok = py_nif:context_stop(Ctx),
        {error, start_timeout}
    end.
