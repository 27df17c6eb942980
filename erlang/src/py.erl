%%% @doc Run Python from Erlang: calls, eval/exec, fire-and-forget and spawned calls,
%%% and references to Python objects.
%%%
%%% This module is the facade: it checks and normalises arguments and options, picks
%%% the context (`py_context_router') and hands the request to `py_request', which queues
%%% it straight onto that context (an OS thread running Python) and waits in `receive'
%%% for the reply, so no BEAM scheduler ever runs Python or waits for the GIL. Each
%%% process has its own Python namespace on each context, freed when the process exits.
%%% Results are `{ok, Value}', `ok' or `{error, Reason}'; a Python exception is
%%% `{error, {ClassName, Message}}'.
%%% See docs/api.md for the full contract.
-module(py).

-export([call/3, call/4, call/5, call/6,
         eval/1, eval/2, eval/3,
         exec/1, exec/2,
         cast/3, cast/4, cast/5,
         spawn_call/3, spawn_call/4, spawn_call/5,
         await/1, await/2,
         version/0,
         context/0, context/1,
         start_contexts/0, start_contexts/1, stop_contexts/0, contexts_started/0,
         get_local_env/1, execution_mode/0, num_executors/0,
         call_method/3, getattr/2, to_term/1, is_ref/1, release/1,
         register_function/2, register_function/3, unregister_function/1,
         async_call/3, async_call/4, async_await/1, async_await/2, async_gather/1,
         async_stream/3, async_stream/4, stream/3, stream/4, stream_eval/1, stream_eval/2,
         stream_start/3, stream_start/4, stream_cancel/1,
         state_store/2, state_fetch/1, state_remove/1, state_keys/0, state_clear/0,
         state_incr/1, state_incr/2, state_decr/1, state_decr/2,
         shared_dict_new/0, shared_dict_get/2, shared_dict_get/3, shared_dict_set/3,
         shared_dict_del/2, shared_dict_keys/1, shared_dict_destroy/1,
         gc/0, gc/1, memory_stats/0, tracemalloc_start/0, tracemalloc_start/1,
         tracemalloc_stop/0, reload/1, dup_fd/1,
         activate_venv/1, deactivate_venv/0, venv_info/0,
         configure_logging/0, configure_logging/1, ensure_venv/2, ensure_venv/3,
         register_pool/2, unregister_pool/1,
         enable_tracing/0, disable_tracing/0, get_traces/0, clear_traces/0]).
%% Sub-interpreters with their own GIL (CPython 3.12+): parallel calls and handles.
-export([parallel/1,
         subinterp_supported/0, subinterp_create/0, subinterp_destroy/1,
         subinterp_call/4, subinterp_call/5, subinterp_eval/2, subinterp_eval/3,
         subinterp_exec/2, subinterp_cast/4, subinterp_async_call/4,
         subinterp_await/1, subinterp_await/2,
         subinterp_pool_start/0, subinterp_pool_start/1, subinterp_pool_stop/0,
         subinterp_pool_ready/0, subinterp_pool_stats/0]).
-export([enable_tracing/1]).
-export([get_traces/1, with_trace_context/2, current_traceparent/0]).

-type py_module() :: atom() | binary() | string().
-type py_func() :: atom() | binary() | string().
-type py_args() :: [term()].
-type py_kwargs() :: #{atom() | binary() | string() => term()}.
-type py_result() :: {ok, term()} | {error, term()}.
-type py_ref() :: reference().
-type pool() :: atom().
-type code() :: iodata() | unicode:chardata().
%% Call options (docs/api.md, "Call options"): `return => ref' answers a py ref instead of
%% a term; `strict => true' refuses values with no Erlang counterpart (default: the app
%% env `strict_conversion'); `arrays => binary' answers numeric arrays as
%% `{py_array, DType, Shape, Binary}'; `error_details => true' answers a Python exception
%% as `{error, {Class, Message, Details}}' (default: the app env `error_details').
-type call_opts() :: #{kwargs => py_kwargs(), timeout => timeout(), return => term | ref,
                       strict => boolean(), arrays => list | binary,
                       error_details => boolean()}.
%% The options as `py_request' hands them to the NIF: `false' (all defaults: the common
%% case, cheapest to build and decode), `true' (`return => ref' alone, 2.3.1's encoding),
%% or `{Return, Strict, Arrays}'.
-type result_opts() :: boolean() | {term | ref, default | boolean(), list | binary}.
%% A SharedDict handle (a NIF resource, which the VM shows as a reference).
-type shared_dict() :: reference().
%% A finished span as `get_traces/0' answers it.
-type span() :: #{name := binary(), span_id := non_neg_integer(),
                  parent_id := non_neg_integer() | undefined, attributes := map(),
                  start_time := integer(), end_time := integer(), duration_us := integer(),
                  status := ok | error, end_attrs := map(),
                  events := [#{name := binary(), attrs := map(), time := integer()}],
                  trace_id := binary()}.
-export_type([code/0]).
-export_type([py_module/0, py_func/0, py_args/0, py_kwargs/0, py_result/0, py_ref/0,
              shared_dict/0, span/0, call_opts/0, result_opts/0]).

%% Binaries bigger than this are stored by a dirty scheduler (see state_store/2).
-define(BIG_STATE_VALUE, 1048576).
%% `infinity' or a timeout `receive ... after' accepts.
-define(is_timeout(T), (T =:= infinity orelse (is_integer(T) andalso T >= 0 andalso T =< 16#FFFFFFFF))).

%%% ---------------------------------------------------------------------------
%%% Calls

%% @doc Call `Module.Func(*Args)'. `Module' `'__main__'' is the caller's namespace.
-spec call(py_module(), py_func(), py_args()) -> py_result().
call(Module, Func, Args) ->
    call_routed(pick_for(Module, Func), Module, Func, Args, #{}, default_timeout(), false).

%% @doc `call(Ctx, M, F, A)' on a context pid, `call(Pool, M, F, A)' on a pool, or
%% `call(M, F, A, Kwargs)' with keyword arguments.
-spec call(pid(), py_module(), py_func(), py_args()) -> py_result();
          (pool(), py_module(), py_func(), py_args()) -> py_result();
          (py_module(), py_func(), py_args(), py_kwargs()) -> py_result().
call(Ctx, Module, Func, Args) when is_pid(Ctx) ->
    call_routed(by_pid(Ctx), Module, Func, Args, #{}, default_timeout(), false);
call(Pool, Module, Func, Args) when is_atom(Pool), is_list(Args) ->
    call_routed(pool(Pool), Module, Func, Args, #{}, default_timeout(), false);
call(Module, Func, Args, Kwargs) ->
    call_routed(pick_for(Module, Func), Module, Func, Args, Kwargs, default_timeout(), false).

%% @doc `call(Ctx, M, F, A, Opts)' with options `kwargs', `timeout', `return' (`ref'
%% answers a py ref to the result), `strict', `arrays' and `error_details' (see
%% `call_opts()' and docs/api.md), `call(Pool, M, F, A, Kwargs)', `call(M, F, A, Kwargs,
%% Opts)' with the same options (the default context), or `call(M, F, A, Kwargs, Timeout)'.
-spec call(pid(), py_module(), py_func(), py_args(), call_opts()) -> py_result();
          (pool(), py_module(), py_func(), py_args(), py_kwargs()) -> py_result();
          (py_module(), py_func(), py_args(), py_kwargs(), call_opts()) -> py_result();
          (py_module(), py_func(), py_args(), py_kwargs(), timeout()) -> py_result().
call(Ctx, Module, Func, Args, Opts) when is_pid(Ctx), is_map(Opts) ->
    call_opts(by_pid(Ctx), Module, Func, Args, maps:get(kwargs, Opts, #{}), Opts);
call(Pool, Module, Func, Args, Kwargs) when is_atom(Pool), is_list(Args), is_map(Kwargs) ->
    call_routed(pool(Pool), Module, Func, Args, Kwargs, default_timeout(), false);
call(Module, Func, Args, Kwargs, Opts) when is_map(Kwargs), is_map(Opts) ->
    call_opts(pick_for(Module, Func), Module, Func, Args, Kwargs, Opts);
call(Module, Func, Args, Kwargs, Timeout) ->
    call_routed(pick_for(Module, Func), Module, Func, Args, Kwargs, Timeout, false).

%% @doc `call(Ctx, M, F, A, Kwargs, Opts)' on a context pid or `call(Pool, M, F, A,
%% Kwargs, Opts)' on a named pool, with the options of `call/5' (a `kwargs' option is
%% ignored: `Kwargs' are the keyword arguments).
-spec call(pid() | pool(), py_module(), py_func(), py_args(), py_kwargs(), call_opts()) ->
          py_result().
call(Ctx, Module, Func, Args, Kwargs, Opts) when is_pid(Ctx), is_map(Opts) ->
    call_opts(by_pid(Ctx), Module, Func, Args, Kwargs, Opts);
call(Pool, Module, Func, Args, Kwargs, Opts) when is_atom(Pool), is_map(Opts) ->
    call_opts(pool(Pool), Module, Func, Args, Kwargs, Opts).

call_opts(Routed, Module, Func, Args, Kwargs, Opts) ->
    case result_opts(Opts) of
        {ok, ResultOpts} ->
            call_routed(Routed, Module, Func, Args, Kwargs,
                        maps:get(timeout, Opts, default_timeout()), ResultOpts,
                        maps:get(error_details, Opts, default));
        Error ->
            Error
    end.

%% `return' is read as 2.3.1 read it (anything but `ref' is a term); the new options are
%% checked.
-spec result_opts(map()) -> {ok, result_opts()} | {error, {badarg, strict | arrays}}.
result_opts(Opts) ->
    Return = case maps:get(return, Opts, term) of
                 ref -> ref;
                 _ -> term
             end,
    Strict = maps:get(strict, Opts, default),
    Arrays = maps:get(arrays, Opts, list),
    if
        not is_boolean(Strict), Strict =/= default -> {error, {badarg, strict}};
        Arrays =/= list, Arrays =/= binary -> {error, {badarg, arrays}};
        Strict =:= default, Arrays =:= list -> {ok, Return =:= ref};
        true -> {ok, {Return, Strict, Arrays}}
    end.

call_routed(Routed, Module, Func, Args, Kwargs, Timeout, ResultOpts) ->
    call_routed(Routed, Module, Func, Args, Kwargs, Timeout, ResultOpts, default).

call_routed({ok, Entry}, Module, Func, Args, Kwargs, Timeout, ResultOpts, Details)
  when is_map(Kwargs), ?is_timeout(Timeout), (is_boolean(Details) orelse Details =:= default) ->
    py_request:call(Entry, Module, Func, Args, Kwargs, ResultOpts, Details, Timeout);
call_routed({ok, _}, _Module, _Func, _Args, Kwargs, _Timeout, _, _) when not is_map(Kwargs) ->
    {error, {badarg, kwargs}};
call_routed({ok, _}, _Module, _Func, _Args, _Kwargs, Timeout, _, _) when not ?is_timeout(Timeout) ->
    {error, {badarg, timeout}};
call_routed({ok, _}, _Module, _Func, _Args, _Kwargs, _Timeout, _, _) ->
    {error, {badarg, error_details}};
call_routed(Error, _, _, _, _, _, _, _) ->
    Error.

%%% ---------------------------------------------------------------------------
%%% eval / exec

%% @doc Evaluate a Python expression in the caller's namespace, which is both its
%% globals and its locals (as for module code): `(x := 1)' defines `x' there.
-spec eval(code()) -> py_result().
eval(Code) ->
    eval_routed(pick(), Code, #{}, default_timeout()).

%% @doc `eval(Code, Locals)': the caller's namespace is the globals, and `Locals'
%% (map keys become names) are local to this evaluation: lambdas, comprehensions and
%% generator expressions in it see them, they never enter the namespace, and what the
%% expression writes to `globals()' stays there. Keys that are not plain Python names
%% (`<<"my-var">>', `1', `class') are only reachable through `locals()', and then nested
%% scopes see none of the locals. See docs/api.md, "eval and exec".
%% `eval(Ctx, Code)' evaluates on a given context.
-spec eval(code(), map()) -> py_result();
          (pid(), code()) -> py_result().
eval(Ctx, Code) when is_pid(Ctx) ->
    eval_routed(by_pid(Ctx), Code, #{}, default_timeout());
eval(Code, Locals) ->
    eval_routed(pick(), Code, Locals, default_timeout()).

%% @doc `eval(Ctx, Code, Locals)' or `eval(Code, Locals, Timeout)'; `Locals' as for
%% `eval/2'.
-spec eval(pid(), code(), map()) -> py_result();
          (code(), map(), timeout()) -> py_result().
eval(Ctx, Code, Locals) when is_pid(Ctx) ->
    eval_routed(by_pid(Ctx), Code, Locals, default_timeout());
eval(Code, Locals, Timeout) ->
    eval_routed(pick(), Code, Locals, Timeout).

eval_routed({ok, Entry}, Code, Locals, Timeout) when is_map(Locals), ?is_timeout(Timeout) ->
    case source(Code) of
        {ok, Source} -> py_request:eval(Entry, Source, Locals, Timeout);
        Error -> Error
    end;
eval_routed({ok, _}, _Code, Locals, _Timeout) when not is_map(Locals) ->
    {error, {badarg, locals}};
eval_routed({ok, _}, _Code, _Locals, _Timeout) ->
    {error, {badarg, timeout}};
eval_routed(Error, _, _, _) ->
    Error.

%% @doc Run Python statements in the caller's namespace; answers `ok'.
-spec exec(code()) -> ok | {error, term()}.
exec(Code) ->
    exec_routed(pick(), Code).

%% @doc Run Python statements on a given context.
-spec exec(pid(), code()) -> ok | {error, term()}.
exec(Ctx, Code) when is_pid(Ctx) ->
    exec_routed(by_pid(Ctx), Code).

%% Bad code is reported as such even when no context runs.
exec_routed(Routed, Code) ->
    case {source(Code), Routed} of
        {{ok, Source}, {ok, Entry}} -> py_request:exec(Entry, Source, default_timeout());
        {{ok, _}, Error} -> Error;
        {Error, _} -> Error
    end.

%% Code as a UTF-8 binary.
source(Code) ->
    case catch unicode:characters_to_binary(Code) of
        Source when is_binary(Source) -> {ok, Source};
        _ -> {error, {badarg, code}}
    end.

%%% ---------------------------------------------------------------------------
%%% cast and spawn_call

%% @doc Fire-and-forget call: answers `ok' once queued. The call sees the caller's
%% namespace, like `call/3'.
-spec cast(py_module(), py_func(), py_args()) -> ok | {error, term()}.
cast(Module, Func, Args) ->
    cast_routed(pick_for(Module, Func), Module, Func, Args, #{}).

-spec cast(pid(), py_module(), py_func(), py_args()) -> ok | {error, term()};
          (py_module(), py_func(), py_args(), py_kwargs()) -> ok | {error, term()}.
cast(Ctx, Module, Func, Args) when is_pid(Ctx) ->
    cast_routed(by_pid(Ctx), Module, Func, Args, #{});
cast(Module, Func, Args, Kwargs) ->
    cast_routed(pick_for(Module, Func), Module, Func, Args, Kwargs).

-spec cast(pid(), py_module(), py_func(), py_args(), py_kwargs()) -> ok | {error, term()}.
cast(Ctx, Module, Func, Args, Kwargs) when is_pid(Ctx) ->
    cast_routed(by_pid(Ctx), Module, Func, Args, Kwargs).

cast_routed({ok, Entry}, Module, Func, Args, Kwargs) when is_map(Kwargs) ->
    py_request:cast(Entry, Module, Func, Args, Kwargs);
cast_routed({ok, _}, _, _, _, _) ->
    {error, {badarg, kwargs}};
cast_routed(Error, _, _, _, _) ->
    Error.

%% @doc Start a call and answer a reference at once; collect the result with
%% `await/1,2' from the same process.
-spec spawn_call(py_module(), py_func(), py_args()) -> py_ref().
spawn_call(Module, Func, Args) ->
    spawn_routed(pick_for(Module, Func), Module, Func, Args, #{}).

-spec spawn_call(pid(), py_module(), py_func(), py_args()) -> py_ref();
                (py_module(), py_func(), py_args(), py_kwargs()) -> py_ref().
spawn_call(Ctx, Module, Func, Args) when is_pid(Ctx) ->
    spawn_routed(by_pid(Ctx), Module, Func, Args, #{});
spawn_call(Module, Func, Args, Kwargs) ->
    spawn_routed(pick_for(Module, Func), Module, Func, Args, Kwargs).

-spec spawn_call(pid(), py_module(), py_func(), py_args(), py_kwargs()) -> py_ref().
spawn_call(Ctx, Module, Func, Args, Kwargs) when is_pid(Ctx) ->
    spawn_routed(by_pid(Ctx), Module, Func, Args, Kwargs).

spawn_routed(Routed, Module, Func, Args, Kwargs) ->
    py_request:spawn_call(with_kwargs(Routed, Kwargs), Module, Func, Args, Kwargs).

%% A detached request answers a reference whatever happens: bad keyword arguments are
%% that reference's reply, like a routing error. Inlined: it is on the spawn_call path.
-compile({inline, [with_kwargs/2]}).
with_kwargs({ok, _}, Kwargs) when not is_map(Kwargs) -> {error, {badarg, kwargs}};
with_kwargs(Routed, _Kwargs) -> Routed.

%% @doc Wait for a `spawn_call' result (default timeout).
-spec await(py_ref()) -> py_result().
await(Ref) ->
    await(Ref, default_timeout()).

%% @doc Wait for a `spawn_call' result; on timeout the Python call is interrupted and
%% its late result discarded.
-spec await(py_ref(), timeout()) -> py_result().
await(Ref, Timeout) when is_reference(Ref), ?is_timeout(Timeout) ->
    py_request:await(Ref, Timeout).

%%% ---------------------------------------------------------------------------
%%% Coroutines and generators (run on the context's asyncio loop)

%% @doc Start `Module.Func(*Args)', a coroutine function (a plain function works too),
%% on the caller's context; answers a reference at once for `async_await/1,2'.
-spec async_call(py_module(), py_func(), py_args()) -> py_ref().
async_call(Module, Func, Args) ->
    async_call(Module, Func, Args, #{}).

-spec async_call(py_module(), py_func(), py_args(), py_kwargs()) -> py_ref().
async_call(Module, Func, Args, Kwargs) ->
    py_request:async_call(with_kwargs(pick_for(Module, Func), Kwargs), Module, Func, Args, Kwargs).

%% @doc Wait for an `async_call' result; a timeout cancels the task.
-spec async_await(py_ref()) -> py_result().
async_await(Ref) ->
    await(Ref).

-spec async_await(py_ref(), timeout()) -> py_result().
async_await(Ref, Timeout) ->
    await(Ref, Timeout).

%% @doc Run `[{M, F, A}]' (or `{M, F, A, Kwargs}') concurrently on one context's loop:
%% `{ok, Results}' in order, or the first error.
-spec async_gather([{py_module(), py_func(), py_args()} |
                    {py_module(), py_func(), py_args(), py_kwargs()}]) -> py_result().
async_gather(Calls) when is_list(Calls) ->
    case pick() of
        {ok, Entry} -> py_request:async_gather(Entry, Calls, default_timeout());
        Error -> Error
    end;
async_gather(_Calls) ->
    {error, {badarg, calls}}.

%% @doc Collect an async generator (or any iterable) into `{ok, Items}'.
-spec async_stream(py_module(), py_func(), py_args()) -> py_result().
async_stream(Module, Func, Args) ->
    stream(Module, Func, Args, #{}).

-spec async_stream(py_module(), py_func(), py_args(), py_kwargs()) -> py_result().
async_stream(Module, Func, Args, Kwargs) ->
    stream(Module, Func, Args, Kwargs).

%% @doc Collect what `Module.Func(*Args)' yields (a sync or async generator).
-spec stream(py_module(), py_func(), py_args()) -> py_result().
stream(Module, Func, Args) ->
    stream(Module, Func, Args, #{}).

-spec stream(py_module(), py_func(), py_args(), py_kwargs()) -> py_result().
stream(Module, Func, Args, Kwargs) when is_map(Kwargs) ->
    case pick_for(Module, Func) of
        {ok, Entry} -> py_request:stream(Entry, Module, Func, Args, Kwargs, default_timeout());
        Error -> Error
    end;
stream(_Module, _Func, _Args, _Kwargs) ->
    {error, {badarg, kwargs}}.

%% @doc Collect what a generator expression yields. `stream_eval(Code, Locals)' treats
%% `Locals' as `eval/2' does, so `(x * k for x in range(n))' with `#{k => 3, n => 3}'
%% yields `[0, 3, 6]'.
-spec stream_eval(code()) -> py_result().
stream_eval(Code) ->
    stream_eval(Code, #{}).

-spec stream_eval(code(), map()) -> py_result().
stream_eval(Code, Locals) when is_map(Locals) ->
    case source(Code) of
        {ok, Source} ->
            case pick() of
                {ok, Entry} -> py_request:stream_eval(Entry, Source, Locals, default_timeout());
                Error -> Error
            end;
        Error ->
            Error
    end;
stream_eval(_Code, _Locals) ->
    {error, {badarg, locals}}.

%% @doc Stream what `Module.Func(*Args)' yields to the caller as it is produced:
%% `{py_stream, Ref, {data, V}}' per item, then `{py_stream, Ref, done}' or
%% `{py_stream, Ref, {error, Reason}}'.
-spec stream_start(py_module(), py_func(), py_args()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args) ->
    stream_start(Module, Func, Args, #{}).

%% @doc Options: `owner => Pid' (default the caller), `kwargs => Map', `window => N'
%% (default 1000): the producer pauses while the owner's message queue holds `N' messages
%% more than it held when the stream started, and while more than `N' of its own items
%% are unread (see `py_stream' for the exact policy).
-spec stream_start(py_module(), py_func(), py_args(), map()) -> {ok, reference()} | {error, term()}.
stream_start(Module, Func, Args, Opts) when is_map(Opts) ->
    case pick_for(Module, Func) of
        {ok, _} when is_map_key(kwargs, Opts), not is_map(map_get(kwargs, Opts)) ->
            {error, {badarg, kwargs}};
        {ok, Entry} ->
            py_stream:start(Entry, Module, Func, Args,
                            maps:get(kwargs, Opts, #{}),
                            maps:get(owner, Opts, self()),
                            maps:get(window, Opts, 1000));
        Error ->
            Error
    end.

%% @doc Stop a stream: its generator is closed (its `finally' runs) and the owner gets
%% `{py_stream, Ref, {error, cancelled}}' unless the stream had already ended. Answers
%% `ok', also for an unknown stream and after the application stopped.
-spec stream_cancel(reference()) -> ok.
stream_cancel(Ref) ->
    py_stream:cancel(Ref).

%%% ---------------------------------------------------------------------------
%%% py refs

%% @doc Call a method of the Python object behind a py ref.
-spec call_method(py_ref(), py_func(), py_args()) -> py_result().
call_method(PyRef, Method, Args) ->
    case py_nif:is_ref(PyRef) of
        true -> py_request:call_method(PyRef, Method, Args, default_timeout());
        false -> {error, {badarg, py_ref}}
    end.

%% @doc Read an attribute of the Python object behind a py ref.
-spec getattr(py_ref(), atom() | binary() | string()) -> py_result().
getattr(PyRef, Name) ->
    case py_nif:is_ref(PyRef) of
        true -> py_request:getattr(PyRef, Name, default_timeout());
        false -> {error, {badarg, py_ref}}
    end.

%% @doc Convert the Python object behind a py ref to a term.
-spec to_term(py_ref()) -> py_result().
to_term(PyRef) ->
    case py_nif:is_ref(PyRef) of
        true -> py_request:to_term(PyRef, default_timeout());
        false -> {error, {badarg, py_ref}}
    end.

%% @doc Whether a term is a py ref (also after `release/1').
-spec is_ref(term()) -> boolean().
is_ref(Term) ->
    py_nif:is_ref(Term).

%% @doc Let go of the Python object behind a py ref now, instead of when the last copy of
%% the ref is garbage collected. Answers `ok' (also when released before); afterwards
%% `call_method/3', `getattr/2' and `to_term/1' on it answer `{error, {badarg, py_ref}}'.
-spec release(py_ref()) -> ok | {error, {badarg, py_ref}}.
release(PyRef) ->
    case py_nif:is_ref(PyRef) of
        true ->
            _ = py_nif:ref_release(PyRef),
            ok;
        false ->
            {error, {badarg, py_ref}}
    end.

%%% ---------------------------------------------------------------------------
%%% Contexts and information

%% @doc The Python version string (`sys.version').
-spec version() -> {ok, binary()} | {error, term()}.
version() ->
    eval(<<"__import__('sys').version">>).

%% @doc The calling process's context (chosen once, then sticky). Raises
%% `error:contexts_not_started' or `error:{context_restarting, N}' when there is none.
-spec context() -> pid().
context() ->
    context_pid(py_context_router:pick()).

%% While the contexts restart there is no pid to give: raise the router's reason
%% (`contexts_not_started', `{context_restarting, N}'), not a badmatch.
context_pid({ok, {Pid, _, _}}) -> Pid;
context_pid({error, Reason}) -> error(Reason).

%% @doc The context with index `N' (1-based).
-spec context(pos_integer()) -> pid().
context(N) when is_integer(N), N > 0 ->
    context_pid(py_context_router:by_index(N)).

%% @doc Start contexts with the default count (`num_contexts', else schedulers online)
%% if none run.
-spec start_contexts() -> {ok, [pid()]} | {error, term()}.
start_contexts() ->
    start_contexts(#{}).

%% @doc Start contexts: `#{contexts => N, mode => worker | subinterp | owngil}' (mode
%% default: the app env `context_mode', else `worker'). `subinterp' and `owngil' both run
%% each context in a sub-interpreter with its own GIL (CPython 3.12+; older answer
%% `{error, {unsupported_mode, Mode}}'). Answers the running ones when contexts are
%% already started in that mode, `{error, {already_started, RunningMode}}' in another.
-spec start_contexts(map()) -> {ok, [pid()]} | {error, term()}.
start_contexts(Opts) when is_map(Opts) ->
    N = maps:get(contexts, Opts, py_context_sup:default_count()),
    Mode = maps:get(mode, Opts, application:get_env(erlang_python, context_mode, worker)),
    case py_subinterp:resolve_mode(Mode) of
        {ok, _} when is_integer(N), N > 0 -> py_context_manager:start_contexts(N, Mode);
        {ok, _} -> {error, {badarg, contexts}};
        {error, {badarg, _}} -> {error, {badarg, mode}};
        Error -> Error
    end.

%% @doc Stop all contexts; calls answer `{error, contexts_not_started}' until
%% `start_contexts/0,1'.
-spec stop_contexts() -> ok.
stop_contexts() ->
    py_context_manager:stop_contexts().

-spec contexts_started() -> boolean().
contexts_started() ->
    py_context_router:count() > 0.

%% @doc The calling process's namespace handle on context `Ctx'.
-spec get_local_env(pid()) -> reference().
get_local_env(Ctx) when is_pid(Ctx) ->
    {ok, Entry} = py_context_router:by_pid(Ctx),
    py_context_router:local_env(Entry).

%% @doc How the default contexts run Python: `subinterp' (each in a sub-interpreter with
%% its own GIL), `free_threaded' (a CPython build without a GIL) or `multi_executor' (one
%% thread per context, sharing the GIL).
-spec execution_mode() -> free_threaded | subinterp | multi_executor.
execution_mode() ->
    case {py_context_router:mode(default), py_subinterp:free_threaded()} of
        {own_gil, _} -> subinterp;
        {main, true} -> free_threaded;
        {main, false} -> multi_executor
    end.

%% @doc The number of context threads sharing one GIL, as 2.3.1 defines it: the default
%% contexts in `multi_executor' mode, else 1 (each sub-interpreter, or the free-threaded
%% interpreter, needs no executor threads to share).
-spec num_executors() -> pos_integer().
num_executors() ->
    case execution_mode() of
        multi_executor -> max(1, py_context_router:count());
        _ -> 1
    end.

%%% ---------------------------------------------------------------------------
%%% Sub-interpreters with their own GIL (docs/api.md, "Sub-interpreters")

%% @doc Run `[{M, F, A}]' (or `{M, F, A, Kwargs}') at the same time, each on a context of
%% the sub-interpreter pool `parallel' (started on first use); `{ok, Results}' in the
%% calls' order, or the first error in that order (the calls not collected yet are then
%% cancelled). `{error, subinterpreters_not_supported}' before CPython 3.12.
-spec parallel([py_subinterp_parallel:call()]) -> {ok, [term()]} | {error, term()}.
parallel(Calls) ->
    py_subinterp_parallel:run(Calls).

%% @doc Whether sub-interpreters with their own GIL run here (CPython 3.12+).
-spec subinterp_supported() -> boolean().
subinterp_supported() ->
    py_subinterp:supported().

%% @doc A new sub-interpreter of its own (own GIL, own thread): `{ok, Handle}'. Needs
%% `subinterp_pool_start/0,1' first. Its interpreter ends at `subinterp_destroy/1', at
%% `subinterp_pool_stop/0', or when the handle is garbage collected.
-spec subinterp_create() -> {ok, reference()} | {error, term()}.
subinterp_create() ->
    py_subinterp_handle:create().

%% @doc End the handle's interpreter; `ok' (also for a handle already gone).
-spec subinterp_destroy(reference()) -> ok.
subinterp_destroy(Handle) ->
    py_subinterp_handle:destroy(Handle).

-spec subinterp_call(reference(), py_module(), py_func(), py_args()) -> py_result().
subinterp_call(Handle, Module, Func, Args) ->
    subinterp_call(Handle, Module, Func, Args, #{}).

-spec subinterp_call(reference(), py_module(), py_func(), py_args(), py_kwargs()) -> py_result().
subinterp_call(Handle, Module, Func, Args, Kwargs) ->
    py_subinterp_handle:call(Handle, Module, Func, Args, Kwargs, default_timeout()).

-spec subinterp_eval(reference(), code()) -> py_result().
subinterp_eval(Handle, Code) ->
    subinterp_eval(Handle, Code, #{}).

-spec subinterp_eval(reference(), code(), map()) -> py_result().
subinterp_eval(Handle, Code, Locals) ->
    py_subinterp_handle:eval(Handle, Code, Locals, default_timeout()).

-spec subinterp_exec(reference(), code()) -> ok | {error, term()}.
subinterp_exec(Handle, Code) ->
    py_subinterp_handle:exec(Handle, Code, default_timeout()).

%% @doc Fire-and-forget call on a handle: `ok' once queued.
-spec subinterp_cast(reference(), py_module(), py_func(), py_args()) -> ok | {error, term()}.
subinterp_cast(Handle, Module, Func, Args) ->
    py_subinterp_handle:cast(Handle, Module, Func, Args, #{}).

%% @doc Start a call on a handle: `{ok, Ref}' at once, the result from
%% `subinterp_await/1,2' in the same process.
-spec subinterp_async_call(reference(), py_module(), py_func(), py_args()) ->
          {ok, reference()} | {error, term()}.
subinterp_async_call(Handle, Module, Func, Args) ->
    py_subinterp_handle:async_call(Handle, Module, Func, Args, #{}).

-spec subinterp_await(reference()) -> py_result().
subinterp_await(Ref) ->
    subinterp_await(Ref, default_timeout()).

%% @doc The result of a `subinterp_async_call/4'; on timeout the call is interrupted.
-spec subinterp_await(reference(), timeout()) -> py_result().
subinterp_await(Ref, Timeout) when is_reference(Ref), ?is_timeout(Timeout) ->
    py_subinterp_handle:await(Ref, Timeout).

%% @doc Start the handle pool (at most the app env `subinterp_max_handles' handles,
%% default 64).
-spec subinterp_pool_start() -> ok | {error, term()}.
subinterp_pool_start() ->
    subinterp_pool_start(0).

%% @doc Start the handle pool allowing `N' live handles (each is one interpreter and its
%% thread, a "worker"); `0' means the default. `ok' also when it runs.
-spec subinterp_pool_start(non_neg_integer()) -> ok | {error, term()}.
subinterp_pool_start(N) ->
    py_subinterp_handle:pool_start(N).

%% @doc Stop the pool and every handle's interpreter; later calls on its handles answer
%% `{error, pool_not_started}'.
-spec subinterp_pool_stop() -> ok.
subinterp_pool_stop() ->
    py_subinterp_handle:pool_stop().

-spec subinterp_pool_ready() -> boolean().
subinterp_pool_ready() ->
    py_subinterp_handle:pool_ready().

%% @doc `#{ready, max_handles, handles, workers, created, destroyed, collected, calls,
%% errors}' (counts since the pool started; all 0 and `ready => false' when it is not
%% running).
-spec subinterp_pool_stats() -> map().
subinterp_pool_stats() ->
    py_subinterp_handle:pool_stats().

%%% ---------------------------------------------------------------------------
%%% Python calling Erlang

%% @doc Make `Fun' callable from Python as `erlang.call(Name, *Args)' or
%% `erlang.Name(*Args)'. `Fun' gets the arguments as a list. Raises `badarg' at once
%% unless `Fun' is a fun of arity 1 and `Name' a non-empty atom, binary or string.
-spec register_function(atom() | binary() | string(), fun(([term()]) -> term())) -> ok.
register_function(Name, Fun) ->
    py_callbacks:register(Name, Fun).

%% @doc Make `Module:Function(Args)' callable from Python under `Name'. Raises `badarg'
%% at once unless `Module' and `Function' are atoms and `Name' is valid (see above).
-spec register_function(atom() | binary() | string(), module(), atom()) -> ok.
register_function(Name, Module, Function) ->
    py_callbacks:register(Name, Module, Function).

-spec unregister_function(atom() | binary() | string()) -> ok.
unregister_function(Name) ->
    py_callbacks:unregister(Name).

%%% ---------------------------------------------------------------------------
%%% Shared state

%% @doc Store a value in the shared state; Python reads it with `erlang.state_get(Key)'
%% (a Python `str' key is the binary key). Keys match as map keys of this VM match
%% (`=:='; on OTP 25 `0.0' and `-0.0' are one key). Binaries over 1 MiB are copied in
%% on a dirty scheduler; other terms on the caller's (about 1 ms per MB encoded).
-spec state_store(term(), term()) -> ok.
state_store(Key, Value) when is_binary(Value), byte_size(Value) > ?BIG_STATE_VALUE ->
    %% Copying it takes more than a time slice: a dirty scheduler does.
    py_nif:state_store_dirty(Key, Value);
state_store(Key, Value) ->
    py_nif:state_store(Key, Value).

%% @doc The value under `Key'. Values over 1 MiB (encoded) are copied out on a dirty
%% scheduler.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found}.
state_fetch(Key) ->
    case py_nif:state_fetch(Key) of
        big -> py_nif:state_fetch_dirty(Key);
        Result -> Result
    end.

-spec state_remove(term()) -> ok.
state_remove(Key) -> py_nif:state_remove(Key).

-spec state_keys() -> [term()].
state_keys() -> py_nif:state_keys().

-spec state_clear() -> ok.
state_clear() -> py_nif:state_clear().

%% @doc Atomically add 1 (a missing key counts as 0); answers the new value. Raises
%% `badarith' when the stored value is not an integer.
-spec state_incr(term()) -> integer().
state_incr(Key) -> state_incr(Key, 1).

-spec state_incr(term(), integer()) -> integer().
state_incr(Key, Amount) when is_integer(Amount) -> py_nif:state_incr(Key, Amount).

-spec state_decr(term()) -> integer().
state_decr(Key) -> state_incr(Key, -1).

-spec state_decr(term(), integer()) -> integer().
state_decr(Key, Amount) when is_integer(Amount) -> py_nif:state_incr(Key, -Amount).

%% @doc A dictionary shared with Python (`erlang.SharedDict' there), owned by the calling
%% process: destroyed when it exits or by `shared_dict_destroy/1'. Answers
%% `{ok, Handle}' (2.3.1's behaviour; its reference text suggested a bare handle). Keys
%% and values are any terms. Every operation on a destroyed dictionary raises `badarg',
%% except `shared_dict_destroy/1' itself, which answers `ok' again.
-spec shared_dict_new() -> {ok, shared_dict()}.
shared_dict_new() -> py_nif:shared_dict_new().

%% @doc The value under `Key', or `undefined'. Raises `badarg' on a destroyed dictionary.
-spec shared_dict_get(shared_dict(), term()) -> term().
shared_dict_get(Dict, Key) -> shared_dict_get(Dict, Key, undefined).

%% @doc The value under `Key', or `Default'. Raises `badarg' on a destroyed dictionary.
-spec shared_dict_get(shared_dict(), term(), term()) -> term().
shared_dict_get(Dict, Key, Default) ->
    %% Values over 1 MiB (encoded) are copied out on a dirty scheduler.
    Found = case py_nif:shared_dict_get(Dict, Key) of
                big -> py_nif:shared_dict_get_dirty(Dict, Key);
                Result -> Result
            end,
    case Found of
        {ok, Value} -> Value;
        error -> Default
    end.

%% @doc Store `Value' under `Key'; `ok'. Raises `badarg' on a destroyed dictionary.
-spec shared_dict_set(shared_dict(), term(), term()) -> ok.
shared_dict_set(Dict, Key, Value) -> py_nif:shared_dict_set(Dict, Key, Value).

%% @doc Remove `Key' (a missing key is no error); `ok'. Raises `badarg' on a destroyed
%% dictionary.
-spec shared_dict_del(shared_dict(), term()) -> ok.
shared_dict_del(Dict, Key) -> py_nif:shared_dict_del(Dict, Key).

%% @doc The keys, in no particular order. Raises `badarg' on a destroyed dictionary.
-spec shared_dict_keys(shared_dict()) -> [term()].
shared_dict_keys(Dict) -> py_nif:shared_dict_keys(Dict).

%% @doc Empty the dictionary and make its handle unusable; `ok', also when it was
%% destroyed already.
-spec shared_dict_destroy(shared_dict()) -> ok.
shared_dict_destroy(Dict) -> py_nif:shared_dict_destroy(Dict).

%%% ---------------------------------------------------------------------------
%%% Tracing

%% @doc Start recording the spans Python code opens with `erlang.Span(Name, **Attrs)' or
%% `@erlang.trace()', and only those, as erlang_python 2.3.1 did: a span opened at the
%% top of a request's code is a root. `enable_tracing/1' also records the runtime's own
%% spans (one per request, one per Erlang callback), for traces across the boundary.
-spec enable_tracing() -> ok.
enable_tracing() ->
    py_nif:tracing_enable(python).

%% @doc Start recording spans: Python's and, unless `runtime_spans => false', the
%% runtime's own (a `py.call', `py.eval', ... span per request and an `erlang.call' span
%% per Erlang callback, which carry the trace across the boundary; see docs/tracing.md).
%% Choose where they go besides `get_traces/0':
%% `#{exporter => memory}' (the default) keeps them in memory only (an OTLP exporter that
%% runs is flushed and stopped);
%% `#{exporter => otlp, endpoint => Url, service_name => Name}' also sends them to an
%% OpenTelemetry collector over OTLP/HTTP (protobuf). `Url' is an `http://' URL: the
%% collector's base URL (`/v1/traces' is added) or, with a path, the full traces URL.
%% `service_name' (default `<<"erlang_python">>') is the spans' `service.name'. Spans
%% wait in a queue of 2048; when it is full, new ones are dropped and a warning is logged
%% (at most one a minute), so a collector that is down never slows callers.
%% See docs/tracing.md, "Export over OTLP".
-spec enable_tracing(#{exporter => memory | otlp, endpoint => iodata(),
                       service_name => iodata() | atom(), runtime_spans => boolean()}) ->
          ok | {error, {invalid_option, term()} | {exporter_start_failed, binary()}}.
enable_tracing(Opts) when is_map(Opts) ->
    What = case maps:get(runtime_spans, Opts, true) of
               false -> python;
               _ -> all
           end,
    case tracing_options(maps:to_list(Opts), #{exporter => memory}) of
        {ok, #{exporter := memory} = Chosen} when map_size(Chosen) =:= 1 ->
            ok = py_nif:tracing_export_stop(),
            py_nif:tracing_enable(What);
        {ok, #{exporter := memory} = Chosen} ->
            [Key | _] = maps:keys(maps:remove(exporter, Chosen)),
            {error, {invalid_option, {Key, maps:get(Key, Opts)}}};
        {ok, #{exporter := otlp, endpoint := Url} = Chosen} ->
            Name = maps:get(service_name, Chosen, <<"erlang_python">>),
            case py_nif:tracing_export_start(Url, Name) of
                ok -> py_nif:tracing_enable(What);
                {error, {endpoint, _}} -> {error, {invalid_option, {endpoint, maps:get(endpoint, Opts)}}};
                {error, {runtime, Why}} -> {error, {exporter_start_failed, Why}}
            end;
        {ok, #{exporter := otlp}} ->
            {error, {invalid_option, {endpoint, missing}}};
        {error, _} = Error ->
            Error
    end;
enable_tracing(Opts) ->
    {error, {invalid_option, Opts}}.

-spec tracing_options([{term(), term()}], map()) -> {ok, map()} | {error, {invalid_option, term()}}.
tracing_options([], Acc) ->
    {ok, Acc};
tracing_options([{exporter, E} | Rest], Acc) when E =:= memory; E =:= otlp ->
    tracing_options(Rest, Acc#{exporter => E});
tracing_options([{endpoint, Url} = Opt | Rest], Acc) ->
    case otlp_url(Url) of
        {ok, Bin} -> tracing_options(Rest, Acc#{endpoint => Bin});
        error -> {error, {invalid_option, Opt}}
    end;
tracing_options([{runtime_spans, B} | Rest], Acc) when is_boolean(B) ->
    tracing_options(Rest, Acc);
tracing_options([{service_name, Name} = Opt | Rest], Acc) ->
    case option_text(Name) of
        {ok, Bin} when Bin =/= <<>> -> tracing_options(Rest, Acc#{service_name => Bin});
        _ -> {error, {invalid_option, Opt}}
    end;
tracing_options([Opt | _], _Acc) ->
    {error, {invalid_option, Opt}}.

%% An `http://' URL with a host; no TLS in this build, so no `https'.
-spec otlp_url(term()) -> {ok, binary()} | error.
otlp_url(Url) ->
    case option_text(Url) of
        {ok, Bin} ->
            case uri_string:parse(Bin) of
                #{scheme := <<"http">>, host := Host} = Uri when Host =/= <<>> ->
                    case maps:get(port, Uri, 80) of
                        Port when is_integer(Port), Port > 0, Port < 65536 -> {ok, Bin};
                        _ -> error
                    end;
                _ -> error
            end;
        error ->
            error
    end.

-spec option_text(term()) -> {ok, binary()} | error.
option_text(A) when is_atom(A) -> {ok, atom_to_binary(A)};
option_text(T) ->
    try unicode:characters_to_binary(T) of
        Bin when is_binary(Bin) -> {ok, Bin};
        _ -> error
    catch error:_ -> error
    end.

%% @doc Stop recording spans (those recorded stay until `clear_traces/0'). An OTLP
%% exporter sends what it still holds, for at most 5 s, and stops.
-spec disable_tracing() -> ok.
disable_tracing() ->
    ok = py_nif:tracing_enable(off),
    py_nif:tracing_export_stop().

%% @doc The finished spans, in the order they started, in 2.3.1's shape: maps with
%% `name' (binary), `span_id' (integer), `parent_id' (integer, `undefined' for a root),
%% `attributes' (map), `start_time' and `end_time' (microseconds since the epoch),
%% `duration_us', `status' (`ok' or `error'), `end_attrs' (`#{<<"exception">> => Text}'
%% when an exception ended the span, else `#{}') and `events' (newest first, maps with
%% `name', `attrs', `time'), plus `trace_id' (hex binary).
-spec get_traces() -> {ok, [span()]}.
get_traces() ->
    {ok, py_nif:tracing_spans()}.

-spec clear_traces() -> ok.
clear_traces() ->
    py_nif:tracing_clear().

%% @doc Fetch and clear: the finished spans of the trace `TraceId' (32 hex digits, as in
%% each span's `trace_id' and in a `traceparent'), in `get_traces/0''s shape and order,
%% removed from the store; the spans of other traces stay. For callers sharing a node,
%% each taking its own trace. Raises `badarg' for an id that is not 32 hex digits.
-spec get_traces(binary()) -> {ok, [span()]}.
get_traces(TraceId) when is_binary(TraceId) ->
    {ok, py_nif:tracing_take(TraceId)}.

%% @doc Run `Fun' in the W3C trace context `Traceparent'
%% (`<<"00-<32 hex trace id>-<16 hex span id>-<2 hex flags>">>'): while the runtime's
%% spans are recorded (`enable_tracing/1'), every `py' request this process makes
%% meanwhile is a child span of it, so Python's spans join the caller's trace; otherwise
%% requests ignore it. A malformed value is ignored (the requests start
%% traces of their own); it never fails a call. Nests: the outer context is restored
%% when `Fun' returns or raises.
-spec with_trace_context(binary(), fun(() -> Result)) -> Result.
with_trace_context(Traceparent, Fun) when is_binary(Traceparent), is_function(Fun, 0) ->
    Outer = put('$py_traceparent', Traceparent),
    try
        Fun()
    after
        restore_traceparent(Outer)
    end.

%% @doc The current W3C `traceparent': inside an Erlang function that Python called
%% (`erlang.call', `erlang.async_call'), that call's span, to pass on (an HTTP header,
%% say; only while the runtime's spans are recorded, `enable_tracing/1'); elsewhere, and
%% in a callback without such a span, what `with_trace_context/2' set in the process
%% the function runs in; `undefined' when there is none.
-spec current_traceparent() -> binary() | undefined.
current_traceparent() ->
    get('$py_traceparent').

restore_traceparent(undefined) -> erase('$py_traceparent');
restore_traceparent(Outer) -> put('$py_traceparent', Outer).

%%% ---------------------------------------------------------------------------
%%% Pools

%% @doc Send calls of `Module' (or of `{Module, Func}', which wins over its module) to the
%% named pool `Pool' (such as `io'), without changing call sites. Module and function
%% are matched as given (atoms, usually).
-spec register_pool(atom(), atom() | {atom(), atom()}) -> ok | {error, term()}.
register_pool(Pool, Target) when is_atom(Pool) ->
    py_context_manager:add_route(Pool, Target).

%% @doc Send `Module' or `{Module, Func}' back to the default pool.
-spec unregister_pool(atom() | {atom(), atom()}) -> ok.
unregister_pool(Target) ->
    py_context_manager:remove_route(Target).

%%% ---------------------------------------------------------------------------
%%% Interpreter services (one interpreter serves every context, so each runs once)

%% @doc Full garbage collection; answers the number of unreachable objects found.
-spec gc() -> {ok, non_neg_integer()} | {error, term()}.
gc() ->
    gc(2).

%% @doc Collect generation 0, 1 or 2 (2 is a full collection).
-spec gc(0..2) -> {ok, non_neg_integer()} | {error, term()}.
gc(Generation) when Generation =:= 0; Generation =:= 1; Generation =:= 2 ->
    admin(collect, [Generation]);
gc(_Generation) ->
    {error, {badarg, generation}}.

%% @doc `{ok, #{gc_stats, gc_count, gc_threshold}}', plus `traced_memory_current' and
%% `traced_memory_peak' while tracemalloc runs.
-spec memory_stats() -> {ok, map()} | {error, term()}.
memory_stats() ->
    admin(memory_stats, []).

-spec tracemalloc_start() -> ok | {error, term()}.
tracemalloc_start() ->
    tracemalloc_start(1).

-spec tracemalloc_start(pos_integer()) -> ok | {error, term()}.
tracemalloc_start(Frames) when is_integer(Frames), Frames > 0 ->
    admin_ok(tracemalloc_start, [Frames]);
tracemalloc_start(_Frames) ->
    {error, {badarg, frames}}.

-spec tracemalloc_stop() -> ok | {error, term()}.
tracemalloc_stop() ->
    admin_ok(tracemalloc_stop, []).

%% @doc `importlib.reload' of an imported module (a module not imported yet is left
%% alone), in every interpreter that runs contexts; answers `ok'.
-spec reload(py_module()) -> ok | {error, term()}.
reload(Module) ->
    everywhere('erlang_shim._admin', reload, [py_callbacks:name_key(Module)]).

%% @doc A duplicate of file descriptor `Fd' (for handing a socket to Python).
-spec dup_fd(non_neg_integer()) -> {ok, non_neg_integer()} | {error, term()}.
dup_fd(Fd) when is_integer(Fd), Fd >= 0 ->
    admin(dup_fd, [Fd]);
dup_fd(_Fd) ->
    {error, {badarg, fd}}.

%% @doc Put a virtual environment's packages (and what its `.pth' files add) first on
%% `sys.path', in every interpreter that runs contexts. Activating another venv replaces
%% the first.
-spec activate_venv(file:filename_all()) -> ok | {error, term()}.
activate_venv(Path) ->
    lasting_everywhere('erlang_shim._admin', activate_venv, [unicode:characters_to_binary(Path)]).

%% @doc Create the venv at `Path' if missing, install `Requirements' into it, activate it.
-spec ensure_venv(file:filename_all(), file:filename_all()) -> ok | {error, term()}.
ensure_venv(Path, Requirements) ->
    ensure_venv(Path, Requirements, []).

%% @doc Options: `{extras, [string()]}' (for `pyproject.toml'), `{installer, uv | pip}'
%% (default: uv when on `PATH', else pip), `{python, Exe}' (default: the interpreter the
%% NIF is linked to), `force' (recreate the venv).
-spec ensure_venv(file:filename_all(), file:filename_all(), [py_venv:option()]) -> ok | {error, term()}.
ensure_venv(Path, Requirements, Opts) when is_list(Opts) ->
    py_venv:ensure(Path, Requirements, Opts).

%% @doc Restore `sys.path' as it was before any venv: before `activate_venv/1', and
%% without the venv of the app env `venv' either (the `python_path' entries stay).
-spec deactivate_venv() -> ok | {error, term()}.
deactivate_venv() ->
    lasting_everywhere('erlang_shim._admin', deactivate_venv, []).

%% @doc The active venv, in 2.3.1's shape: `{ok, #{<<"active">> => false}}' when none is,
%% else `{ok, #{<<"active">> => true, <<"venv_path">> => Path, <<"site_packages">> => Dir,
%% <<"sys_path">> => [Entry]}}' (binaries; `sys_path' as it is now). The venv of the app
%% env `venv' counts as active from start-up until `deactivate_venv/0'.
-spec venv_info() -> {ok, #{binary() => boolean() | binary() | [binary()]}} | {error, term()}.
venv_info() ->
    admin(venv_info, []).

%% @doc Forward Python `logging' records to the Erlang `logger' (level `debug').
-spec configure_logging() -> ok | {error, term()}.
configure_logging() ->
    configure_logging(#{}).

%% @doc Options: `level => debug | info | warning | error | critical' (default `debug'),
%% `format => string()' (a Python logging format; default `"%(message)s"'). Records reach
%% `logger' at their own level, with metadata `python_logger', `python_module',
%% `python_function', `python_line', and `domain => [python]'.
-spec configure_logging(map()) -> ok | {error, term()}.
configure_logging(Opts) when is_map(Opts) ->
    Level = atom_to_binary(maps:get(level, Opts, debug), utf8),
    Format = case maps:get(format, Opts, undefined) of
                 undefined -> none;
                 F -> unicode:characters_to_binary(F)
             end,
    lasting_everywhere('erlang_shim._logging', configure, [Level, Format]).

admin(Function, Args) ->
    call('erlang_shim._admin', Function, Args).

admin_ok(Function, Args) ->
    ok_only(admin(Function, Args)).

%% A change of an interpreter's state (its modules, `sys.path', `logging'), made in every
%% interpreter that runs contexts: once in the main interpreter, and in each
%% sub-interpreter context (docs/api.md, "What differs in a sub-interpreter"). `ok', or
%% the first error. Without sub-interpreters it is one call, as before.
everywhere(Module, Function, Args) ->
    case py_context_router:interpreters() of
        [] ->
            {error, contexts_not_started};
        Contexts ->
            first_error([ok_only(call(Ctx, Module, Function, Args)) || Ctx <- Contexts])
    end.

%% `everywhere/3' for a change that contexts started later must make too
%% (`py_interp_changes'). A context that started while the change was being made may
%% have missed both it and its replay: it gets the change once the change is remembered.
lasting_everywhere(Module, Function, Args) ->
    Before = py_context_router:interpreters(),
    case everywhere(Module, Function, Args) of
        ok ->
            ok = py_interp_changes:made(Module, Function, Args),
            first_error([ok_only(call(Ctx, Module, Function, Args))
                         || Ctx <- py_context_router:interpreters() -- Before]);
        Error ->
            Error
    end.

first_error(Results) ->
    case [R || R <- Results, R =/= ok] of
        [] -> ok;
        [Error | _] -> Error
    end.

ok_only({ok, _}) -> ok;
ok_only(Error) -> Error.

%%% ---------------------------------------------------------------------------
%%% Internals

pick() ->
    py_context_router:pick().

by_pid(Pid) ->
    py_context_router:by_pid(Pid).

pick_for(Module, Func) ->
    py_context_router:pick_for(Module, Func).

pool(Pool) ->
    py_context_router:pick(Pool).

%% Read on every call, so kept in `persistent_term' (set from the app env at start).
default_timeout() ->
    persistent_term:get({?MODULE, default_timeout}, 30000).
