defmodule PyTest do
  use ExUnit.Case, async: true
  doctest Py.Value

  describe "call" do
    test "positional arguments" do
      assert Py.call(:math, :sqrt, [16]) == {:ok, 4.0}
      assert Py.call(:os, "path.join", ["a", "b"]) == {:ok, "a/b"}
    end

    test "a keyword list is Python's keyword arguments" do
      assert Py.call(:json, :dumps, [%{b: 1, a: 2}], sort_keys: true) ==
               {:ok, ~s({"a": 2, "b": 1})}

      # What the raw :py API does with the same call (the reason this package exists).
      assert :py.call(:json, :dumps, [%{b: 1, a: 2}], sort_keys: true) ==
               {:error, {:unknown_pool, :json}}
    end

    test "keyword arguments as a map" do
      assert Py.call(:json, :dumps, [[1, 2]], %{"separators" => {",", ":"}}) == {:ok, "[1,2]"}
    end

    test "bad args and kwargs answer :py's badarg errors" do
      assert Py.call(:math, :sqrt, [1], [1, 2]) == {:error, {:badarg, :kwargs}}
      assert Py.call(:math, :sqrt, [1], :nope) == {:error, {:badarg, :kwargs}}
      assert Py.call(:math, :sqrt, 16) == {:error, {:badarg, :args}}
    end

    test "a Python exception is {class, message}; call! raises Py.Error" do
      assert Py.call(:math, :sqrt, [-1]) == {:error, {:ValueError, ~c"math domain error"}}

      error = assert_raise Py.Error, fn -> Py.call!(:math, :sqrt, [-1]) end
      assert error.reason == {:ValueError, ~c"math domain error"}
      assert Exception.message(error) == "ValueError: math domain error"
      assert Py.call!(:math, :sqrt, [16]) == 4.0
    end

    # Sleeps of 0.5 s: long past the timeout, and short enough that a context held by
    # one (a sleep is not cut short) does not delay the other async tests past theirs.
    test "timeout: interrupts the call" do
      assert Py.call(:time, :sleep, [0.5], [], timeout: 100) == {:error, :timeout}
      error = assert_raise Py.Error, fn -> Py.call!(:time, :sleep, [0.5], [], timeout: 100) end
      assert Exception.message(error) == "Python call failed: :timeout"
    end

    test "context: runs on that context, in the caller's namespace there" do
      ctx = :py.context(1)
      assert Py.exec("ctx_value = 5", context: ctx) == :ok
      assert Py.call(:builtins, :eval, ["ctx_value"], [], context: ctx) == {:ok, 5}

      assert Py.call(:py_ex_helpers, :echo, [1], [k: 2], context: ctx, timeout: 5_000) ==
               {:ok,
                %{
                  "args" => [1],
                  "kwargs" => %{"k" => 2},
                  "types" => ["int"],
                  "kwarg_types" => %{"k" => "int"}
                }}
    end

    test "strict:, arrays: and error_details: reach :py" do
      assert Py.call(:builtins, :complex, [1, 2], [], strict: true) == {:ok, {:complex, 1.0, 2.0}}
      assert {:ok, {:py_array, "int8", [3], <<1, 2, 3>>}} =
               Py.call(:array, :array, ["b", [1, 2, 3]], [], arrays: :binary)
      assert {:error, {:ZeroDivisionError, _, %{class: "ZeroDivisionError"}}} =
               Py.call(:operator, :truediv, [1, 0], [], error_details: true)
    end

    test "pool: runs on a named pool" do
      assert Py.call(:math, :sqrt, [16], [], pool: :io) == {:ok, 4.0}

      assert Py.call(:math, :sqrt, [16], [], pool: :no_such_pool) ==
               {:error, {:unknown_pool, :no_such_pool}}
    end

    test "return: :ref answers a py ref, also without context:" do
      assert {:ok, ref} = Py.call(:builtins, :list, [[3, 1, 2]], [], return: :ref)
      assert :py.is_ref(ref)
      assert :py.call_method(ref, :sort, []) == {:ok, :none}
      assert :py.to_term(ref) == {:ok, [1, 2, 3]}

      assert {:ok, ref} =
               Py.call(:builtins, :dict, [], [a: nil], return: :ref, context: :py.context())

      assert :py.to_term(ref) == {:ok, %{"a" => :none}}
    end

    test "unknown options and impossible combinations raise ArgumentError" do
      assert_raise ArgumentError, fn -> Py.call(:math, :sqrt, [16], [], timout: 5) end
      assert Py.call(:math, :sqrt, [16], [], pool: :io, timeout: 5_000) == {:ok, 4.0}

      assert_raise ArgumentError, fn ->
        Py.call(:math, :sqrt, [16], [], pool: :io, context: self())
      end

      assert_raise ArgumentError, fn -> Py.eval("1", [], timeout: 5, context: :py.context()) end
      assert_raise ArgumentError, fn -> Py.exec("x = 1", timeout: 5) end
    end
  end

  describe "nil is None" do
    test "going in, as arguments, keyword arguments and locals" do
      assert Py.call(:py_ex_helpers, :echo, [nil, [nil]], k: nil) ==
               {:ok,
                %{
                  "args" => [nil, [nil]],
                  "kwargs" => %{"k" => nil},
                  "types" => ["NoneType", "list"],
                  "kwarg_types" => %{"k" => "NoneType"}
                }}

      assert Py.eval("v is None", v: nil) == {:ok, true}
    end

    test "coming back, everywhere in a result" do
      assert Py.call(:py_ex_helpers, :nones, []) ==
               {:ok, %{nil => [nil, {1, nil}], "k" => nil, "nested" => %{"x" => [nil]}}}

      assert Py.eval("None") == {:ok, nil}
      assert Py.call(:time, :sleep, [0]) == {:ok, nil}
    end

    test "other atoms and values are left as they are" do
      assert Py.eval("(True, False, 'none', b'x', 1.5)") == {:ok, {true, false, "none", "x", 1.5}}
    end
  end

  describe "eval and exec" do
    test "locals as a keyword list or a map" do
      assert Py.eval("x * 2", x: 21) == {:ok, 42}
      assert Py.eval("x + y", %{"x" => 1, y: 2}) == {:ok, 3}
      assert Py.eval("[x * k for x in range(3)]", k: 3) == {:ok, [0, 3, 6]}
      assert Py.eval("s.upper()", s: "héllo ✓") == {:ok, "HÉLLO ✓"}
      assert Py.eval("1", [1, 2]) == {:error, {:badarg, :locals}}
    end

    test "exec defines names for the same process's later calls" do
      assert Py.exec("def greet(name):\n    return 'hello ' + name\n") == :ok
      assert Py.call(:__main__, :greet, ["joe"]) == {:ok, "hello joe"}
      assert Py.exec("1 +") |> elem(1) |> elem(0) == :SyntaxError
    end

    test "errors, timeout and eval!" do
      assert Py.eval("1 / 0") == {:error, {:ZeroDivisionError, ~c"division by zero"}}
      assert Py.eval("__import__('time').sleep(0.5)", [], timeout: 100) == {:error, :timeout}
      assert Py.eval!("x - 1", x: 43) == 42
      assert_raise Py.Error, "ZeroDivisionError: division by zero", fn -> Py.eval!("1 / 0") end
    end

    test "context:" do
      ctx = :py.context(1)
      assert Py.exec("ev = 7", context: ctx) == :ok
      assert Py.eval("ev * n", [n: 6], context: ctx) == {:ok, 42}
    end
  end
end
