defmodule Py.Stream do
  @moduledoc """
  The `Enumerable` behind `Py.stream/5`: a `Stream.resource/3` over
  `:py.stream_start/4`, whose messages `{:py_stream, ref, {:data, v} | :done |
  {:error, reason}}` it receives in the enumerating process.

  Every stream ends with exactly one of `:done` or `{:error, reason}` (a cancelled one
  with `{:error, :cancelled}`), and it comes after the stream's last item. So stopping
  early means: `:py.stream_cancel/1`, then drop this stream's messages up to that end
  message. The wait for it is bounded (`@flush_ms`): a generator whose `finally` blocks
  longer than that leaves its end message to arrive later.
  """

  # How long an early stop waits for the stream's end message after cancelling it.
  @flush_ms 5_000

  @doc false
  @spec new(Py.name(), Py.name(), list(), map(), timeout(), pos_integer()) :: Enumerable.t()
  def new(module, func, args, kwargs, timeout, window) do
    Stream.resource(
      fn -> start(module, func, args, kwargs, window) end,
      fn state -> next(state, timeout) end,
      &stop/1
    )
  end

  # States: {:running, ref} while items may come; {:ended, ref} once its end message
  # was received; {:failed, ref_or_nil, reason} when the consumer must be told.
  defp start(module, func, args, kwargs, window) do
    case :py.stream_start(module, func, args, %{kwargs: kwargs, window: window}) do
      {:ok, ref} -> {:running, ref}
      {:error, reason} -> raise Py.Error, reason: reason
    end
  end

  # Errors are not raised here: Stream.resource would then run `stop/1` on the state
  # from before this message, which cannot know the stream already ended.
  defp next({:running, ref} = state, timeout) do
    receive do
      {:py_stream, ^ref, {:data, value}} -> {[Py.Value.from_py(value)], state}
      {:py_stream, ^ref, :done} -> {:halt, {:ended, ref}}
      {:py_stream, ^ref, {:error, reason}} -> {:halt, {:failed, :ended, reason}}
    after
      timeout -> {:halt, {:failed, {:running, ref}, :timeout}}
    end
  end

  defp next(state, _timeout), do: {:halt, state}

  defp stop({:running, ref}), do: cancel(ref)
  defp stop({:ended, _ref}), do: :ok

  defp stop({:failed, how, reason}) do
    with {:running, ref} <- how, do: cancel(ref)
    raise Py.Error, reason: reason
  end

  defp cancel(ref) do
    :ok = :py.stream_cancel(ref)
    flush(ref)
  end

  defp flush(ref) do
    receive do
      {:py_stream, ^ref, {:data, _}} -> flush(ref)
      {:py_stream, ^ref, _end} -> :ok
    after
      @flush_ms -> :ok
    end
  end
end
