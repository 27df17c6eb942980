%%% @doc Standard-library C extensions and numpy load and compute real results when
%%% Python runs under `py': `_decimal', `_ctypes', `sqlite3', `ssl' (with `_hashlib'),
%%% `asyncio' and numpy.
%%%
%%% Modules are imported with `py:exec/1' into the test case process's own namespace,
%%% which its later `py:eval/1' calls see. Multi-step workloads live in
%%% `py_ext_helpers' (tests/).
-module(py_ext_SUITE).

-include_lib("common_test/include/ct.hrl").
-include_lib("stdlib/include/assert.hrl").

-export([suite/0, all/0, init_per_suite/1, end_per_suite/1]).
-export([decimal_arithmetic/1, ctypes_values_and_libc/1, sqlite3_in_memory/1,
         ssl_and_hashlib/1, asyncio_run/1, numpy_matrix_product/1,
         numpy_float_arrays/1, numpy_scalars/1]).

-define(HELPERS, py_ext_helpers).

%% A hung case fails after this long instead of stalling the run.
suite() ->
    [{timetrap, {minutes, 3}}].

all() ->
    [decimal_arithmetic, ctypes_values_and_libc, sqlite3_in_memory, ssl_and_hashlib,
     asyncio_run, numpy_matrix_product, numpy_float_arrays, numpy_scalars].

init_per_suite(Config) ->
    ok = py_test_lib:start(),
    Config.

end_per_suite(_Config) ->
    py_test_lib:stop().

%%% ---------------------------------------------------------------------------
%%% Test cases

decimal_arithmetic(_Config) ->
    ok = py:exec(<<"import decimal, sys">>),
    %% The C implementation is the one in use.
    ?assertEqual({ok, true}, py:eval(<<"'_decimal' in sys.modules">>)),
    ?assertEqual({ok, <<"3.3">>},
                 py:eval(<<"str(decimal.Decimal('1.1') + decimal.Decimal('2.2'))">>)),
    ?assertEqual({ok, true},
                 py:eval(<<"decimal.Decimal('1.1') + decimal.Decimal('2.2') == decimal.Decimal('3.3')">>)),
    %% Exact where binary floats are not.
    ?assertEqual({ok, false}, py:eval(<<"1.1 + 2.2 == 3.3">>)),
    %% A Decimal result has no Erlang counterpart and crosses as its str().
    ?assertEqual({ok, <<"0.1428571428571428571428571429">>},
                 py:eval(<<"decimal.Decimal(1) / decimal.Decimal(7)">>)),
    ?assertEqual({ok, <<"1.414213562373095048801688724">>},
                 py:eval(<<"decimal.Decimal(2).sqrt()">>)),
    %% Erlang data goes in: a binary becomes the str Decimal parses.
    ?assertEqual({ok, <<"12.50">>}, py:call(decimal, 'Decimal', [<<"12.50">>])).

ctypes_values_and_libc(_Config) ->
    ok = py:exec(<<"import ctypes">>),
    ?assertEqual({ok, true}, py:eval(<<"'_ctypes' in __import__('sys').modules">>)),
    ?assertEqual({ok, 42}, py:eval(<<"ctypes.c_int(42).value">>)),
    ?assertEqual({ok, -1}, py:eval(<<"ctypes.c_int32(2**32 - 1).value">>)),
    ?assertEqual({ok, 4}, py:eval(<<"ctypes.sizeof(ctypes.c_int32)">>)),
    %% A C function called through the process's own symbols (libc is loaded).
    ?assertEqual({ok, 7}, py:eval(<<"ctypes.CDLL(None).abs(-7)">>)),
    ?assertEqual({ok, 5}, py:eval(<<"ctypes.CDLL(None).strlen(b'hello')">>)).

sqlite3_in_memory(_Config) ->
    Rows = [{1, <<"alpha">>, 1.5}, {3, <<"gamma">>, 0.25}, {2, <<"béta"/utf8>>, 10.0}],
    ?assertEqual({ok, lists:keysort(1, Rows)}, py:call(?HELPERS, sqlite_round_trip, [Rows])),
    ?assertEqual({ok, {4, 10.0, 5.5}},
                 py:call(?HELPERS, sqlite_aggregate, [[1.5, 2.0, 1.0, 5.5]])),
    {ok, Version} = py:eval(<<"__import__('sqlite3').sqlite_version">>),
    ?assertMatch([_, _, _], binary:split(Version, <<".">>, [global])).

ssl_and_hashlib(_Config) ->
    ok = py:exec(<<"import ssl, hashlib">>),
    {ok, OpenSSLVersion} = py:eval(<<"ssl.OPENSSL_VERSION">>),
    ?assert(is_binary(OpenSSLVersion)),
    ?assertMatch(<<"OpenSSL", _/binary>>, OpenSSLVersion),
    ?assertEqual({ok, true}, py:eval(<<"isinstance(ssl.create_default_context(), ssl.SSLContext)">>)),
    ?assertEqual({ok, {true, true}},
                 py:eval(<<"(lambda c: (c.verify_mode == ssl.CERT_REQUIRED, c.check_hostname))"
                           "(ssl.create_default_context())">>)),
    %% Digests computed by OpenSSL through _hashlib.
    ?assertEqual({ok, <<"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad">>},
                 py:eval(<<"hashlib.sha256(b'abc').hexdigest()">>)),
    %% The same digest as Erlang's own MD5.
    Data = <<"erlang_python">>,
    ?assertEqual({ok, string:lowercase(binary:encode_hex(erlang:md5(Data)))},
                 py:eval(<<"hashlib.md5(x).hexdigest()">>, #{x => {bytes, Data}})).

asyncio_run(_Config) ->
    ?assertEqual({ok, 1 + 4 + 9 + 16 + 25}, py:call(?HELPERS, sum_of_squares, [[1, 2, 3, 4, 5]])),
    ?assertEqual({ok, 0}, py:call(?HELPERS, sum_of_squares, [[]])),
    %% Tasks really run concurrently: the shortest sleep finishes first.
    ?assertEqual({ok, [1, 2, 0]}, py:call(?HELPERS, completion_order, [[0.06, 0.0, 0.03]])),
    %% asyncio.run can be used again on the same context.
    ?assertEqual({ok, 100}, py:call(?HELPERS, sum_of_squares, [[6, 8]])).

numpy_matrix_product(_Config) ->
    ok = py:exec(<<"import numpy">>),
    ?assertEqual({ok, [[5, 14], [14, 50]]},
                 py:eval(<<"(lambda a: a @ a.T)(numpy.arange(6).reshape(2, 3))">>)),
    %% Erlang lists go in as array-likes.
    ?assertEqual({ok, [[19, 22], [43, 50]]},
                 py:call(numpy, matmul, [[[1, 2], [3, 4]], [[5, 6], [7, 8]]])),
    ?assertEqual({ok, [[1, 3], [2, 4]]}, py:call(numpy, transpose, [[[1, 2], [3, 4]]])).

numpy_float_arrays(_Config) ->
    ok = py:exec(<<"import numpy">>),
    ?assertEqual({ok, [0.0, 0.25, 0.5, 0.75, 1.0]}, py:eval(<<"numpy.linspace(0, 1, 5)">>)),
    ?assertEqual({ok, [[0.5, 1.0], [1.5, 2.0]]},
                 py:eval(<<"numpy.array([[1.0, 2.0], [3.0, 4.0]]) / 2">>)),
    ?assertEqual({ok, [1.0, 2.0, 3.0]}, py:call(numpy, sqrt, [[1.0, 4.0, 9.0]])),
    ?assertEqual({ok, [1.5, nan, infinity]},
                 py:eval(<<"numpy.array([1.5, numpy.nan, numpy.inf], dtype=numpy.float32)">>)).

numpy_scalars(_Config) ->
    ok = py:exec(<<"import numpy">>),
    ?assertEqual({ok, 2.5}, py:call(numpy, mean, [[1.0, 2.0, 3.0, 4.0]])),
    ?assertEqual({ok, 6}, py:call(numpy, sum, [[1, 2, 3]])),
    ?assertEqual({ok, <<"int64">>}, py:eval(<<"type(numpy.sum([1, 2, 3])).__name__">>)),
    ?assertEqual({ok, 42}, py:eval(<<"numpy.int64(6) * 7">>)),
    ?assertEqual({ok, 0.5}, py:eval(<<"numpy.float32(0.5)">>)),
    ?assertEqual({ok, true}, py:eval(<<"numpy.bool_(True)">>)),
    {ok, Root2} = py:eval(<<"numpy.sqrt(numpy.float64(2.0))">>),
    ?assert(is_float(Root2)),
    ?assert(abs(Root2 - math:sqrt(2.0)) < 1.0e-15).
