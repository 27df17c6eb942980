defmodule Py do
  @moduledoc """
  Call Python from Elixir through erlang_python, the Elixir way.

  A thin layer over the Erlang module `:py` (its public API only):

    * keyword arguments are a keyword list (or a map):
      `Py.call(:json, :dumps, [x], sort_keys: true)`;
    * call options are a separate, last keyword list: `timeout:`, `context:`, `pool:`,
      `return:`;
    * `nil` is Python's `None` both ways (`:py` answers `:none`);
    * `Py.stream/5` is an `Enumerable` of what a Python generator yields, which closes
      the generator and leaves nothing in the mailbox when the consumer stops early.

  Results keep `:py`'s shapes: `{:ok, value}`, `:ok`, or `{:error, reason}` with
  `reason` exactly as `:py` answers it (a Python exception is `{class, message}`, the
  class an atom, the message a charlist). The bang variants raise `Py.Error` instead.

      {:ok, 4.0} = Py.call(:math, :sqrt, [16])
      {:ok, ~s({"a": 1, "b": null})} = Py.call(:json, :dumps, [%{b: nil, a: 1}], sort_keys: true)
      {:ok, nil} = Py.eval("None")
      [0, 1, 4] = Py.stream(:builtins, :map, [Py.eval!("lambda x: x * x"), [0, 1, 2]]) |> Enum.to_list()
  """

  @typedoc "A Python module or function name: `:math`, `\"os.path\"`, `~c\"json\"`."
  @type name :: atom() | String.t() | charlist()
  @typedoc "Python keyword arguments: `[sort_keys: true]` or `%{\"sort_keys\" => true}`."
  @type kwargs :: keyword() | map()
  @typedoc "Python local variables for `eval/3`, as keyword arguments are given."
  @type locals :: keyword() | map()
  @type result :: {:ok, term()} | {:error, term()}

  @call_opts [:timeout, :context, :pool, :return, :strict, :arrays, :error_details]

  @doc """
  Calls `module.func(*args, **kwargs)` and answers `{:ok, value}` or `{:error, reason}`.

  `kwargs` is a keyword list or a map (keys atoms, strings or charlists). Options:

    * `timeout:` milliseconds or `:infinity` (default: the application's
      `default_timeout`); a call that times out is interrupted and answers
      `{:error, :timeout}`;
    * `context:` a context pid (`:py.context/0,1`) to run on;
    * `pool:` a named pool (`:io`, or one of the app env `pools`);
    * `return: :ref` answers `{:ok, py_ref}`, a reference to the Python result itself
      (`:py.call_method/3`, `:py.getattr/2`, `:py.to_term/1` work on it; `:py.release/1`
      frees it);
    * `strict: true`, `arrays: :binary`, `error_details: true`: how the result and a
      Python exception come back (docs/conversion.md "Result options", docs/api.md
      "Errors").

  `pool:` is exclusive with `context:`; that combination and unknown options raise
  `ArgumentError`. A `kwargs` that is neither a keyword list nor a map answers
  `{:error, {:badarg, :kwargs}}`, as `:py` does.
  """
  @spec call(name(), name(), list(), kwargs(), keyword()) :: result()
  def call(module, func, args \\ [], kwargs \\ [], opts \\ []) do
    opts = Keyword.validate!(opts, @call_opts)

    case to_map(kwargs) do
      {:ok, kwargs} when is_list(args) -> module |> call_py(func, args, kwargs, opts) |> from_py()
      {:ok, _} -> {:error, {:badarg, :args}}
      :error -> {:error, {:badarg, :kwargs}}
    end
  end

  @doc "Like `call/5`, but answers the value itself and raises `Py.Error` on an error."
  @spec call!(name(), name(), list(), kwargs(), keyword()) :: term()
  def call!(module, func, args \\ [], kwargs \\ [], opts \\ []) do
    module |> call(func, args, kwargs, opts) |> unwrap!()
  end

  @doc """
  Evaluates a Python expression in the caller's namespace, with `locals` (a keyword
  list or a map) as its local variables; answers `{:ok, value}` or `{:error, reason}`.
  `:py.eval/2` (docs/api.md, "eval and exec") says exactly how locals are seen.

  Options: `timeout:`, or `context:` (not both: `:py` has no call for that).

      {:ok, 42} = Py.eval("x * 2", x: 21)
  """
  @spec eval(iodata(), locals(), keyword()) :: result()
  def eval(code, locals \\ [], opts \\ []) do
    opts = Keyword.validate!(opts, [:timeout, :context])

    case to_map(locals) do
      {:ok, locals} -> code |> eval_py(locals, opts) |> from_py()
      :error -> {:error, {:badarg, :locals}}
    end
  end

  @doc "Like `eval/3`, but answers the value itself and raises `Py.Error` on an error."
  @spec eval!(iodata(), locals(), keyword()) :: term()
  def eval!(code, locals \\ [], opts \\ []), do: code |> eval(locals, opts) |> unwrap!()

  @doc """
  Runs Python statements in the caller's namespace (what they define is seen by the same
  process's later calls); answers `:ok` or `{:error, reason}`. Option: `context:`.
  """
  @spec exec(iodata(), keyword()) :: :ok | {:error, term()}
  def exec(code, opts \\ []) do
    case Keyword.validate!(opts, [:context]) do
      [] -> :py.exec(code)
      [context: ctx] -> :py.exec(ctx, code)
    end
  end

  @doc """
  What `module.func(*args, **kwargs)` yields (a sync or async generator, or any
  iterable), as a lazy `Enumerable`: each enumeration starts the generator anew in the
  enumerating process and receives its items as they are produced.

  When the consumer stops early (`Enum.take/2`, `Stream.take_while/2`, an exception in
  the consumer), the generator is closed (its `finally` runs) and the stream's remaining
  messages, its `{:error, :cancelled}` included, are taken out of the mailbox.
  A Python exception in the generator, or an item that takes longer than `timeout:`,
  raises `Py.Error` once the stream is cleaned up.

  Options:

    * `timeout:` the longest wait for each item, in milliseconds or `:infinity`
      (default 30_000);
    * `window:` how many unread items the producer may run ahead (default 1_000; see
      `:py.stream_start/4`).

      [0, 1, 2] = Py.stream(:builtins, :range, [1_000_000]) |> Enum.take(3)
  """
  @spec stream(name(), name(), list(), kwargs(), keyword()) :: Enumerable.t()
  def stream(module, func, args \\ [], kwargs \\ [], opts \\ []) do
    opts = Keyword.validate!(opts, timeout: 30_000, window: 1_000)

    case to_map(kwargs) do
      {:ok, kwargs} ->
        Py.Stream.new(module, func, args, kwargs, opts[:timeout], opts[:window])

      :error ->
        raise ArgumentError, "kwargs must be a keyword list or a map, got: #{inspect(kwargs)}"
    end
  end

  # -- :py calls ------------------------------------------------------------------

  defp call_py(module, func, args, kwargs, opts) do
    case opts do
      [] ->
        :py.call(module, func, args, kwargs)

      [timeout: timeout] ->
        :py.call(module, func, args, kwargs, timeout)

      _ ->
        case {Keyword.pop(opts, :pool), Keyword.has_key?(opts, :context)} do
          {{pool, _}, true} when pool != nil ->
            raise ArgumentError, "pool: and context: exclude each other, got: #{inspect(opts)}"

          {{nil, _}, true} ->
            {ctx, rest} = Keyword.pop(opts, :context)
            :py.call(ctx, module, func, args, Map.put(Map.new(rest), :kwargs, kwargs))

          {{nil, _}, false} ->
            :py.call(module, func, args, kwargs, Map.new(opts))

          {{pool, rest}, false} ->
            :py.call(pool, module, func, args, kwargs, Map.new(rest))
        end
    end
  end

  defp eval_py(code, locals, []), do: :py.eval(code, locals)
  defp eval_py(code, locals, timeout: timeout), do: :py.eval(code, locals, timeout)
  defp eval_py(code, locals, context: ctx), do: :py.eval(ctx, code, locals)

  defp eval_py(_code, _locals, opts) do
    raise ArgumentError, "eval takes timeout: or context:, not both, got: #{inspect(opts)}"
  end

  # -- values ---------------------------------------------------------------------

  defp to_map(map) when is_map(map), do: {:ok, map}

  defp to_map(list) when is_list(list) do
    if Keyword.keyword?(list), do: {:ok, Map.new(list)}, else: :error
  end

  defp to_map(_other), do: :error

  defp from_py({:ok, value}), do: {:ok, Py.Value.from_py(value)}
  defp from_py(other), do: other

  defp unwrap!({:ok, value}), do: value
  defp unwrap!({:error, reason}), do: raise(Py.Error, reason: reason)
end
