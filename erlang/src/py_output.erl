%%% @doc Forwards what Python writes to `sys.stdout' and `sys.stderr' to the group leader
%%% of the Erlang process whose request wrote it (the VM's `user' otherwise), and Python
%%% tracebacks of failed calls to `logger' at debug level, and Python `logging' records
%%% (see `py:configure_logging/0,1') to `logger' at their level.
-module(py_output).
-behaviour(gen_server).

-export([start_link/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-include_lib("kernel/include/logger.hrl").

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

-spec init([]) -> {ok, nil}.
init([]) ->
    ok = py_nif:set_output_handler(self()),
    {ok, nil}.

-spec handle_call(term(), gen_server:from(), nil) -> {reply, {error, unknown_request}, nil}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_request}, State}.

-spec handle_cast(term(), nil) -> {noreply, nil}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), nil) -> {noreply, nil}.
handle_info({py_output, Caller, _Stream, Text}, State) ->
    %% An asynchronous io request: a slow group leader never blocks this process.
    group_leader_of(Caller) ! {io_request, self(), make_ref(), {put_chars, unicode, Text}},
    {noreply, State};
handle_info({py_log, Caller, {Level, Logger, Module, Function, Line, Message}}, State) ->
    logger:log(erlang_level(Level), "~ts", [Message],
               #{domain => [python], python_logger => Logger, python_module => Module,
                 python_function => Function, python_line => Line, caller => Caller}),
    {noreply, State};
handle_info({py_traceback, Caller, Text}, State) ->
    ?LOG_DEBUG("Python exception in a call from ~p:~n~ts", [Caller, Text]),
    {noreply, State};
handle_info(_Info, State) ->
    %% io_reply messages of the requests above.
    {noreply, State}.

erlang_level(<<"critical">>) -> critical;
erlang_level(<<"error">>) -> error;
erlang_level(<<"warning">>) -> warning;
erlang_level(<<"info">>) -> info;
erlang_level(_) -> debug.

group_leader_of(Pid) when is_pid(Pid) ->
    case erlang:process_info(Pid, group_leader) of
        {group_leader, Leader} -> Leader;
        undefined -> user_io()
    end;
group_leader_of(_) ->
    user_io().

user_io() ->
    case whereis(user) of
        undefined -> group_leader();
        User -> User
    end.
