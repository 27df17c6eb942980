%%% @doc A VM of its own for test cases that may kill the VM or break its interpreter
%%% for good (a segfault, a finalized Python), so one such case cannot hide the others.
%%%
%%% The peer runs with the test node's erlang_python build and erlang_python started as
%%% `py_test_lib:start/0' starts it; it talks to the test node over its standard I/O,
%%% so the test node need not be distributed.
-module(py_isolated).

-export([start/0, start/1, call/4, call/5, run/3, stop/1, os_pid/1, rss_kb/1]).

-type vm() :: pid().
-export_type([vm/0]).

%% @doc A fresh VM with erlang_python running.
-spec start() -> vm().
start() ->
    start([]).

%% @doc A fresh VM with erlang_python running with extra application environment.
-spec start([{atom(), term()}]) -> vm().
start(AppEnv) ->
    Root = py_test_lib:root(),
    %% The same build the test node runs (a leg of the test matrix has its own).
    Ebin = filename:dirname(code:which(py)),
    TestBeams = filename:dirname(code:which(?MODULE)),
    {ok, Peer, _Node} = peer:start(#{connection => standard_io,
                                     args => ["-pa", Ebin, "-pa", TestBeams],
                                     env => [{"ERLANG_PYTHON_ROOT", Root},
                                             {"ERLANG_PYTHON_VENV", py_test_lib:venv()}]}),
    ok = peer:call(Peer, py_test_lib, start, [AppEnv], 60000),
    Peer.

%% @doc `M:F(A)' in the VM: `{ok, Result}', or `{vm_died, Why}' when the VM went away
%% (a crash), or `{vm_timeout, Ms}' when it did not answer in time.
-spec call(vm(), module(), atom(), [term()]) -> {ok, term()} | {vm_died, term()} | {vm_timeout, timeout()}.
call(Vm, M, F, A) ->
    call(Vm, M, F, A, 60000).

-spec call(vm(), module(), atom(), [term()], timeout()) ->
          {ok, term()} | {vm_died, term()} | {vm_timeout, timeout()}.
call(Vm, M, F, A, Timeout) ->
    Mon = monitor(process, Vm),
    try peer:call(Vm, M, F, A, Timeout) of
        Result ->
            demonitor(Mon, [flush]),
            {ok, Result}
    catch
        exit:{timeout, _} ->
            demonitor(Mon, [flush]),
            {vm_timeout, Timeout};
        Class:Reason ->
            %% The peer's control process ends when the VM's stdio closes.
            receive
                {'DOWN', Mon, process, Vm, Why} -> {vm_died, Why}
            after 5000 ->
                demonitor(Mon, [flush]),
                {vm_died, {Class, Reason}}
            end
    end.

%% @doc `Module:Body()' in a VM of its own, started for it and stopped after: what
%% `call/5' answers.
-spec run(module(), atom(), timeout()) -> {ok, term()} | {vm_died, term()} | {vm_timeout, timeout()}.
run(Module, Body, Timeout) ->
    Vm = start(),
    try
        call(Vm, Module, Body, [], Timeout)
    after
        stop(Vm)
    end.

-spec stop(vm()) -> ok.
stop(Vm) ->
    catch peer:stop(Vm),
    ok.

%% @doc The OS process id of the VM.
-spec os_pid(vm()) -> string().
os_pid(Vm) ->
    {ok, Pid} = call(Vm, os, getpid, []),
    Pid.

%% @doc The VM's resident memory in KiB, as the kernel counts it.
-spec rss_kb(vm()) -> non_neg_integer().
rss_kb(Vm) ->
    {ok, Status} = file:read_file("/proc/" ++ os_pid(Vm) ++ "/status"),
    [Line] = [L || L <- binary:split(Status, <<"\n">>, [global]), binary:match(L, <<"VmRSS:">>) =/= nomatch],
    [_, Kb | _] = string:lexemes(binary_to_list(Line), " \t"),
    list_to_integer(Kb).
