%%% @doc Lifetimes the core's layout promises: a stopped context's OS thread ends even
%%% while Erlang processes still hold its handles (a context handle, a namespace handle),
%%% and requests the NIFs refuse to decode never reach a context.
-module(py_layout_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([stopped_thread_ends_while_handles_live/1,
         app_stop_ends_threads_while_handles_live/1,
         malformed_request_is_badarg/1]).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [stopped_thread_ends_while_handles_live, app_stop_ends_threads_while_handles_live,
     malformed_request_is_badarg].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

%% A long-lived process keeps its context's handles in its dictionary (the router's
%% cache) and one more in a variable; `py:stop_contexts/0' still ends every context
%% thread, and a request made with a kept handle is refused, not left waiting.
stopped_thread_ends_while_handles_live(_) ->
    Threads = context_threads(),
    ?assertEqual(py_context_router:count(), length(Threads)),
    Holder = hold_handles(),
    ok = py:stop_contexts(),
    try
        ?assertEqual([], wait_for_exit(Threads)),
        ?assertMatch({error, context_stopped}, held_call(Holder))
    after
        release(Holder),
        {ok, _} = py:start_contexts()
    end,
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% The same across a stop of the application, with the handles held outside it.
app_stop_ends_threads_while_handles_live(_) ->
    Threads = context_threads(),
    Holder = hold_handles(),
    py_test_lib:stop(),
    try
        ?assertEqual([], wait_for_exit(Threads))
    after
        release(Holder),
        ok = py_test_lib:start()
    end,
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])).

%% Only this application's own code builds request tuples; anything else is a badarg
%% from the submitting NIF, and the context goes on serving.
malformed_request_is_badarg(_) ->
    Ctx = context_handle(),
    Ref = make_ref(),
    Bad = [{call, Ref, operator, add, [1, 2]},                 % too short
           {unknown_kind, Ref, x},
           {stream_start, Ref, m, f, [], #{}, not_a_pid, self(), 10},
           {stream_start, Ref, m, f, [], #{}, self(), self(), -1},
           not_a_tuple,
           {}],
    [?assertError(badarg, py_nif:submit(Ctx, undefined, R, true)) || R <- Bad],
    [?assertError(badarg, py_nif:submit_sync(Ctx, undefined, R)) || R <- Bad],
    [?assertError(badarg, py_nif:cast(Ctx, undefined, R)) || R <- Bad],
    ?assertEqual({ok, 3}, py:call(operator, add, [1, 2])),
    receive {py_reply, Ref, Unexpected} -> ct:fail({unexpected_reply, Unexpected})
    after 100 -> ok
    end.

%%% Helpers

%% A process that made a call (so the router cached its handles in its dictionary),
%% and also keeps the context handle and a namespace handle in its loop.
hold_handles() ->
    Parent = self(),
    Holder = spawn_link(fun() ->
                                {ok, 3} = py:call(operator, add, [1, 2]),
                                Ctx = context_handle(),
                                Env = py:get_local_env(py:context()),
                                Parent ! {self(), held},
                                holder_loop(Ctx, Env)
                        end),
    receive {Holder, held} -> Holder end.

holder_loop(Ctx, Env) ->
    receive
        {call, From} ->
            From ! {self(), py_nif:submit(Ctx, Env, {eval, make_ref(), <<"1">>, #{}}, true)},
            holder_loop(Ctx, Env);
        stop ->
            ok
    end.

held_call(Holder) ->
    Holder ! {call, self()},
    receive {Holder, Result} -> Result after 5000 -> timeout end.

release(Holder) ->
    unlink(Holder),
    Holder ! stop.

%% The NIF handle of the context `py:context()' routes to.
context_handle() ->
    Pid = py:context(),
    [Ctx] = [C || I <- lists:seq(1, py_context_router:count()),
                  {P, C, _} <- [persistent_term:get({py_context_router, I}, none)],
                  P =:= Pid],
    Ctx.

%% The OS thread ids of the running contexts, as their own Python code reports them
%% (names alone would not do: a context abandoned by an earlier suite, wedged in C code,
%% keeps its thread and its `py-context-N' name).
context_threads() ->
    lists:usort([begin
                     {ok, Tid} = py:call(py:context(I), threading, get_native_id, []),
                     Tid
                 end || I <- lists:seq(1, py_context_router:count())]).

%% Those of `Tids' still alive after at most 5 s.
wait_for_exit(Tids) ->
    py_test_lib:wait_for_threads_exit(Tids, 50).
