#!/usr/bin/env escript
%%! -noshell
%% Streaming tokens from Python to Erlang as they are produced: py:stream_start/3 runs the
%% async generator token_source:tokens/0 (examples/token_source.py) on a context's event
%% loop, and each word arrives here as {py_stream, Ref, {data, Word}}. Prints the tokens as
%% they come, then the time to the first token and the total time.
%% Run with `make demo` (which builds everything first), or:
%%   escript examples/token_stream.escript ProjectRoot
main([Root | _]) ->
    true = code:add_patha(filename:join(Root, "erlang/_build/default/lib/erlang_python/ebin")),
    ok = application:load(erlang_python),
    ok = application:set_env(erlang_python, python_path, [filename:join(Root, "examples")]),
    {ok, _} = application:ensure_all_started(erlang_python),
    io:format("~nStreaming tokens from token_source.tokens() (an async generator):~n~n"),
    T0 = erlang:monotonic_time(microsecond),
    {ok, Ref} = py:stream_start(token_source, tokens, []),
    case receive_tokens(Ref, T0, undefined, 0) of
        {done, First, Count} ->
            Total = erlang:monotonic_time(microsecond) - T0,
            io:format("~n~ntokens: ~b~ntime to first token: ~.1f ms~ntotal time: ~.1f ms~n",
                      [Count, (First - T0) / 1000, Total / 1000]),
            ok = application:stop(erlang_python);
        {error, Reason} ->
            io:format(standard_error, "~nthe stream failed: ~tp~n", [Reason]),
            halt(1)
    end.

receive_tokens(Ref, T0, First, Count) ->
    receive
        {py_stream, Ref, {data, Token}} ->
            io:format("~ts ", [Token]),
            FirstAt = case First of
                          undefined -> erlang:monotonic_time(microsecond);
                          _ -> First
                      end,
            receive_tokens(Ref, T0, FirstAt, Count + 1);
        {py_stream, Ref, done} when First =/= undefined ->
            {done, First, Count};
        {py_stream, Ref, done} ->
            {error, no_tokens};
        {py_stream, Ref, {error, Reason}} ->
            {error, Reason}
    after 10000 ->
        {error, timeout}
    end.
