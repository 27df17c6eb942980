%%% @doc Errors worth reading: 2.3.1's `{error, {Class, Message}}' by default, the details
%%% on request (per call or app env), the logged traceback with the user's frames and
%%% where it happened, Erlang/Elixir errors as Python sees them, and `await/2' on a
%%% reference that is no request.
-module(py_errors_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([default_shape/1, details_per_call/1, details_attributes/1, details_unicode/1,
         details_bad_option/1, details_app_env/1, traceback_logged/1,
         callback_reason_atoms/1, elixir_exception_message/1, await_not_a_request/1,
         details_attributes_changed_while_read/1]).
-export([log/2, boom/1, declined/1, no_message_fun/1, message/1]).

suite() ->
    [{timetrap, {minutes, 2}}].

all() ->
    [default_shape, details_per_call, details_attributes, details_unicode,
     details_bad_option, details_app_env, traceback_logged, callback_reason_atoms,
     elixir_exception_message, await_not_a_request, details_attributes_changed_while_read].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

-define(MISSING, {'KeyError', "'missing_key'"}).

%% Without the option nothing changes: 2.3.1's shape, everywhere.
default_shape(_) ->
    ?assertEqual({error, ?MISSING}, py:call(py_errors_helpers, outer, [#{}])),
    ?assertEqual({error, ?MISSING},
                 py:call(py:context(), py_errors_helpers, outer, [#{}], #{})),
    ?assertEqual({error, ?MISSING},
                 py:call(py:context(), py_errors_helpers, outer, [#{}], #{error_details => false})),
    ?assertEqual({error, ?MISSING}, py:await(py:spawn_call(py_errors_helpers, outer, [#{}]))).

%% `error_details => true': the same class and message, then the details, with the
%% user's four frames and the file they were defined in.
details_per_call(_) ->
    {error, {'KeyError', "'missing_key'", Details}} =
        py:call(py:context(), py_errors_helpers, outer, [#{}], #{error_details => true}),
    #{class := <<"KeyError">>, message := <<"'missing_key'">>, attributes := #{},
      frames := Frames, traceback := Traceback} = Details,
    ?assertEqual([<<"outer">>, <<"middle">>, <<"inner">>],
                 [F || #{function := F} <- Frames]),
    ?assertEqual([11, 15, 19], [L || #{line := L} <- Frames]),
    [?assertEqual(<<"py_errors_helpers.py">>, filename:basename(File)) || #{file := File} <- Frames],
    ?assertMatch({match, _}, re:run(Traceback, "line 19, in inner\n.*KeyError: 'missing_key'\n$",
                                    [dotall])),
    %% Code given to exec is in `<erlang>'.
    ok = py:exec(<<"def exec_outer():\n    return exec_inner()\n"
                   "def exec_inner():\n    return {}['missing_key']\n">>),
    {error, {'KeyError', "'missing_key'", #{frames := ExecFrames}}} =
        py:call(py:context(), '__main__', exec_outer, [], #{error_details => true}),
    ?assertEqual([#{file => <<"<erlang>">>, line => 2, function => <<"exec_outer">>},
                  #{file => <<"<erlang>">>, line => 4, function => <<"exec_inner">>}],
                 ExecFrames).

%% The exception's own attributes (an exception's `code = 402') and its
%% module-qualified class.
details_attributes(_) ->
    {error, {'PaymentError', "payment required", Details}} =
        py:call(py:context(), py_errors_helpers, pay, [], #{error_details => true}),
    ?assertMatch(#{class := <<"py_errors_helpers.PaymentError">>,
                   message := <<"payment required">>,
                   attributes := #{<<"code">> := 402},
                   frames := [#{function := <<"pay">>, line := 23}]}, Details),
    ?assertEqual(#{<<"code">> => 402}, maps:get(attributes, Details)),
    {error, {'JSONDecodeError', _, JsonDetails}} =
        py:call(py:context(), json, loads, [<<"{">>], #{error_details => true}),
    ?assertMatch(#{class := <<"json.decoder.JSONDecodeError">>,
                   attributes := #{<<"pos">> := 1, <<"lineno">> := 1, <<"colno">> := 2,
                                   <<"doc">> := <<"{">>}}, JsonDetails),
    %% The option goes with the other call options, with or without a context or pool,
    %% and together with them.
    ?assertMatch({error, {'PaymentError', _, #{attributes := #{<<"code">> := 402}}}},
                 py:call(py_errors_helpers, pay, [], #{}, #{error_details => true})),
    ?assertMatch({error, {'PaymentError', _, #{class := <<"py_errors_helpers.PaymentError">>}}},
                 py:call(io, py_errors_helpers, pay, [], #{}, #{error_details => true, strict => true})),
    ?assertMatch({error, {'PaymentError', "payment required"}},
                 py:call(py_errors_helpers, pay, [], #{}, #{strict => true})).

%% An attribute whose `__str__' adds attributes to its exception while the details are
%% made: the details hold what the copy of the attributes held, and the context serves on
%% (iterating the live `__dict__' panicked and ended the context).
details_attributes_changed_while_read(_) ->
    Ctx = py:context(),
    Contexts = py_context_router:pids(),
    ok = py:exec(Ctx, <<"class Mut:\n"
                        "    def __init__(self, e): self.e = e\n"
                        "    def __str__(self):\n"
                        "        self.e.__dict__['k%d' % len(self.e.__dict__)] = 1\n"
                        "        return 'mut'\n"
                        "class Grows(Exception): pass\n"
                        "def grow():\n"
                        "    e = Grows('x'); e.a = Mut(e); e.b = 2; raise e\n">>),
    {error, {'Grows', "x", Details}} = py:call(Ctx, '__main__', grow, [], #{error_details => true}),
    ?assertEqual(#{<<"a">> => <<"mut">>, <<"b">> => 2}, maps:get(attributes, Details)),
    ?assertEqual({ok, 3}, py:call(Ctx, operator, add, [1, 2])),
    ?assertEqual(Contexts, py_context_router:pids()).

%% The message in the details is UTF-8 (`~tp' shows it as text wherever the printable
%% range covers it); the charlist stays 2.3.1's. The log event prints it as text.
details_unicode(_) ->
    {error, {'ValueError', Chars, #{message := Message}}} =
        py:call(py:context(), py_errors_helpers, unicode_error, [], #{error_details => true}),
    ?assertEqual([26085, 26412], Chars),
    ?assertEqual(<<"日本"/utf8>>, Message),
    ?assertEqual(<<"<<\"é\"/utf8>>"/utf8>>,
                 unicode:characters_to_binary(io_lib:format("~tp", [<<"é"/utf8>>]))),
    #{level := OldLevel} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(py_errors_capture, ?MODULE, #{config => #{pid => self()}}),
    try
        {error, {'ValueError', _}} = py:call(py_errors_helpers, unicode_error, []),
        #{msg := {Format, Args}} = logged(),
        Text = unicode:characters_to_binary(io_lib:format(Format, Args)),
        ?assertNotEqual(nomatch, binary:match(Text, <<"ValueError: 日本\n"/utf8>>))
    after
        logger:remove_handler(py_errors_capture),
        logger:set_primary_config(level, OldLevel)
    end.

details_bad_option(_) ->
    ?assertEqual({error, {badarg, error_details}},
                 py:call(py:context(), py_errors_helpers, pay, [], #{error_details => sometimes})).

%% The application's `error_details' makes it the default of every request.
details_app_env(_) ->
    py_test_lib:stop(),
    try
        ok = py_test_lib:start([{error_details, true}]),
        ?assertMatch({error, {'KeyError', "'missing_key'", #{class := <<"KeyError">>}}},
                     py:call(py_errors_helpers, outer, [#{}])),
        ?assertMatch({error, {'ZeroDivisionError', "division by zero", #{frames := [_]}}},
                     py:eval(<<"1/0">>)),
        ?assertMatch({error, {'PaymentError', _, #{attributes := #{<<"code">> := 402}}}},
                     py:await(py:spawn_call(py_errors_helpers, pay, []))),
        %% A call may still ask for 2.3.1's shape.
        ?assertEqual({error, ?MISSING},
                     py:call(py:context(), py_errors_helpers, outer, [#{}],
                             #{error_details => false}))
    after
        py_test_lib:stop(),
        application:unset_env(erlang_python, error_details),
        ok = py_test_lib:start()
    end,
    ?assertEqual({error, ?MISSING}, py:call(py_errors_helpers, outer, [#{}])).

%% logger handler callback: hand events to the test process.
log(Event, #{config := #{pid := Pid}}) ->
    Pid ! {logged, Event}.

%% The debug event of a failure: the whole traceback, and metadata saying who called
%% what where, also for an async call (whose code runs on the loop).
traceback_logged(_) ->
    #{level := OldLevel} = logger:get_primary_config(),
    ok = logger:set_primary_config(level, all),
    ok = logger:add_handler(py_errors_capture, ?MODULE, #{config => #{pid => self()}}),
    try
        {error, ?MISSING} = py:call(py_errors_helpers, outer, [#{}]),
        #{level := debug, meta := Meta, msg := {Format, Args}} = logged(),
        Text = unicode:characters_to_binary(io_lib:format(Format, Args)),
        Self = self(),
        ?assertMatch(#{pid := Self, caller := Self, request := call,
                       python_module := <<"py_errors_helpers">>,
                       python_function := <<"outer">>, python_class := <<"KeyError">>}, Meta),
        ?assert(is_pid(maps:get(context, Meta))),
        [?assertMatch({match, _}, re:run(Text, "py_errors_helpers.py\", line " ++ L ++ ", in " ++ F))
         || {L, F} <- [{"11", "outer"}, {"15", "middle"}, {"19", "inner"}]],
        ?assertMatch({match, _}, re:run(Text, "^Python exception in call py_errors_helpers.outer from ")),
        Ref = py:async_call(py_errors_helpers, pay, []),
        {error, {'PaymentError', "payment required"}} = py:async_await(Ref),
        #{meta := AsyncMeta} = logged(),
        ?assertMatch(#{pid := Self, request := async_call, python_function := <<"pay">>,
                       python_class := <<"py_errors_helpers.PaymentError">>}, AsyncMeta)
    after
        logger:remove_handler(py_errors_capture),
        logger:set_primary_config(level, OldLevel)
    end.

logged() ->
    receive
        {logged, #{meta := #{python_class := _}} = Event} -> Event
    after 5000 ->
        ct:fail(no_log_event)
    end.

boom([]) ->
    error({badkey, zz}).

%% An Erlang error reason keeps its atoms as `erlang.Atom' (a `str', so it still equals
%% the strings).
callback_reason_atoms(_) ->
    py:register_function(errors_boom, ?MODULE, boom),
    ok = py:exec(<<"import erlang\n"
                   "def catch_it(name):\n"
                   "    try:\n"
                   "        erlang.call(name)\n"
                   "    except erlang.ErlangError as e:\n"
                   "        return [[type(x).__name__ for x in e.reason], e.reason == ('badkey', 'zz'),\n"
                   "                e.reason[0] == erlang.atom('badkey'), str(e)]\n">>),
    ?assertEqual({ok, [[<<"Atom">>, <<"Atom">>], true, true,
                       <<"{badkey,zz} (in py_errors_SUITE:boom/1)">>]},
                 py:call('__main__', catch_it, [errors_boom])),
    %% Back in Erlang the reason is the same term.
    ok = py:exec(<<"def reason(name):\n"
                   "    try:\n"
                   "        erlang.call(name)\n"
                   "    except erlang.ErlangError as e:\n"
                   "        return e.reason\n">>),
    ?assertEqual({ok, {badkey, zz}}, py:call('__main__', reason, [errors_boom])).

%% An Elixir exception struct (this module stands in for its module: `message/1').
declined([]) ->
    error(#{'__struct__' => ?MODULE, '__exception__' => true, code => 402}).

message(#{code := Code}) ->
    <<"card declined (", (integer_to_binary(Code))/binary, ")">>.

%% A struct whose module is not loaded: its `message' field.
no_message_fun([]) ->
    error(#{'__struct__' => 'Elixir.PyErrorsSuite.Missing', '__exception__' => true,
            message => <<"déclinée"/utf8>>}).

elixir_exception_message(_) ->
    py:register_function(errors_declined, ?MODULE, declined),
    py:register_function(errors_no_message_fun, ?MODULE, no_message_fun),
    ok = py:exec(<<"import erlang\n"
                   "def catch_struct(name):\n"
                   "    try:\n"
                   "        erlang.call(name)\n"
                   "    except erlang.ErlangError as e:\n"
                   "        return [str(e), e.reason.get('code'), type(e.reason['__struct__']).__name__]\n">>),
    ?assertEqual({ok, [<<"card declined (402)">>, 402, <<"Atom">>]},
                 py:call('__main__', catch_struct, [errors_declined])),
    ?assertEqual({ok, [<<"déclinée"/utf8>>, none, <<"Atom">>]},
                 py:call('__main__', catch_struct, [errors_no_message_fun])).

%% A reference that is no request of this process answers at once.
await_not_a_request(_) ->
    {Micros, Result} = timer:tc(fun() -> py:await(make_ref(), 10000) end),
    ?assertEqual({error, not_a_request}, Result),
    ?assert(Micros < 1000000),
    Ref = py:spawn_call(operator, add, [1, 2]),
    ?assertEqual({ok, 3}, py:await(Ref, 10000)),
    ?assertEqual({error, not_a_request}, py:await(Ref, 10000)),
    %% Another process's request is not this one's.
    Other = py:spawn_call(operator, add, [1, 2]),
    Self = self(),
    spawn(fun() -> Self ! {other, py:await(Other, 10000)} end),
    receive {other, OtherResult} -> ?assertEqual({error, not_a_request}, OtherResult)
    after 5000 -> ct:fail(no_answer)
    end,
    ?assertEqual({ok, 3}, py:await(Other, 10000)),
    %% A request that failed at once still answers its error.
    ?assertEqual({error, {badarg, kwargs}},
                 py:await(py:spawn_call(operator, add, [1, 2], not_a_map))).
