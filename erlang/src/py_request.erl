%%% @doc The caller's side of the request protocol with the NIF: the only module that
%%% builds request tuples and hands them to `py_nif' (`submit/4', `submit_sync/3',
%%% `cast/3', `cancel/1', `stream_credit/2').
%%%
%%% A synchronous request is submitted, answered at once when the context replies within
%%% the NIF's short poll (`{reply, Result}'), or waited for in `receive' as
%%% `{py_reply, Ref, Result}'. While it waits, the caller runs the Erlang functions its
%%% request's Python code calls (`py_callback' messages), so they see its namespace and
%%% may call `py' again. On timeout the request is cancelled (the context interrupts its
%%% Python code) and whatever the context had already sent for it is flushed, so no late
%%% message stays in the caller's mailbox.
%%%
%%% A detached request (`spawn_call/5', `async_call/5') answers a reference at once; its
%%% reply is collected by `await/2' from the same process. A stream controller
%%% (`py_stream') submits a `stream_start' request, grants it credit and cancels it.
%%%
%%% Each entry point makes its reference and builds its tuple itself, in this module,
%%% and the `receive' that waits is in this module too: the compiler then lets that
%%% `receive' skip every message that was queued before the reference was made.
-module(py_request).

-export([call/7, call/8, eval/4, exec/3, async_gather/3, stream/6, stream_eval/4,
         call_method/4, getattr/3, to_term/2,
         cast/5, spawn_call/5, async_call/5, await/2,
         stream_start/6, grant/2, cancel/1, stream_call/4]).

%% Where a request goes: a context of the router, or the Python object behind a py ref.
-type entry() :: py_context_router:entry().
%% A routing result as `py_context_router' answers it (detached requests take it whole,
%% so that a routing error becomes their reply).
-type routed() :: {ok, entry()} | {error, term()}.
-type result() :: term().
%% Whether a Python exception answers `{error, {Class, Message, Details}}' (`true') or
%% 2.3.1's `{error, {Class, Message}}' (`false'); `default' follows the application's
%% `error_details' (read at application start).
-type details() :: boolean() | default.
%% What a stream calls, with the asking process's `traceparent' when it has one.
-type stream_call() :: {py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()}
                     | {py:py_module(), py:py_func(), py:py_args(), py:py_kwargs(), binary()}.
-export_type([routed/0, details/0, stream_call/0]).

%%% ---------------------------------------------------------------------------
%%% Synchronous requests on a context

%% @doc `Module.Func(*Args, **Kwargs)'; `ResultOpts' says how the result comes back
%% (`false' for the defaults, see `py:result_opts/1').
-spec call(entry(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs(),
           py:result_opts(), timeout()) -> result().
call(Entry, Module, Func, Args, Kwargs, ResultOpts, Timeout) ->
    call(Entry, Module, Func, Args, Kwargs, ResultOpts, default, Timeout).

%% @doc `call/7' with the error shape chosen by `Details'.
-spec call(entry(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs(),
           py:result_opts(), details(), timeout()) -> result().
call({_, Ctx, _} = Entry, Module, Func, Args, Kwargs, ResultOpts, Details, Timeout) ->
    Ref = make_ref(),
    sync(Ctx, py_context_router:local_env(Entry), Ref,
         {call, Ref, Module, Func, Args, Kwargs, ResultOpts}, Details, Timeout).

%% @doc Evaluate the expression `Source' with `Locals' (see `py:eval/2').
-spec eval(entry(), binary(), map(), timeout()) -> result().
eval({_, Ctx, _} = Entry, Source, Locals, Timeout) ->
    Ref = make_ref(),
    sync(Ctx, py_context_router:local_env(Entry), Ref, {eval, Ref, Source, Locals}, Timeout).

%% @doc Run the statements `Source'.
-spec exec(entry(), binary(), timeout()) -> result().
exec({_, Ctx, _} = Entry, Source, Timeout) ->
    Ref = make_ref(),
    sync(Ctx, py_context_router:local_env(Entry), Ref, {exec, Ref, Source}, Timeout).

%% @doc Run `[{M, F, A}]' or `[{M, F, A, Kwargs}]' concurrently on the context's loop.
-spec async_gather(entry(), list(), timeout()) -> result().
async_gather({_, Ctx, _} = Entry, Calls, Timeout) ->
    Ref = make_ref(),
    sync(Ctx, py_context_router:local_env(Entry), Ref, {async_gather, Ref, Calls}, Timeout).

%% @doc Collect what `Module.Func(*Args, **Kwargs)' yields.
-spec stream(entry(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs(),
             timeout()) -> result().
stream({_, Ctx, _} = Entry, Module, Func, Args, Kwargs, Timeout) ->
    Ref = make_ref(),
    sync(Ctx, py_context_router:local_env(Entry), Ref,
         {stream, Ref, Module, Func, Args, Kwargs}, Timeout).

%% @doc Collect what the generator expression `Source' yields.
-spec stream_eval(entry(), binary(), map(), timeout()) -> result().
stream_eval({_, Ctx, _} = Entry, Source, Locals, Timeout) ->
    Ref = make_ref(),
    sync(Ctx, py_context_router:local_env(Entry), Ref, {stream_eval, Ref, Source, Locals},
         Timeout).

%%% ---------------------------------------------------------------------------
%%% Synchronous requests on a py ref (they run on the context that owns the object, in
%%% no caller's namespace)

%% @doc Call method `Method' of the object behind `PyRef'.
-spec call_method(py:py_ref(), py:py_func(), py:py_args(), timeout()) -> result().
call_method(PyRef, Method, Args, Timeout) ->
    Ref = make_ref(),
    sync(PyRef, undefined, Ref, {call_method, Ref, PyRef, Method, Args, #{}}, Timeout).

%% @doc Read attribute `Name' of the object behind `PyRef'.
-spec getattr(py:py_ref(), atom() | binary() | string(), timeout()) -> result().
getattr(PyRef, Name, Timeout) ->
    Ref = make_ref(),
    sync(PyRef, undefined, Ref, {getattr, Ref, PyRef, Name}, Timeout).

%% @doc Convert the object behind `PyRef' to a term.
-spec to_term(py:py_ref(), timeout()) -> result().
to_term(PyRef, Timeout) ->
    Ref = make_ref(),
    sync(PyRef, undefined, Ref, {to_term, Ref, PyRef}, Timeout).

%%% ---------------------------------------------------------------------------
%%% Requests nobody waits for in `receive'

%% @doc Queue `Module.Func(*Args, **Kwargs)' with no reply; `ok' once queued.
-spec cast(entry(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()) ->
          ok | {error, term()}.
cast({_, Ctx, _} = Entry, Module, Func, Args, Kwargs) ->
    py_nif:cast(Ctx, py_context_router:local_env(Entry),
                traced({call, undefined, Module, Func, Args, Kwargs, false})).

%% @doc Start `Module.Func(*Args, **Kwargs)' and answer a reference for `await/2'. A
%% routing error, or a request the context refuses, is that reference's reply.
-spec spawn_call(routed(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()) ->
          reference().
spawn_call({ok, {_, Ctx, _} = Entry}, Module, Func, Args, Kwargs) ->
    Ref = make_ref(),
    detached(Ref, py_nif:submit(Ctx, py_context_router:local_env(Entry),
                                traced(with_details({call, Ref, Module, Func, Args, Kwargs,
                                                     false}, default)), false));
spawn_call({error, _} = Error, _Module, _Func, _Args, _Kwargs) ->
    detached(make_ref(), Error).

%% @doc Start the coroutine function `Module.Func(*Args, **Kwargs)' as a task on the
%% context's loop and answer a reference for `await/2', as `spawn_call/5' does.
-spec async_call(routed(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()) ->
          reference().
async_call({ok, {_, Ctx, _} = Entry}, Module, Func, Args, Kwargs) ->
    Ref = make_ref(),
    detached(Ref, py_nif:submit(Ctx, py_context_router:local_env(Entry),
                                traced(with_details({async_call, Ref, Module, Func, Args,
                                                     Kwargs}, default)), false));
async_call({error, _} = Error, _Module, _Func, _Args, _Kwargs) ->
    detached(make_ref(), Error).

%% The handle that `await/2' cancels with is kept in the process dictionary, under the
%% reference, until it is awaited.
-compile({inline, [detached/2]}).
detached(Ref, {ok, Handle}) ->
    put({'$py_spawned', Ref}, Handle),
    Ref;
detached(Ref, Failed) ->
    self() ! {py_reply, Ref, Failed},
    Ref.

%% @doc The reply of a detached request started by this process. On timeout the request
%% is cancelled and `{error, timeout}' answered, unless its reply was already on the way.
%% A reference this process has no request under (never a request's, started by another
%% process, or already awaited) answers `{error, not_a_request}' at once.
-spec await(reference(), timeout()) -> result().
await(Ref, Timeout) ->
    case erase({'$py_spawned', Ref}) of
        undefined ->
            %% A request that failed at submission has its reply queued already.
            receive
                {py_reply, Ref, Result} -> Result
            after 0 ->
                {error, not_a_request}
            end;
        Handle ->
            receive
                {py_reply, Ref, Result} -> Result
            after Timeout ->
                give_up(Ref, Handle)
            end
    end.

%%% ---------------------------------------------------------------------------
%%% Streams (for `py_stream', whose controller process calls these)

%% @doc Queue the stream `Ref' of `Module.Func(*Args, **Kwargs)' for `Owner', with the
%% calling process as its controller and `Window' items of credit to begin with.
%% `Call' comes from `stream_call/4', made in the process that asked for the stream.
-spec stream_start(entry(), reference(), reference(), stream_call(), pid(), pos_integer()) ->
          {ok, py_nif:handle()} | {error, term()}.
stream_start({_, Ctx, _}, Env, Ref, {Module, Func, Args, Kwargs}, Owner, Window) ->
    py_nif:submit(Ctx, Env,
                  with_details({stream_start, Ref, Module, Func, Args, Kwargs, Owner, self(),
                                Window}, default), false);
stream_start({_, Ctx, _}, Env, Ref, {Module, Func, Args, Kwargs, Traceparent}, Owner, Window) ->
    py_nif:submit(Ctx, Env,
                  {traced, Traceparent,
                   with_details({stream_start, Ref, Module, Func, Args, Kwargs, Owner, self(),
                                 Window}, default)}, false).

%% @doc What a stream calls, with the trace context of the calling process when it has
%% one: the controller that submits the stream runs in a process of its own.
-spec stream_call(py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()) -> stream_call().
stream_call(Module, Func, Args, Kwargs) ->
    case get('$py_traceparent') of
        undefined -> {Module, Func, Args, Kwargs};
        Traceparent -> {Module, Func, Args, Kwargs, Traceparent}
    end.

%% @doc Let the stream behind `Handle' produce `Items' more.
-spec grant(py_nif:handle(), pos_integer()) -> ok.
grant(Handle, Items) ->
    py_nif:stream_credit(Handle, Items).

%% @doc Cancel a submitted request: `cancelled' (its Python code is interrupted and no
%% reply follows) or `replied' (its reply was sent already).
-spec cancel(py_nif:handle()) -> cancelled | replied.
cancel(Handle) ->
    py_nif:cancel(Handle).

%%% ---------------------------------------------------------------------------
%%% Submit and wait

sync(Target, Env, Ref, Request, Timeout) ->
    sync(Target, Env, Ref, Request, default, Timeout).

sync(Target, Env, Ref, Request0, Details, Timeout) ->
    Request = traced(with_details(Request0, Details)),
    case submit_waiting(Target, Env, Request, Timeout) of
        {reply, Result} ->
            Result;
        {ok, Handle} ->
            %% Measured after the NIF's short poll (at most `reply_spin_us').
            Deadline = deadline(erlang:monotonic_time(millisecond), Timeout),
            wait(Ref, Handle, Deadline);
        {error, _} = Error ->
            Error
    end.

%% A request asking for the details of a Python exception comes wrapped (the NIF unwraps
%% it).
-compile({inline, [with_details/2]}).
with_details(Request, default) -> with_details(Request, persistent_term:get({py, error_details}, false));
with_details(Request, true) -> {error_details, Request};
with_details(Request, false) -> Request.

%% A request of a process running in a trace context (`py:with_trace_context/2', or a
%% callback's) carries it; others are left as they are, so the untraced path is unchanged.
-compile({inline, [traced/1]}).
traced(Request) ->
    case get('$py_traceparent') of
        undefined -> Request;
        Traceparent -> {traced, Traceparent, Request}
    end.

%% A zero timeout must not wait at all, not even for the NIF's short poll.
submit_waiting(Target, Env, Request, 0) ->
    py_nif:submit(Target, Env, Request, true);
submit_waiting(Target, Env, Request, _Timeout) ->
    py_nif:submit_sync(Target, Env, Request).

%% While waiting, this process runs the Erlang functions the request's Python code calls.
wait(Ref, Handle, Deadline) ->
    receive
        {py_reply, Ref, Result} ->
            Result;
        {py_callback, Ref, Ctx, CallbackId, Name, Args, _Env} ->
            py_callbacks:run(Ctx, CallbackId, Name, Args),
            wait(Ref, Handle, Deadline);
        {py_callback, Ref, Ctx, CallbackId, Name, Args, _Env, Traceparent} ->
            py_callbacks:run(Ctx, CallbackId, Name, Args, Traceparent),
            wait(Ref, Handle, Deadline)
    after remaining(Deadline) ->
        give_up(Ref, Handle)
    end.

deadline(_Start, infinity) -> infinity;
deadline(Start, Timeout) -> Start + Timeout.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

%% Either the request is cancelled (Python is interrupted and no reply will come) or its
%% reply is already on the way and is taken from the mailbox. A request that was never
%% queued (`undefined') has its reply in the mailbox or none.
give_up(Ref, undefined) ->
    receive {py_reply, Ref, Result} -> Result after 0 -> {error, timeout} end;
give_up(Ref, Handle) ->
    case py_nif:cancel(Handle) of
        cancelled ->
            flush_callbacks(Ref),
            {error, timeout};
        replied ->
            receive {py_reply, Ref, Result} -> Result end
    end.

%% Callback requests of a cancelled call that were already sent.
flush_callbacks(Ref) ->
    receive
        {py_callback, Ref, _, _, _, _, _} -> flush_callbacks(Ref);
        {py_callback, Ref, _, _, _, _, _, _} -> flush_callbacks(Ref)
    after 0 ->
        ok
    end.
