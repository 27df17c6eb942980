%%% @doc The NIF library of erlang_python (Rust). Every function here only queues work
%%% for a context thread or the Python start-up thread and returns at once.
%%% Use the `py' module; these functions are internal.
-module(py_nif).

-export([priv_dir/0]).
-export([init/1, set_output_handler/1,
         context_start/2, context_stop/1, context_panic/1, context_id/1,
         env_new/1, submit/4, cast/3, cancel/1, is_ref/1,
         callback_reply/3, set_callback_handler/1, set_function_registered/2,
         clear_registered_functions/0]).

-on_load(load/0).

-nifs([init/1, set_output_handler/1,
       context_start/2, context_stop/1, context_panic/1, context_id/1,
       env_new/1, submit/4, cast/3, cancel/1, is_ref/1,
       callback_reply/3, set_callback_handler/1, set_function_registered/2,
       clear_registered_functions/0]).

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

-spec context_start(pos_integer(), pos_integer()) -> {ok, context()}.
context_start(_Index, _MaxQueued) -> erlang:nif_error(not_loaded).

-spec context_stop(context()) -> ok.
context_stop(_Ctx) -> erlang:nif_error(not_loaded).

-spec context_panic(context()) -> ok.
context_panic(_Ctx) -> erlang:nif_error(not_loaded).

-spec context_id(context()) -> pos_integer().
context_id(_Ctx) -> erlang:nif_error(not_loaded).

-spec env_new(context()) -> reference().
env_new(_Ctx) -> erlang:nif_error(not_loaded).

%% @doc Queue a request. `CallerWaits': the caller waits in `receive' and runs the
%% Erlang functions the request's Python code calls (`py_callback' messages).
-spec submit(context() | reference(), reference() | undefined, tuple(), boolean()) ->
          {ok, handle()} | {error, term()}.
submit(_Target, _Env, _Request, _CallerWaits) -> erlang:nif_error(not_loaded).

-spec cast(context() | reference(), reference() | undefined, tuple()) -> ok | {error, term()}.
cast(_Target, _Env, _Request) -> erlang:nif_error(not_loaded).

-spec cancel(handle()) -> cancelled | replied.
cancel(_Handle) -> erlang:nif_error(not_loaded).

-spec is_ref(term()) -> boolean().
is_ref(_Term) -> erlang:nif_error(not_loaded).

-spec callback_reply(context(), pos_integer(), {ok, term()} | {error, term(), binary()}) -> ok.
callback_reply(_Ctx, _CallbackId, _Answer) -> erlang:nif_error(not_loaded).

-spec set_callback_handler(pid()) -> ok.
set_callback_handler(_Pid) -> erlang:nif_error(not_loaded).

-spec set_function_registered(binary(), boolean()) -> ok.
set_function_registered(_Name, _Registered) -> erlang:nif_error(not_loaded).

-spec clear_registered_functions() -> ok.
clear_registered_functions() -> erlang:nif_error(not_loaded).
