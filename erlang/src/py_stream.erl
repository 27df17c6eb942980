%%% @doc The controller of one `py:stream_start/3,4' stream: an Erlang process that
%%% submits the stream on behalf of the caller, grants the producer credit while the
%%% owner keeps up, and cancels the stream when the owner exits.
%%%
%%% Flow control looks at the owner's message queue length only: O(1) per check however
%%% many messages (of this stream, of other streams, or unrelated) the owner holds.
%%% Copying the owner's mailbox to count this stream's items, as before, cost gigabytes
%%% with a few dozen stalled streams to one owner.
%%%
%%% Each stream has a level, the queue length it lets the owner's mailbox grow to: at the
%%% start, the owner's queue length then plus `Window'. The producer gets credit up to the
%%% level; the level follows the owner's queue down (to its length plus `Window', never
%%% below `Window') and never rises. So a backlog the owner had when the stream started
%%% does not stall it, the owner of one stream never has more than about `Window' of its
%%% items unread, and messages that arrive later count against the window: an owner that
%%% leaves `Window' or more other messages unread pauses the stream until it reads them.
%%% Streams to one owner see each other's items as such later messages. So that an owner
%%% that waits for one stream while items of streams started after it sit unread is not
%%% stalled for good, a stream that got no credit for `?EXACT_FIRST_MS' counts its own
%%% unread items exactly, once (a copy of the owner's mailbox, dropped at once), and
%%% grants what its window leaves; while it stays stalled it looks again ever more
%%% rarely, down to once every 2 to 4 s (random, so that streams stalled together do
%%% not all look at once). That copy is the old per-look cost, paid only
%%% by a stream stalled that long, a few times a second at most.
%%%
%%% Controllers are temporary children of `py_stream_sup', started with `proc_lib'. A
%%% controller does not trap exits: when its supervisor shuts it down, it dies at once,
%%% and the NIF, which watches the process that submitted a stream, cancels the
%%% generator. The index of running streams (`Ref' to controller, for `cancel/1') is an
%%% ETS table that `py_stream_sup' creates through `new_index/0' and so owns: it lives
%%% exactly as long as the controllers it lists, and a restarted supervisor starts with
%%% an empty index and no controllers.
-module(py_stream).

-export([start/7, cancel/1, start_link/6, new_index/0]).
-export([init/6]).

-define(TABLE, py_streams).
-define(RECHECK_MS, 1).
-define(MAX_RECHECK_MS, 16).
%% A stream without credit for this long counts its own unread items exactly.
-define(EXACT_FIRST_MS, 100).
-define(EXACT_MAX_MS, 2000).
%% A window must fit the NIF's 64-bit credit counts.
-define(MAX_WINDOW, (1 bsl 64)).

%% @doc Start a stream; answers `{ok, Ref}' once it is queued on the context. The
%% generator runs in the caller's namespace (its handle is looked up here, in the
%% caller, and handed to the controller).
-spec start(py_context_router:entry(), py:py_module(), py:py_func(), py:py_args(),
            map(), pid(), pos_integer()) -> {ok, reference()} | {error, term()}.
start({_, _, _} = Entry, Module, Func, Args, Kwargs, Owner, Window)
  when is_pid(Owner), node(Owner) =:= node(), is_integer(Window), Window > 0,
       Window < ?MAX_WINDOW ->
    Env = py_context_router:local_env(Entry),
    Ref = make_ref(),
    Started = try
                  py_stream_sup:start_controller([Entry, Env, Ref,
                                                  py_request:stream_call(Module, Func, Args,
                                                                         Kwargs),
                                                  Owner, Window])
              catch
                  %% The application stopped under our feet.
                  exit:{noproc, _} -> {error, noproc}
              end,
    case Started of
        {ok, _Controller} -> {ok, Ref};
        {error, {refused, Error}} -> Error;
        {error, Reason} -> {error, {stream_start_failed, Reason}}
    end;
start(_Entry, _Module, _Func, _Args, _Kwargs, _Owner, _Window) ->
    {error, {badarg, stream_options}}.

%% @doc Start a controller (called by `py_stream_sup'): answers `{ok, Pid}' once the
%% stream is queued on the context, or `{error, {refused, Error}}' when the context
%% refused it.
-spec start_link(py_context_router:entry(), reference(), reference(),
                 py_request:stream_call(), pid(), pos_integer()) ->
          {ok, pid()} | {error, term()}.
start_link(Entry, Env, Ref, Call, Owner, Window) ->
    proc_lib:start_link(?MODULE, init, [Entry, Env, Ref, Call, Owner, Window]).

%% @doc Create the index of running streams, owned by the calling process (the
%% supervisor of the controllers).
-spec new_index() -> ok.
new_index() ->
    _ = ets:new(?TABLE, [named_table, public]),
    ok.

%% @doc Cancel the stream `Ref' (no-op if it already ended).
%% After `application:stop(erlang_python)' the index is gone, and so is every stream
%% (their contexts stopped): answers `ok'.
-spec cancel(reference()) -> ok.
cancel(Ref) ->
    case lookup(Ref) of
        [{Ref, Controller}] ->
            Mon = monitor(process, Controller),
            Controller ! {cancel, Ref, self()},
            receive
                {Ref, cancelled} -> demonitor(Mon, [flush]), ok;
                {'DOWN', Mon, process, Controller, _} -> ok
            after 5000 ->
                demonitor(Mon, [flush]),
                %% An answer that comes after all must not stay in the mailbox.
                receive {Ref, cancelled} -> ok after 0 -> ok end
            end;
        [] ->
            ok
    end.

lookup(Ref) ->
    try
        ets:lookup(?TABLE, Ref)
    catch
        error:badarg -> []
    end.

%% @private The controller's start (`proc_lib').
-spec init(py_context_router:entry(), reference(), reference(),
           py_request:stream_call(), pid(), pos_integer()) -> ok.
init(Entry, Env, Ref, Call, Owner, Window) ->
    %% Looked at before the producer can send anything, so the level counts none of this
    %% stream's own items as backlog.
    Queued = queue_len(Owner),
    Span = telemetry_start(Entry, Call, Owner),
    case py_request:stream_start(Entry, Env, Ref, Call, Owner, Window, Span =/= off) of
        {ok, Handle} ->
            true = ets:insert(?TABLE, {Ref, self()}),
            proc_lib:init_ack({ok, self()}),
            OwnerMon = monitor(process, Owner),
            %% The producer starts with `Window' items of credit.
            loop(#{ref => Ref, handle => Handle, owner => Owner, owner_mon => OwnerMon,
                   window => Window, level => Queued + Window,
                   waiting => false, backoff => ?RECHECK_MS,
                   stalled_since => undefined, exact_after => first_exact_after(),
                   span => Span});
        {error, _} = Error ->
            telemetry_stop(Span, 0, Error),
            proc_lib:init_ack({error, {refused, Error}})
    end.

%% The stream's `telemetry' span (`off' while telemetry is not loaded) runs in this
%% controller: from before its submission to the context's end note, which for an
%% observed stream carries the items sent and the owner's last event.
telemetry_start(Entry, {Module, Func, Args, Kwargs, _Traceparent}, Owner) ->
    telemetry_start(Entry, {Module, Func, Args, Kwargs}, Owner);
telemetry_start({_, _, Id}, {Module, Func, _, _}, Owner) ->
    case py_telemetry:enabled() of
        true ->
            py_telemetry:stream_start(#{kind => stream_start, module => Module,
                                        function => Func, context => Id,
                                        pool => py_context_router:pool_of(Id),
                                        owner => Owner});
        false ->
            off
    end.

telemetry_stop(off, _Items, _End) -> ok;
telemetry_stop(Span, Items, End) -> py_telemetry:stream_stop(Span, Items, End).

loop(#{ref := Ref, handle := Handle, owner := Owner} = S) ->
    receive
        {py_stream_credit, Ref} ->
            loop(grant(S));
        {recheck, Ref} ->
            loop(grant(S#{waiting := false}));
        {py_stream_finished, Ref} ->
            finish(S);
        {py_stream_finished, Ref, Items, End} ->
            finish(S, Items, End);
        {cancel, Ref, From} ->
            _ = py_request:cancel(Handle),
            From ! {Ref, cancelled},
            await_finish(S);
        {'DOWN', _, process, Owner, _} ->
            _ = py_request:cancel(Handle),
            await_finish(S);
        {py_reply, Ref, {error, _} = Error} ->
            %% The context stopped or crashed before the stream ended.
            Owner ! {py_stream, Ref, Error},
            finish(S, 0, Error);
        {py_reply, Ref, {observed, _, {error, _} = Error}} ->
            Owner ! {py_stream, Ref, Error},
            finish(S, 0, Error)
    end.

%% The producer has spent its credit (or a recheck is due): grant what brings the owner's
%% queue up to the level, or look again later when it is there already.
grant(#{waiting := true} = S) ->
    S;
grant(#{handle := Handle, owner := Owner, window := Window, level := Level} = S) ->
    Queued = queue_len(Owner),
    NewLevel = max(Window, min(Level, Queued + Window)),
    case NewLevel - Queued of
        Credit when Credit > 0 ->
            ok = py_request:grant(Handle, Credit),
            S#{level := NewLevel, backoff := ?RECHECK_MS,
               stalled_since := undefined, exact_after := first_exact_after()};
        _ ->
            stalled(S#{level := NewLevel}, Queued, erlang:monotonic_time(millisecond))
    end.

%% No credit by the queue length: after long enough, count this stream's own items.
stalled(#{stalled_since := undefined} = S, Queued, Now) ->
    stalled(S#{stalled_since := Now}, Queued, Now);
stalled(#{stalled_since := Since, exact_after := After, handle := Handle, owner := Owner,
          ref := Ref, window := Window} = S, Queued, Now) when Now - Since >= After ->
    %% The next look comes after a random part of the period too, so that streams stalled
    %% together (one owner that stopped reading) do not all copy its mailbox at once.
    Own = own_unread(Owner, Ref),
    case Window - Own of
        Credit when Credit > 0 ->
            ok = py_request:grant(Handle, Credit),
            S#{level := Queued + Credit, backoff := ?RECHECK_MS,
               stalled_since := undefined, exact_after := first_exact_after()};
        _ ->
            Next = min(After * 2, ?EXACT_MAX_MS),
            recheck_later(S#{stalled_since := Now, exact_after := Next + rand:uniform(Next)})
    end;
stalled(S, _Queued, _Now) ->
    recheck_later(S).

first_exact_after() ->
    ?EXACT_FIRST_MS + rand:uniform(?EXACT_FIRST_MS).

recheck_later(#{ref := Ref, backoff := Backoff} = S) ->
    erlang:send_after(Backoff, self(), {recheck, Ref}),
    S#{waiting := true, backoff := min(Backoff * 2, ?MAX_RECHECK_MS)}.

%% This stream's items in the owner's mailbox. The copy is dropped before returning, so
%% stalled streams do not each keep a mailbox's worth of garbage.
own_unread(Owner, Ref) ->
    Count = case erlang:process_info(Owner, messages) of
                {messages, Messages} -> length([M || {py_stream, R, _} = M <- Messages, R =:= Ref]);
                undefined -> 0
            end,
    true = erlang:garbage_collect(),
    Count.

queue_len(Owner) ->
    case erlang:process_info(Owner, message_queue_len) of
        {message_queue_len, N} -> N;
        undefined -> 0
    end.

await_finish(#{ref := Ref} = S) ->
    receive
        {py_stream_finished, Ref} -> finish(S);
        {py_stream_finished, Ref, Items, End} -> finish(S, Items, End);
        {cancel, Ref, From} ->
            %% Already cancelled (or its owner is gone): answer a second cancel at once.
            From ! {Ref, cancelled},
            await_finish(S)
    after 5000 ->
        finish(S, 0, {error, no_end})
    end.

finish(#{ref := Ref}) ->
    try ets:delete(?TABLE, Ref) catch error:badarg -> ok end,
    ok.

finish(#{span := Span} = S, Items, End) ->
    telemetry_stop(Span, Items, End),
    finish(S).
