defmodule Py.Error do
  @moduledoc """
  Raised by the functions of `Py` that cannot answer an `{:error, reason}` tuple: the
  bang functions (`Py.call!/5`, `Py.eval!/3`) and an enumerated `Py.stream/5`.

  `reason` is exactly the reason `:py` answered: `{class, message}` for a Python
  exception (`{:ValueError, ~c"bad"}`), `:timeout`, `{:overloaded, queued, max}`, ...
  """
  defexception [:reason]

  @impl true
  def message(%__MODULE__{reason: {class, message}})
      when (is_atom(class) or is_binary(class)) and (is_list(message) or is_binary(message)) do
    case :unicode.characters_to_binary(message) do
      text when is_binary(text) -> "#{class}: #{text}"
      _ -> "#{class}: #{inspect(message)}"
    end
  end

  def message(%__MODULE__{reason: reason}), do: "Python call failed: #{inspect(reason)}"
end
