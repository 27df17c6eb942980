# `Py`: the Elixir face of erlang_python. A mix package of its own that depends on the
# repository root (whose mix.exs builds the application and its Rust NIF); it uses only
# the public `:py` API.
defmodule Py.MixProject do
  use Mix.Project

  def project do
    [
      app: :erlang_python_ex,
      version: "0.1.0",
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      deps: [{:erlang_python, path: "../.."}]
    ]
  end

  def application do
    [extra_applications: [:logger]]
  end
end
