%%% @doc Forwards what Python writes to `sys.stdout' and `sys.stderr' to the group leader
%%% of the Erlang process whose request wrote it (the VM's `user' otherwise), and Python
%%% tracebacks of failed calls to `logger' at debug level (with metadata: the caller as
%%% `pid', `context', `request' kind, `python_module', `python_function', `python_class'),
%%% and Python `logging' records (see `py:configure_logging/0,1') to `logger' at their
%%% level.
%%%
%%% Output goes to a group leader in whole lines, as a terminal shows Python's: `print'
%%% writes each argument and separator apart, and forwarding each write would let other
%%% output in mid-line. The start of a line is held per writer and stream until its end
%%% arrives; it goes out unfinished when the request that wrote it ends or Python flushes
%%% the stream (the NIF sends `py_output_flush' then), `?PARTIAL_LINE_MS' ms after it was
%%% first held, when it reaches `?MAX_PARTIAL_BYTES', or when this process stops.
%%%
%%% Output is sent as asynchronous io requests, so a slow group leader never blocks this
%%% process or Python. What is in flight is bounded per group leader: at most
%%% `?MAX_PENDING_BYTES' (each write counted as its size plus `?REQUEST_COST') awaiting
%%% an `io_reply'. A write past that bound is dropped (one write is always let through
%%% to a group leader with nothing in flight, however big).
%%%
%%% What waits in this process's own mailbox is bounded by the NIF, which sends every
%%% message as `{py_handler, Cost, Message}' and counts it until this process takes it
%%% (`py_nif:output_taken/1'): past 8 MiB of backlog it drops writes, log records and
%%% tracebacks and counts them, and tells of the first drop with `py_output_dropped'
%%% (`py_nif:output_drops/0' collects the counts). So a held-up handler (descheduled, or
%%% blocked in a slow `logger' handler) cannot make Python grow memory without bound.
%%% Drops on both sides are counted (`stats/0') and reported by a `logger' warning at most
%%% every `?WARN_EVERY_MS' ms.
-module(py_output).
-behaviour(gen_server).

-export([start_link/0, stats/0]).
-export([init/1, handle_call/3, handle_cast/2, handle_info/2, terminate/2]).

-include_lib("kernel/include/logger.hrl").

-define(MAX_PENDING_BYTES, 4194304).
-define(REQUEST_COST, 128).
-define(WARN_EVERY_MS, 5000).
-define(MAX_CALLERS, 1024).
-define(PARTIAL_LINE_MS, 100).
-define(MAX_PARTIAL_BYTES, 65536).

-type stats() :: #{dropped_writes := non_neg_integer(), dropped_bytes := non_neg_integer(),
                   dropped_records := non_neg_integer(),
                   pending_bytes := non_neg_integer(), pending_requests := non_neg_integer()}.
-export_type([stats/0]).

-record(state, {
          %% Group leader => {bytes in flight, monitor}.
          leaders = #{} :: #{pid() => {non_neg_integer(), reference()}},
          %% io request => {group leader, bytes it counts for}.
          pending = #{} :: #{reference() => {pid(), non_neg_integer()}},
          dropped_writes = 0 :: non_neg_integer(),
          dropped_bytes = 0 :: non_neg_integer(),
          %% Log records, tracebacks and warnings the NIF dropped.
          dropped_records = 0 :: non_neg_integer(),
          %% Drops not yet in a warning ({writes, bytes, records}), and whether a report is
          %% scheduled.
          unreported = {0, 0, 0} :: {non_neg_integer(), non_neg_integer(), non_neg_integer()},
          report_due = false :: boolean(),
          %% Group leaders of recent writers, for writes handled after their writer exited
          %% (this process may lag behind Python); cleared past `?MAX_CALLERS' entries.
          callers = #{} :: #{pid() => pid()},
          %% Unfinished lines: {writer, stream} => {group leader, text, flush timer}.
          partial = #{} :: #{{pid() | undefined, stdout | stderr} =>
                                 {pid(), binary(), reference()}}
         }).

-spec start_link() -> {ok, pid()} | {error, term()}.
start_link() ->
    gen_server:start_link({local, ?MODULE}, ?MODULE, [], []).

%% @doc Output dropped so far (since the application started: writes and their bytes, and
%% log records and tracebacks) and output in flight to group leaders.
-spec stats() -> stats().
stats() ->
    gen_server:call(?MODULE, stats).

-spec init([]) -> {ok, #state{}}.
init([]) ->
    %% So that `terminate/2' runs at shutdown and sends the unfinished lines.
    process_flag(trap_exit, true),
    ok = py_nif:set_output_handler(self()),
    %% Drops made while no handler ran (before a restart of this process) are counted and
    %% reported now: their notice went to the handler before.
    {ok, collect_drops(#state{})}.

-spec handle_call(term(), gen_server:from(), #state{}) -> {reply, term(), #state{}}.
handle_call(stats, _From, S0) ->
    #state{pending = Pending} = S = collect_drops(S0),
    Bytes = maps:fold(fun(_, {_, Cost}, Acc) -> Acc + Cost end, 0, Pending),
    {reply, #{dropped_writes => S#state.dropped_writes, dropped_bytes => S#state.dropped_bytes,
              dropped_records => S#state.dropped_records,
              pending_bytes => Bytes, pending_requests => map_size(Pending)}, S};
handle_call(_Request, _From, State) ->
    {reply, {error, unknown_request}, State}.

-spec handle_cast(term(), #state{}) -> {noreply, #state{}}.
handle_cast(_Msg, State) ->
    {noreply, State}.

-spec handle_info(term(), #state{}) -> {noreply, #state{}}.
handle_info({py_handler, Cost, Message}, State) when is_integer(Cost), Cost >= 0 ->
    ok = py_nif:output_taken(Cost),
    handle_info(Message, State);
handle_info(py_output_dropped, State) ->
    {noreply, collect_drops(State)};
handle_info({py_output, Caller, Stream, Text}, State) ->
    {noreply, output(Caller, Stream, Text, State)};
handle_info({py_output_flush, Caller}, State) ->
    {noreply, flush_partial({Caller, stderr}, flush_partial({Caller, stdout}, State))};
handle_info({timeout, Timer, {flush_partial, Key}}, #state{partial = Partial} = S) ->
    case Partial of
        #{Key := {_, _, Timer}} -> {noreply, flush_partial(Key, S)};
        _ -> {noreply, S}
    end;
handle_info({io_reply, Ref, _Reply}, #state{pending = Pending} = S) ->
    case maps:take(Ref, Pending) of
        {{Leader, Cost}, Rest} -> {noreply, settle(Leader, Cost, S#state{pending = Rest})};
        error -> {noreply, S}
    end;
handle_info({'DOWN', _, process, Leader, _}, #state{leaders = Leaders, pending = Pending} = S) ->
    %% Its requests will never be answered.
    {noreply, S#state{leaders = maps:remove(Leader, Leaders),
                      pending = maps:filter(fun(_, {L, _}) -> L =/= Leader end, Pending)}};
handle_info(report_drops, S0) ->
    %% Drops the NIF made are counted (and reported, if any) by collect_drops/1.
    case collect_drops(S0#state{report_due = false}) of
        #state{unreported = {0, 0, 0}} = S -> {noreply, S};
        S -> {noreply, warn(S)}
    end;
handle_info({py_log, Caller, {Level, Logger, Module, Function, Line, Message}}, State) ->
    logger:log(erlang_level(Level), "~ts", [Message],
               with_pid(Caller, #{domain => [python], python_logger => Logger,
                                  python_module => Module, python_function => Function,
                                  python_line => Line, caller => Caller})),
    {noreply, State};
handle_info({py_warning, _Caller, Source, Text}, State) ->
    %% The runtime's own trouble (e.g. spans an OTLP exporter lost), rate-limited where it
    %% is found. No `domain', so OTP's default handler shows it.
    logger:warning("~ts", [Text], #{erlang_python => Source}),
    {noreply, State};
handle_info({py_traceback, Caller, Text, Meta}, State) when is_map(Meta) ->
    traceback(Caller, Text, Meta),
    {noreply, State};
handle_info({py_traceback, Caller, Text}, State) ->
    traceback(Caller, Text, #{}),
    {noreply, State};
handle_info(_Info, State) ->
    {noreply, State}.

%% The traceback of a failed request at debug level. `Meta' says where it happened
%% (`request' kind, Python `module' and `function', the `context' process, the
%% module-qualified `class'); the metadata's `pid' is the caller, not this process.
traceback(Caller, Text, Meta) ->
    Request = maps:get(request, Meta, undefined),
    Where = case Meta of
                #{module := M, function := F} when is_binary(M), is_binary(F) ->
                    [" ", M, ".", F];
                #{function := F} when is_binary(F) -> [" ", F];
                _ -> ""
            end,
    logger:log(debug, "Python exception in ~tp~ts from ~tp:~n~ts", [Request, Where, Caller, Text],
               %% No `domain': OTP's default handler drops events of domains outside
               %% `[otp]', and these were always shown by it.
               with_pid(Caller, #{caller => Caller, request => Request,
                                  python_module => maps:get(module, Meta, undefined),
                                  python_function => maps:get(function, Meta, undefined),
                                  python_class => maps:get(class, Meta, undefined),
                                  context => maps:get(context, Meta, undefined)})).

%% Logger metadata of an event on behalf of `Caller': its `pid' when there is one.
with_pid(Caller, Meta) when is_pid(Caller) -> Meta#{pid => Caller};
with_pid(_, Meta) -> Meta.

-spec terminate(term(), #state{}) -> ok.
terminate(_Reason, #state{partial = Partial} = S) ->
    _ = lists:foldl(fun flush_partial/2, S, lists:sort(maps:keys(Partial))),
    ok.

%% A write of `Caller's: whole lines go out now, the rest waits for its line's end.
output(Caller, Stream, Text, S) ->
    Key = {Caller, Stream},
    case maps:take(Key, S#state.partial) of
        {{Leader, Held, Timer}, Partial} ->
            lines(Key, Leader, <<Held/binary, Text/binary>>, Timer, S#state{partial = Partial});
        error ->
            {Leader, S0} = group_leader_of(Caller, S),
            lines(Key, Leader, Text, none, S0)
    end.

%% Send `Text' up to its last newline and hold what follows, unless that is too big to
%% hold. A held start keeps its timer (`Timer') while no line ends, so a line written a
%% character at a time still goes out `?PARTIAL_LINE_MS' after its first character.
lines(Key, Leader, Text, Timer, S) ->
    Size = byte_size(Text),
    case last_newline(Text, Size - 1) of
        _ when Size >= ?MAX_PARTIAL_BYTES; Size =:= 0 ->
            cancel(Timer),
            emit(Leader, Text, S);
        Size ->
            cancel(Timer),
            emit(Leader, Text, S);
        0 when Timer =/= none ->
            S#state{partial = maps:put(Key, {Leader, Text, Timer}, S#state.partial)};
        End ->
            cancel(Timer),
            <<Lines:End/binary, Rest/binary>> = Text,
            New = erlang:start_timer(?PARTIAL_LINE_MS, self(), {flush_partial, Key}),
            S1 = S#state{partial = maps:put(Key, {Leader, Rest, New}, S#state.partial)},
            emit(Leader, Lines, S1)
    end.

cancel(none) -> ok;
cancel(Timer) -> _ = erlang:cancel_timer(Timer), ok.

%% The length of `Text' up to and including its last newline (0: none), looking back
%% from byte `I'.
last_newline(_Text, -1) -> 0;
last_newline(Text, I) ->
    case binary:at(Text, I) of
        $\n -> I + 1;
        _ -> last_newline(Text, I - 1)
    end.

flush_partial(Key, #state{partial = Partial} = S) ->
    case maps:take(Key, Partial) of
        {{Leader, Held, Timer}, Rest} ->
            _ = erlang:cancel_timer(Timer),
            emit(Leader, Held, S#state{partial = Rest});
        error ->
            S
    end.

%% Send `Text' to `Leader', within the bound of what may wait for it.
emit(_Leader, <<>>, S) ->
    S;
emit(Leader, Text, S) ->
    Cost = byte_size(Text) + ?REQUEST_COST,
    {InFlight, S1} = leader(Leader, S),
    case InFlight =:= 0 orelse InFlight + Cost =< ?MAX_PENDING_BYTES of
        true -> send(Leader, Text, InFlight, Cost, S1);
        false -> drop(Cost, S1)
    end.

send(Leader, Text, InFlight, Cost, #state{leaders = Leaders, pending = Pending} = S) ->
    Ref = make_ref(),
    Leader ! {io_request, self(), Ref, {put_chars, unicode, Text}},
    {_, Mon} = maps:get(Leader, Leaders),
    S#state{leaders = Leaders#{Leader := {InFlight + Cost, Mon}},
            pending = Pending#{Ref => {Leader, Cost}}}.

%% The bytes in flight to `Leader', watching it from its first write on.
leader(Leader, #state{leaders = Leaders} = S) ->
    case Leaders of
        #{Leader := {InFlight, _}} -> {InFlight, S};
        _ -> {0, S#state{leaders = Leaders#{Leader => {0, monitor(process, Leader)}}}}
    end.

settle(Leader, Cost, #state{leaders = Leaders} = S) ->
    case Leaders of
        #{Leader := {InFlight, Mon}} when InFlight > Cost ->
            S#state{leaders = Leaders#{Leader := {InFlight - Cost, Mon}}};
        #{Leader := {_, Mon}} ->
            %% Nothing left in flight: stop watching an idle group leader.
            demonitor(Mon, [flush]),
            S#state{leaders = maps:remove(Leader, Leaders)};
        _ ->
            S
    end.

drop(Cost, S) ->
    count_drops({1, Cost - ?REQUEST_COST, 0}, S).

%% The drops the NIF made on the way here since this process last asked.
collect_drops(S) ->
    case py_nif:output_drops() of
        {0, 0, 0} -> S;
        Drops -> count_drops(Drops, S)
    end.

count_drops({W, B, R}, #state{unreported = {Writes, Bytes, Records}} = S) ->
    S1 = S#state{dropped_writes = S#state.dropped_writes + W,
                 dropped_bytes = S#state.dropped_bytes + B,
                 dropped_records = S#state.dropped_records + R,
                 unreported = {Writes + W, Bytes + B, Records + R}},
    case S1#state.report_due of
        true -> S1;
        %% The first drop after a quiet spell is reported at once, later ones together.
        false -> warn(S1)
    end.

warn(#state{unreported = Unreported} = S) ->
    %% Logged from a process of its own: handlers run in the logging process, and a slow
    %% one (the default handler writing to a pipe) must never hold up the forwarding.
    _ = proc_lib:spawn(fun() -> log_drops(Unreported) end),
    erlang:send_after(?WARN_EVERY_MS, self(), report_drops),
    S#state{unreported = {0, 0, 0}, report_due = true}.

log_drops({Writes, Bytes, Records}) ->
    ?LOG_WARNING("Python output dropped: ~b writes (~b bytes) and ~b log records or "
                 "tracebacks; a group leader or this node's logger does not keep up",
                 [Writes, Bytes, Records],
                 %% No `domain': OTP's default handler drops events of domains outside
                 %% `[otp]', and an operator needs to see this one.
                 #{erlang_python => output, dropped_writes => Writes, dropped_bytes => Bytes,
                   dropped_records => Records}).

erlang_level(<<"critical">>) -> critical;
erlang_level(<<"error">>) -> error;
erlang_level(<<"warning">>) -> warning;
erlang_level(<<"info">>) -> info;
erlang_level(_) -> debug.

group_leader_of(Pid, #state{callers = Callers} = S) when is_pid(Pid) ->
    case erlang:process_info(Pid, group_leader) of
        {group_leader, Leader} when map_get(Pid, Callers) =:= Leader ->
            {Leader, S};
        {group_leader, Leader} when map_size(Callers) >= ?MAX_CALLERS ->
            {Leader, S#state{callers = #{Pid => Leader}}};
        {group_leader, Leader} ->
            {Leader, S#state{callers = Callers#{Pid => Leader}}};
        undefined ->
            {maps:get(Pid, Callers, user_io()), S}
    end;
group_leader_of(_, S) ->
    {user_io(), S}.

user_io() ->
    case whereis(user) of
        undefined -> group_leader();
        User -> User
    end.
