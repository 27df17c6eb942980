%%% @doc Helpers shared by the suites: start the application against the project's
%%% test venv (.venv, made by `make test'; a leg of `make test-all' names its own in
%%% ERLANG_PYTHON_VENV) with tests/ on Python's sys.path.
-module(py_test_lib).

-export([root/0, venv/0, start/0, start/1, stop/0, collect_stream/2, stream_events/2]).
-export([wait_for_threads_exit/2, context_mode_env/0, wait_until/2]).

%% @doc The project checkout (set by tests/run_ct.escript).
-spec root() -> string().
root() ->
    case os:getenv("ERLANG_PYTHON_ROOT") of
        false -> filename:dirname(filename:dirname(code:which(?MODULE)));
        Root -> Root
    end.

%% @doc The venv the suites run against: ERLANG_PYTHON_VENV (set by tests/run_ct.escript
%% for a leg of the test matrix, made with that leg's interpreter), else the checkout's .venv.
-spec venv() -> string().
venv() ->
    case os:getenv("ERLANG_PYTHON_VENV") of
        Venv when is_list(Venv), Venv =/= "" -> Venv;
        _ -> filename:join(root(), ".venv")
    end.

-spec start() -> ok.
start() ->
    start([]).

%% @doc Start erlang_python with extra application environment.
-spec start([{atom(), term()}]) -> ok.
start(Env) ->
    _ = application:load(erlang_python),
    Root = root(),
    Venv = venv(),
    application:set_env(erlang_python, python_path, [filename:join(Root, "tests")]),
    case filelib:is_dir(Venv) of
        true -> application:set_env(erlang_python, venv, Venv);
        false -> ok
    end,
    [application:set_env(erlang_python, K, V) || {K, V} <- context_mode_env() ++ Env],
    {ok, _} = application:ensure_all_started(erlang_python),
    ok.

%% The `subinterp' leg of the test matrix runs suites with the default contexts in
%% sub-interpreters: ERLANG_PYTHON_CONTEXT_MODE names the mode (`context_mode' app env).
-spec context_mode_env() -> [{context_mode, atom()}].
context_mode_env() ->
    case os:getenv("ERLANG_PYTHON_CONTEXT_MODE") of
        false -> [];
        "" -> [];
        Mode -> [{context_mode, list_to_atom(Mode)}]
    end.

%% @doc The OS threads of `Tids' still alive after polling `/proc/self/task' up to
%% `Tries' times, 100 ms apart (`[]' once all ended).
-spec wait_for_threads_exit([integer()], non_neg_integer()) -> [integer()].
wait_for_threads_exit(Tids, Tries) ->
    case [T || T <- Tids, filelib:is_dir("/proc/self/task/" ++ integer_to_list(T))] of
        [] -> [];
        Alive when Tries =:= 0 -> Alive;
        _ -> timer:sleep(100), wait_for_threads_exit(Tids, Tries - 1)
    end.

-spec stop() -> ok.
stop() ->
    _ = application:stop(erlang_python),
    ok.

%% @doc The items of stream `Ref' and how it ended: `done', `{error, R}' or `timeout'.
-spec collect_stream(reference(), timeout()) -> {[term()], done | timeout | {error, term()}}.
collect_stream(Ref, Timeout) ->
    collect_stream(Ref, Timeout, []).

collect_stream(Ref, Timeout, Acc) ->
    receive
        {py_stream, Ref, {data, V}} -> collect_stream(Ref, Timeout, [V | Acc]);
        {py_stream, Ref, done} -> {lists:reverse(Acc), done};
        {py_stream, Ref, {error, _} = Error} -> {lists:reverse(Acc), Error}
    after Timeout ->
        {lists:reverse(Acc), timeout}
    end.

%% @doc The events of stream `Ref' up to its end: `{data, V}'s, then the end event
%% (`done', `{error, R}') or `timeout'.
-spec stream_events(reference(), timeout()) -> [term()].
stream_events(Ref, Timeout) ->
    receive
        {py_stream, Ref, {data, _} = Data} -> [Data | stream_events(Ref, Timeout)];
        {py_stream, Ref, End} -> [End]
    after Timeout ->
        [timeout]
    end.

%% @doc Poll `Fun' every 10 ms until it answers `true' (then `true') or `Ms'
%% milliseconds passed (then `false'). For effects that land asynchronously.
-spec wait_until(fun(() -> boolean()), non_neg_integer()) -> boolean().
wait_until(Fun, Ms) ->
    case Fun() of
        true -> true;
        false when Ms =< 0 -> false;
        false -> timer:sleep(10), wait_until(Fun, Ms - 10)
    end.
