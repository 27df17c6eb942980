%%% @doc The one module that emits `telemetry' events (docs/telemetry.md has the table).
%%%
%%% erlang_python cannot depend on the `telemetry' application (its package registry is
%%% out of reach of our builds), so it calls `telemetry:execute/3' only while that
%%% function is loaded. The check is `erlang:function_exported/3', made once per request
%%% when it starts: a BIF with no cache to keep fresh, so loading `telemetry' (or a
%%% stand-in) later, or purging it, takes effect at the next request. Measured at 30 to
%%% 60 ns, about what a `persistent_term' flag costs, on a request of about 2 us; the
%%% request then does nothing else for telemetry while the module is absent.
%%%
%%% Spans follow `telemetry:span/3': a `start' event with `system_time' and
%%% `monotonic_time', then exactly one `stop' (or `exception' when the caller's side
%%% raises) with `duration' and `monotonic_time', all in `native' time units, and the
%%% same `telemetry_span_context' reference in the metadata of both. An error reply
%%% (`{error, Reason}', a Python exception among them) is a normal reply of the `py' API,
%%% so it ends the span with `stop' and `result => error'; `exception' is kept for what
%%% raises in the caller.
%%%
%%% Handlers run in the emitting process. A handler that raises is detached by
%%% `telemetry' itself; here every call of `execute/3' is wrapped as well, so that no
%%% raise from it (a stand-in, a module purged between the check and the call) ever
%%% reaches the caller of `py'.
-module(py_telemetry).

-export([enabled/0,
         request_start/1, request_stop/4, request_exception/4,
         stream_start/1, stream_stop/3]).

%% What `request_start/1' and `stream_start/1' answer: the start time and the metadata
%% the later events of the span repeat.
-opaque span() :: {integer(), map()}.
-export_type([span/0]).

%% @doc Whether `telemetry:execute/3' can be called now.
-spec enabled() -> boolean().
enabled() ->
    erlang:function_exported(telemetry, execute, 3).

%% @doc Emit `[erlang_python, request, start]' and answer the span. `Meta' holds `kind',
%% `module', `function', `context' and `pool'.
-spec request_start(map()) -> span().
request_start(Meta) ->
    start([erlang_python, request, start], Meta).

%% @doc End a request span with the result the caller got, and the time the request
%% waited in its context's mailbox (nanoseconds, `undefined' when it never ran). A
%% timeout or an overload is also emitted as its own event first.
-spec request_stop(span(), term(), non_neg_integer() | undefined, timeout()) -> ok.
request_stop({Start, Meta}, Result, QueueWaitNs, Timeout) ->
    Now = erlang:monotonic_time(),
    Duration = Now - Start,
    case Result of
        {error, timeout} ->
            emit([erlang_python, request, timeout], #{duration => Duration},
                 Meta#{timeout => Timeout});
        {error, {overloaded, Queued, Max}} ->
            overloaded(Queued, Max, Meta);
        _ ->
            ok
    end,
    Measurements = #{duration => Duration, monotonic_time => Now},
    emit([erlang_python, request, stop], with_queue_wait(Measurements, QueueWaitNs),
         maps:merge(Meta, outcome(Result))).

%% @doc End a request span whose caller-side code raised (`Class:Reason:Stacktrace'),
%% before the raise goes on. As in `telemetry:span/3', `kind' is then the class
%% (`error', `exit' or `throw'); the request's kind moves to `request'.
-spec request_exception(span(), error | exit | throw, term(), list()) -> ok.
request_exception({Start, Meta}, Class, Reason, Stacktrace) ->
    Now = erlang:monotonic_time(),
    emit([erlang_python, request, exception],
         #{duration => Now - Start, monotonic_time => Now},
         Meta#{request => maps:get(kind, Meta), kind => Class, reason => Reason,
               stacktrace => Stacktrace}).

%% @doc Emit `[erlang_python, stream, start]' (for `py:stream_start/3,4') and answer the
%% span.
-spec stream_start(map()) -> span().
stream_start(Meta) ->
    start([erlang_python, stream, start], Meta).

%% @doc End a stream span: `Items' sent to the owner and the stream's last event
%% (`done' or `{error, Reason}'), or the refusal of a stream that never started.
-spec stream_stop(span(), non_neg_integer(), term()) -> ok.
stream_stop({Start, Meta}, Items, End) ->
    Now = erlang:monotonic_time(),
    case End of
        {error, {overloaded, Queued, Max}} -> overloaded(Queued, Max, Meta);
        _ -> ok
    end,
    emit([erlang_python, stream, stop],
         #{duration => Now - Start, monotonic_time => Now, items => Items},
         maps:merge(Meta, outcome(End))).

%%% ---------------------------------------------------------------------------

start(Event, Meta0) ->
    Meta = Meta0#{telemetry_span_context => make_ref()},
    Start = erlang:monotonic_time(),
    %% The system time as the VM defines it, without reading the clock a second time
    %% (a clock read costs 150 to 300 ns on some virtual machines).
    SystemTime = Start + erlang:time_offset(),
    emit(Event, #{system_time => SystemTime, monotonic_time => Start}, Meta),
    {Start, Meta}.

overloaded(Queued, Max, Meta) ->
    emit([erlang_python, request, overload], #{queued => Queued, max_queued => Max}, Meta).

with_queue_wait(Measurements, undefined) ->
    Measurements;
with_queue_wait(Measurements, Ns) ->
    Measurements#{queue_wait => erlang:convert_time_unit(Ns, nanosecond, native)}.

%% `result' mirrors what the `py' function answered; an error also names its reason's
%% tag (the Python class for an exception, else the runtime's reason: `timeout',
%% `overloaded', `context_stopped', ...) and carries the whole reason.
outcome({error, Reason}) ->
    #{result => error, error => error_name(Reason), reason => Reason};
outcome(_) ->
    #{result => ok}.

error_name(Reason) when is_tuple(Reason), tuple_size(Reason) > 0 -> element(1, Reason);
error_name(Reason) -> Reason.

%% A raise here (a crashing handler of a stand-in, `telemetry' purged since the check)
%% must never reach the caller of `py'.
emit(Event, Measurements, Meta) ->
    try
        telemetry:execute(Event, Measurements, Meta)
    catch
        _:_ -> ok
    end,
    ok.
