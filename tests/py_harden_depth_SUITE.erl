%%% @doc Hardening of conversion depth, stack use, error text size, late callback
%%% messages, odd callback failure reasons and NUL bytes in names.
%%%
%%% Every case that could kill the VM runs in a VM of its own (`py_isolated'), its body
%%% an exported function of this module run there; the others run in the test VM.
%%% Python helpers are in `py_harden_depth_helpers' (tests/).
-module(py_harden_depth_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).
%% Depth through protocols (isolated)
-export([numpy_self_containing_is_too_deep/1, self_containing_containers_are_too_deep/1,
         frozensets_count_one_level_each/1, str_converting_itself_is_bounded/1]).
%% Depth on any thread (isolated)
-export([send_deep_from_thread/1, state_deep_from_thread/1]).
%% Re-entrant chains (isolated)
-export([reentrant_chain_stops_with_recursion_error/1,
         reentrant_chain_failure_unwinds/1]).
%% Bounded error text
-export([error_text_bounded_through_levels/1, big_exit_reason_is_cheap/1,
         recursion_error_chain_is_cheap/1, long_python_message_is_cut/1,
         logged_traceback_is_bounded/1]).
-export([log/2]).
%% Callbacks
-export([no_late_callback_message/1, fun_in_reason_is_erlang_error/1,
         nul_in_names_is_badarg/1]).
%% Bodies run in isolated VMs, and the Erlang functions Python calls.
-export([numpy_self_body/0, self_containers_body/0, frozensets_body/0,
         str_itself_body/0, send_thread_body/0, state_thread_body/0,
         chain_reach_body/0, chain_failure_body/0, text_levels_body/0,
         big_exit_body/0, recursion_chain_body/0,
         chain_fun/1, reach_fun/1, fail_chain_fun/1, big_exit_fun/1, big_list_exit_fun/1,
         echo_fun/1, fun_reason_fun/1, improper_reason_fun/1, port_reason_fun/1]).

-define(H, py_harden_depth_helpers).
-define(MAX, 20000).
-define(TOO_DEEP, {error, {nesting_too_deep, ?MAX}}).
%% The documented bounds.
-define(MESSAGE_MAX, 16384).
-define(TEXT_MAX, 4096).
-define(HEADROOM_MSG,
        <<"erlang.call nested too deeply: less than 20 MiB of the context's stack is left">>).

%%% ---------------------------------------------------------------------------
%%% Common Test callbacks

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [{group, protocols}, {group, threads}, {group, chains}, {group, text},
     {group, callbacks}].

groups() ->
    [{protocols, [], [numpy_self_containing_is_too_deep,
                      self_containing_containers_are_too_deep,
                      frozensets_count_one_level_each, str_converting_itself_is_bounded]},
     {threads, [], [send_deep_from_thread, state_deep_from_thread]},
     {chains, [], [reentrant_chain_stops_with_recursion_error,
                   reentrant_chain_failure_unwinds]},
     {text, [], [error_text_bounded_through_levels, big_exit_reason_is_cheap,
                 recursion_error_chain_is_cheap, long_python_message_is_cut,
                 logged_traceback_is_bounded]},
     {callbacks, [], [no_late_callback_message, fun_in_reason_is_erlang_error,
                      nul_in_names_is_badarg]}].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

%%% ---------------------------------------------------------------------------
%%% Depth through protocols

numpy_self_containing_is_too_deep(_Config) ->
    isolated(numpy_self_body).

numpy_self_body() ->
    ?assertEqual(?TOO_DEEP, py:call(?H, numpy_self, [])),
    ?assertEqual(?TOO_DEEP, py:eval(<<"__import__('py_harden_depth_helpers').numpy_self()">>)),
    ?assertEqual(?TOO_DEEP, py:call(?H, numpy_self_in_list, [])),
    %% Scalars whose tolist() gives a copy of themselves convert through str().
    ?assertEqual({ok, <<"1.5">>}, py:eval(<<"__import__('numpy').longdouble(1.5)">>)),
    ?assertEqual({ok, [<<"(1+2j)">>]}, py:eval(<<"[__import__('numpy').clongdouble(1+2j)]">>)),
    assert_context_works().

self_containing_containers_are_too_deep(_Config) ->
    isolated(self_containers_body).

self_containers_body() ->
    ?assertEqual(?TOO_DEEP, py:call(?H, dict_self, [])),
    ?assertEqual(?TOO_DEEP, py:call(?H, list_subclass_self, [])),
    assert_context_works().

%% A set converts through a list; the set and its list count one level together.
frozensets_count_one_level_each(_Config) ->
    isolated(frozensets_body).

frozensets_body() ->
    ?assertEqual({ok, nested_list(?MAX)}, py:call(?H, nested_frozensets, [?MAX])),
    ?assertEqual(?TOO_DEEP, py:call(?H, nested_frozensets, [?MAX + 1])),
    assert_context_works().

%% `__str__' storing the object itself starts a conversion inside the conversion: with
%% the default recursion limit Python stops it; with a raised one, the depth count.
str_converting_itself_is_bounded(_Config) ->
    isolated(str_itself_body).

str_itself_body() ->
    {error, {'RecursionError', Message}} = py:call(?H, str_stores_itself, [1000]),
    ?assertEqual("maximum recursion depth exceeded", lists:sublist(Message, 32)),
    %% Python 3.12+ guard C recursion themselves: there Python's `RecursionError` comes
    %% before the conversion's own limit does. Either way the VM and the context live on.
    case py:eval(<<"__import__('sys').version_info >= (3, 12)">>) of
        {ok, false} ->
            ?assertEqual({error, {'ValueError', "nesting deeper than 20000 levels"}},
                         py:call(?H, str_stores_itself, [1000000]));
        {ok, true} ->
            {error, {'RecursionError', Deep}} = py:call(?H, str_stores_itself, [1000000]),
            ?assertEqual("maximum recursion depth exceeded", lists:sublist(Deep, 32))
    end,
    ok = py:exec(<<"import sys; sys.setrecursionlimit(1000)">>),
    assert_context_works().

%%% ---------------------------------------------------------------------------
%%% Depth on any thread: a Python thread's 8 MiB stack, and a 256 KiB one

send_deep_from_thread(_Config) ->
    isolated(send_thread_body).

send_thread_body() ->
    lists:foreach(
      fun(Stack) ->
              ?assertEqual({ok, none}, py:call(?H, send_deep_from_thread, [self(), ?MAX, Stack])),
              Received = receive Msg -> Msg after 5000 -> timeout end,
              ?assertEqual(?MAX, list_depth(Received)),
              ?assertEqual({ok, {<<"ValueError">>, <<"nesting deeper than 20000 levels">>}},
                           py:call(?H, send_deep_from_thread, [self(), ?MAX + 1, Stack])),
              ?assertEqual({messages, []}, process_info(self(), messages))
      end, [0, 256 * 1024]),
    assert_context_works().

state_deep_from_thread(_Config) ->
    isolated(state_thread_body).

state_thread_body() ->
    lists:foreach(
      fun(Stack) ->
              %% Python to term and back, both on the thread.
              ?assertEqual({ok, ?MAX}, py:call(?H, state_round_trip_from_thread, [<<"k1">>, ?MAX, Stack])),
              ?assertEqual({ok, {<<"ValueError">>, <<"nesting deeper than 20000 levels">>}},
                           py:call(?H, state_round_trip_from_thread, [<<"k2">>, ?MAX + 1, Stack])),
              %% Stored by Erlang, converted to Python on the thread.
              ok = py:state_store(<<"k3">>, nested_list(?MAX)),
              ?assertEqual({ok, ?MAX}, py:call(?H, state_get_depth_from_thread, [<<"k3">>, Stack])),
              ok = py:state_store(<<"k4">>, nested_list(?MAX + 1)),
              ?assertEqual({ok, {<<"ValueError">>, <<"nesting deeper than 20000 levels">>}},
                           py:call(?H, state_get_depth_from_thread, [<<"k4">>, Stack]))
      end, [0, 256 * 1024]),
    assert_context_works().

%%% ---------------------------------------------------------------------------
%%% Re-entrant chains with Python's recursion limit raised to a million

%% Nesting stops with a RecursionError at a depth the context's stack holds.
reentrant_chain_stops_with_recursion_error(_Config) ->
    isolated(chain_reach_body).

chain_reach_body() ->
    ok = py:register_function(harden_reach, ?MODULE, reach_fun),
    {ok, [Reached, Why]} = py:call(?H, chain_reach, [0, 1000000, 1000000]),
    ?assertEqual(chain_stop_message(), Why),
    ct:pal("re-entrant chain stopped at ~b levels", [Reached]),
    %% Measured on the 64 MiB context stack: 14,000 to 16,500 levels fit, as the build's
    %% frame sizes go (16,000 used to overflow it and kill the VM). A level takes more
    %% than 1 KiB of stack, so fewer than 60,000 fit whatever the build. CPython 3.12's
    %% C recursion limit (1,500 in 3.12.1) stops it at some 750 levels, 3.13's (10,000)
    %% at some 5,000.
    ?assert(Reached >= min_chain_levels() andalso Reached =< 60000),
    %% The context serves as before, and a chain that fits still works.
    {ok, [100, none]} = py:call(?H, chain_reach, [0, 100, 1000]),
    assert_context_works().

%% What stops a re-entrant chain first. Up to CPython 3.11, erlang.call's own guard, with
%% 20 MiB of the context's stack left. From 3.12 on, CPython counts C-level recursion
%% itself (two units a level of this chain) and refuses to call the next level's Python
%% function long before that guard is reached; each version words it its own way.
chain_stop_message() ->
    case python_version() of
        [3, 12] -> <<"maximum recursion depth exceeded">>;
        V when V >= [3, 13] -> <<"maximum recursion depth exceeded while calling a Python object">>;
        _ -> ?HEADROOM_MSG
    end.

%% The fewest levels a chain must reach before it stops.
min_chain_levels() ->
    case python_version() of
        [3, 12] -> 500;
        _ -> 1000
    end.

python_version() ->
    {ok, Version} = py:eval(<<"list(__import__('sys').version_info[:2])">>),
    Version.

%% The chain failing at its deepest level unwinds level after level with bounded text.
reentrant_chain_failure_unwinds(_Config) ->
    isolated(chain_failure_body).

chain_failure_body() ->
    ok = py:register_function(harden_chain, ?MODULE, chain_fun),
    ok = py:exec(<<"import sys; sys.setrecursionlimit(1000000)">>),
    %% Unwinding costs about 1.5 ms a level (each level formats its error on both sides),
    %% some 25 s for the ~16,500 levels that fit: more than the default timeout.
    {error, {'ErlangError', Text}} = py:call(?H, chain, [100000], #{}, 150000),
    ?assert(length(Text) =< ?MESSAGE_MAX),
    ok = py:exec(<<"import sys; sys.setrecursionlimit(1000)">>),
    ?assertEqual({ok, 50}, py:call(?H, chain, [50])),
    assert_context_works().

%%% ---------------------------------------------------------------------------
%%% Bounded error text

%% An error embedding the error of the level below, 22 and 40 levels deep.
error_text_bounded_through_levels(_Config) ->
    isolated(text_levels_body).

text_levels_body() ->
    ok = py:register_function(harden_fail_chain, ?MODULE, fail_chain_fun),
    lists:foreach(
      fun(Levels) ->
              reset_peak_rss(),
              Before = peak_rss_kb(),
              {Us, {error, {'ErlangError', Text}}} = timer:tc(py, call, [?H, fail_chain, [Levels, 1000]]),
              Growth = peak_rss_kb() - Before,
              ct:pal("~b levels: ~b characters, ~b ms, peak RSS +~b KiB",
                     [Levels, length(Text), Us div 1000, Growth]),
              ?assert(length(Text) =< ?MESSAGE_MAX),
              ?assertEqual("{badmatch,{error,{'ErlangError',", lists:sublist(Text, 32)),
              ?assert(Growth < 100 * 1024),
              ?assert(Us < 5000000)
      end, [22, 40]),
    assert_context_works().

%% A 4 MiB exit reason: Python gets the whole reason, and a message of bounded size.
big_exit_reason_is_cheap(_Config) ->
    isolated(big_exit_body).

big_exit_body() ->
    ok = py:register_function(harden_big_exit, ?MODULE, big_exit_fun),
    ok = py:register_function(harden_big_list_exit, ?MODULE, big_list_exit_fun),
    reset_peak_rss(),
    Before = peak_rss_kb(),
    {Us, {ok, [<<"ErlangError">>, Len, Head]}} =
        timer:tc(py, call, [?H, erlang_error_text_head, [<<"harden_big_exit">>, 8]]),
    Growth = peak_rss_kb() - Before,
    ct:pal("4 MiB binary exit reason: ~b characters, ~b ms, peak RSS +~b KiB",
           [Len, Us div 1000, Growth]),
    ?assertEqual(<<"{exit,<<">>, Head),
    ?assert(Len =< ?TEXT_MAX + 64),
    ?assert(Us < 1000000),
    ?assert(Growth < 100 * 1024),
    %% The reason itself crosses whole.
    {ok, [<<"ErlangError">>, _, {exit, Bin}]} =
        py:call(?H, erlang_error_of, [<<"harden_big_exit">>]),
    ?assertEqual(4 bsl 20, byte_size(Bin)),
    {Us2, {ok, [<<"ErlangError">>, Len2, <<"{exit,[1,">>]}} =
        timer:tc(py, call, [?H, erlang_error_text_head, [<<"harden_big_list_exit">>, 9]]),
    ct:pal("1M-integer list exit reason: ~b characters, ~b ms", [Len2, Us2 div 1000]),
    ?assert(Len2 =< ?TEXT_MAX + 64),
    ?assert(Us2 < 2000000),
    assert_context_works().

%% 1,000 re-entrant levels with the default recursion limit: Python's RecursionError
%% at the deepest level, then every level fails and logs a traceback while unwinding.
recursion_error_chain_is_cheap(_Config) ->
    isolated(recursion_chain_body).

recursion_chain_body() ->
    ok = py:register_function(harden_chain, ?MODULE, chain_fun),
    reset_peak_rss(),
    Before = peak_rss_kb(),
    {Us, {error, {'ErlangError', Text}}} = timer:tc(py, call, [?H, chain, [1000]]),
    Growth = peak_rss_kb() - Before,
    ct:pal("1,000-level chain with RecursionError: ~b characters, ~b ms, peak RSS +~b KiB",
           [length(Text), Us div 1000, Growth]),
    ?assert(length(Text) =< ?MESSAGE_MAX),
    ?assert(Growth < 200 * 1024),
    ?assert(Us < 20000000),
    assert_context_works().

long_python_message_is_cut(_Config) ->
    Note = "... (10000000 characters, cut)",
    {error, {'ValueError', Message}} = py:call(?H, raise_long, [10000000]),
    ?assertEqual(?MESSAGE_MAX, length(Message)),
    ?assertEqual(lists:duplicate(?MESSAGE_MAX - length(Note), $y) ++ Note, Message),
    %% At the bound exactly, nothing is cut.
    {error, {'ValueError', Exact}} = py:call(?H, raise_long, [?MESSAGE_MAX]),
    ?assertEqual(lists:duplicate(?MESSAGE_MAX, $y), Exact).

%% The traceback sent to logger: the 64 frames nearest the raise, 65,536 characters.
logged_traceback_is_bounded(_Config) ->
    #{level := OldLevel} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(harden_capture, ?MODULE, #{config => #{pid => self()}}),
    try
        {error, {'ValueError', _}} = py:call(?H, raise_deep, [500, 100000]),
        Long = logged_traceback(),
        ct:pal("long traceback: ~b bytes, ~b frames", [byte_size(Long), frames(Long)]),
        ?assertEqual(65536, byte_size(Long)),
        ?assertMatch({match, _}, re:run(Long, <<"\\.\\.\\. \\([0-9]+ characters, cut\\)$">>)),
        %% 64 frames: 3 shown, 60 repeats folded by Python, the raising one.
        ?assertEqual(4, frames(Long)),
        ?assertMatch({_, _}, binary:match(Long, <<"[Previous line repeated 60 more times]">>)),
        {error, {'ValueError', _}} = py:call(?H, raise_deep, [500, 10]),
        Short = logged_traceback(),
        ct:pal("short traceback: ~b bytes, ~b frames", [byte_size(Short), frames(Short)]),
        ?assertMatch({match, _}, re:run(Short, <<"ValueError: tb-marker z{10}\n$">>)),
        ?assertEqual(4, frames(Short)),
        ?assertMatch({_, _}, binary:match(Short, <<"[Previous line repeated 60 more times]">>))
    after
        ok = logger:remove_handler(harden_capture),
        ok = logger:set_primary_config(level, OldLevel)
    end.

%% logger handler callback: hand events to the test process.
-spec log(logger:log_event(), logger:handler_config()) -> term().
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {logged, Event}.

logged_traceback() ->
    receive
        %% The traceback is the event's last argument.
        {logged, #{msg := {"Python exception" ++ _, [_ | _] = Args}}} ->
            Text = lists:last(Args),
            case binary:match(Text, <<"tb-marker">>) of
                nomatch -> logged_traceback();
                _ -> Text
            end
    after 5000 ->
        ct:fail(no_traceback_logged)
    end.

frames(Text) ->
    length(binary:matches(Text, <<"  File \"">>)).

%%% ---------------------------------------------------------------------------
%%% Callbacks

%% The caller gives up while the callback's argument converts: no message afterwards.
no_late_callback_message(_Config) ->
    ok = py:register_function(harden_echo, ?MODULE, echo_fun),
    ?assertEqual({error, timeout}, py:call(?H, call_with_slow_arg, [0.5], #{}, 100)),
    timer:sleep(800),
    ?assertEqual({messages, []}, process_info(self(), messages)),
    %% Timeouts all around the end of the conversion.
    lists:foreach(
      fun(Ms) ->
              Result = py:call(?H, call_with_slow_arg, [0.02], #{}, Ms),
              ?assert(Result =:= {error, timeout} orelse Result =:= {ok, <<"slow">>}),
              timer:sleep(60),
              ?assertEqual({messages, []}, process_info(self(), messages))
      end, lists:seq(10, 30)),
    ?assertEqual({ok, <<"slow">>}, py:call(?H, call_with_slow_arg, [0.01])),
    assert_context_works().

fun_in_reason_is_erlang_error(_Config) ->
    ok = py:register_function(harden_fun_reason, ?MODULE, fun_reason_fun),
    ok = py:register_function(harden_improper_reason, ?MODULE, improper_reason_fun),
    ok = py:register_function(harden_port_reason, ?MODULE, port_reason_fun),
    {ok, [<<"ErlangError">>, _, {bad, <<"#Fun<", _/binary>>, 1}]} =
        py:call(?H, erlang_error_of, [<<"harden_fun_reason">>]),
    ?assertMatch({ok, [<<"ErlangError">>, _, {bad, <<"[1|2]">>, [x]}]},
                 py:call(?H, erlang_error_of, [<<"harden_improper_reason">>])),
    {ok, [<<"ErlangError">>, _, {bad, <<"#Port<", _/binary>>}]} =
        py:call(?H, erlang_error_of, [<<"harden_port_reason">>]),
    %% The same through `erlang.async_call'.
    Ref = py:async_call(?H, async_erlang_error_of, [<<"harden_fun_reason">>]),
    {ok, [<<"ErlangError">>, {bad, <<"#Fun<", _/binary>>, 1}]} = py:async_await(Ref, 10000),
    assert_context_works().

nul_in_names_is_badarg(_Config) ->
    ?assertEqual({error, {badarg, module}}, py:call(<<"os\0junk">>, getcwd, [])),
    ?assertEqual({error, {badarg, module}}, py:call('os\0junk', getcwd, [])),
    ?assertEqual({error, {badarg, module}}, py:call("os\0junk", getcwd, [])),
    ?assertEqual({error, {badarg, function}}, py:call(os, <<"getcwd\0junk">>, [])),
    ?assertEqual({error, {badarg, function}}, py:call(os, 'path.join\0x', [<<"a">>])),
    {ok, Ref} = py:call(py:context(), ?H, 'SlowStr', [0], #{return => ref}),
    ?assertEqual({error, {badarg, attribute}}, py:getattr(Ref, <<"seconds\0x">>)),
    ?assertEqual({error, {badarg, method}}, py:call_method(Ref, <<"__str__\0x">>, [])),
    %% The same names without the NUL byte work.
    ?assertEqual({ok, 0}, py:getattr(Ref, <<"seconds">>)),
    {ok, Cwd} = file:get_cwd(),
    ?assertEqual({ok, unicode:characters_to_binary(Cwd)}, py:call(<<"os">>, getcwd, [])).

%%% ---------------------------------------------------------------------------
%%% Erlang functions Python calls

-spec chain_fun([non_neg_integer()]) -> non_neg_integer().
chain_fun([N]) ->
    {ok, V} = py:call(?H, chain, [N]),
    V.

-spec reach_fun([non_neg_integer()]) -> term().
reach_fun([Level, Limit, RecursionLimit]) ->
    case py:call(?H, chain_reach, [Level, Limit, RecursionLimit]) of
        {ok, V} ->
            V;
        %% CPython 3.12+ refused to start this level (chain_stop_message/0): answer as
        %% chain_reach answers for erlang.call's guard, with the last level that ran.
        {error, {'RecursionError', Message}} ->
            [Level - 1, unicode:characters_to_binary(Message)]
    end.

-spec fail_chain_fun([non_neg_integer()]) -> non_neg_integer().
fail_chain_fun([N, Size]) ->
    {ok, V} = py:call(?H, fail_chain, [N, Size]),
    V.

-spec big_exit_fun([]) -> no_return().
big_exit_fun([]) ->
    exit(binary:copy(<<"x">>, 4 bsl 20)).

-spec big_list_exit_fun([]) -> no_return().
big_list_exit_fun([]) ->
    exit(lists:seq(1, 1000000)).

-spec echo_fun([term()]) -> term().
echo_fun([X]) -> X.

-spec fun_reason_fun([]) -> no_return().
fun_reason_fun([]) ->
    error({bad, fun() -> ok end, 1}).

-spec improper_reason_fun([]) -> no_return().
improper_reason_fun([]) ->
    error({bad, [1 | 2], [x]}).

-spec port_reason_fun([]) -> no_return().
port_reason_fun([]) ->
    error({bad, hd(erlang:ports())}).

%%% ---------------------------------------------------------------------------
%%% Helpers

%% Run `?MODULE:Body()' in a VM of its own; it must finish (the VM must survive).
isolated(Body) ->
    ?assertEqual({ok, ok}, py_isolated:run(?MODULE, Body, 170000)).

assert_context_works() ->
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)),
    ok.

%% `Levels' lists, each holding the next; the innermost is empty.
nested_list(Levels) ->
    lists:foldl(fun(_, Inner) -> [Inner] end, [], lists:seq(1, Levels - 1)).

list_depth(List) -> list_depth(List, 0).

list_depth([Inner], Depth) -> list_depth(Inner, Depth + 1);
list_depth([], Depth) -> Depth + 1;
list_depth(_, Depth) -> Depth.

%% The VM's peak resident memory (VmHWM) in KiB, and restarting its count.
peak_rss_kb() ->
    {ok, Status} = file:read_file("/proc/" ++ os:getpid() ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]),
                   binary:match(L, <<"VmHWM:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(binary_to_list(Line), " \t"),
    list_to_integer(Kb).

reset_peak_rss() ->
    ok = file:write_file("/proc/" ++ os:getpid() ++ "/clear_refs", <<"5">>).
