%%% @doc Conversion between Erlang terms and Python objects through `py': an exact
%%% result for every row of the conversion tables in both directions, nesting limits,
%%% Unicode text and invalid UTF-8, and PropEr properties for round trips and big
%%% integers.
%%%
%%% What Python received is read back with `py_convert_helpers' (tests/), e.g.
%%% `describe/1' answers the exact type name and `repr()' of a value.
-module(py_convert_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, groups/0, init_per_suite/1, end_per_suite/1]).

%% Erlang -> Python
-export([booleans_to_bool/1, none_atoms_to_none/1, other_atoms_to_str/1,
         unicode_atom_to_str/1, integers_to_int/1, floats_to_float/1,
         utf8_binary_to_str/1, non_utf8_binary_to_bytes/1, bytes_tuple_to_bytes/1,
         lists_to_list/1, tuples_to_tuple/1, maps_to_dict/1,
         unhashable_map_key_is_type_error/1, pid_to_erlang_pid/1,
         ref_to_erlang_ref/1, unsupported_terms_are_errors/1]).
%% Python -> Erlang
-export([str_to_binary/1, bytes_like_to_binary/1, int_to_integer/1,
         float_to_float/1, special_floats_to_atoms/1, singletons_to_atoms/1,
         containers_to_terms/1, sets_to_lists/1, erlang_types_to_terms/1,
         numpy_array_to_lists/1, other_objects_to_str/1]).
%% Calls
-export([names_as_atom_binary_or_string/1, kwargs_are_converted/1]).
%% Nesting
-export([deep_list_to_python/1, deep_list_round_trip/1, deep_values_from_python/1,
         too_deep_to_python/1, too_deep_from_python/1]).
%% Unicode
-export([non_ascii_text_to_python/1, non_ascii_text_from_python/1,
         non_ascii_source_code/1, unicode_charlist_is_a_list/1,
         invalid_utf8_binaries/1]).
%% Properties
-export([prop_round_trip_exact/1, prop_round_trip_mapped/1,
         prop_big_int_from_python/1, prop_big_int_to_python/1]).

-include_lib("proper/include/proper.hrl").

-define(HELPERS, py_convert_helpers).
-define(NUMTESTS, 300).
%% Nesting depths the brief fixes: converted fine, and refused.
-define(DEEP, 10000).
-define(TOO_DEEP, 100000).

%%% ---------------------------------------------------------------------------
%%% Common Test callbacks

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [{group, to_python}, {group, to_erlang}, {group, calls}, {group, nesting},
     {group, unicode}, {group, properties}].

groups() ->
    [{to_python, [],
      [booleans_to_bool, none_atoms_to_none, other_atoms_to_str, unicode_atom_to_str,
       integers_to_int, floats_to_float, utf8_binary_to_str, non_utf8_binary_to_bytes,
       bytes_tuple_to_bytes, lists_to_list, tuples_to_tuple, maps_to_dict,
       unhashable_map_key_is_type_error, pid_to_erlang_pid, ref_to_erlang_ref,
       unsupported_terms_are_errors]},
     {to_erlang, [],
      [str_to_binary, bytes_like_to_binary, int_to_integer, float_to_float,
       special_floats_to_atoms, singletons_to_atoms, containers_to_terms, sets_to_lists,
       erlang_types_to_terms, numpy_array_to_lists, other_objects_to_str]},
     {calls, [], [names_as_atom_binary_or_string, kwargs_are_converted]},
     {nesting, [],
      [deep_list_to_python, deep_list_round_trip, deep_values_from_python,
       too_deep_to_python, too_deep_from_python]},
     {unicode, [],
      [non_ascii_text_to_python, non_ascii_text_from_python, non_ascii_source_code,
       unicode_charlist_is_a_list, invalid_utf8_binaries]},
     {properties, [],
      [prop_round_trip_exact, prop_round_trip_mapped, prop_big_int_from_python,
       prop_big_int_to_python]}].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

%%% ---------------------------------------------------------------------------
%%% Erlang -> Python

booleans_to_bool(_Config) ->
    ?assertEqual({ok, {<<"bool">>, <<"True">>}}, describe(true)),
    ?assertEqual({ok, {<<"bool">>, <<"False">>}}, describe(false)),
    ?assertEqual({ok, true}, round_trip(true)),
    ?assertEqual({ok, false}, round_trip(false)).

none_atoms_to_none(_Config) ->
    [?assertEqual({ok, {<<"NoneType">>, <<"None">>}}, describe(Atom))
     || Atom <- [none, nil, undefined]],
    [?assertEqual({ok, none}, round_trip(Atom)) || Atom <- [none, nil, undefined]].

other_atoms_to_str(_Config) ->
    ?assertEqual({ok, {<<"str">>, <<"'foo'">>}}, describe(foo)),
    ?assertEqual({ok, {<<"str">>, <<"'with space'">>}}, describe('with space')),
    ?assertEqual({ok, {<<"str">>, <<"'ok'">>}}, describe(ok)),
    %% A Latin-1 atom arrives as the same characters.
    ?assertEqual({ok, [$h, 16#E9, $l, $l, $o]}, py:call(?HELPERS, codepoints, ['héllo'])),
    %% Atoms come back as binaries: the mapping is one-way.
    ?assertEqual({ok, <<"foo">>}, round_trip(foo)),
    ?assertEqual({ok, <<"héllo"/utf8>>}, round_trip('héllo')).

%% An atom with characters beyond Latin-1 (allowed since OTP 20) should arrive as that
%% text. Skipped, not failed, while the core shows the known bug reported with this
%% suite (it arrives as ''); the case asserts for real once that is fixed.
unicode_atom_to_str(_Config) ->
    Atom = binary_to_atom(<<"日本"/utf8>>, utf8),
    ?assertEqual({ok, [16#65E5, 16#672C]}, py:call(?HELPERS, codepoints, [Atom])),
    ?assertEqual({ok, <<"日本"/utf8>>}, round_trip(Atom)),
    ?assertEqual({ok, #{<<"日"/utf8>> => 1, <<"本"/utf8>> => 2}},
                 py:eval(<<"x">>, #{x => #{'日' => 1, '本' => 2}})),
    ?assertEqual({ok, #{<<"日本"/utf8>> => 1}}, py:call(builtins, dict, [], #{Atom => 1})),
    %% And back: erlang.atom() of a non-Latin-1 name is that atom.
    ?assertEqual({ok, Atom}, py:eval(<<"erlang.atom('日本')"/utf8>>)).

integers_to_int(_Config) ->
    Integers = [0, 42, -42, (1 bsl 63) - 1, -(1 bsl 63), 1 bsl 63, (1 bsl 64) - 1,
                1 bsl 64, -(1 bsl 64) - 1, 1 bsl 200, -(1 bsl 200), (1 bsl 5000) + 7],
    [begin
         ?assertEqual({ok, {<<"int">>, integer_to_binary(N)}}, describe(N)),
         ?assertEqual({ok, N}, round_trip(N))
     end || N <- Integers].

floats_to_float(_Config) ->
    Expected = [{1.5, <<"1.5">>}, {0.1, <<"0.1">>}, {-2.25, <<"-2.25">>},
                {0.0, <<"0.0">>}, {-0.0, <<"-0.0">>}, {1.0e100, <<"1e+100">>},
                {5.0e-324, <<"5e-324">>},
                {1.7976931348623157e308, <<"1.7976931348623157e+308">>}],
    [begin
         ?assertEqual({ok, {<<"float">>, Repr}}, describe(F)),
         ?assertEqual({ok, F}, round_trip(F))
     end || {F, Repr} <- Expected],
    %% The sign of zero survives both ways.
    {ok, NegativeZero} = round_trip(-0.0),
    ?assertMatch(<<1:1, _/bits>>, <<NegativeZero/float>>).

utf8_binary_to_str(_Config) ->
    ?assertEqual({ok, {<<"str">>, <<"'hello'">>}}, describe(<<"hello">>)),
    ?assertEqual({ok, {<<"str">>, <<"''">>}}, describe(<<>>)),
    ?assertEqual({ok, {<<"str">>, <<"'a\\x00b'">>}}, describe(<<"a", 0, "b">>)),
    %% A sub-binary converts like any other.
    ?assertEqual({ok, {<<"str">>, <<"'bcd'">>}}, describe(binary:part(<<"abcdef">>, 1, 3))),
    ?assertEqual({ok, <<"hello">>}, round_trip(<<"hello">>)),
    ?assertEqual({ok, <<>>}, round_trip(<<>>)).

non_utf8_binary_to_bytes(_Config) ->
    ?assertEqual({ok, {<<"bytes">>, <<"b'\\xff\\x00\\x01'">>}}, describe(<<255, 0, 1>>)),
    ?assertEqual({ok, <<255, 0, 1>>}, round_trip(<<255, 0, 1>>)).

bytes_tuple_to_bytes(_Config) ->
    ?assertEqual({ok, {<<"bytes">>, <<"b'abc'">>}}, describe({bytes, <<"abc">>})),
    ?assertEqual({ok, {<<"bytes">>, <<"b'\\xc3\\xa9'">>}}, describe({bytes, <<"é"/utf8>>})),
    ?assertEqual({ok, {<<"bytes">>, <<"b''">>}}, describe({bytes, <<>>})),
    %% bytes come back as a plain binary.
    ?assertEqual({ok, <<"abc">>}, round_trip({bytes, <<"abc">>})),
    %% Only a binary payload makes bytes: other {bytes, _} are ordinary tuples.
    ?assertEqual({ok, {<<"tuple">>, <<"('bytes', 1)">>}}, describe({bytes, 1})).

lists_to_list(_Config) ->
    ?assertEqual({ok, {<<"list">>, <<"[]">>}}, describe([])),
    ?assertEqual({ok, {<<"list">>, <<"[1, 2, 3]">>}}, describe([1, 2, 3])),
    ?assertEqual({ok, {<<"list">>, <<"[1, 'a', 2.5, [None]]">>}},
                 describe([1, <<"a">>, 2.5, [none]])),
    %% A charlist is a list of ints, not a str.
    ?assertEqual({ok, {<<"list">>, <<"[97, 98, 99]">>}}, describe("abc")),
    ?assertEqual({ok, "abc"}, round_trip("abc")),
    ?assertEqual({ok, [1, [2, [3]], []]}, round_trip([1, [2, [3]], []])).

tuples_to_tuple(_Config) ->
    ?assertEqual({ok, {<<"tuple">>, <<"()">>}}, describe({})),
    ?assertEqual({ok, {<<"tuple">>, <<"(1,)">>}}, describe({1})),
    ?assertEqual({ok, {<<"tuple">>, <<"(1, 'a', (2.5, []))">>}},
                 describe({1, <<"a">>, {2.5, []}})),
    ?assertEqual({ok, {}}, round_trip({})),
    ?assertEqual({ok, {1, {2, [3]}}}, round_trip({1, {2, [3]}})).

maps_to_dict(_Config) ->
    ?assertEqual({ok, {<<"dict">>, <<"{}">>}}, describe(#{})),
    ?assertEqual({ok, {<<"dict">>, <<"{'a': 1}">>}}, describe(#{<<"a">> => 1})),
    %% Keys and values keep their own conversions.
    %% (Entries come sorted by the key's repr.)
    ?assertEqual({ok, [{<<"str">>, <<"a">>, <<"int">>, 1},
                       {<<"str">>, <<"b">>, <<"float">>, 2.0},
                       {<<"tuple">>, {1, 2}, <<"NoneType">>, none},
                       {<<"int">>, 3, <<"bytes">>, <<255>>}]},
                 py:call(?HELPERS, dict_items,
                         [#{a => 1, <<"b">> => 2.0, 3 => <<255>>, {1, 2} => none}])),
    Map = #{1 => [2], <<"k">> => #{<<"inner">> => {3}}, {1, <<"t">>} => 1.5},
    ?assertEqual({ok, Map}, round_trip(Map)).

unhashable_map_key_is_type_error(_Config) ->
    ?assertEqual({error, {'TypeError', "unhashable type: 'list'"}}, round_trip(#{[1] => 2})),
    ?assertEqual({error, {'TypeError', "unhashable type: 'dict'"}}, round_trip(#{#{} => 1})),
    ?assertEqual({error, {'TypeError', "unhashable type: 'list'"}}, py:eval(<<"x">>, #{x => #{[1] => 2}})),
    %% Nothing crashed: the context goes on.
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)).

pid_to_erlang_pid(_Config) ->
    Self = self(),
    Other = spawn(fun() -> receive stop -> ok end end),
    ?assertEqual({ok, <<"Pid">>}, py:eval(<<"type(p).__name__">>, #{p => Self})),
    ?assertEqual({ok, <<"erlang">>}, py:eval(<<"type(p).__module__">>, #{p => Self})),
    ?assertEqual({ok, Self}, round_trip(Self)),
    ?assertEqual({ok, Other}, round_trip(Other)),
    ?assertEqual({ok, [Self, {Other}]}, round_trip([Self, {Other}])),
    ?assertEqual({ok, true}, py:call(?HELPERS, same_object, [Self, Self])),
    ?assertEqual({ok, false}, py:eval(<<"a == b">>, #{a => Self, b => Other})),
    %% Hashable: usable as a dict key, and back as a map key.
    ?assertEqual({ok, #{Self => 1}}, round_trip(#{Self => 1})),
    Other ! stop.

ref_to_erlang_ref(_Config) ->
    Ref = make_ref(),
    OtherRef = make_ref(),
    ?assertEqual({ok, <<"Ref">>}, py:eval(<<"type(r).__name__">>, #{r => Ref})),
    ?assertEqual({ok, <<"erlang">>}, py:eval(<<"type(r).__module__">>, #{r => Ref})),
    ?assertEqual({ok, Ref}, round_trip(Ref)),
    ?assertEqual({ok, {Ref, [OtherRef]}}, round_trip({Ref, [OtherRef]})),
    ?assertEqual({ok, true}, py:call(?HELPERS, same_object, [Ref, Ref])),
    ?assertEqual({ok, false}, py:eval(<<"a == b">>, #{a => Ref, b => OtherRef})),
    ?assertEqual({ok, #{Ref => 1}}, round_trip(#{Ref => 1})).

unsupported_terms_are_errors(_Config) ->
    Fun = fun() -> ok end,
    [Port | _] = erlang:ports(),
    ?assertEqual({error, {unsupported_term, Fun}}, round_trip(Fun)),
    ?assertEqual({error, {unsupported_term, Port}}, round_trip(Port)),
    %% Also when nested, and in eval locals: the offending term is named.
    ?assertEqual({error, {unsupported_term, Fun}}, round_trip([1, {2, Fun}])),
    ?assertEqual({error, {unsupported_term, Port}}, round_trip(#{key => Port})),
    ?assertEqual({error, {unsupported_term, Fun}}, py:eval(<<"x">>, #{x => Fun})),
    %% Improper lists and bitstrings (docs/conversion.md) have no counterpart either.
    ?assertEqual({error, {unsupported_term, [1 | 2]}}, round_trip([1 | 2])),
    ?assertEqual({error, {unsupported_term, <<1:3>>}}, round_trip(<<1:3>>)),
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)).

%%% ---------------------------------------------------------------------------
%%% Python -> Erlang

str_to_binary(_Config) ->
    ?assertEqual({ok, <<"abc">>}, py:eval(<<"'abc'">>)),
    ?assertEqual({ok, <<>>}, py:eval(<<"''">>)),
    ?assertEqual({ok, <<"héllo"/utf8>>}, py:eval(<<"'h\\xe9llo'">>)),
    ?assertEqual({ok, <<"a", 0, "b">>}, py:eval(<<"'a\\x00b'">>)).

bytes_like_to_binary(_Config) ->
    ?assertEqual({ok, <<255, 0, 1>>}, py:eval(<<"b'\\xff\\x00\\x01'">>)),
    ?assertEqual({ok, <<"abc">>}, py:eval(<<"b'abc'">>)),
    ?assertEqual({ok, <<>>}, py:eval(<<"b''">>)),
    ?assertEqual({ok, <<1, 2, 255>>}, py:eval(<<"bytearray([1, 2, 255])">>)),
    ?assertEqual({ok, <<"cd">>}, py:eval(<<"memoryview(b'abcdef')[2:4]">>)).

int_to_integer(_Config) ->
    Cases = [{<<"0">>, 0}, {<<"-7">>, -7},
             {<<"2**63 - 1">>, (1 bsl 63) - 1}, {<<"-2**63">>, -(1 bsl 63)},
             {<<"2**63">>, 1 bsl 63}, {<<"-2**63 - 1">>, -(1 bsl 63) - 1},
             {<<"2**64">>, 1 bsl 64}, {<<"2**200 + 1">>, (1 bsl 200) + 1},
             {<<"-2**200">>, -(1 bsl 200)}, {<<"2**5000">>, 1 bsl 5000}],
    [?assertEqual({ok, N}, py:eval(Code)) || {Code, N} <- Cases].

float_to_float(_Config) ->
    ?assertEqual({ok, 1.5}, py:eval(<<"1.5">>)),
    ?assertEqual({ok, 0.1}, py:eval(<<"0.1">>)),
    ?assertEqual({ok, 1.0e300}, py:eval(<<"1e300">>)),
    ?assertEqual({ok, 5.0e-324}, py:eval(<<"5e-324">>)),
    {ok, NegativeZero} = py:eval(<<"-0.0">>),
    ?assert(is_float(NegativeZero)),
    ?assertMatch(<<1:1, 0:63>>, <<NegativeZero/float>>).

special_floats_to_atoms(_Config) ->
    ?assertEqual({ok, nan}, py:eval(<<"float('nan')">>)),
    ?assertEqual({ok, infinity}, py:eval(<<"float('inf')">>)),
    ?assertEqual({ok, neg_infinity}, py:eval(<<"float('-inf')">>)),
    ?assertEqual({ok, [nan, infinity, neg_infinity, 1.0]},
                 py:eval(<<"[float('nan'), float('inf'), -float('inf'), 1.0]">>)).

singletons_to_atoms(_Config) ->
    ?assertEqual({ok, true}, py:eval(<<"True">>)),
    ?assertEqual({ok, false}, py:eval(<<"False">>)),
    ?assertEqual({ok, none}, py:eval(<<"None">>)),
    ?assertEqual({ok, {true, false, none}}, py:eval(<<"(True, False, None)">>)).

containers_to_terms(_Config) ->
    ?assertEqual({ok, []}, py:eval(<<"[]">>)),
    ?assertEqual({ok, [1, [2, <<"x">>]]}, py:eval(<<"[1, [2, 'x']]">>)),
    ?assertEqual({ok, {}}, py:eval(<<"()">>)),
    ?assertEqual({ok, {1, {2}}}, py:eval(<<"(1, (2,))">>)),
    ?assertEqual({ok, #{}}, py:eval(<<"{}">>)),
    ?assertEqual({ok, #{<<"a">> => 1, 2 => [3], {4, 5} => #{<<"b">> => none}}},
                 py:eval(<<"{'a': 1, 2: [3], (4, 5): {'b': None}}">>)).

sets_to_lists(_Config) ->
    {ok, FromSet} = py:eval(<<"{3, 1, 2}">>),
    ?assertEqual([1, 2, 3], lists:sort(FromSet)),
    {ok, FromFrozenset} = py:eval(<<"frozenset(['a', 'b'])">>),
    ?assertEqual([<<"a">>, <<"b">>], lists:sort(FromFrozenset)),
    ?assertEqual({ok, []}, py:eval(<<"set()">>)),
    ?assertEqual({ok, [[7]]}, py:eval(<<"[{7}]">>)).

erlang_types_to_terms(_Config) ->
    ?assertEqual({ok, foo}, py:eval(<<"erlang.atom('foo')">>)),
    %% A name no atom has yet becomes a new atom (within the atom budget).
    Fresh = <<"py_convert_fresh_", (integer_to_binary(erlang:unique_integer([positive])))/binary>>,
    {ok, FreshAtom} = py:eval(<<"erlang.atom(n)">>, #{n => Fresh}),
    ?assert(is_atom(FreshAtom)),
    ?assertEqual(Fresh, atom_to_binary(FreshAtom, utf8)),
    ?assertEqual({ok, true}, py:eval(<<"erlang.atom('true')">>)),
    ?assertEqual({ok, [ok, {error, <<"text">>}]},
                 py:eval(<<"[erlang.atom('ok'), (erlang.atom('error'), 'text')]">>)),
    %% An Atom is a str on the Python side.
    ?assertEqual({ok, true}, py:eval(<<"isinstance(erlang.atom('foo'), str)">>)),
    Self = self(),
    Ref = make_ref(),
    ?assertEqual({ok, {Self, Ref}}, py:eval(<<"(p, r)">>, #{p => Self, r => Ref})),
    %% Made in Python from values that came from Erlang.
    ?assertEqual({ok, #{Self => [Ref]}}, py:eval(<<"{p: [r]}">>, #{p => Self, r => Ref})).

numpy_array_to_lists(_Config) ->
    ok = py:exec(<<"import numpy">>),
    ?assertEqual({ok, [1, 2, 3]}, py:eval(<<"numpy.array([1, 2, 3])">>)),
    ?assertEqual({ok, [[1, 2], [3, 4]]}, py:eval(<<"numpy.array([[1, 2], [3, 4]])">>)),
    ?assertEqual({ok, [1.5, 2.5]}, py:eval(<<"numpy.array([1.5, 2.5])">>)),
    ?assertEqual({ok, [nan, infinity]}, py:eval(<<"numpy.array([numpy.nan, numpy.inf])">>)),
    ?assertEqual({ok, []}, py:eval(<<"numpy.array([])">>)),
    ?assertEqual({ok, 7}, py:eval(<<"numpy.int64(7)">>)),
    ?assertEqual({ok, 0.5}, py:eval(<<"numpy.float32(0.5)">>)).

other_objects_to_str(_Config) ->
    ?assertEqual({ok, <<"1j">>}, py:eval(<<"1j">>)),
    ?assertEqual({ok, <<"range(0, 3)">>}, py:eval(<<"range(3)">>)),
    ?assertEqual({ok, <<"1.10">>}, py:eval(<<"__import__('decimal').Decimal('1.10')">>)),
    ?assertEqual({ok, <<"<class 'int'>">>}, py:eval(<<"int">>)),
    ?assertEqual({ok, <<"labelled: x">>}, py:call(?HELPERS, labelled, [<<"x">>])).

%%% ---------------------------------------------------------------------------
%%% Calls: names and keyword arguments

names_as_atom_binary_or_string(_Config) ->
    ?assertEqual({ok, 3}, py:call(builtins, len, [[a, b, c]])),
    ?assertEqual({ok, 3}, py:call(<<"builtins">>, <<"len">>, [[a, b, c]])),
    ?assertEqual({ok, 3}, py:call("builtins", "len", [[a, b, c]])),
    ?assertEqual({ok, <<"3">>}, py:call(<<"py_convert_helpers">>, identity, [<<"3">>])),
    %% Dotted module and function names.
    ?assertEqual({ok, <<"a/b">>}, py:call('os.path', join, [<<"a">>, <<"b">>])),
    ?assertEqual({ok, <<"a/b">>}, py:call(os, 'path.join', [<<"a">>, <<"b">>])).

kwargs_are_converted(_Config) ->
    ?assertEqual({ok, [3, 2, 1]}, py:call(builtins, sorted, [[2, 3, 1]], #{reverse => true})),
    ?assertEqual({ok, {<<"bytes">>, <<"b'\\xff'">>}},
                 py:call(?HELPERS, describe, [], #{<<"value">> => <<255>>})),
    ?assertEqual({ok, {<<"NoneType">>, <<"None">>}},
                 py:call(?HELPERS, describe, [], #{"value" => undefined})).

%%% ---------------------------------------------------------------------------
%%% Nesting

deep_list_to_python(_Config) ->
    ?assertEqual({ok, ?DEEP}, py:call(?HELPERS, list_depth, [nested_list(?DEEP)])),
    ?assertEqual({ok, ?DEEP}, py:call(?HELPERS, deep_tuple_depth, [nested_tuple(?DEEP)])).

deep_list_round_trip(_Config) ->
    Deep = nested_list(?DEEP),
    ?assertEqual({ok, Deep}, round_trip(Deep)),
    DeepMap = nested_map(?DEEP),
    ?assertEqual({ok, DeepMap}, round_trip(DeepMap)).

deep_values_from_python(_Config) ->
    ?assertEqual({ok, nested_list(?DEEP)}, py:call(?HELPERS, deep_list, [?DEEP])),
    ?assertEqual({ok, nested_tuple(?DEEP)}, py:call(?HELPERS, deep_tuple, [?DEEP])),
    ?assertEqual({ok, nested_map(?DEEP)}, py:call(?HELPERS, deep_dict, [?DEEP])).

too_deep_to_python(_Config) ->
    TooDeep = nested_list(?TOO_DEEP),
    assert_too_deep(py:call(?HELPERS, list_depth, [TooDeep])),
    assert_too_deep(py:eval(<<"len(x)">>, #{x => TooDeep})),
    assert_too_deep(py:call(?HELPERS, identity, [nested_map(?TOO_DEEP)])),
    assert_too_deep(py:call(?HELPERS, identity, [], #{value => nested_tuple(?TOO_DEEP)})),
    assert_context_works().

too_deep_from_python(_Config) ->
    assert_too_deep(py:call(?HELPERS, deep_list, [?TOO_DEEP])),
    assert_too_deep(py:call(?HELPERS, deep_dict, [?TOO_DEEP])),
    assert_too_deep(py:call(?HELPERS, deep_tuple, [?TOO_DEEP])),
    assert_context_works().

%%% ---------------------------------------------------------------------------
%%% Unicode

non_ascii_text_to_python(_Config) ->
    Texts = [<<"héllo wörld"/utf8>>, <<"日本語のテキスト"/utf8>>, <<"Ελληνικά"/utf8>>,
             <<"😀 👍🏽 🇫🇷"/utf8>>, <<"a😀b"/utf8>>],
    [begin
         CodePoints = unicode:characters_to_list(Text),
         ?assertEqual({ok, CodePoints}, py:call(?HELPERS, codepoints, [Text])),
         ?assertEqual({ok, length(CodePoints)}, py:call(builtins, len, [Text])),
         ?assertEqual({ok, Text}, round_trip(Text))
     end || Text <- Texts],
    %% One emoji outside the BMP is one Python character.
    ?assertEqual({ok, 1}, py:call(builtins, len, [<<"😀"/utf8>>])).

non_ascii_text_from_python(_Config) ->
    ?assertEqual({ok, <<"😀"/utf8>>}, py:call(?HELPERS, from_codepoints, [[16#1F600]])),
    ?assertEqual({ok, <<"日本"/utf8>>}, py:call(?HELPERS, from_codepoints, [[16#65E5, 16#672C]])),
    ?assertEqual({ok, <<"😀"/utf8>>}, py:eval(<<"'\\U0001F600'">>)),
    ?assertEqual({ok, <<"é"/utf8>>}, py:eval(<<"chr(233)">>)),
    ?assertEqual({ok, <<"straße"/utf8>>}, py:eval(<<"'STRASSE'.lower().replace('ss', '\\u00df')">>)),
    ?assertEqual({ok, <<"ÉTÉ 😀"/utf8>>}, py:call(<<"builtins">>, <<"str.upper">>, [<<"été 😀"/utf8>>])).

non_ascii_source_code(_Config) ->
    ?assertEqual({ok, 3}, py:eval(<<"len('日本😀')"/utf8>>)),
    %% Source may also be a Unicode charlist.
    ?assertEqual({ok, <<"😀😀"/utf8>>}, py:eval("'😀' * 2")),
    ?assertEqual({ok, <<"日本"/utf8>>}, py:eval(<<"x + '本'"/utf8>>, #{x => <<"日"/utf8>>})).

unicode_charlist_is_a_list(_Config) ->
    ?assertEqual({ok, {<<"list">>, <<"[26085, 26412]">>}}, describe("日本")),
    ?assertEqual({ok, "日本"}, round_trip("日本")).

invalid_utf8_binaries(_Config) ->
    Invalid = [<<16#FF>>,                      % never valid
               <<16#C3>>,                      % truncated sequence
               <<16#C0, 16#80>>,               % overlong NUL
               <<16#ED, 16#A0, 16#80>>,        % an encoded surrogate
               <<16#F4, 16#90, 16#80, 16#80>>, % beyond U+10FFFF
               <<"valid start ", 16#E2, 16#28, 16#A1>>],
    [begin
         ?assertEqual({ok, <<"bytes">>}, py:call(?HELPERS, type_name, [Bin])),
         ?assertEqual({ok, byte_size(Bin)}, py:call(builtins, len, [Bin])),
         ?assertEqual({ok, Bin}, round_trip(Bin))
     end || Bin <- Invalid],
    ?assertEqual({ok, [<<"bytes">>, <<"str">>]},
                 py:call(?HELPERS, element_types, [[<<16#FF>>, <<"ok">>]])),
    %% Python bytes that are not UTF-8 come back byte for byte.
    ?assertEqual({ok, <<16#ED, 16#A0, 16#80>>}, py:eval(<<"b'\\xed\\xa0\\x80'">>)).

%%% ---------------------------------------------------------------------------
%%% Properties

%% Terms of integers (bignums too), floats, UTF-8 binaries, lists, tuples and maps
%% come back identical.
prop_round_trip_exact(_Config) ->
    check(?FORALL(Term, gen_exact_term(4),
                  begin
                      Result = round_trip(Term),
                      ?WHENFAIL(ct:pal("sent ~tp~ngot  ~tp", [Term, Result]),
                                Result =:= {ok, Term})
                  end)).

%% Terms that also hold atoms and arbitrary binaries come back as
%% expected_round_trip/1 says: true/false stay, none/nil/undefined become none, other
%% atoms become UTF-8 binaries, and every binary (UTF-8 or not) comes back unchanged.
prop_round_trip_mapped(_Config) ->
    check(?FORALL(Term, gen_mapped_term(4),
                  begin
                      Result = round_trip(Term),
                      Expected = {ok, expected_round_trip(Term)},
                      ?WHENFAIL(ct:pal("sent ~tp~ngot  ~tp~nwant ~tp", [Term, Result, Expected]),
                                Result =:= Expected)
                  end)).

prop_big_int_from_python(_Config) ->
    check(?FORALL(N, gen_integer(),
                  py:eval(<<"int(s)">>, #{s => integer_to_binary(N)}) =:= {ok, N})).

prop_big_int_to_python(_Config) ->
    check(?FORALL(N, gen_integer(),
                  py:call(builtins, str, [N]) =:= {ok, integer_to_binary(N)})).

%%% ---------------------------------------------------------------------------
%%% Generators

check(Property) ->
    ?assertEqual(true, proper:quickcheck(Property, [{numtests, ?NUMTESTS}, {to_file, user}])).

%% Integers of every size: small, around the 64-bit edges, and bignums of 72 to about
%% 2,000 bits with random digits.
gen_integer() ->
    proper_types:frequency(
      [{2, proper_types:integer()},
       {1, proper_types:elements([(1 bsl 63) - 1, -(1 bsl 63), 1 bsl 63, -(1 bsl 63) - 1,
                                  (1 bsl 64) - 1, 1 bsl 64, -(1 bsl 64)])},
       {4, gen_bignum()}]).

gen_bignum() ->
    ?LET({Negative, Size}, {proper_types:boolean(), proper_types:range(8, 255)},
         ?LET(Bytes, proper_types:vector(Size, proper_types:byte()),
              begin
                  Magnitude = binary:decode_unsigned(list_to_binary([1 | Bytes])),
                  case Negative of
                      true -> -Magnitude;
                      false -> Magnitude
                  end
              end)).

gen_utf8() ->
    proper_unicode:utf8().

gen_exact_scalar() ->
    proper_types:oneof([gen_integer(), proper_types:float(), gen_utf8()]).

gen_exact_key() ->
    proper_types:frequency([{4, gen_exact_scalar()}, {1, gen_tuple(gen_exact_scalar())}]).

gen_exact_term(0) ->
    gen_exact_scalar();
gen_exact_term(Depth) ->
    Inner = ?LAZY(gen_exact_term(Depth - 1)),
    proper_types:frequency([{4, gen_exact_scalar()},
                            {1, gen_list(Inner)},
                            {1, gen_tuple(Inner)},
                            {1, gen_map(gen_exact_key(), Inner)}]).

gen_atom() ->
    proper_types:elements([true, false, none, nil, undefined, ok, foo, 'with space', 'héllo']).

gen_mapped_scalar() ->
    proper_types:oneof([gen_exact_scalar(), gen_atom(), proper_types:binary()]).

gen_mapped_key() ->
    proper_types:frequency([{4, gen_mapped_scalar()}, {1, gen_tuple(gen_mapped_scalar())}]).

gen_mapped_term(0) ->
    gen_mapped_scalar();
gen_mapped_term(Depth) ->
    Inner = ?LAZY(gen_mapped_term(Depth - 1)),
    proper_types:frequency([{4, gen_mapped_scalar()},
                            {1, gen_list(Inner)},
                            {1, gen_tuple(Inner)},
                            {1, gen_map(gen_mapped_key(), Inner)}]).

gen_list(Item) ->
    proper_types:resize(5, proper_types:list(Item)).

gen_tuple(Item) ->
    ?LET(Items, gen_list(Item), list_to_tuple(Items)).

%% Maps whose keys stay distinct as Python dict keys (1, 1.0 and true are one key there).
gen_map(Key, Value) ->
    ?LET(Pairs, gen_list({Key, Value}), maps:from_list(distinct_python_keys(Pairs))).

distinct_python_keys(Pairs) ->
    {Kept, _Seen} =
        lists:foldl(fun({K, _} = Pair, {Acc, Seen}) ->
                            PyKey = python_key(K),
                            case sets:is_element(PyKey, Seen) of
                                true -> {Acc, Seen};
                                false -> {[Pair | Acc], sets:add_element(PyKey, Seen)}
                            end
                    end, {[], sets:new()}, Pairs),
    lists:reverse(Kept).

%% A term standing for the Python dict key a term becomes: equal for terms Python
%% takes as the same key.
python_key(true) -> {number, 1};
python_key(false) -> {number, 0};
python_key(Atom) when Atom =:= none; Atom =:= nil; Atom =:= undefined -> none;
python_key(Atom) when is_atom(Atom) -> {text, atom_to_binary(Atom, utf8)};
python_key(N) when is_integer(N) -> {number, N};
python_key(F) when is_float(F) ->
    case F == math:floor(F) of
        true -> {number, trunc(F)};
        false -> {number, F}
    end;
python_key(Bin) when is_binary(Bin) ->
    case unicode:characters_to_binary(Bin) of
        Bin -> {text, Bin};
        _ -> {bytes, Bin}
    end;
python_key(Tuple) when is_tuple(Tuple) ->
    {tuple, [python_key(E) || E <- tuple_to_list(Tuple)]}.

%% What a term comes back as after Erlang -> Python -> Erlang.
expected_round_trip(Bool) when is_boolean(Bool) -> Bool;
expected_round_trip(Atom) when Atom =:= none; Atom =:= nil; Atom =:= undefined -> none;
expected_round_trip(Atom) when is_atom(Atom) -> atom_to_binary(Atom, utf8);
expected_round_trip(List) when is_list(List) -> [expected_round_trip(E) || E <- List];
expected_round_trip(Tuple) when is_tuple(Tuple) ->
    list_to_tuple(expected_round_trip(tuple_to_list(Tuple)));
expected_round_trip(Map) when is_map(Map) ->
    maps:from_list([{expected_round_trip(K), expected_round_trip(V)}
                    || {K, V} <- maps:to_list(Map)]);
expected_round_trip(Other) -> Other.

%%% ---------------------------------------------------------------------------
%%% Helpers

round_trip(Term) ->
    py:call(?HELPERS, identity, [Term]).

%% `{ok, {TypeName, Repr}}' of a term as Python received it.
describe(Term) ->
    py:call(?HELPERS, describe, [Term]).

nested_list(Depth) ->
    nest(Depth - 1, [], fun(Inner) -> [Inner] end).

nested_tuple(Depth) ->
    nest(Depth - 1, {}, fun(Inner) -> {Inner} end).

nested_map(Depth) ->
    nest(Depth - 1, #{}, fun(Inner) -> #{<<"k">> => Inner} end).

nest(0, Innermost, _Wrap) -> Innermost;
nest(Levels, Inner, Wrap) -> nest(Levels - 1, Wrap(Inner), Wrap).

%% Refused with the limit in force, which lies between the two depths the suite uses.
assert_too_deep(Result) ->
    ?assertMatch({error, {nesting_too_deep, Max}}
                   when is_integer(Max) andalso Max >= ?DEEP andalso Max < ?TOO_DEEP,
                 Result).

assert_context_works() ->
    ?assertEqual({ok, 2}, py:eval(<<"1 + 1">>)),
    ?assertEqual({ok, [1, 2]}, round_trip([1, 2])),
    ?assertEqual({ok, 3}, py:call(?HELPERS, list_depth, [nested_list(3)])).
