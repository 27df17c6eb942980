%%% @doc `py:ensure_venv/2,3': create a virtual environment when it is missing, install
%%% requirements into it, and activate it. Programs run from an argument vector
%%% (`open_port' with `spawn_executable'), never through a shell.
-module(py_venv).

-export([ensure/3]).

-include_lib("kernel/include/logger.hrl").

-type option() :: {extras, [string()]} | {installer, uv | pip} | {python, string()} | force.
-export_type([option/0]).

%% @doc Create (or reuse) the venv at `Path', install `Requirements' (a requirements file,
%% or a `pyproject.toml' installed as `-e' of its directory), then activate it.
-spec ensure(file:filename_all(), file:filename_all(), [option()]) -> ok | {error, term()}.
ensure(Path0, Requirements0, Opts) ->
    Path = filename:absname(unicode:characters_to_list(Path0)),
    Requirements = filename:absname(unicode:characters_to_list(Requirements0)),
    VenvPython = filename:join([Path, "bin", "python"]),
    maybe_ok([fun() -> exists(Requirements) end,
              fun() -> create(Path, VenvPython, Opts) end,
              fun() -> install(Path, VenvPython, Requirements, Opts) end,
              fun() -> py:activate_venv(Path) end]).

maybe_ok([]) -> ok;
maybe_ok([Step | Rest]) ->
    case Step() of
        ok -> maybe_ok(Rest);
        Error -> Error
    end.

exists(File) ->
    case filelib:is_regular(File) of
        true -> ok;
        false -> {error, {requirements_not_found, unicode:characters_to_binary(File)}}
    end.

create(Path, VenvPython, Opts) ->
    Force = lists:member(force, Opts),
    case filelib:is_regular(VenvPython) andalso not Force of
        true ->
            ok;
        false ->
            Args = ["-m", "venv"] ++ ["--clear" || Force] ++ [Path],
            case base_python(Opts) of
                {ok, Python} -> run(Python, Args);
                Error -> Error
            end
    end.

%% The interpreter the NIF is linked to (`sys.executable' is the BEAM here), unless the
%% caller names one.
base_python(Opts) ->
    case proplists:get_value(python, Opts) of
        undefined ->
            Code = <<"__import__('os').path.join(__import__('sys').base_exec_prefix, 'bin', "
                     "'python%d.%d' % __import__('sys').version_info[:2])">>,
            case py:eval(Code) of
                {ok, Exe} -> {ok, unicode:characters_to_list(Exe)};
                Error -> Error
            end;
        Python ->
            case os:find_executable(Python) of
                false -> {error, {python_not_found, Python}};
                Exe -> {ok, Exe}
            end
    end.

install(_Path, VenvPython, Requirements, Opts) ->
    Target = case filename:basename(Requirements) of
                 "pyproject.toml" ->
                     Extras = proplists:get_value(extras, Opts, []),
                     Dir = filename:dirname(Requirements),
                     ["-e", case Extras of
                                [] -> Dir;
                                _ -> Dir ++ "[" ++ lists:join(",", Extras) ++ "]"
                            end];
                 _ ->
                     ["-r", Requirements]
             end,
    case installer(Opts) of
        {uv, Uv} -> run(Uv, ["pip", "install", "--python", VenvPython | Target]);
        pip -> run(VenvPython, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check" | Target])
    end.

installer(Opts) ->
    case {proplists:get_value(installer, Opts), os:find_executable("uv")} of
        {pip, _} -> pip;
        {uv, false} -> pip;
        {_, false} -> pip;
        {_, Uv} -> {uv, Uv}
    end.

%% Run Exe with Args; `ok' on exit status 0, else the status and the output.
run(Exe, Args) ->
    ?LOG_INFO("ensure_venv: ~ts ~ts", [Exe, lists:join(" ", Args)]),
    Port = open_port({spawn_executable, Exe},
                     [{args, Args}, exit_status, stderr_to_stdout, binary, hide]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, Data}} -> collect(Port, [Data | Acc]);
        {Port, {exit_status, 0}} -> ok;
        {Port, {exit_status, Status}} ->
            {error, {command_failed, Status, iolist_to_binary(lists:reverse(Acc))}}
    end.
