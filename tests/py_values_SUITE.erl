%%% @doc Values through `py' (issue 15, "Values"): strict conversion per call and from
%%% the app env, the numeric-array fast path (`arrays => binary'), `return => ref' on
%%% every call form that takes options, `py:release/1' and the shape of a py ref.
%%%
%%% Python values come from `py_values_helpers' (tests/).
-module(py_values_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1,
         init_per_group/2, end_per_group/2]).
-export([default_keeps_str/1, strict_refuses_unconvertible/1, strict_complex/1,
         strict_keeps_convertible/1, strict_bad_option/1,
         app_env_strict/1, app_env_strict_overridden/1, app_env_strict_everywhere/1]).
-export([float_matrix_as_binary/1, dtypes/1, std_array/1, strided_array/1,
         array_like/1, not_numeric_arrays_convert_as_usual/1, nested_arrays/1,
         big_array/1, arrays_default_is_lists/1, arrays_bad_option/1]).
-export([ref_without_context/1, ref_on_context_and_pool/1, ref_shape/1,
         release_drops_object/1, release_twice_and_bad_ref/1, options_keep_timeout/1]).

-define(H, py_values_helpers).

suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [{group, strict}, {group, strict_app_env}, {group, arrays}, {group, refs}].

groups() ->
    [{strict, [], [default_keeps_str, strict_refuses_unconvertible, strict_complex,
                   strict_keeps_convertible, strict_bad_option]},
     {strict_app_env, [], [app_env_strict, app_env_strict_overridden,
                           app_env_strict_everywhere]},
     {arrays, [], [float_matrix_as_binary, dtypes, std_array, strided_array, array_like,
                   not_numeric_arrays_convert_as_usual, nested_arrays, big_array,
                   arrays_default_is_lists, arrays_bad_option]},
     {refs, [], [ref_without_context, ref_on_context_and_pool, ref_shape,
                 release_drops_object, release_twice_and_bad_ref, options_keep_timeout]}].

init_per_suite(Config) ->
    Config.

end_per_suite(_Config) ->
    ok.

%% The app env is read when the application starts: each group starts its own.
init_per_group(strict_app_env, Config) ->
    ok = py_test_lib:start([{strict_conversion, true}]),
    Config;
init_per_group(_, Config) ->
    ok = py_test_lib:start([{strict_conversion, false}]),
    Config.

end_per_group(_, _Config) ->
    py_test_lib:stop(),
    application:unset_env(erlang_python, strict_conversion).

%%% ---------------------------------------------------------------------------
%%% Strict conversion

default_keeps_str(_) ->
    ?assertMatch({ok, <<"<object object at 0x", _/binary>>}, py:call(builtins, object, [])),
    ?assertEqual({ok, <<"Counter(n=17)">>}, py:call(?H, counter, [17])),
    ?assertEqual({ok, <<"(1+2j)">>}, py:eval(<<"complex(1, 2)">>)),
    ?assertEqual({ok, <<"(1+2j)">>}, py:call(builtins, complex, [1, 2], #{}, #{strict => false})).

strict_refuses_unconvertible(_) ->
    Strict = #{strict => true},
    ?assertEqual({error, {unconvertible, <<"object">>}}, py:call(builtins, object, [], #{}, Strict)),
    ?assertEqual({error, {unconvertible, <<"py_values_helpers.Counter">>}},
                 py:call(?H, counter, [17], #{}, Strict)),
    %% Deep inside a container too: the whole result is refused.
    ?assertEqual({error, {unconvertible, <<"py_values_helpers.Counter">>}},
                 py:call(?H, counter_in_list, [17], #{}, Strict)),
    ?assertEqual({error, {unconvertible, <<"datetime.date">>}},
                 py:call(datetime, date, [2024, 1, 2], #{}, Strict)),
    %% numpy scalars with no plain Python counterpart.
    ?assertEqual({error, {unconvertible, <<"numpy.longdouble">>}},
                 py:call(?H, longdouble, [], #{}, Strict)),
    %% On a context, with the options map of call/5.
    ?assertEqual({error, {unconvertible, <<"object">>}},
                 py:call(py:context(), builtins, object, [], Strict)).

strict_complex(_) ->
    Strict = #{strict => true},
    ?assertEqual({ok, {complex, 1.0, -2.5}}, py:call(builtins, complex, [1, -2.5], #{}, Strict)),
    ?assertEqual({ok, {complex, infinity, nan}},
                 py:call(builtins, complex, [<<"inf+nanj">>], #{}, Strict)),
    %% numpy complex scalars and the items of complex arrays are complex too.
    ?assertEqual({ok, [{complex, 0.0, 1.0}, {complex, 2.0, 0.0}]},
                 py:call(builtins, eval, [<<"[1j, __import__('numpy').complex128(2)]">>],
                         #{}, Strict)),
    ?assertEqual({ok, [{complex, 1.0, 0.0}]},
                 py:call(?H, typed, [[1], <<"complex128">>], #{}, Strict)).

strict_keeps_convertible(_) ->
    Strict = #{strict => true},
    Value = #{<<"a">> => [1, 2.5, <<"x">>, true, none, {1, 2}]},
    ?assertEqual({ok, Value}, py:call(builtins, dict, [Value], #{}, Strict)),
    ?assertEqual({ok, [[0.0, 1.0], [2.0, 3.0]]}, py:call(?H, float_matrix, [2, 2], #{}, Strict)),
    ?assertEqual({ok, [1, 2]}, py:call(builtins, sorted, [[2, 1]], #{}, Strict)).

strict_bad_option(_) ->
    ?assertEqual({error, {badarg, strict}}, py:call(builtins, int, [], #{}, #{strict => yes})),
    ?assertEqual({error, {badarg, strict}},
                 py:call(py:context(), builtins, int, [], #{strict => 1})).

%%% ---------------------------------------------------------------------------
%%% Strict conversion from the app env (`strict_conversion')

app_env_strict(_) ->
    ?assertEqual({error, {unconvertible, <<"object">>}}, py:call(builtins, object, [])),
    ?assertEqual({error, {unconvertible, <<"object">>}}, py:eval(<<"object()">>)),
    ?assertEqual({ok, {complex, 1.0, 2.0}}, py:eval(<<"1+2j">>)),
    ?assertEqual({ok, 3}, py:call(builtins, len, [[1, 2, 3]])).

app_env_strict_overridden(_) ->
    ?assertMatch({ok, <<"<object object at 0x", _/binary>>},
                 py:call(builtins, object, [], #{}, #{strict => false})),
    %% A py ref is never converted; converting it later follows the app env.
    Ref = py_ref(builtins, object, []),
    ?assert(py:is_ref(Ref)),
    ?assertEqual({error, {unconvertible, <<"object">>}}, py:to_term(Ref)),
    ?assertEqual({error, {unconvertible, <<"py_values_helpers.Counter">>}},
                 py:call(?H, counter, [1])).

%% Results of coroutines and streams follow the app env as well.
app_env_strict_everywhere(_) ->
    Ref = py:async_call(builtins, object, []),
    ?assertEqual({error, {unconvertible, <<"object">>}}, py:async_await(Ref)),
    ?assertEqual({ok, {complex, 0.0, 1.0}}, py:await(py:spawn_call(builtins, complex, [0, 1]))),
    ?assertEqual({error, {unconvertible, <<"object">>}},
                 py:stream_eval(<<"(x for x in [1, object()])">>)),
    {ok, S} = py:stream_start(builtins, iter, [[1, 2]]),
    ?assertEqual({[1, 2], done}, py_test_lib:collect_stream(S, 5000)),
    {ok, S2} = py:stream_start(py_values_helpers, counters, [2]),
    %% An item streamed to the owner: the stream ends with the error, after the items
    %% before it.
    ?assertEqual({[0], {error, {'TypeError', "py_values_helpers.Counter has no Erlang counterpart"}}},
                 py_test_lib:collect_stream(S2, 5000)).

%%% ---------------------------------------------------------------------------
%%% Numeric arrays

float_matrix_as_binary(_) ->
    Data = << <<X:64/float-native>> || X <- [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] >>,
    ?assertEqual({ok, {py_array, <<"float64">>, [2, 3], Data}},
                 py:call(?H, float_matrix, [2, 3], #{}, #{arrays => binary})),
    ?assertEqual({ok, {py_array, <<"float64">>, [2, 3], Data}},
                 py:call(py:context(), ?H, float_matrix, [2, 3], #{arrays => binary})).

dtypes(_) ->
    Bin = fun(DType) ->
                  py:call(?H, typed, [[1, 2, 3], DType], #{}, #{arrays => binary})
          end,
    ?assertEqual({ok, {py_array, <<"int8">>, [3], <<1, 2, 3>>}}, Bin(<<"int8">>)),
    ?assertEqual({ok, {py_array, <<"uint8">>, [3], <<1, 2, 3>>}}, Bin(<<"uint8">>)),
    ?assertEqual({ok, {py_array, <<"int32">>, [3], << <<X:32/signed-native>> || X <- [1, 2, 3] >>}},
                 Bin(<<"int32">>)),
    ?assertEqual({ok, {py_array, <<"uint16">>, [3], << <<X:16/native>> || X <- [1, 2, 3] >>}},
                 Bin(<<"uint16">>)),
    ?assertEqual({ok, {py_array, <<"int64">>, [3], << <<X:64/signed-native>> || X <- [1, 2, 3] >>}},
                 Bin(<<"int64">>)),
    ?assertEqual({ok, {py_array, <<"float32">>, [3], << <<X:32/float-native>> || X <- [1.0, 2.0, 3.0] >>}},
                 Bin(<<"float32">>)),
    ?assertEqual({ok, {py_array, <<"bool">>, [3], <<1, 1, 1>>}}, Bin(<<"bool">>)),
    ?assertEqual({ok, {py_array, <<"complex128">>, [3],
                       << <<X:64/float-native, 0.0:64/float-native>> || X <- [1.0, 2.0, 3.0] >>}},
                 Bin(<<"complex128">>)).

std_array(_) ->
    ?assertEqual({ok, {py_array, <<"float64">>, [2], << <<X:64/float-native>> || X <- [1.5, -2.0] >>}},
                 py:call(?H, std_array, [<<"d">>, [1.5, -2.0]], #{}, #{arrays => binary})),
    ?assertEqual({ok, {py_array, <<"int64">>, [2], << <<X:64/signed-native>> || X <- [-1, 7] >>}},
                 py:call(?H, std_array, [<<"q">>, [-1, 7]], #{}, #{arrays => binary})).

%% A transposed view is not C-contiguous: its data still comes in row-major order.
strided_array(_) ->
    ?assertEqual({ok, {py_array, <<"int32">>, [3, 2],
                       << <<X:32/signed-native>> || X <- [0, 3, 1, 4, 2, 5] >>}},
                 py:call(?H, transposed, [], #{}, #{arrays => binary})),
    %% Negative strides.
    ?assertEqual({ok, {py_array, <<"int16">>, [3], << <<X:16/signed-native>> || X <- [2, 1, 0] >>}},
                 py:call(?H, reversed_view, [], #{}, #{arrays => binary})),
    %% No items at all.
    ?assertEqual({ok, {py_array, <<"float64">>, [0, 3], <<>>}},
                 py:call(?H, empty_matrix, [], #{}, #{arrays => binary})).

array_like(_) ->
    ?assertEqual({ok, {py_array, <<"float64">>, [2], << <<X:64/float-native>> || X <- [0.5, 1.5] >>}},
                 py:call(?H, array_like, [[0.5, 1.5]], #{}, #{arrays => binary})).

not_numeric_arrays_convert_as_usual(_) ->
    Opts = #{arrays => binary},
    ?assertEqual({ok, [1, <<"a">>]}, py:call(?H, object_array, [], #{}, Opts)),
    %% Not in the machine's byte order: not copied as is, so lists.
    ?assertEqual({ok, [0.0, 1.0, 2.0]}, py:call(?H, big_endian, [], #{}, Opts)),
    %% Zero dimensions: the number.
    ?assertEqual({ok, 2.5}, py:eval(<<"2.5">>)),
    ?assertEqual({ok, 2.5}, py:call(numpy, float64, [2.5], #{}, Opts)),
    ?assertEqual({ok, 7}, py:call(numpy, int32, [7], #{}, Opts)),
    %% bytes-like values stay binaries.
    ?assertEqual({ok, <<"ab">>}, py:call(builtins, bytearray, [{bytes, <<"ab">>}], #{}, Opts)),
    ?assertEqual({ok, <<"ab">>}, py:call(builtins, memoryview, [{bytes, <<"ab">>}], #{}, Opts)).

nested_arrays(_) ->
    ?assertEqual({ok, #{<<"a">> => {py_array, <<"uint8">>, [2], <<1, 2>>},
                        <<"b">> => [{py_array, <<"float64">>, [2], <<0:128>>}]}},
                 py:call(?H, nested_arrays, [], #{}, #{arrays => binary})).

big_array(_) ->
    {ok, {py_array, <<"float64">>, [1000, 1000], Data}} =
        py:call(?H, float_matrix, [1000, 1000], #{}, #{arrays => binary}),
    ?assertEqual(8000000, byte_size(Data)),
    <<First:64/float-native, _:7999984/binary, Last:64/float-native>> = Data,
    ?assertEqual({0.0, 999999.0}, {First, Last}).

arrays_default_is_lists(_) ->
    ?assertEqual({ok, [[0.0, 1.0]]}, py:call(?H, float_matrix, [1, 2])),
    ?assertEqual({ok, [[0.0, 1.0]]}, py:call(?H, float_matrix, [1, 2], #{}, #{arrays => list})),
    %% 2.3.1 gives an array.array its str().
    ?assertEqual({ok, <<"array('d', [1.5])">>}, py:call(?H, std_array, [<<"d">>, [1.5]])).

arrays_bad_option(_) ->
    ?assertEqual({error, {badarg, arrays}},
                 py:call(?H, float_matrix, [1, 2], #{}, #{arrays => numpy})).

%%% ---------------------------------------------------------------------------
%%% py refs

ref_without_context(_) ->
    {ok, Ref} = py:call(builtins, list, [[1, 2]], #{}, #{return => ref}),
    ?assert(py:is_ref(Ref)),
    ?assertEqual({ok, none}, py:call_method(Ref, append, [3])),
    ?assertEqual({ok, [1, 2, 3]}, py:to_term(Ref)),
    %% Strict and arrays do not apply to a ref; converting it later does.
    {ok, Arr} = py:call(?H, float_matrix, [1, 2], #{}, #{return => ref, arrays => binary}),
    ?assertEqual({ok, [[0.0, 1.0]]}, py:to_term(Arr)),
    {ok, Obj} = py:call(?H, counter, [3], #{}, #{return => ref, strict => true}),
    ?assertEqual({ok, 3}, py:getattr(Obj, n)).

ref_on_context_and_pool(_) ->
    {ok, R1} = py:call(py:context(), builtins, dict, [], #{a => 1}, #{return => ref}),
    ?assertEqual({ok, #{<<"a">> => 1}}, py:to_term(R1)),
    {ok, R2} = py:call(default, builtins, dict, [], #{b => 2}, #{return => ref}),
    ?assertEqual({ok, #{<<"b">> => 2}}, py:to_term(R2)),
    ?assertEqual({error, {unknown_pool, nopool}},
                 py:call(nopool, builtins, dict, [], #{}, #{return => ref})).

%% The documented shape: a reference (`is_reference/1'), told apart from plain
%% references by `py:is_ref/1'.
ref_shape(_) ->
    {ok, Ref} = py:call(builtins, object, [], #{}, #{return => ref}),
    ?assert(is_reference(Ref)),
    ?assert(py:is_ref(Ref)),
    ?assertNot(py:is_ref(make_ref())),
    ?assertMatch("#Ref<" ++ _, lists:flatten(io_lib:format("~p", [Ref]))).

release_drops_object(_) ->
    Tag = <<"released">>,
    {ok, Ref} = py:call(py_api_helpers, 'FreedProbe', [Tag], #{}, #{return => ref}),
    ?assertEqual({ok, Tag}, py:getattr(Ref, tag)),
    ?assertEqual(ok, py:release(Ref)),
    %% Freed although `Ref' is still alive here.
    ?assert(py_test_lib:wait_until(fun() ->
                               {ok, Tags} = py:call(py_api_helpers, freed_tags, []),
                               lists:member(Tag, Tags)
                       end, 3000)),
    ?assert(py:is_ref(Ref)),
    ?assertEqual({error, {badarg, py_ref}}, py:getattr(Ref, tag)),
    ?assertEqual({error, {badarg, py_ref}}, py:call_method(Ref, '__repr__', [])),
    ?assertEqual({error, {badarg, py_ref}}, py:to_term(Ref)),
    ?assertMatch({error, {unsupported_term, Ref}}, py:call(builtins, id, [Ref])),
    %% Another process holding a copy sees the release too.
    Self = self(),
    spawn(fun() -> Self ! {other, py:to_term(Ref)} end),
    ?assertEqual({error, {badarg, py_ref}}, receive {other, R} -> R after 5000 -> timeout end).

release_twice_and_bad_ref(_) ->
    {ok, Ref} = py:call(builtins, object, [], #{}, #{return => ref}),
    ?assertEqual(ok, py:release(Ref)),
    ?assertEqual(ok, py:release(Ref)),
    ?assertEqual({error, {badarg, py_ref}}, py:release(make_ref())),
    ?assertEqual({error, {badarg, py_ref}}, py:release(not_a_ref)).

options_keep_timeout(_) ->
    ?assertEqual({error, timeout},
                 py:call(time, sleep, [0.5], #{}, #{timeout => 100, arrays => binary})),
    ?assertEqual({ok, none}, py:call(time, sleep, [0], #{}, #{timeout => 5000, strict => true})).

%%% ---------------------------------------------------------------------------
%%% Helpers

py_ref(M, F, A) ->
    {ok, Ref} = py:call(M, F, A, #{}, #{return => ref}),
    Ref.
