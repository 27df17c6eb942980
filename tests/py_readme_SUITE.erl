%%% @doc The README's quick starts run exactly as written: the Erlang block is parsed
%%% and evaluated here, the Elixir block runs in `elixir' (Debian's package) against the
%%% compiled application. Their pattern matches are the assertions.
%%%
%%% Its dependency lines (rebar3 `git', mix `git:' and `path:') are used as written too,
%%% with the URL pointing at a bare git clone of this checkout (its work tree as it is,
%%% uncommitted changes to tracked files included) and the path at this checkout: a new
%%% project is built with each and calls Python through the dependency. No network.
-module(py_readme_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([erlang_quick_start/1, elixir_quick_start/1, erlang_more/1]).
-export([rebar3_git_dependency/1, mix_git_dependency/1, mix_path_dependency/1]).

%% The placeholder URL of the README's dependency lines.
-define(README_URL, "https://example.org/erlang_python.git").
-define(README_PATH, "../erlang_python").
%% What the dependent projects print when Python answered them through the dependency.
-define(CHECK_ERL, "{ok, _} = application:ensure_all_started(erlang_python), "
                   "{ok, 4.0} = py:call(math, sqrt, [16]), "
                   "io:format(\"dependency ok~n\"), halt().").
-define(CHECK_EX, "{:ok, 4.0} = :py.call(:math, :sqrt, [16]); IO.puts(\"dependency ok\")").

%% A hung case fails after this long instead of stalling the run (a dependency builds
%% the NIF with cargo: minutes on a loaded 2-CPU machine).
suite() ->
    [{timetrap, {minutes, 15}}].

all() ->
    [erlang_quick_start, elixir_quick_start, erlang_more, {group, dependency}].

groups() ->
    [{dependency, [], [rebar3_git_dependency, mix_git_dependency, mix_path_dependency]}].

init_per_suite(Config) ->
    {ok, Readme} = file:read_file(filename:join(py_test_lib:root(), "README.md")),
    [{readme, Readme} | Config].

end_per_suite(_Config) ->
    py_test_lib:stop().

%% The legs of `make test-all' after the default one leave the dependency lines to it
%% (scripts/test_matrix.sh sets the variable, saying why): they would build them with
%% the same python3, rebar3 and mix.
init_per_group(dependency, Config) ->
    case os:getenv("ERLANG_PYTHON_SKIP_DEPENDENCY_TESTS") of
        Why when is_list(Why), Why =/= "" -> {skip, Why};
        _ -> [{bare_repo, bare_clone(?config(priv_dir, Config))} | Config]
    end.

end_per_group(_Group, _Config) ->
    ok.

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

%%% ---------------------------------------------------------------------------
%%% The README's dependency lines

rebar3_git_dependency(Config) ->
    Block = block(?config(readme, Config), <<"rebar3 (`rebar.config` of your project):">>,
                  <<"erlang">>),
    Deps = replace(Block, ?README_URL, "file://" ++ ?config(bare_repo, Config)),
    Dir = filename:join(?config(priv_dir, Config), "rebar3_user"),
    ok = filelib:ensure_path(filename:join(Dir, "src")),
    ok = file:write_file(filename:join(Dir, "rebar.config"), Deps),
    ok = file:write_file(filename:join([Dir, "src", "rebar3_user.app.src"]),
                         "{application, rebar3_user, [{description, \"uses erlang_python\"}, "
                         "{vsn, \"0.1.0\"}, {applications, [kernel, stdlib, erlang_python]}]}.\n"),
    run(Dir, "rebar3", ["compile"]),
    Ebins = filelib:wildcard(filename:join(Dir, "_build/default/lib/*/ebin")),
    Output = run(Dir, "erl", ["-noshell" | lists:append([["-pa", E] || E <- Ebins])] ++
                     ["-eval", ?CHECK_ERL]),
    ?assertNotEqual(nomatch, string:find(Output, "dependency ok")).

mix_git_dependency(Config) ->
    [Line] = dependency_lines(Config, <<"git:">>),
    Dep = replace(Line, ?README_URL, "file://" ++ ?config(bare_repo, Config)),
    mix_project(Config, "mix_git_user", Dep).

mix_path_dependency(Config) ->
    [Line] = dependency_lines(Config, <<"path:">>),
    mix_project(Config, "mix_path_user", replace(Line, ?README_PATH, py_test_lib:root())).

%% The README's mix lines that hold Key.
dependency_lines(Config, Key) ->
    Block = block(?config(readme, Config), <<"mix (`deps` in your `mix.exs`)">>, <<"elixir">>),
    [L || L <- binary:split(Block, <<"\n">>, [global]), binary:match(L, Key) =/= nomatch].

%% A new mix project with Dep as its one dependency, compiled and run.
mix_project(Config, Name, Dep) ->
    Dir = filename:join(?config(priv_dir, Config), Name),
    ok = filelib:ensure_path(Dir),
    ok = file:write_file(filename:join(Dir, "mix.exs"),
                         ["defmodule MixUser.MixProject do\n"
                          "  use Mix.Project\n"
                          "  def project, do: [app: :", Name, ", version: \"0.1.0\", deps: [",
                          Dep, "]]\n"
                          "end\n"]),
    run(Dir, "mix", ["deps.get"]),
    run(Dir, "mix", ["compile"]),
    Output = run(Dir, "mix", ["run", "-e", ?CHECK_EX]),
    ?assertNotEqual(nomatch, string:find(Output, "dependency ok")).

%% A bare repository holding this checkout's work tree (tracked files, as they are now)
%% as its branch main.
bare_clone(PrivDir) ->
    Root = py_test_lib:root(),
    Bare = filename:join(PrivDir, "erlang_python.git"),
    run(PrivDir, "git", ["init", "--quiet", "--bare", Bare]),
    %% `stash create' commits the work tree without touching it (nothing when it is clean);
    %% a fresh CI machine has no git identity of its own.
    Commit = case string:trim(run(Root, "git", ["-c", "user.name=py_readme_SUITE",
                                                 "-c", "user.email=py_readme_SUITE@localhost",
                                                 "stash", "create"])) of
                 "" -> "HEAD";
                 Stash -> Stash
             end,
    run(Root, "git", ["push", "--quiet", Bare, Commit ++ ":refs/heads/main"]),
    Bare.

replace(Text, From, To) ->
    unicode:characters_to_binary(string:replace(Text, From, To, all)).

%% Run Prog in Dir; its output, once it exited 0. cargo builds the NIF of a dependency
%% in this checkout's target directory, where only the dependency's own crate is new.
run(Dir, Prog, Args) ->
    Exe = os:find_executable(Prog),
    ?assertNotEqual(false, Exe),
    Env = [{"CARGO_TARGET_DIR", filename:join(py_test_lib:root(), "target")}],
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, {cd, Dir}, {env, Env}, exit_status, stderr_to_stdout, binary]),
    {Status, Output} = collect(Port, <<>>),
    ct:log("~ts ~ts (in ~ts) exited ~b:~n~ts", [Prog, lists:join(" ", Args), Dir, Status, Output]),
    ?assertEqual({Prog, Args, 0}, {Prog, Args, Status}),
    unicode:characters_to_list(Output).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, <<Acc/binary, Data/binary>>);
        {Port, {exit_status, Status}} -> {Status, Acc}
    after 600000 ->
        ct:fail({no_output_for_10_minutes, Acc})
    end.

%% The body of the first fenced block of Lang after Heading.
block(Readme, Heading, Lang) ->
    [_, AfterHeading] = binary:split(Readme, Heading),
    [_, AfterFence] = binary:split(AfterHeading, <<"```", Lang/binary, "\n">>),
    [Body, _] = binary:split(AfterFence, <<"```">>),
    Body.
