%%% @doc Quick replies: a caller whose context is idle polls briefly in the submitting
%%% NIF and takes the result without a message (`reply_spin_us'). These cases check
%%% that the shortcut is taken, that its answers are exactly those of the message path,
%%% and that everything that needs the caller in `receive' still works.
-module(py_quick_reply_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([quick_replies_send_no_message/1, polling_off_sends_every_reply/1,
         results_match_message_path/1, erlang_call_during_poll/1,
         slow_calls_then_quick_calls/1, timeout_zero_leaves_nothing/1,
         concurrent_pollers/1, long_poll_sends_no_message/1]).

-define(CALLS, 2000).
%% The budget of the cases that count how many replies skip the message: long enough that
%% a quick call is answered within it even when the machine is busy (the default 50 us is
%% not, at a load of 5 on 2 CPUs), and shorter than the slow calls' sleep.
-define(LOADED_SPIN_US, 20000).
-define(SLOW_CALL_S, 0.06).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [quick_replies_send_no_message, polling_off_sends_every_reply,
     results_match_message_path, erlang_call_during_poll, slow_calls_then_quick_calls,
     timeout_zero_leaves_nothing, concurrent_pollers, long_poll_sends_no_message].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(polling_off_sends_every_reply, Config) ->
    restart([{reply_spin_us, 0}]),
    Config;
init_per_testcase(Case, Config) when Case =:= quick_replies_send_no_message;
                                     Case =:= slow_calls_then_quick_calls ->
    restart([{reply_spin_us, ?LOADED_SPIN_US}]),
    Config;
init_per_testcase(_Case, Config) ->
    Config.

end_per_testcase(Case, _Config) when Case =:= polling_off_sends_every_reply;
                                    Case =:= quick_replies_send_no_message;
                                    Case =:= slow_calls_then_quick_calls ->
    application:unset_env(erlang_python, reply_spin_us),
    restart([]);
end_per_testcase(_Case, _Config) ->
    ok.

restart(Env) ->
    py_test_lib:stop(),
    ok = py_test_lib:start(Env).

%% Run `Fun' in a new process whose received messages are traced; answer the
%% process's result, the number of `py_reply' messages it received, and what was left
%% in its mailbox.
traced(Fun) ->
    Parent = self(),
    Tracer = spawn_link(fun() -> count_replies(0) end),
    {Pid, Mon} = spawn_monitor(fun() ->
                                       receive go -> ok end,
                                       Result = Fun(),
                                       {messages, Left} = process_info(self(), messages),
                                       Parent ! {self(), Result, Left}
                               end),
    1 = erlang:trace(Pid, true, ['receive', {tracer, Tracer}]),
    Pid ! go,
    receive
        {Pid, Result, Left} ->
            receive {'DOWN', Mon, process, Pid, normal} -> ok end,
            Tracer ! {count, self()},
            Replies = receive {replies, N} -> N end,
            {Result, Replies, Left};
        {'DOWN', Mon, process, Pid, Why} ->
            error({caller_died, Why})
    end.

count_replies(N) ->
    receive
        {trace, _, 'receive', {py_reply, _, _}} -> count_replies(N + 1);
        {trace, _, 'receive', _} -> count_replies(N);
        {count, From} ->
            %% Trace messages are delivered before the `DOWN' the caller waited for.
            From ! {replies, N}
    end.

sum_calls(N) ->
    lists:all(fun(I) -> py:call(operator, add, [I, 1]) =:= {ok, I + 1} end,
              lists:seq(1, N)).

quick_replies_send_no_message(_) ->
    {AllRight, Replies, Left} = traced(fun() -> sum_calls(?CALLS) end),
    ?assert(AllRight),
    ?assertEqual([], Left),
    ct:pal("~b of ~b replies came as messages", [Replies, ?CALLS]),
    %% Most replies skip the message; a poll may still run out of time now and then.
    ?assert(Replies < ?CALLS).

polling_off_sends_every_reply(_) ->
    {AllRight, Replies, Left} = traced(fun() -> sum_calls(?CALLS) end),
    ?assert(AllRight),
    ?assertEqual([], Left),
    ?assertEqual(?CALLS, Replies).

%% Values, errors, eval and exec answer the same terms either way.
results_match_message_path(_) ->
    Requests = [fun() -> py:call(operator, add, [1, 2]) end,
                fun() -> py:call(operator, truediv, [1, 0]) end,
                fun() -> py:call(no_such_module_here, f, []) end,
                fun() -> py:call(builtins, dict, [], #{a => 1, b => [1, 2.5, <<"x">>]}) end,
                fun() -> py:eval(<<"x * y">>, #{x => 6, y => 7}) end,
                fun() -> py:eval(<<"1/0">>) end,
                fun() -> py:exec(<<"q = 1">>) end,
                fun() -> py:call(builtins, bytes, [3]) end],
    Quick = [R() || R <- Requests],
    py_test_lib:stop(),
    ok = py_test_lib:start([{reply_spin_us, 0}]),
    try
        Messages = [R() || R <- Requests],
        ?assertEqual(Messages, Quick),
        ?assertMatch([{ok, 3}, {error, {'ZeroDivisionError', _}},
                      {error, {'ModuleNotFoundError', _}}, {ok, #{<<"a">> := 1}},
                      {ok, 42}, {error, {'ZeroDivisionError', _}}, ok, {ok, <<0, 0, 0>>}],
                     Quick)
    after
        application:unset_env(erlang_python, reply_spin_us),
        restart([])
    end.

%% Python calling Erlang stops the caller's poll: the caller must run the function.
%% A stopped poll counts as a miss, so later calls skip polling for a while; of 500
%% calls at least one in 65 still polls.
erlang_call_during_poll(_) ->
    ok = py:register_function(quick_double, fun([X]) -> 2 * X end),
    try
        {AllRight, Replies, Left} =
            traced(fun() ->
                           lists:all(fun(I) ->
                                             py:call(py_callback_helpers, call_back,
                                                     [<<"quick_double">>, I]) =:= {ok, 2 * I}
                                     end, lists:seq(1, 500))
                   end),
        ?assert(AllRight),
        ?assertEqual([], Left),
        %% Each call's poll was stopped for the callback, so each reply came as a message.
        ?assertEqual(500, Replies)
    after
        py:unregister_function(quick_double)
    end.

%% Calls slower than the poll fall back to messages, and later quick calls poll again.
slow_calls_then_quick_calls(_) ->
    {Results, SlowReplies, Left} =
        traced(fun() -> [py:call(py_api_helpers, sleep_then, [?SLOW_CALL_S, I]) || I <- lists:seq(1, 20)] end),
    ?assertEqual([{ok, I} || I <- lists:seq(1, 20)], Results),
    ?assertEqual([], Left),
    ?assertEqual(20, SlowReplies),
    {AllRight, Replies, Left2} = traced(fun() -> sum_calls(?CALLS) end),
    ?assert(AllRight),
    ?assertEqual([], Left2),
    ?assert(Replies < ?CALLS).

%% With a budget far longer than any call, one sequential caller always finds its
%% context idle, so no reply at all comes as a message.
long_poll_sends_no_message(_) ->
    restart([{reply_spin_us, 1000000}]),
    try
        %% A context that just started has not been idle yet.
        {ok, 2} = py:call(operator, add, [1, 1]),
        {AllRight, Replies, Left} = traced(fun() -> sum_calls(200) end),
        ?assert(AllRight),
        ?assertEqual([], Left),
        ?assertEqual(0, Replies)
    after
        application:unset_env(erlang_python, reply_spin_us),
        restart([])
    end.

%% A zero timeout does not wait at all, and never leaves a late reply behind.
timeout_zero_leaves_nothing(_) ->
    {{Slow, Results}, Replies, Left} =
        traced(fun() ->
                       %% Cannot finish in 0 ms: a poll would have waited for it.
                       S = py:call(py_api_helpers, sleep_then, [0.3, late], #{}, 0),
                       Rs = [py:call(operator, add, [1, 2], #{}, 0) || _ <- lists:seq(1, 200)],
                       timer:sleep(400),
                       {S, Rs}
               end),
    ?assertEqual({error, timeout}, Slow),
    ?assertEqual([], Left),
    ?assertEqual([], [R || R <- Results, R =/= {ok, 3}, R =/= {error, timeout}]),
    %% Never polled: every result came as a message, and a cancelled call sent none.
    ?assertEqual(length([R || {ok, 3} = R <- Results]), Replies).

%% Many callers at once: at most one polls per context, the others wait in `receive';
%% every answer is right.
concurrent_pollers(_) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {self(), sum_calls(500)} end) || _ <- lists:seq(1, 32)],
    ?assertEqual([true || _ <- Pids], [receive {P, R} -> R end || P <- Pids]).
