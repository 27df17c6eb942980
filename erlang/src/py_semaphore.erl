%%% @doc Overload protection: a counting semaphore that bounds how many Erlang
%%% processes run Python work at the same time.
%%%
%%% A process takes a slot with {@link acquire/1} and gives it back with
%%% {@link release/0}. When every slot is taken, callers wait in a strict FIFO queue
%%% until a slot frees or their timeout expires. Waiting is event driven: a waiter is
%%% blocked in a `gen_server:call/3' and the server replies to it the moment a slot is
%%% available, so there is no polling and no wake-up latency beyond one message.
%%%
%%% The server is the only party that decides between "granted" and "timed out":
%%% each waiter's timeout is a timer owned by the server, and the call itself waits
%%% with `infinity'. A waiter therefore receives exactly one answer, and a slot is
%%% never granted to a process that has already given up.
%%%
%%% Holders and waiters are monitored. A holder that exits frees all the slots it
%%% held (a process may hold several slots, one per successful `acquire/1'); a
%%% waiter that exits leaves the queue.
%%%
%%% The initial limit is the application environment key `max_concurrent' of
%%% `erlang_python' (a positive integer, or `default' for
%%% `erlang:system_info(schedulers_online) * 2 + 1'). {@link set_max_concurrent/1}
%%% changes the limit at run time; the change lasts until the server restarts.
%%%
%%% Slots belong to the semaphore process: if it restarts (its supervisor restarts
%%% it), the new server starts with no slot in use and processes that held slots in
%%% the old one release nothing (`release/0' of a slot not held is a no-op).
-module(py_semaphore).
-behaviour(gen_server).

-export([start_link/0, acquire/1, release/0, current/0, waiting/0,
         max_concurrent/0, set_max_concurrent/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-record(waiter, {from :: gen_server:from(),
                 mref :: reference(),
                 tref :: reference() | infinity}).

-record(state, {max :: pos_integer(),
                %% Slots in use: the sum of the counts in `holders'.
                used = 0 :: non_neg_integer(),
                %% Pid => {monitor, slots held (>= 1)}.
                holders = #{} :: #{pid() => {reference(), pos_integer()}},
                %% FIFO queue: arrival number => waiter; the smallest key is served first.
                waiters = gb_trees:empty() :: gb_trees:tree(non_neg_integer(), #waiter{}),
                %% Waiter monitor => arrival number, to drop a waiter that exits.
                waiter_mons = #{} :: #{reference() => non_neg_integer()},
                next_seq = 0 :: non_neg_integer()}).

-type state() :: #state{}.

%%% API

%% @doc Start the semaphore, registered locally as `py_semaphore'. The limit comes
%% from the application environment key `max_concurrent' (see the module doc).
-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Take a slot for the calling process, waiting up to `Timeout' milliseconds
%% (or forever with `infinity') behind earlier waiters when every slot is taken.
%% `acquire(0)' takes a free slot or answers `{error, timeout}' at once. Each `ok'
%% must be matched by one {@link release/0} (or the exit of the calling process).
-spec acquire(timeout()) -> ok | {error, timeout}.
acquire(Timeout) when Timeout =:= infinity; is_integer(Timeout), Timeout >= 0 ->
    %% The server owns the timeout; this call waits for its single answer.
    gen_server:call(?MODULE, {acquire, Timeout}, infinity).

%% @doc Give back one slot held by the calling process, and hand it to the first
%% waiter if there is one. Releasing when the caller holds no slot returns `ok' and
%% changes nothing.
-spec release() -> ok.
release() ->
    gen_server:call(?MODULE, release, infinity).

%% @doc The number of slots in use. It may exceed {@link max_concurrent/0} for a
%% while after the limit was lowered.
-spec current() -> non_neg_integer().
current() ->
    gen_server:call(?MODULE, current, infinity).

%% @doc The number of processes waiting for a slot.
-spec waiting() -> non_neg_integer().
waiting() ->
    gen_server:call(?MODULE, waiting, infinity).

%% @doc The current limit.
-spec max_concurrent() -> pos_integer().
max_concurrent() ->
    gen_server:call(?MODULE, max_concurrent, infinity).

%% @doc Change the limit. Raising it grants the new slots to waiters at once, in
%% FIFO order. Lowering it takes no slot away: holders keep theirs, and new
%% acquirers wait until the slots in use drop below the new limit.
-spec set_max_concurrent(pos_integer()) -> ok.
set_max_concurrent(N) when is_integer(N), N > 0 ->
    gen_server:call(?MODULE, {set_max_concurrent, N}, infinity).

%%% gen_server callbacks

%% @private
-spec init([]) -> {ok, state()} | {stop, term()}.
init([]) ->
    case application:get_env(erlang_python, max_concurrent, default) of
        default ->
            {ok, #state{max = erlang:system_info(schedulers_online) * 2 + 1}};
        N when is_integer(N), N > 0 ->
            {ok, #state{max = N}};
        Bad ->
            ?LOG_ERROR("erlang_python: max_concurrent must be a positive integer or "
                       "default, got ~tp", [Bad]),
            {stop, {bad_config, {max_concurrent, Bad}}}
    end.

%% @private
-spec handle_call(term(), gen_server:from(), state()) ->
          {reply, term(), state()} | {noreply, state()}.
handle_call({acquire, Timeout}, {Pid, _} = From, #state{} = S) ->
    case S#state.used < S#state.max andalso gb_trees:is_empty(S#state.waiters) of
        true ->
            {reply, ok, grant(Pid, S)};
        false when Timeout =:= 0 ->
            {reply, {error, timeout}, S};
        false ->
            {noreply, enqueue(From, Timeout, S)}
    end;
handle_call(release, {Pid, _}, #state{holders = Holders} = S) ->
    case Holders of
        #{Pid := {MRef, 1}} ->
            erlang:demonitor(MRef, [flush]),
            S1 = S#state{holders = maps:remove(Pid, Holders), used = S#state.used - 1},
            {reply, ok, serve_waiters(S1)};
        #{Pid := {MRef, Count}} ->
            S1 = S#state{holders = Holders#{Pid := {MRef, Count - 1}},
                         used = S#state.used - 1},
            {reply, ok, serve_waiters(S1)};
        #{} ->
            {reply, ok, S}
    end;
handle_call(current, _From, S) ->
    {reply, S#state.used, S};
handle_call(waiting, _From, S) ->
    {reply, gb_trees:size(S#state.waiters), S};
handle_call(max_concurrent, _From, S) ->
    {reply, S#state.max, S};
handle_call({set_max_concurrent, N}, _From, S) when is_integer(N), N > 0 ->
    {reply, ok, serve_waiters(S#state{max = N})};
handle_call(_Request, _From, S) ->
    {reply, {error, unknown_request}, S}.

%% @private
-spec handle_cast(term(), state()) -> {noreply, state()}.
handle_cast(_Msg, S) ->
    {noreply, S}.

%% @private
-spec handle_info(term(), state()) -> {noreply, state()}.
handle_info({timeout, TRef, {wait_timeout, Seq}}, S) ->
    %% A waiter already served or gone has left the tree: its timer is stale.
    case gb_trees:lookup(Seq, S#state.waiters) of
        {value, #waiter{tref = TRef, from = From} = W} ->
            gen_server:reply(From, {error, timeout}),
            {noreply, drop_waiter(Seq, W, S)};
        _ ->
            {noreply, S}
    end;
handle_info({'DOWN', MRef, process, Pid, _Reason}, S) ->
    case maps:find(MRef, S#state.waiter_mons) of
        {ok, Seq} ->
            W = gb_trees:get(Seq, S#state.waiters),
            {noreply, drop_waiter(Seq, W, S)};
        error ->
            case S#state.holders of
                #{Pid := {MRef, Count}} ->
                    ?LOG_DEBUG("~p exited holding ~b py_semaphore slot(s)", [Pid, Count]),
                    S1 = S#state{holders = maps:remove(Pid, S#state.holders),
                                 used = S#state.used - Count},
                    {noreply, serve_waiters(S1)};
                #{} ->
                    {noreply, S}
            end
    end;
handle_info(_Info, S) ->
    {noreply, S}.

%%% Internals

%% One more slot for Pid, monitored while it holds any.
grant(Pid, #state{holders = Holders, used = Used} = S) ->
    Holders1 = case Holders of
                   #{Pid := {MRef, Count}} -> Holders#{Pid := {MRef, Count + 1}};
                   #{} -> Holders#{Pid => {erlang:monitor(process, Pid), 1}}
               end,
    S#state{holders = Holders1, used = Used + 1}.

enqueue({Pid, _} = From, Timeout, #state{next_seq = Seq} = S) ->
    MRef = erlang:monitor(process, Pid),
    TRef = case Timeout of
               infinity -> infinity;
               _ -> erlang:start_timer(Timeout, self(), {wait_timeout, Seq})
           end,
    W = #waiter{from = From, mref = MRef, tref = TRef},
    S#state{waiters = gb_trees:insert(Seq, W, S#state.waiters),
            waiter_mons = (S#state.waiter_mons)#{MRef => Seq},
            next_seq = Seq + 1}.

%% Remove a waiter from the queue without answering it.
drop_waiter(Seq, #waiter{mref = MRef, tref = TRef}, S) ->
    erlang:demonitor(MRef, [flush]),
    cancel_timer(TRef),
    S#state{waiters = gb_trees:delete(Seq, S#state.waiters),
            waiter_mons = maps:remove(MRef, S#state.waiter_mons)}.

%% Grant free slots to waiters, oldest first.
serve_waiters(#state{used = Used, max = Max} = S) when Used < Max ->
    case gb_trees:is_empty(S#state.waiters) of
        true ->
            S;
        false ->
            {Seq, #waiter{from = {Pid, _} = From} = W, _} =
                gb_trees:take_smallest(S#state.waiters),
            S1 = drop_waiter(Seq, W, S),
            gen_server:reply(From, ok),
            serve_waiters(grant(Pid, S1))
    end;
serve_waiters(S) ->
    S.

cancel_timer(infinity) ->
    ok;
cancel_timer(TRef) ->
    %% A timeout message already sent is ignored by handle_info/2 (stale sequence).
    _ = erlang:cancel_timer(TRef, [{async, true}, {info, false}]),
    ok.
