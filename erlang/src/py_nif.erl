%%% @doc The NIF library of erlang_python (Rust). Every function here only queues work
%%% for a context thread or the Python start-up thread and returns at once, except that
%%% `submit_sync/3' may poll up to `reply_spin_us' for a quick reply.
%%% Use the `py' module; these functions are internal.
-module(py_nif).

-export([priv_dir/0]).
-export([init/1, set_output_handler/1, output_taken/1, output_drops/0,
         context_start/2, context_start/3, python_features/0, context_stop/1, context_panic/1, context_id/1,
         env_new/1, submit/4, submit_sync/3, cast/3, cancel/1, is_ref/1, ref_release/1,
         callback_reply/3, set_callback_handler/1, set_function_registered/2,
         clear_registered_functions/0, join_chain/2, stream_credit/2, thread_call_runner/2]).
-export([state_store/2, state_store_dirty/2, state_fetch/1, state_fetch_dirty/1, state_remove/1, state_keys/0, state_clear/0,
         state_incr/2, shared_dict_new/0, shared_dict_get/2, shared_dict_get_dirty/2, shared_dict_set/3,
         shared_dict_del/2, shared_dict_keys/1, shared_dict_destroy/1,
         tracing_enable/1, tracing_spans/0, tracing_clear/0, tracing_take/1]).
-export([tracing_export_start/2, tracing_export_stop/0, tracing_export_stats/0]).

%% For the `subinterp_*' handle pool, which keeps a namespace handle per live handle.
-export([env_context_stop/1]).

-on_load(load/0).

-nifs([init/1, set_output_handler/1, output_taken/1, output_drops/0,
       context_start/3, python_features/0, context_stop/1, context_panic/1, context_id/1,
       env_new/1, submit/4, submit_sync/3, cast/3, cancel/1, is_ref/1, ref_release/1,
       callback_reply/3, set_callback_handler/1, set_function_registered/2,
       clear_registered_functions/0, join_chain/2, stream_credit/2, thread_call_runner/2,
       state_store/2, state_store_dirty/2, state_fetch/1, state_fetch_dirty/1, state_remove/1, state_keys/0, state_clear/0,
       state_incr/2, shared_dict_new/0, shared_dict_get/2, shared_dict_get_dirty/2, shared_dict_set/3,
       shared_dict_del/2, shared_dict_keys/1, shared_dict_destroy/1,
       tracing_enable/1, tracing_spans/0, tracing_clear/0, tracing_take/1,
       tracing_export_start/2, tracing_export_stop/0, tracing_export_stats/0]).
-nifs([env_context_stop/1]).

-type context() :: reference().
-type handle() :: reference().
-export_type([context/0, handle/0]).

-spec load() -> ok | {error, term()}.
load() ->
    erlang:load_nif(filename:join(priv_dir(), "py_nif"), 0).

%% @doc The application's priv directory, also when the code path is set by hand.
-spec priv_dir() -> file:filename().
priv_dir() ->
    case code:priv_dir(erlang_python) of
        {error, bad_name} ->
            filename:join(filename:dirname(filename:dirname(code:which(?MODULE))), "priv");
        Dir ->
            Dir
    end.

-spec init(map()) -> ok | pending | {error, term()}.
init(_Opts) -> erlang:nif_error(not_loaded).

-spec set_output_handler(pid()) -> ok.
set_output_handler(_Pid) -> erlang:nif_error(not_loaded).

%% @doc The output handler took a message of `{py_handler, Cost, Msg}'.
-spec output_taken(non_neg_integer()) -> ok.
output_taken(_Cost) -> erlang:nif_error(not_loaded).

%% @doc Writes, their bytes, and records (logging, tracebacks, warnings) dropped on the way
%% to the output handler since it last asked.
-spec output_drops() -> {non_neg_integer(), non_neg_integer(), non_neg_integer()}.
output_drops() -> erlang:nif_error(not_loaded).

%% @doc A context in the main interpreter (`context_start/3' with `main').
-spec context_start(pos_integer(), pos_integer()) -> {ok, context()}.
context_start(Index, MaxQueued) -> context_start(Index, MaxQueued, main).

%% @doc Start a context in the main interpreter (`main') or in a sub-interpreter with its
%% own GIL (`own_gil', CPython 3.12+). The caller receives `{py_context_ready, Id}' once it
%% serves, or `{py_context_crashed, Why}' if it cannot start.
-spec context_start(pos_integer(), pos_integer(), main | own_gil) ->
          {ok, context()} | {error, {unsupported_mode, own_gil}}.
context_start(_Index, _MaxQueued, _Mode) -> erlang:nif_error(not_loaded).

%% @doc What the linked CPython offers.
-spec python_features() -> #{subinterp := boolean(), free_threaded := boolean(),
                             version := binary()}.
python_features() -> erlang:nif_error(not_loaded).

-spec context_stop(context()) -> ok.
context_stop(_Ctx) -> erlang:nif_error(not_loaded).

-spec context_panic(context()) -> ok.
context_panic(_Ctx) -> erlang:nif_error(not_loaded).

-spec context_id(context()) -> pos_integer().
context_id(_Ctx) -> erlang:nif_error(not_loaded).

-spec env_new(context()) -> reference().
env_new(_Ctx) -> erlang:nif_error(not_loaded).

%% @doc Stop the context a namespace handle (`env_new/1') belongs to, as
%% `context_stop/1' does; the namespace handle does not keep the context's thread alive.
-spec env_context_stop(reference()) -> ok.
env_context_stop(_Env) -> erlang:nif_error(not_loaded).

%% @doc Queue a request. `CallerWaits': the caller waits in `receive' and runs the
%% Erlang functions the request's Python code calls (`py_callback' messages).
-spec submit(context() | reference(), reference() | undefined, tuple(), boolean()) ->
          {ok, handle()} | {error, term()}.
submit(_Target, _Env, _Request, _CallerWaits) -> erlang:nif_error(not_loaded).

%% @doc Queue a request the caller waits for. When the context is idle, the NIF polls
%% for a quick reply (at most `reply_spin_us') and answers `{reply, Result}'; otherwise
%% `{ok, Handle}' as `submit/4' with `CallerWaits' true.
-spec submit_sync(context() | reference(), reference() | undefined, tuple()) ->
          {reply, term()} | {ok, handle()} | {error, term()}.
submit_sync(_Target, _Env, _Request) -> erlang:nif_error(not_loaded).

-spec cast(context() | reference(), reference() | undefined, tuple()) -> ok | {error, term()}.
cast(_Target, _Env, _Request) -> erlang:nif_error(not_loaded).

-spec cancel(handle()) -> cancelled | replied.
cancel(_Handle) -> erlang:nif_error(not_loaded).

-spec is_ref(term()) -> boolean().
is_ref(_Term) -> erlang:nif_error(not_loaded).

-spec ref_release(reference()) -> boolean().
ref_release(_PyRef) -> erlang:nif_error(not_loaded).

%% `Ctx' is a context, or the handle of a call from a thread (`CallbackId' 0).
-spec callback_reply(context() | reference(), non_neg_integer(), {ok, term()} | {error, term(), binary()}) -> ok.
callback_reply(_Ctx, _CallbackId, _Answer) -> erlang:nif_error(not_loaded).

-spec set_callback_handler(pid()) -> ok.
set_callback_handler(_Pid) -> erlang:nif_error(not_loaded).

-spec set_function_registered(binary(), boolean()) -> ok.
set_function_registered(_Name, _Registered) -> erlang:nif_error(not_loaded).

-spec clear_registered_functions() -> ok.
clear_registered_functions() -> erlang:nif_error(not_loaded).

-spec state_store(term(), term()) -> ok.
state_store(_Key, _Value) -> erlang:nif_error(not_loaded).

%% `state_store/2' on a dirty scheduler, for big values.
-spec state_store_dirty(term(), term()) -> ok.
state_store_dirty(_Key, _Value) -> erlang:nif_error(not_loaded).

%% `big' when the value is big enough to be read with `state_fetch_dirty/1'.
-spec state_fetch(term()) -> {ok, term()} | {error, not_found} | big.
state_fetch(_Key) -> erlang:nif_error(not_loaded).

-spec state_fetch_dirty(term()) -> {ok, term()} | {error, not_found}.
state_fetch_dirty(_Key) -> erlang:nif_error(not_loaded).

-spec state_remove(term()) -> ok.
state_remove(_Key) -> erlang:nif_error(not_loaded).

-spec state_keys() -> [term()].
state_keys() -> erlang:nif_error(not_loaded).

-spec state_clear() -> ok.
state_clear() -> erlang:nif_error(not_loaded).

-spec state_incr(term(), integer()) -> integer().
state_incr(_Key, _Amount) -> erlang:nif_error(not_loaded).

-spec shared_dict_new() -> {ok, reference()}.
shared_dict_new() -> erlang:nif_error(not_loaded).

%% `big' when the value is big enough to be read with `shared_dict_get_dirty/2'.
-spec shared_dict_get(reference(), term()) -> {ok, term()} | error | big.
shared_dict_get(_Dict, _Key) -> erlang:nif_error(not_loaded).

-spec shared_dict_get_dirty(reference(), term()) -> {ok, term()} | error.
shared_dict_get_dirty(_Dict, _Key) -> erlang:nif_error(not_loaded).

-spec shared_dict_set(reference(), term(), term()) -> ok.
shared_dict_set(_Dict, _Key, _Value) -> erlang:nif_error(not_loaded).

-spec shared_dict_del(reference(), term()) -> ok.
shared_dict_del(_Dict, _Key) -> erlang:nif_error(not_loaded).

-spec shared_dict_keys(reference()) -> [term()].
shared_dict_keys(_Dict) -> erlang:nif_error(not_loaded).

-spec shared_dict_destroy(reference()) -> ok.
shared_dict_destroy(_Dict) -> erlang:nif_error(not_loaded).

%% @doc Watch `Runner', the process the dispatcher spawned for a call made from a Python
%% thread or a foreign asyncio loop, so that its exit ends the Python side's wait.
-spec thread_call_runner(reference(), pid()) -> ok.
thread_call_runner(_Call, _Runner) -> erlang:nif_error(not_loaded).

-spec join_chain(context(), pos_integer()) -> ok.
join_chain(_Ctx, _CallbackId) -> erlang:nif_error(not_loaded).

-spec stream_credit(handle(), pos_integer()) -> ok.
stream_credit(_Handle, _Items) -> erlang:nif_error(not_loaded).

%% @doc Record no spans (`off'), Python's `erlang.Span' spans (`python'), or those and
%% the runtime's request and callback spans (`all').
-spec tracing_enable(off | python | all) -> ok.
tracing_enable(_What) -> erlang:nif_error(not_loaded).

-spec tracing_spans() -> [py:span()].
tracing_spans() -> erlang:nif_error(not_loaded).

-spec tracing_clear() -> ok.
tracing_clear() -> erlang:nif_error(not_loaded).

-spec tracing_take(binary()) -> [py:span()].
tracing_take(_TraceId) -> erlang:nif_error(not_loaded).

%% @doc Export finished spans over OTLP/HTTP to the URL (`py:enable_tracing/1').
%% Replaces, after flushing it, an exporter that runs with other settings. Fails with
%% `{endpoint, Why}' for a URL the exporter cannot use, `{runtime, Why}' when its thread
%% could not start.
-spec tracing_export_start(binary(), binary()) -> ok | {error, {endpoint | runtime, binary()}}.
tracing_export_start(_Endpoint, _ServiceName) -> erlang:nif_error(not_loaded).

%% @doc Stop exporting after sending what is queued (at most 5 s); `ok' also when no
%% exporter runs.
-spec tracing_export_stop() -> ok.
tracing_export_stop() -> erlang:nif_error(not_loaded).

%% @doc The export queue (`queue_len' of `queue_capacity') and the counts since the
%% exporter started: `queued', `exported', `dropped_queue_full', `dropped_export_failed'.
-spec tracing_export_stats() -> #{atom() => boolean() | non_neg_integer()}.
tracing_export_stats() -> erlang:nif_error(not_loaded).
