%%% @doc Application callback: starts Python (once per VM) and the supervision tree.
-module(erlang_python_app).
-behaviour(application).

-export([start/2, stop/1]).

-define(INIT_TIMEOUT, 120000).

-spec start(application:start_type(), term()) -> {ok, pid()} | {error, term()}.
start(_Type, _Args) ->
    case start_python() of
        ok ->
            %% Shared state lives with the application, like an ETS table would.
            ok = py_nif:state_clear(),
            persistent_term:put({py, default_timeout}, env(default_timeout, 30000)),
            %% Whether Python exceptions answer their details (`py_request').
            persistent_term:put({py, error_details}, env(error_details, false) =:= true),
            ok = py_context_router:init_turns(),
            erlang_python_sup:start_link();
        {error, Reason} -> {error, {python_init_failed, Reason}}
    end.

-spec stop(term()) -> ok.
stop(_State) ->
    %% The contexts have stopped: an OTLP exporter sends their last spans (at most 5 s)
    %% and ends, rather than losing them when the VM exits.
    ok = py_nif:tracing_export_stop(),
    ok = py_context_router:clear_routes(),
    py_context_router:set_count(0).

start_python() ->
    Opts0 = #{shim_dir => unicode:characters_to_binary(py_nif:priv_dir()),
             python_path => [unicode:characters_to_binary(P) || P <- env(python_path, [])],
             venv => venv(env(venv, undefined)),
             atom_limit => env(atom_limit, 10000),
             max_nesting => env(max_nesting, 20000),
             strict_conversion => env(strict_conversion, false) =:= true},
    %% Unset: the NIF picks 50 µs, or 0 on a single CPU.
    Opts = case env(reply_spin_us, undefined) of
               Us when is_integer(Us), Us >= 0 -> Opts0#{reply_spin_us => Us};
               _ -> Opts0
           end,
    case py_nif:init(Opts) of
        pending ->
            receive
                {py_init, Result} -> Result
            after ?INIT_TIMEOUT ->
                {error, init_timeout}
            end;
        Result ->
            Result
    end.

venv(undefined) -> undefined;
venv(Path) -> unicode:characters_to_binary(Path).

env(Key, Default) ->
    application:get_env(erlang_python, Key, Default).
