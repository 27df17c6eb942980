%%% @doc Interpreter services: garbage collection, memory statistics, tracemalloc,
%%% module reload, fd duplication, and activating a virtual environment at run time.
-module(py_admin_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1, end_per_testcase/2]).
-export([gc_collects_cycles/1, gc_generations/1, memory_stats/1, tracemalloc/1,
         reload_module/1, dup_fd/1, venv_activate_deactivate/1, venv_errors/1,
         python_logging/1, ensure_venv/1, subprocess_and_fork/1]).
-export([log/2]).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [gc_collects_cycles, gc_generations, memory_stats, tracemalloc, reload_module, dup_fd,
     venv_activate_deactivate, venv_errors, python_logging, ensure_venv, subprocess_and_fork].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

%% All suites share one interpreter: deactivate_venv/0 removes the test venv the VM
%% started with too, so put it back.
end_per_testcase(_Case, _Config) ->
    Venv = test_venv(),
    case py:venv_info() of
        {ok, #{<<"venv_path">> := Venv}} -> ok;
        {ok, _} -> ok = py:activate_venv(Venv)
    end.

test_venv() ->
    unicode:characters_to_binary(py_test_lib:venv()).

gc_collects_cycles(_) ->
    {ok, _} = py:gc(),
    ok = py:exec(<<"import gc\ngc.disable()\n"
                   "for _ in range(100):\n    a = []\n    a.append(a)\n"
                   "del a\ngc.enable()\n">>),
    {ok, Found} = py:gc(),
    ?assert(Found >= 100).

gc_generations(_) ->
    ?assertMatch({ok, N} when is_integer(N), py:gc(0)),
    ?assertMatch({ok, N} when is_integer(N), py:gc(1)),
    ?assertEqual({error, {badarg, generation}}, py:gc(3)).

memory_stats(_) ->
    {ok, Stats} = py:memory_stats(),
    ?assertMatch(#{<<"gc_stats">> := [_, _, _], <<"gc_count">> := {_, _, _},
                   <<"gc_threshold">> := {_, _, _}}, Stats),
    ?assertNot(maps:is_key(<<"traced_memory_current">>, Stats)).

tracemalloc(_) ->
    ok = py:tracemalloc_start(),
    {ok, _} = py:eval(<<"len([bytes(1000) for _ in range(100)])">>),
    {ok, Stats} = py:memory_stats(),
    %% The eval held 100 blocks of 1000 bytes while tracing.
    ?assertMatch(#{<<"traced_memory_current">> := C, <<"traced_memory_peak">> := P}
                   when is_integer(C) andalso P >= C andalso P >= 100000, Stats),
    ok = py:tracemalloc_stop(),
    {ok, After} = py:memory_stats(),
    ?assertNot(maps:is_key(<<"traced_memory_peak">>, After)),
    ok = py:tracemalloc_start(5),
    ?assertEqual({ok, 5}, py:eval(<<"__import__('tracemalloc').get_traceback_limit()">>)),
    ok = py:tracemalloc_stop(),
    ?assertEqual({error, {badarg, frames}}, py:tracemalloc_start(0)).

reload_module(Config) ->
    Dir = ?config(priv_dir, Config),
    File = filename:join(Dir, "py_admin_reloadable.py"),
    ok = file:write_file(File, <<"VALUE = 1\n">>),
    {ok, none} = py:eval(<<"__import__('sys').path.insert(0, d)">>,
                         #{d => unicode:characters_to_binary(Dir)}),
    ?assertEqual({ok, 1}, py:eval(<<"__import__('py_admin_reloadable').VALUE">>)),
    ok = file:write_file(File, <<"VALUE = 2\n">>),
    %% Make sure the changed source is not skipped for having the same mtime.
    ok = file:change_time(File, {{2030, 1, 1}, {0, 0, 0}}),
    ?assertEqual(ok, py:reload(py_admin_reloadable)),
    ?assertEqual({ok, 2}, py:eval(<<"__import__('py_admin_reloadable').VALUE">>)),
    ?assertEqual({ok, 2}, py:call(py_admin_reloadable, '__getattribute__', [<<"VALUE">>])),
    %% A module nobody imported is left alone.
    ?assertEqual(ok, py:reload(<<"py_admin_never_imported">>)).

dup_fd(_) ->
    {ok, Listen} = gen_tcp:listen(0, [{ip, {127, 0, 0, 1}}]),
    {ok, Fd} = inet:getfd(Listen),
    {ok, Dup} = py:dup_fd(Fd),
    ?assert(Dup =/= Fd),
    {ok, {Kind, _}} = py:eval(<<"(__import__('stat').S_ISSOCK(__import__('os').fstat(fd).st_mode), 0)">>,
                              #{fd => Dup}),
    ?assert(Kind),
    {ok, none} = py:call(os, close, [Dup]),
    ok = gen_tcp:close(Listen),
    ?assertEqual({error, {badarg, fd}}, py:dup_fd(-1)),
    ?assertMatch({error, {'OSError', _}}, py:dup_fd(987654)).

venv_activate_deactivate(Config) ->
    Venv = filename:join(?config(priv_dir, Config), "fake_venv"),
    {ok, Version} = py:eval(<<"'python%d.%d' % __import__('sys').version_info[:2]">>),
    SitePackages = filename:join([Venv, "lib", binary_to_list(Version), "site-packages"]),
    Extra = filename:join(Venv, "extra"),
    ok = filelib:ensure_path(SitePackages),
    ok = filelib:ensure_path(Extra),
    ok = file:write_file(filename:join(SitePackages, "py_admin_fake_pkg.py"), <<"WHERE = 'venv'\n">>),
    ok = file:write_file(filename:join(Extra, "py_admin_pth_pkg.py"), <<"WHERE = 'pth'\n">>),
    ok = file:write_file(filename:join(SitePackages, "extra.pth"), [Extra, "\n"]),
    %% The test venv the VM started with is active; activating another replaces it.
    {ok, #{<<"active">> := true, <<"venv_path">> := TestVenv}} = py:venv_info(),
    ?assertEqual(test_venv(), TestVenv),
    ok = py:deactivate_venv(),
    {ok, PathBefore} = py:eval(<<"list(__import__('sys').path)">>),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ok = py:activate_venv(Venv),
    {ok, PathActive} = py:eval(<<"list(__import__('sys').path)">>),
    ?assertEqual({ok, #{<<"active">> => true,
                        <<"venv_path">> => unicode:characters_to_binary(Venv),
                        <<"site_packages">> => unicode:characters_to_binary(SitePackages),
                        <<"sys_path">> => PathActive}},
                 py:venv_info()),
    ?assertEqual({ok, <<"venv">>}, py:eval(<<"__import__('py_admin_fake_pkg').WHERE">>)),
    ?assertEqual({ok, <<"pth">>}, py:eval(<<"__import__('py_admin_pth_pkg').WHERE">>)),
    ?assertEqual({ok, unicode:characters_to_binary(SitePackages)},
                 py:eval(<<"__import__('sys').path[0]">>)),
    ok = py:deactivate_venv(),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ?assertEqual({ok, PathBefore}, py:eval(<<"list(__import__('sys').path)">>)).

venv_errors(Config) ->
    Missing = filename:join(?config(priv_dir, Config), "no_such_venv"),
    {ok, Before} = py:venv_info(),
    ?assertMatch({error, {'FileNotFoundError', _}}, py:activate_venv(Missing)),
    %% A failed activation leaves the active venv as it was.
    ?assertEqual({ok, Before}, py:venv_info()),
    ?assertEqual(ok, py:deactivate_venv()),
    ?assertEqual({ok, #{<<"active">> => false}}, py:venv_info()),
    ?assertEqual(ok, py:deactivate_venv()).

%% logger handler callback: hand events to the test process.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {logged, Event}.

python_logging(_) ->
    #{level := OldLevel} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(py_admin_capture, ?MODULE, #{config => #{pid => self()}}),
    try
        ok = py:configure_logging(#{level => info, format => "%(levelname)s:%(message)s"}),
        ok = py:exec(<<"import logging\n"
                       "log = logging.getLogger('app.part')\n"
                       "log.debug('not shown')\n"
                       "log.info('hello %s', 'wörld')\n"
                       "log.error('bad')\n"/utf8>>),
        Events = collect_logs(2),
        [#{level := info, msg := {"~ts", [Info]}, meta := InfoMeta},
         #{level := error, msg := {"~ts", [Error]}}] = Events,
        ?assertEqual(<<"INFO:hello wörld"/utf8>>, Info),
        ?assertEqual(<<"ERROR:bad">>, Error),
        ?assertMatch(#{python_logger := <<"app.part">>, python_module := <<"<erlang>">>,
                       python_line := 4, domain := [python]}, InfoMeta),
        receive {logged, #{meta := #{domain := [python]}} = Extra} -> ct:fail({unexpected, Extra})
        after 200 -> ok
        end,
        ?assertMatch({error, {'ValueError', _}}, py:configure_logging(#{level => loud}))
    after
        logger:remove_handler(py_admin_capture),
        logger:set_primary_config(level, OldLevel),
        py:exec(<<"import logging\nlogging.getLogger().handlers.clear()">>)
    end.

collect_logs(0) ->
    [];
collect_logs(N) ->
    receive
        {logged, #{meta := #{domain := [python]}} = Event} -> [Event | collect_logs(N - 1)]
    after 5000 ->
        ct:fail(no_log_event)
    end.

ensure_venv(Config) ->
    Dir = ?config(priv_dir, Config),
    Venv = filename:join(Dir, "made_venv"),
    Requirements = filename:join(Dir, "requirements.txt"),
    ok = file:write_file(Requirements, <<"# nothing to install\n">>),
    ?assertMatch({error, {requirements_not_found, _}},
                 py:ensure_venv(Venv, filename:join(Dir, "missing.txt"))),
    ok = py:ensure_venv(Venv, Requirements, [{installer, pip}]),
    ?assert(filelib:is_regular(filename:join([Venv, "bin", "python"]))),
    {ok, #{<<"active">> := true, <<"venv_path">> := VenvPath}} = py:venv_info(),
    ?assertEqual(unicode:characters_to_binary(Venv), VenvPath),
    %% A second call reuses the venv instead of recreating it.
    Marker = filename:join(Venv, "marker"),
    ok = file:write_file(Marker, <<"kept">>),
    ok = py:ensure_venv(Venv, Requirements),
    ?assert(filelib:is_regular(Marker)),
    ok = py:deactivate_venv().

subprocess_and_fork(_) ->
    %% Exit statuses are right although the BEAM ignores SIGCHLD ...
    ?assertEqual({ok, 3}, py:eval(<<"__import__('subprocess').run(['sh', '-c', 'exit 3']).returncode">>)),
    ?assertEqual({ok, <<"hi\n">>}, py:eval(<<"__import__('subprocess').check_output(['echo', 'hi'])">>)),
    ?assertMatch({error, {'CalledProcessError', _}},
                 py:eval(<<"__import__('subprocess').check_call(['false'])">>)),
    %% ... and the VM's own ports still get theirs.
    ?assertEqual("hi\n", os:cmd("echo hi")),
    Port = open_port({spawn, "sh -c 'exit 4'"}, [exit_status]),
    receive {Port, {exit_status, Status}} -> ?assertEqual(4, Status) after 5000 -> ct:fail(no_status) end,
    %% Python code cannot copy the VM.
    ?assertMatch({error, {'RuntimeError', "os.fork() would copy the whole Erlang VM" ++ _}},
                 py:eval(<<"__import__('os').fork()">>)),
    ?assertMatch({error, {'RuntimeError', _}},
                 py:eval(<<"__import__('multiprocessing').get_context('fork').Process(target=print).start()">>)).
