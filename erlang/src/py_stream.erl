%%% @doc The controller of one `py:stream_start/3,4' stream: an Erlang process that
%%% submits the stream on behalf of the caller, grants the producer credit while the
%%% owner keeps up (it pauses once the owner has `Window' items unread), and cancels the
%%% stream when the owner exits.
-module(py_stream).

-export([start/7, cancel/1]).

-define(TABLE, py_streams).
-define(RECHECK_MS, 1).
-define(MAX_RECHECK_MS, 16).

%% @doc Start a stream; answers `{ok, Ref}' once it is queued on the context.
-spec start(py_context_router:entry(), py:py_module(), py:py_func(), py:py_args(),
            map(), pid(), pos_integer()) -> {ok, reference()} | {error, term()}.
start({_, _, _} = Entry, Module, Func, Args, Kwargs, Owner, Window)
  when is_pid(Owner), is_integer(Window), Window > 0 ->
    Env = py_context_router:local_env(Entry),
    Starter = self(),
    Ref = make_ref(),
    Controller = spawn(fun() -> init(Starter, Entry, Env, Ref, [Module, Func, Args, Kwargs], Owner, Window) end),
    Mon = monitor(process, Controller),
    receive
        {Ref, started, Result} ->
            demonitor(Mon, [flush]),
            Result;
        {'DOWN', Mon, process, Controller, Reason} ->
            {error, {stream_start_failed, Reason}}
    end;
start(_Entry, _Module, _Func, _Args, _Kwargs, _Owner, _Window) ->
    {error, {badarg, stream_options}}.

%% @doc Cancel the stream `Ref' (no-op if it already ended).
-spec cancel(reference()) -> ok.
cancel(Ref) ->
    case ets:lookup(?TABLE, Ref) of
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

init(Starter, {_, Ctx, _}, Env, Ref, [Module, Func, Args, Kwargs], Owner, Window) ->
    Request = {stream_start, Ref, Module, Func, Args, Kwargs, Owner, self(), Window},
    case py_nif:submit(Ctx, Env, Request, false) of
        {ok, Handle} ->
            true = ets:insert(?TABLE, {Ref, self()}),
            Starter ! {Ref, started, {ok, Ref}},
            OwnerMon = monitor(process, Owner),
            loop(#{ref => Ref, handle => Handle, owner => Owner, owner_mon => OwnerMon,
                   window => Window, waiting => false});
        {error, _} = Error ->
            Starter ! {Ref, started, Error}
    end.

loop(#{ref := Ref, handle := Handle, owner := Owner} = S) ->
    receive
        {py_stream_credit, Ref} ->
            loop(grant(S));
        {recheck, Ref} ->
            loop(grant(S#{waiting := false}));
        {py_stream_finished, Ref} ->
            finish(S);
        {cancel, Ref, From} ->
            _ = py_nif:cancel(Handle),
            From ! {Ref, cancelled},
            await_finish(S);
        {'DOWN', _, process, Owner, _} ->
            _ = py_nif:cancel(Handle),
            await_finish(S);
        {py_reply, Ref, {error, _} = Error} ->
            %% The context stopped or crashed before the stream ended.
            Owner ! {py_stream, Ref, Error},
            finish(S)
    end.

%% Grant as many items as the owner has room for; if it has none, look again later.
%% The owner's whole queue length bounds this stream's unread items from above; only when
%% it reaches the window are the stream's own messages counted, so unrelated messages in
%% the owner's mailbox never stall the stream.
grant(#{waiting := true} = S) ->
    S;
grant(#{handle := Handle, owner := Owner, window := Window, ref := Ref} = S) ->
    Unread = unread(Owner, Ref, Window),
    case Unread < Window of
        true ->
            ok = py_nif:stream_credit(Handle, Window - Unread),
            S#{backoff => ?RECHECK_MS};
        false ->
            Backoff = maps:get(backoff, S, ?RECHECK_MS),
            erlang:send_after(Backoff, self(), {recheck, Ref}),
            S#{waiting := true, backoff => min(Backoff * 2, ?MAX_RECHECK_MS)}
    end.

unread(Owner, Ref, Window) ->
    case erlang:process_info(Owner, message_queue_len) of
        {message_queue_len, N} when N < Window -> N;
        {message_queue_len, _} ->
            case erlang:process_info(Owner, messages) of
                {messages, Messages} -> length([M || {py_stream, R, _} = M <- Messages, R =:= Ref]);
                undefined -> 0
            end;
        undefined -> 0
    end.

await_finish(#{ref := Ref} = S) ->
    receive
        {py_stream_finished, Ref} -> finish(S);
        {cancel, Ref, From} ->
            %% Already cancelled (or its owner is gone): answer a second cancel at once.
            From ! {Ref, cancelled},
            await_finish(S)
    after 5000 ->
        finish(S)
    end.

finish(#{ref := Ref}) ->
    ets:delete(?TABLE, Ref),
    ok.
