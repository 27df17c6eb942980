defmodule PyStreamTest do
  use ExUnit.Case, async: true

  # Every test uses tags of its own, so the shared EVENTS list needs no reset.
  defp events(tag) do
    {:ok, events} = Py.call(:py_ex_helpers, :events, [])
    Enum.filter(events, &String.ends_with?(&1, ":" <> tag))
  end

  defp tag, do: "t#{System.unique_integer([:positive])}"

  # Nothing of any stream is left in the mailbox, now or a moment later.
  defp assert_no_stream_messages do
    refute_receive {:py_stream, _, _}, 300
  end

  test "a whole stream, in order" do
    t = tag()
    assert Py.stream(:py_ex_helpers, :counter, [t, 5]) |> Enum.to_list() == [0, 1, 2, 3, 4]
    assert events(t) == ["exhausted:" <> t, "finally:" <> t]
    assert_no_stream_messages()
  end

  test "keyword arguments and nil items" do
    assert Py.stream(:py_ex_helpers, :counter, [tag(), 3], step: 10) |> Enum.to_list() == [
             0,
             10,
             20
           ]

    assert Py.stream(:py_ex_helpers, :maybe_none, [[1, nil, {nil}]]) |> Enum.to_list() == [
             1,
             nil,
             {nil}
           ]

    assert Py.stream(:builtins, :range, [3]) |> Enum.map(&(&1 * 2)) == [0, 2, 4]
  end

  test "Enum.take stops the generator and flushes its messages" do
    t = tag()
    assert Py.stream(:py_ex_helpers, :counter, [t, 1_000_000]) |> Enum.take(3) == [0, 1, 2]
    # The generator was closed (its finally ran), not exhausted.
    assert events(t) == ["finally:" <> t]
    assert_no_stream_messages()
  end

  test "an async generator stopped early" do
    t = tag()
    assert Py.stream(:py_ex_helpers, :acounter, [t, 1_000_000]) |> Enum.take(2) == [0, 1]
    assert events(t) == ["finally:" <> t]
    assert_no_stream_messages()
  end

  test "a stream is lazy and can be enumerated again" do
    t = tag()
    stream = Py.stream(:py_ex_helpers, :counter, [t, 3])
    assert events(t) == []
    assert Enum.to_list(stream) == [0, 1, 2]
    assert Enum.to_list(stream) == [0, 1, 2]
    assert length(events(t)) == 4
    assert_no_stream_messages()
  end

  test "two streams zipped in one process" do
    {t1, t2} = {tag(), tag()}
    s1 = Py.stream(:py_ex_helpers, :counter, [t1, 1_000_000])
    s2 = Py.stream(:py_ex_helpers, :counter, [t2, 1_000_000], step: 2)
    assert Stream.zip(s1, s2) |> Enum.take(3) == [{0, 0}, {1, 2}, {2, 4}]
    assert events(t1) == ["finally:" <> t1]
    assert events(t2) == ["finally:" <> t2]
    assert_no_stream_messages()
  end

  test "an exception in the consumer closes the stream" do
    t = tag()

    assert_raise RuntimeError, "boom", fn ->
      Py.stream(:py_ex_helpers, :counter, [t, 1_000_000])
      |> Enum.each(fn i -> if i == 5, do: raise("boom") end)
    end

    assert events(t) == ["finally:" <> t]
    assert_no_stream_messages()
  end

  test "an exception in the generator raises Py.Error after its items" do
    stream = Py.stream(:py_ex_helpers, :fail_after, [2])
    parent = self()

    error = assert_raise Py.Error, fn -> Enum.each(stream, &send(parent, {:item, &1})) end

    assert error.reason == {:ValueError, ~c"generator failed after 2"}
    assert Exception.message(error) == "ValueError: generator failed after 2"
    assert_received {:item, 0}
    assert_received {:item, 1}
    assert_no_stream_messages()
  end

  test "a generator that cannot start raises Py.Error" do
    error =
      assert_raise Py.Error, fn ->
        Py.stream(:py_ex_helpers_missing, :f, []) |> Enum.to_list()
      end

    assert error.reason == {:ModuleNotFoundError, ~c"No module named 'py_ex_helpers_missing'"}
    assert_no_stream_messages()
  end

  test "an item slower than timeout: cancels the stream and raises" do
    t = tag()
    parent = self()

    error =
      assert_raise Py.Error, fn ->
        Py.stream(:py_ex_helpers, :slow, [t, 2], [], timeout: 1_000)
        |> Enum.each(&send(parent, {:item, &1}))
      end

    assert error.reason == :timeout
    assert Exception.message(error) == "Python call failed: :timeout"
    # The generator had started (a generator cancelled before its first item has no
    # finally to run). A cancel does not interrupt a sync generator blocked in
    # time.sleep: its finally runs once the sleep ends.
    assert_received {:item, 0}
    assert wait_for(fn -> events(t) == ["finally:" <> t] end)
    assert_no_stream_messages()
  end

  test "a consumer that dies mid-stream closes the generator" do
    t = tag()
    parent = self()

    pid =
      spawn(fn ->
        Py.stream(:py_ex_helpers, :counter, [t, 1_000_000])
        |> Enum.each(fn i -> if i == 3, do: send(parent, :reading), else: :ok end)
      end)

    assert_receive :reading, 5_000
    Process.exit(pid, :kill)
    assert wait_for(fn -> events(t) == ["finally:" <> t] end)
  end

  test "bad options raise ArgumentError when the stream is made" do
    assert_raise ArgumentError, fn -> Py.stream(:builtins, :range, [3], [], windw: 5) end
    assert_raise ArgumentError, fn -> Py.stream(:builtins, :range, [3], [1, 2]) end
  end

  defp wait_for(fun, tries \\ 100) do
    cond do
      fun.() -> true
      tries == 0 -> false
      true -> Process.sleep(50) && wait_for(fun, tries - 1)
    end
  end
end
