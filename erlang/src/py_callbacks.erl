%%% @doc Erlang functions that Python code calls (`erlang.call(Name, *Args)',
%%% `erlang.Name(*Args)'): the registry, and the runner.
%%%
%%% A function called during a synchronous `py' call runs in the calling process itself
%%% (which waits in `receive' anyway), so it meets that process's Python namespace and
%%% context, and may call `py' again at any depth. A function called from work nobody
%%% waits for (`cast', `spawn_call') runs in a new process that adopts the original
%%% caller's namespace; this server spawns it. So does a function called from a Python
%%% thread that is not a context's, or awaited with `erlang.async_call' in an asyncio loop
%%% other than a context's own: its runner adopts the calling request's namespace when
%%% the call was made on a context thread, and none otherwise (a thread's request may be
%%% long over), and answers through the call's own handle.
%%%
%%% Runners are started with `proc_lib:spawn_link/1' rather than under a supervisor: one
%%% starts for every such callback, so a `supervisor:start_child' call per callback would
%%% put a synchronous round trip through one more process on that path; a runner is
%%% never restarted (it answers once, or its exit answers for it), so a supervisor would
%%% add nothing but that. `proc_lib' gives runners crash reports and ancestry, and the
%%% link ends running ones when this server stops (this server traps exits and ignores
%%% theirs). This server owns the registry table `py_functions' (created in `init/1'):
%%% it and the NIF's set of registered names live and die together, since `init/1'
%%% clears the NIF's set when a new table is made, so after a restart Python never sees
%%% a name the table lacks (registrations do not survive a restart of this server).
-module(py_callbacks).
-behaviour(gen_server).

-export([start_link/0, register/2, register/3, unregister/1, run/4, run/5, name_key/1]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2]).

-define(TABLE, py_functions).
%% Bounds of the text an Erlang failure sends to Python (`ErlangError''s message): the
%% reason is printed at most this deep and this long, so a huge reason costs little and a
%% message that embeds a nested call's error cannot grow level after level.
-define(TEXT_DEPTH, 30).
-define(TEXT_CHARS, 4096).

-type name() :: atom() | binary() | string().
-type answer() :: {ok, term()} | {error, term(), binary()}.

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Register `Fun' (arity 1, given the list of arguments) under `Name'. Raises
%% `badarg' for anything else, or for a name that is not a non-empty atom, binary or
%% string, so that a mistake shows at registration, not when Python calls.
-spec register(name(), fun(([term()]) -> term())) -> ok.
register(Name, Fun) when is_function(Fun, 1) ->
    case valid_name(Name) of
        true -> store(Name, Fun);
        false -> erlang:error(badarg, [Name, Fun])
    end;
register(Name, Fun) ->
    erlang:error(badarg, [Name, Fun]).

%% @doc Register `Module:Function(Args)' under `Name'; `badarg' as for `register/2'.
-spec register(name(), module(), atom()) -> ok.
register(Name, Module, Function) when is_atom(Module), is_atom(Function) ->
    case valid_name(Name) of
        true -> store(Name, {Module, Function});
        false -> erlang:error(badarg, [Name, Module, Function])
    end;
register(Name, Module, Function) ->
    erlang:error(badarg, [Name, Module, Function]).

valid_name(Name) when is_atom(Name) ->
    Name =/= '';
valid_name(Name) when is_binary(Name); is_list(Name) ->
    try unicode:characters_to_binary(Name) of
        Key when is_binary(Key) -> Key =/= <<>>;
        _ -> false
    catch
        error:_ -> false
    end;
valid_name(_) ->
    false.

-spec unregister(name()) -> ok.
unregister(Name) ->
    Key = name_key(Name),
    ets:delete(?TABLE, Key),
    py_nif:set_function_registered(Key, false).

store(Name, Target) ->
    Key = name_key(Name),
    true = ets:insert(?TABLE, {Key, Target}),
    py_nif:set_function_registered(Key, true).

%% @doc The binary a function name (atom, string or binary) is registered under; also
%% how `py' names modules to Python.
-spec name_key(atom() | string() | binary()) -> binary().
name_key(Name) when is_atom(Name) -> atom_to_binary(Name, utf8);
name_key(Name) -> unicode:characters_to_binary(Name).

%% @doc Run a function Python asked for and hand the answer to the waiting context.
-spec run(py_nif:context() | reference(), non_neg_integer(), binary(), [term()]) -> ok.
run(Ctx, CallbackId, Name, Args) ->
    py_nif:callback_reply(Ctx, CallbackId, invoke(Name, Args)).

%% @doc `run/4' in the trace context of the call's span: `py:current_traceparent/0'
%% answers `Traceparent' in the function, and its `py' calls continue that trace. The
%% process's own context comes back afterwards (the caller's process runs callbacks of
%% its synchronous requests).
-spec run(py_nif:context() | reference(), non_neg_integer(), binary(), [term()], binary()) -> ok.
run(Ctx, CallbackId, Name, Args, Traceparent) ->
    Outer = put('$py_traceparent', Traceparent),
    try
        run(Ctx, CallbackId, Name, Args)
    after
        case Outer of
            undefined -> erase('$py_traceparent');
            _ -> put('$py_traceparent', Outer)
        end
    end.

%% @doc `{ok, Result}', or `{error, Reason, Text}' for an exception (`Text' formats it
%% for Python's message). Errors are `Reason'; exits `{exit, Reason}'; throws
%% `{throw, Value}'.
-spec invoke(binary(), [term()]) -> answer().
invoke(Name, Args) ->
    case ets:lookup(?TABLE, Name) of
        [{_, Target}] ->
            try {ok, apply_target(Target, Args)}
            catch
                error:Reason:Stack -> failure(Reason, error, Stack);
                exit:Reason:Stack -> failure({exit, Reason}, exit, Stack);
                throw:Value:Stack -> failure({throw, Value}, throw, Stack)
            end;
        [] ->
            {error, {unknown_function, Name},
             <<"no Erlang function is registered as '", Name/binary, "'">>}
    end.

apply_target({Module, Function}, Args) -> Module:Function(Args);
apply_target(Fun, Args) -> Fun(Args).

%% The reason goes to Python whole (`reason'); `Text' is bounded (`?TEXT_DEPTH',
%% `?TEXT_CHARS') plus the frame that failed.
-spec failure(term(), error | exit | throw, [tuple()]) -> {error, term(), binary()}.
failure(#{'__struct__' := Module, '__exception__' := true} = Exception, error, _Stack)
  when is_atom(Module) ->
    %% An Elixir exception reads as its message (`Exception.message/1'), not as a dump of
    %% the struct, which stays whole in `reason'.
    {error, Exception, string:slice(exception_message(Module, Exception), 0, ?TEXT_CHARS)};
failure(Reason, Class, Stack) ->
    Printed = io_lib:format("~tP", [Reason, ?TEXT_DEPTH], [{chars_limit, ?TEXT_CHARS}]),
    %% `chars_limit' is a soft limit: the cut makes it exact.
    Cut = string:slice(Printed, 0, ?TEXT_CHARS),
    Text = unicode:characters_to_binary([Cut | frame(Class, Stack)]),
    {error, Reason, Text}.

%% `Module:message(Exception)' as Elixir's `Exception.message/1' calls it; when that fails
%% or answers no text, the `message' field, else the struct as printed.
-spec exception_message(module(), map()) -> unicode:unicode_binary().
exception_message(Module, Exception) ->
    try Module:message(Exception) of
        Message when is_binary(Message) -> valid_text(Message, Exception);
        _ -> message_field(Exception)
    catch
        _:_ -> message_field(Exception)
    end.

message_field(#{message := Message} = Exception) when is_binary(Message) ->
    valid_text(Message, Exception);
message_field(Exception) ->
    printed(Exception).

valid_text(Message, Exception) ->
    case unicode:characters_to_binary(Message) of
        Message -> Message;
        _ -> printed(Exception)
    end.

printed(Exception) ->
    Printed = io_lib:format("~tP", [Exception, ?TEXT_DEPTH], [{chars_limit, ?TEXT_CHARS}]),
    unicode:characters_to_binary(Printed).

%% Where it failed: ` (in M:F/Arity)'. Printed with `~w' so that a module name holding
%% odd characters costs no more than its length.
-spec frame(error | exit | throw, [tuple()]) -> iolist().
frame(_Class, [{M, F, A, _} | _]) when is_atom(M), is_atom(F) ->
    io_lib:format(" (in ~tw:~tw/~w)", [M, F, if is_list(A) -> length(A); true -> A end]);
frame(_, _) ->
    "".

adopt(undefined, _Env) -> ok;
adopt(Ctx, Env) -> py_context_router:adopt(Ctx, Env).

-spec init([]) -> {ok, nil}.
init([]) ->
    process_flag(trap_exit, true),
    _ = ets:new(?TABLE, [named_table, public, {read_concurrency, true}]),
    ok = py_nif:clear_registered_functions(),
    ok = py_nif:set_callback_handler(self()),
    {ok, nil}.

-spec handle_call(term(), gen_server:from(), nil) -> {reply, {error, unknown_request}, nil}.
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_request}, State}.

-spec handle_cast(term(), nil) -> {noreply, nil}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), nil) -> {noreply, nil}.
handle_info({py_callback, _Ref, Ctx, CallbackId, Name, Args, Env}, State) ->
    _ = proc_lib:spawn_link(fun() ->
                                    py_context_router:adopt(Ctx, Env),
                                    ok = py_nif:join_chain(Ctx, CallbackId),
                                    run(Ctx, CallbackId, Name, Args)
                            end),
    {noreply, State};
handle_info({py_callback, _Ref, Ctx, CallbackId, Name, Args, Env, Traceparent}, State) ->
    _ = proc_lib:spawn_link(fun() ->
                                    py_context_router:adopt(Ctx, Env),
                                    ok = py_nif:join_chain(Ctx, CallbackId),
                                    run(Ctx, CallbackId, Name, Args, Traceparent)
                            end),
    {noreply, State};
handle_info({py_thread_callback, Call, Ctx, Name, Args, Env}, State) ->
    Runner = proc_lib:spawn_link(fun() ->
                                         adopt(Ctx, Env),
                                         run(Call, 0, Name, Args)
                                 end),
    ok = py_nif:thread_call_runner(Call, Runner),
    {noreply, State};
handle_info({'EXIT', _Runner, _Reason}, State) ->
    %% A runner ended; `proc_lib' has reported it if it crashed.
    {noreply, State};
handle_info(_Info, State) ->
    {noreply, State}.
