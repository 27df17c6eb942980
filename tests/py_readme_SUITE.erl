%%% @doc The README's quick starts run exactly as written: the Erlang block is parsed
%%% and evaluated here, the Elixir block runs in `elixir' (Debian's package) against the
%%% compiled application. Their pattern matches are the assertions.
-module(py_readme_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([erlang_quick_start/1, elixir_quick_start/1, erlang_more/1]).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [erlang_quick_start, elixir_quick_start, erlang_more].

init_per_suite(Config) ->
    {ok, Readme} = file:read_file(filename:join(py_test_lib:root(), "README.md")),
    [{readme, Readme} | Config].

end_per_suite(_Config) ->
    py_test_lib:stop().

erlang_quick_start(Config) ->
    Code = block(?config(readme, Config), <<"## Quick start (Erlang)">>, <<"erlang">>),
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Code)),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, Last, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
    ?assertEqual({error, timeout}, Last).

erlang_more(Config) ->
    ok = py_test_lib:start(),
    ok = py:state_clear(),
    Code = block(?config(readme, Config), <<"## More in a few lines">>, <<"erlang">>),
    {ok, Tokens, _} = erl_scan:string(unicode:characters_to_list(Code)),
    {ok, Exprs} = erl_parse:parse_exprs(Tokens),
    {value, Last, _} = erl_eval:exprs(Exprs, erl_eval:new_bindings()),
    ?assertEqual({ok, 2}, Last).

elixir_quick_start(Config) ->
    Code = block(?config(readme, Config), <<"## Quick start (Elixir)">>, <<"elixir">>),
    Script = filename:join(?config(priv_dir, Config), "quick_start.exs"),
    ok = file:write_file(Script, [Code, "\nIO.puts(\"quick start ok\")\n"]),
    Ebin = filename:dirname(code:which(py)),
    Elixir = os:find_executable("elixir"),
    ?assertNotEqual(false, Elixir),
    Port = open_port({spawn_executable, Elixir},
                     [{args, ["-pa", Ebin, Script]}, exit_status, stderr_to_stdout, binary]),
    {Status, Output} = collect(Port, <<>>),
    ct:pal("elixir said:~n~ts", [Output]),
    ?assertEqual(0, Status),
    ?assertNotEqual(nomatch, binary:match(Output, <<"quick start ok">>)).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, <<Acc/binary, Data/binary>>);
        {Port, {exit_status, Status}} -> {Status, Acc}
    after 120000 ->
        ct:fail({elixir_timeout, Acc})
    end.

%% The body of the first fenced block of Lang after Heading.
block(Readme, Heading, Lang) ->
    [_, AfterHeading] = binary:split(Readme, Heading),
    [_, AfterFence] = binary:split(AfterHeading, <<"```", Lang/binary, "\n">>),
    [Body, _] = binary:split(AfterFence, <<"```">>),
    Body.
