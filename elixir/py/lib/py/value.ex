defmodule Py.Value do
  @moduledoc """
  `nil` for Python's `None` at the boundary of `Py`.

  Going in nothing needs doing: erlang_python already passes `nil` (like `:none` and
  `:undefined`) as `None`. Coming back, `None` arrives as the atom `:none`;
  `from_py/1` turns every `:none` inside a result (list elements, tuple elements, map
  keys and values) into `nil`. So does an `erlang.Atom("none")` made in Python, which
  arrives as the same atom: the two cannot be told apart.

  The walk visits every list element, tuple element and map entry of the result once
  (binaries, numbers and py refs are left as they are). Skip it for results big enough
  for that to matter by asking for `return: :ref`.
  """

  @doc """
  Replaces `:none` by `nil` throughout a converted Python value.

      iex> Py.Value.from_py([1, :none, {:none, %{:none => :none}}])
      [1, nil, {nil, %{nil => nil}}]
  """
  @spec from_py(term()) :: term()
  def from_py(:none), do: nil
  def from_py(list) when is_list(list), do: list_from_py(list)

  def from_py(tuple) when is_tuple(tuple) do
    tuple |> Tuple.to_list() |> list_from_py() |> List.to_tuple()
  end

  def from_py(map) when is_map(map) do
    Map.new(map, fn {key, value} -> {from_py(key), from_py(value)} end)
  end

  def from_py(other), do: other

  # Python never answers an improper list, but a py ref's `to_term` of an Erlang term
  # passed through could: keep any tail as it is rather than crash on it.
  defp list_from_py([head | tail]), do: [from_py(head) | list_from_py(tail)]
  defp list_from_py([]), do: []
  defp list_from_py(tail), do: from_py(tail)
end
