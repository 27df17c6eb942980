%%% @doc `py:parallel/1': calls run at the same time, each on a context of a pool of
%%% sub-interpreters with their own GIL, so CPU-bound Python uses every core.
%%%
%%% The pool is the named pool `parallel', started on the first call with one context per
%%% scheduler online (the app env `parallel_contexts' overrides), and kept: starting a
%%% sub-interpreter costs milliseconds, and a pool of its own leaves the default
%%% contexts, their namespaces and their stickiness alone. An entry
%%% `{parallel, N, #{mode => subinterp}}' in the app env `pools' starts it with the
%%% application instead.
%%%
%%% Call I goes to context `(I - 1) rem N + 1', so up to N calls run at once and more
%%% wait their turn on a context. Results come in the calls' order. The first error in
%%% that order is the answer; once it is known, the calls not collected yet are
%%% cancelled as a timeout cancels them (their Python code interrupted, their results
%%% dropped). The whole run is bounded by the default call timeout.
-module(py_subinterp_parallel).

-export([run/1, pool/0]).

-define(POOL, parallel).

-type call() :: {py:py_module(), py:py_func(), py:py_args()}
              | {py:py_module(), py:py_func(), py:py_args(), py:py_kwargs()}.
-export_type([call/0]).

%% @doc The name of the pool the calls run on.
-spec pool() -> atom().
pool() ->
    ?POOL.

-spec run([call()]) -> {ok, [term()]} | {error, term()}.
run(Calls) ->
    case {py_subinterp:supported(), well_formed(Calls)} of
        {false, _} -> {error, subinterpreters_not_supported};
        {true, false} -> {error, {badarg, calls}};
        {true, true} when Calls =:= [] -> {ok, []};
        {true, true} ->
            case ensure_pool() of
                ok -> collect(start(Calls), deadline(), []);
                {error, _} = Error -> Error
            end
    end.

well_formed(Calls) when is_list(Calls) ->
    lists:all(fun({_, _, Args}) -> is_list(Args);
                 ({_, _, Args, Kwargs}) -> is_list(Args) andalso is_map(Kwargs);
                 (_) -> false
              end, Calls);
well_formed(_) ->
    false.

%% The pool's table is read first, so that a running pool costs no message to the
%% manager (which would serialise every `parallel/1').
ensure_pool() ->
    case {py_context_router:count(?POOL), py_context_router:mode(?POOL)} of
        {N, own_gil} when N > 0 -> ok;
        _ -> py_context_manager:ensure_pool(?POOL, size(), subinterp)
    end.

size() ->
    case application:get_env(erlang_python, parallel_contexts, default) of
        N when is_integer(N), N > 0 -> N;
        _ -> erlang:system_info(schedulers_online)
    end.

%% Every call started before any is awaited; a routing error is that call's reply.
start(Calls) ->
    N = max(1, py_context_router:count(?POOL)),
    {Refs, _} = lists:mapfoldl(
                  fun(Call, I) ->
                          {Module, Func, Args, Kwargs} = parts(Call),
                          Routed = py_context_router:by_index(?POOL, (I - 1) rem N + 1),
                          {py_request:spawn_call(Routed, Module, Func, Args, Kwargs), I + 1}
                  end, 1, Calls),
    Refs.

parts({Module, Func, Args}) -> {Module, Func, Args, #{}};
parts({Module, Func, Args, Kwargs}) -> {Module, Func, Args, Kwargs}.

deadline() ->
    case persistent_term:get({py, default_timeout}, 30000) of
        infinity -> infinity;
        Timeout -> erlang:monotonic_time(millisecond) + Timeout
    end.

remaining(infinity) -> infinity;
remaining(Deadline) -> max(0, Deadline - erlang:monotonic_time(millisecond)).

collect([], _Deadline, Acc) ->
    {ok, lists:reverse(Acc)};
collect([Ref | Rest], Deadline, Acc) ->
    case py_request:await(Ref, remaining(Deadline)) of
        {ok, Value} ->
            collect(Rest, Deadline, [Value | Acc]);
        Error ->
            [py_request:await(R, 0) || R <- Rest],
            Error
    end.
