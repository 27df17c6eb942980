%%% @doc Stop means stop, and output in whole lines (issue 15).
%%%
%%% Stop: servers and connections left on a context's event loop (an aiohttp site, plain
%%% asyncio servers, client connections) are closed when the application stops, so the
%%% port is free for a restarted application at once and peers see the connection end.
%%%
%%% Output: what Python writes reaches the writer's group leader in whole lines; an
%%% unfinished line goes out when the request ends, on `flush()', or after 100 ms.
-module(py_stop_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([all/0, suite/0, init_per_suite/1, end_per_suite/1,
         init_per_testcase/2, end_per_testcase/2]).
-export([aiohttp_port_free_after_stop/1, aiohttp_connections_end_on_stop/1,
         asyncio_servers_closed_on_stop/1, client_connections_closed_on_stop/1,
         restart_rebinds_repeatedly/1, what_survives_a_stop/1,
         print_arrives_in_whole_lines/1, pieces_join_into_lines/1,
         unfinished_line_sent_at_request_end/1, flush_sends_unfinished_line/1,
         unfinished_line_sent_after_timer/1, stderr_in_whole_lines/1,
         callers_lines_do_not_mix/1, long_line_not_held/1,
         unfinished_line_sent_at_stop/1]).
-export([stop_flush_body/0]).

-define(H, py_stop_helpers).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [aiohttp_port_free_after_stop, aiohttp_connections_end_on_stop,
     asyncio_servers_closed_on_stop, client_connections_closed_on_stop,
     restart_rebinds_repeatedly, what_survives_a_stop,
     print_arrives_in_whole_lines, pieces_join_into_lines,
     unfinished_line_sent_at_request_end, flush_sends_unfinished_line,
     unfinished_line_sent_after_timer, stderr_in_whole_lines,
     callers_lines_do_not_mix, long_line_not_held, unfinished_line_sent_at_stop].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

init_per_testcase(_Case, Config) ->
    %% A case that failed half-way may have left the application stopped.
    ok = py_test_lib:start(),
    {ok, none} = py:call(?H, reset, []),
    Config.

end_per_testcase(_Case, _Config) ->
    ok.

%%% ---------------------------------------------------------------------------
%%% Stop

%% The issue's program: an aiohttp site in a context, the application stopped, then
%% started again and the same port bound. Before, the listening socket outlived the stop:
%% new connections hung and the new site failed with EADDRINUSE.
aiohttp_port_free_after_stop(_) ->
    {ok, Port} = start_in_context(start_aiohttp, [0]),
    ?assertEqual({ok, <<"hello">>}, http_get(Port, "/hello")),
    ok = application:stop(erlang_python),
    ?assertEqual({error, econnrefused}, gen_tcp:connect({127, 0, 0, 1}, Port, [], 2000)),
    ok = py_test_lib:start(),
    ?assertEqual({ok, Port}, start_in_context(start_aiohttp, [Port])),
    ?assertEqual({ok, <<"hello">>}, http_get(Port, "/hello")).

%% An idle keep-alive connection and one whose handler never answers both end when the
%% application stops (before, both hung), the handler's `finally' runs, and the stop
%% does not wait for the handler.
aiohttp_connections_end_on_stop(_) ->
    {ok, Port} = start_in_context(start_aiohttp, [0]),
    {ok, Idle} = connect(Port),
    ok = gen_tcp:send(Idle, request("/hello")),
    {ok, Answer} = gen_tcp:recv(Idle, 0, 5000),
    ?assertMatch({match, _}, re:run(Answer, <<"\r\n\r\nhello$">>)),
    {ok, Hung} = connect(Port),
    ok = gen_tcp:send(Hung, request("/hang")),
    true = py_test_lib:wait_until(fun() -> py:call(?H, events, []) =:= {ok, [<<"hang:started">>]} end, 5000),
    {Micros, ok} = timer:tc(fun() -> application:stop(erlang_python) end),
    ?assert(Micros < 3000000),
    ?assertEqual({error, closed}, gen_tcp:recv(Idle, 0, 2000)),
    ?assertEqual({error, closed}, gen_tcp:recv(Hung, 0, 2000)),
    %% Module globals live in the interpreter, which outlives the stop.
    ok = py_test_lib:start(),
    ?assertEqual({ok, [<<"hang:started">>, <<"hang:finally">>]}, py:call(?H, events, [])).

%% `loop.create_server' and `asyncio.start_server' servers: their ports refuse
%% connections after the stop, their open connections end.
asyncio_servers_closed_on_stop(_) ->
    {ok, Echo} = start_in_context(start_echo, [0]),
    {ok, Lines} = start_in_context(start_stream_server, [0]),
    {ok, E} = connect(Echo),
    ok = gen_tcp:send(E, <<"ping">>),
    ?assertEqual({ok, <<"ping">>}, gen_tcp:recv(E, 0, 5000)),
    {ok, L} = connect(Lines),
    ok = gen_tcp:send(L, <<"line\n">>),
    ?assertEqual({ok, <<"line\n">>}, gen_tcp:recv(L, 0, 5000)),
    ok = application:stop(erlang_python),
    ?assertEqual({error, closed}, gen_tcp:recv(E, 0, 2000)),
    ?assertEqual({error, closed}, gen_tcp:recv(L, 0, 2000)),
    ?assertEqual({error, econnrefused}, gen_tcp:connect({127, 0, 0, 1}, Echo, [], 2000)),
    ?assertEqual({error, econnrefused}, gen_tcp:connect({127, 0, 0, 1}, Lines, [], 2000)).

%% A connection a context's loop opened to an Erlang server ends when the application
%% stops, and its protocol hears of it (`connection_lost').
client_connections_closed_on_stop(_) ->
    {ok, Listen} = gen_tcp:listen(0, [binary, {active, false}, {ip, {127, 0, 0, 1}}]),
    {ok, Port} = inet:port(Listen),
    {ok, true} = start_in_context(connect, [Port]),
    {ok, Accepted} = gen_tcp:accept(Listen, 5000),
    ok = application:stop(erlang_python),
    ?assertEqual({error, closed}, gen_tcp:recv(Accepted, 0, 2000)),
    ok = py_test_lib:start(),
    ?assertEqual({ok, [<<"client:lost">>]}, py:call(?H, events, [])),
    gen_tcp:close(Listen).

%% Stop and start three times, each time serving on the same port.
restart_rebinds_repeatedly(_) ->
    {ok, Port} = start_in_context(start_aiohttp, [0]),
    lists:foreach(fun(_) ->
                          ok = application:stop(erlang_python),
                          ok = py_test_lib:start(),
                          ?assertEqual({ok, Port}, start_in_context(start_aiohttp, [Port])),
                          ?assertEqual({ok, <<"hello">>}, http_get(Port, "/hello"))
                  end, lists:seq(1, 3)).

%% As docs/runtime.md says: module globals live on (the interpreter is never finalized),
%% the shared state does not.
what_survives_a_stop(_) ->
    ok = py:exec(<<"import py_stop_helpers\npy_stop_helpers.EVENTS.append('kept')">>),
    ok = py:state_store(stop_suite_key, 1),
    ok = application:stop(erlang_python),
    ok = py_test_lib:start(),
    ?assertEqual({ok, [<<"kept">>]}, py:call(?H, events, [])),
    ?assertEqual({error, not_found}, py:state_fetch(stop_suite_key)).

%%% ---------------------------------------------------------------------------
%%% Output in whole lines

%% `print' writes each word and separator apart; each line reaches the group leader in
%% one piece (before, 8 pieces a line).
print_arrives_in_whole_lines(_) ->
    ?assertEqual({{ok, none}, [<<"line 0 of 3\n">>, <<"line 1 of 3\n">>, <<"line 2 of 3\n">>]},
                 captured(fun() -> py:call(?H, print_words, [3]) end)).

%% Writes are cut at newlines: whole lines go at once, the rest waits for its end.
pieces_join_into_lines(_) ->
    ?assertEqual({{ok, none}, [<<"abc\n">>, <<"de\n">>, <<"f\n">>, <<"g\n">>]},
                 captured(fun() ->
                                  py:call(?H, write_pieces, [<<"a">>, <<"b">>, <<"c\nd">>, <<"e\nf">>,
                                                             <<"\n">>, <<"g\n">>])
                          end)).

%% A line left unfinished goes out when its request ends, before the next request's.
unfinished_line_sent_at_request_end(_) ->
    ?assertEqual({ok, [<<"no newline">>, <<"next\n">>]},
                 captured(fun() ->
                                  {ok, none} = py:call(?H, write_pieces, [<<"no ">>, <<"newline">>]),
                                  {ok, none} = py:call(?H, write_pieces, [<<"next\n">>]),
                                  ok
                          end)).

%% `flush()' sends the unfinished line at once (a prompt, a progress dot), while the
%% request still runs.
flush_sends_unfinished_line(_) ->
    Self = self(),
    Leader = spawn_link(fun() -> capture_leader(Self) end),
    spawn_link(fun() ->
                       group_leader(Leader, self()),
                       Self ! {done, py:exec(<<"import sys, time\n"
                                                "sys.stdout.write('prompt> ')\n"
                                                "sys.stdout.flush()\n"
                                                "time.sleep(2)\n">>)}
               end),
    ?assertEqual(<<"prompt> ">>, receive {chars, Text} -> Text after 1000 -> timeout end),
    ?assertEqual(ok, receive {done, R} -> R after 5000 -> timeout end).

%% An unfinished line of a request that goes on running goes out about 100 ms later.
unfinished_line_sent_after_timer(_) ->
    Self = self(),
    Leader = spawn_link(fun() -> capture_leader(Self) end),
    spawn_link(fun() ->
                       group_leader(Leader, self()),
                       Self ! {done, py:exec(<<"import sys, time\n"
                                                "sys.stdout.write('working')\n"
                                                "time.sleep(0.05)\n"
                                                "sys.stdout.write('...')\n"
                                                "time.sleep(2)\n">>)}
               end),
    T0 = erlang:monotonic_time(millisecond),
    ?assertEqual(<<"working...">>, receive {chars, Text} -> Text after 1000 -> timeout end),
    Waited = erlang:monotonic_time(millisecond) - T0,
    ct:log("unfinished line after ~b ms", [Waited]),
    ?assert(Waited >= 90 andalso Waited < 1000),
    ?assertEqual(ok, receive {done, R} -> R after 5000 -> timeout end).

stderr_in_whole_lines(_) ->
    ?assertEqual({{ok, none}, [<<"err 1\n">>, <<"tail">>]},
                 captured(fun() -> py:call(?H, write_err_pieces, [<<"err">>, <<" 1\nta">>, <<"il">>]) end)).

%% Two callers writing pieces at once, on one group leader: each line is one caller's.
callers_lines_do_not_mix(_) ->
    Self = self(),
    Leader = spawn_link(fun() -> capture_leader(Self) end),
    Writers = [spawn_link(fun() ->
                                  group_leader(Leader, self()),
                                  Self ! {done, self(), py:call(?H, print_words, [200])},
                                  receive stop -> ok end
                          end) || _ <- [1, 2]],
    [receive {done, W, {ok, none}} -> ok after 30000 -> error(timeout) end || W <- Writers],
    Chunks = collect_chars(400, []),
    [W ! stop || W <- Writers],
    Expected = [iolist_to_binary(io_lib:format("line ~b of 200\n", [I])) || I <- lists:seq(0, 199)],
    ?assertEqual(lists:sort(Expected ++ Expected), lists:sort(Chunks)).

%% A line with no end in sight is not held past 64 KiB: 1 MB written in 100 pieces with
%% no newline reaches the group leader whole, in pieces of 64 KiB or a little more.
long_line_not_held(_) ->
    {{ok, none}, Chunks} =
        captured(fun() -> py:call(?H, write_pieces, lists:duplicate(100, binary:copy(<<"x">>, 10000))) end),
    ?assertEqual(binary:copy(<<"x">>, 1000000), iolist_to_binary(Chunks)),
    ?assertEqual(15, length(Chunks)),
    ?assert(lists:all(fun(C) -> byte_size(C) =< 70000 end, Chunks)).

%% A line a Python thread of its own left unfinished (it goes to `user') is sent when the
%% application stops, before `application:stop/1' returns. In a VM of its own, since it
%% puts a recorder in place of `user'.
unfinished_line_sent_at_stop(_) ->
    ?assertMatch({ok, {<<"from a thread">>, Ms}} when Ms < 100,
                 py_isolated:run(?MODULE, stop_flush_body, 60000)).

%% The body of `unfinished_line_sent_at_stop': the text `user' got by the time the stop
%% returned, and how long after the write the stop began (under 100 ms, the timer's
%% delay, or the timer could have sent it).
stop_flush_body() ->
    Self = self(),
    Recorder = spawn_link(fun() -> capture_leader(Self) end),
    User = whereis(user),
    true = unregister(user),
    true = register(user, Recorder),
    try
        T0 = erlang:monotonic_time(millisecond),
        ok = py:exec(<<"import sys, threading\n"
                       "t = threading.Thread(target=lambda: sys.stdout.write('from a thread'))\n"
                       "t.start()\n"
                       "t.join()\n">>),
        Began = erlang:monotonic_time(millisecond) - T0,
        ok = application:stop(erlang_python),
        receive {chars, Text} -> {Text, Began} after 0 -> {nothing, Began} end
    after
        unregister(user),
        register(user, User)
    end.

%%% ---------------------------------------------------------------------------
%%% Helpers

%% Run `Start(Args)' as a coroutine on a context's loop, where what it starts stays.
start_in_context(Fun, Args) ->
    py:async_await(py:async_call(?H, Fun, Args), 10000).

connect(Port) ->
    gen_tcp:connect({127, 0, 0, 1}, Port, [binary, {active, false}], 5000).

request(Path) ->
    ["GET ", Path, " HTTP/1.1\r\nHost: localhost\r\n\r\n"].

%% The body of a GET over a fresh connection (closed after).
http_get(Port, Path) ->
    {ok, S} = connect(Port),
    ok = gen_tcp:send(S, ["GET ", Path, " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"]),
    Reply = recv_all(S, []),
    gen_tcp:close(S),
    case binary:split(Reply, <<"\r\n\r\n">>) of
        [<<"HTTP/1.1 200", _/binary>>, Body] -> {ok, Body};
        _ -> {error, Reply}
    end.

recv_all(S, Acc) ->
    case gen_tcp:recv(S, 0, 5000) of
        {ok, Data} -> recv_all(S, [Acc, Data]);
        {error, closed} -> iolist_to_binary(Acc)
    end.

%% Run `Fun' in a process whose group leader records each put_chars, and answer its
%% result with the texts in order, once no more arrive for 300 ms (past the 100 ms timer).
%% The writer lives until then: output handled after its writer exited goes to `user'.
captured(Fun) ->
    Self = self(),
    Leader = spawn_link(fun() -> capture_leader(Self) end),
    Writer = spawn_link(fun() ->
                                group_leader(Leader, self()),
                                Self ! {done, Fun()},
                                receive stop -> ok end
                        end),
    Result = receive {done, R} -> R after 30000 -> timeout end,
    Chunks = collect_chars(),
    Writer ! stop,
    {Result, Chunks}.

collect_chars() ->
    receive {chars, Text} -> [Text | collect_chars()] after 300 -> [] end.

collect_chars(0, Acc) ->
    lists:reverse(Acc);
collect_chars(N, Acc) ->
    receive {chars, Text} -> collect_chars(N - 1, [Text | Acc]) after 5000 -> lists:reverse(Acc) end.

capture_leader(To) ->
    receive
        {io_request, From, Ref, {put_chars, unicode, Text}} ->
            From ! {io_reply, Ref, ok},
            To ! {chars, iolist_to_binary(Text)},
            capture_leader(To);
        {io_request, From, Ref, _} ->
            From ! {io_reply, Ref, {error, request}},
            capture_leader(To)
    end.
