%%% @doc The caller's side of the `subinterp_*' API: checks a handle against the pool's
%%% table and runs the request through `py_request' on the handle's own context.
%%%
%%% Every process that uses a handle shares one namespace on it (the handle's, kept in the
%%% pool's table), as 2.3.1's handles do: what `subinterp_exec/2' defines, any later
%%% call on the same handle sees. Answers, in the order they are checked:
%%% `{error, subinterpreters_not_supported}' on a Python older than 3.12,
%%% `{error, pool_not_started}' while `subinterp_pool_start' has not run (or after
%%% `subinterp_pool_stop'), `{error, {badarg, handle}}' for a destroyed or collected
%%% handle, one of an earlier pool, or any term that is no handle.
-module(py_subinterp_handle).

-export([pool_start/1, pool_stop/0, pool_ready/0, pool_stats/0,
         create/0, destroy/1, call/6, eval/4, exec/3, cast/5, async_call/5, await/2]).

%% Where a call goes: the router-style entry of the handle's context, its namespace
%% handle, and the pool's counters.
-type target() :: {py_context_router:entry(), reference(), counters:counters_ref()}.

%% Default `subinterp_pool_start/0' bound on live handles (each an interpreter and a thread).
-define(DEFAULT_MAX_HANDLES, 64).

%%% ---------------------------------------------------------------------------
%%% The pool

%% @doc Start the pool allowing `MaxHandles' live handles (`0': the app env
%% `subinterp_max_handles', default 64). `ok' also when it runs already.
-spec pool_start(non_neg_integer()) -> ok | {error, term()}.
pool_start(MaxHandles) when is_integer(MaxHandles), MaxHandles >= 0 ->
    case py_subinterp:supported() of
        false ->
            {error, subinterpreters_not_supported};
        true ->
            Max = case MaxHandles of
                      0 -> application:get_env(erlang_python, subinterp_max_handles,
                                               ?DEFAULT_MAX_HANDLES);
                      _ -> MaxHandles
                  end,
            try py_context_sup:start_subinterp_pool(Max) of
                ok -> ok;
                {error, already_started} -> ok;
                {error, _} = Error -> Error
            catch
                exit:{noproc, _} -> {error, not_started}
            end
    end;
pool_start(_MaxHandles) ->
    {error, {badarg, workers}}.

%% @doc Stop the pool and every handle's context; `ok' also when it does not run.
-spec pool_stop() -> ok.
pool_stop() ->
    try
        py_context_sup:stop_subinterp_pool()
    catch
        exit:{noproc, _} -> ok
    end.

-spec pool_ready() -> boolean().
pool_ready() ->
    ets:whereis(py_subinterp_pool:table()) =/= undefined.

-spec pool_stats() -> map().
pool_stats() ->
    py_subinterp_pool:stats().

%%% ---------------------------------------------------------------------------
%%% Handles

%% @doc A new handle, `{ok, Handle}'.
-spec create() -> {ok, py_nif:context()} | {error, term()}.
create() ->
    case py_subinterp:supported() of
        false -> {error, subinterpreters_not_supported};
        true -> py_subinterp_pool:create()
    end.

%% @doc Stop the handle's interpreter now; `ok' whatever the handle was.
-spec destroy(term()) -> ok.
destroy(Handle) ->
    case context_id(Handle) of
        {ok, Id} -> py_subinterp_pool:destroy(Id);
        error -> ok
    end.

-spec call(term(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs(), timeout()) ->
          py:py_result().
call(Handle, Module, Func, Args, Kwargs, Timeout) when is_map(Kwargs) ->
    counted(Handle, fun(Entry) ->
                            py_request:call(Entry, Module, Func, Args, Kwargs, false, Timeout)
                    end);
call(_Handle, _Module, _Func, _Args, _Kwargs, _Timeout) ->
    {error, {badarg, kwargs}}.

-spec eval(term(), py:code(), map(), timeout()) -> py:py_result().
eval(Handle, Code, Locals, Timeout) when is_map(Locals) ->
    with_source(Code, fun(Source) ->
                              counted(Handle, fun(Entry) ->
                                                      py_request:eval(Entry, Source, Locals, Timeout)
                                              end)
                      end);
eval(_Handle, _Code, _Locals, _Timeout) ->
    {error, {badarg, locals}}.

-spec exec(term(), py:code(), timeout()) -> ok | {error, term()}.
exec(Handle, Code, Timeout) ->
    with_source(Code, fun(Source) ->
                              counted(Handle, fun(Entry) ->
                                                      py_request:exec(Entry, Source, Timeout)
                                              end)
                      end).

-spec cast(term(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()) ->
          ok | {error, term()}.
cast(Handle, Module, Func, Args, Kwargs) ->
    counted(Handle, fun(Entry) -> py_request:cast(Entry, Module, Func, Args, Kwargs) end).

%% @doc `{ok, Ref}' for `await/2', or why the handle cannot take the call.
-spec async_call(term(), py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()) ->
          {ok, reference()} | {error, term()}.
async_call(Handle, Module, Func, Args, Kwargs) ->
    counted(Handle, fun(Entry) ->
                            {ok, py_request:spawn_call({ok, Entry}, Module, Func, Args, Kwargs)}
                    end).

%% @doc The result of an `async_call/5' made by this process.
-spec await(reference(), timeout()) -> py:py_result().
await(Ref, Timeout) ->
    py_request:await(Ref, Timeout).

%%% ---------------------------------------------------------------------------
%%% Internals

%% Run `Fun(Entry)' on the handle's context in the handle's namespace, counting the call
%% and (for answers that are errors) the error.
counted(Handle, Fun) ->
    case target(Handle) of
        {ok, {{_, _, Id} = Entry, Env, Counters}} ->
            counters:add(Counters, 1, 1),
            Result = in_namespace(Id, Env, fun() -> Fun(Entry) end),
            case Result of
                {error, _} -> counters:add(Counters, 2, 1);
                _ -> ok
            end,
            Result;
        {error, _} = Error ->
            Error
    end.

-spec target(term()) -> {ok, target()} | {error, term()}.
target(Handle) ->
    case {py_subinterp:supported(), context_id(Handle)} of
        {false, _} ->
            {error, subinterpreters_not_supported};
        {true, error} ->
            case pool_ready() of
                true -> {error, {badarg, handle}};
                false -> {error, pool_not_started}
            end;
        {true, {ok, Id}} ->
            try ets:lookup(py_subinterp_pool:table(), Id) of
                [{Id, Env, Counters}] -> {ok, {{self(), Handle, Id}, Env, Counters}};
                [] -> {error, {badarg, handle}}
            catch
                %% No table: the pool is not running (or stopped just now).
                error:badarg -> {error, pool_not_started}
            end
    end.

context_id(Handle) ->
    try py_nif:context_id(Handle) of
        Id -> {ok, Id}
    catch
        error:badarg -> error
    end.

%% `py_request' finds a process's namespace on a context under `{'$py_env', Id}'; the
%% handle's shared one stands there for the request, and what was there comes back.
in_namespace(Id, Env, Fun) ->
    Key = {'$py_env', Id},
    Previous = put(Key, Env),
    try
        Fun()
    after
        case Previous of
            undefined -> erase(Key);
            _ -> put(Key, Previous)
        end
    end.

with_source(Code, Fun) ->
    case catch unicode:characters_to_binary(Code) of
        Source when is_binary(Source) -> Fun(Source);
        _ -> {error, {badarg, code}}
    end.
