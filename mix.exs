# The repository root as a Mix project, so Elixir projects take erlang_python as a `git:`
# or `path:` dependency without rebar3. The application's Erlang sources and its resource
# file live in erlang/src (built by rebar3 for the Erlang side); the first compiler below
# builds the Rust NIF with cargo into this build's priv directory.
defmodule ErlangPython.MixProject do
  use Mix.Project

  # erlang/src/erlang_python.app.src is the one description of the application.
  {:ok, [{:application, :erlang_python, app_src}]} =
    :file.consult(Path.join(__DIR__, "erlang/src/erlang_python.app.src"))

  @app_src app_src

  def project do
    [
      app: :erlang_python,
      version: to_string(@app_src[:vsn]),
      language: :erlang,
      erlc_paths: ["erlang/src"],
      erlc_options: [:debug_info],
      compilers: [:erlang_python_nif, :erlang, :app],
      deps: []
    ]
  end

  def application do
    Keyword.take(@app_src, [:description, :registered, :mod, :applications, :env])
  end
end

defmodule Mix.Tasks.Compile.ErlangPythonNif do
  @moduledoc "Builds the Rust NIF and the Python shim into the application's priv directory."
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    priv = Path.join(Mix.Project.app_path(), "priv")
    script = Path.join(Path.dirname(Mix.Project.project_file()), "scripts/build_nif.sh")

    case System.cmd("sh", [script, priv], into: IO.stream(:stdio, :line), stderr_to_stdout: true) do
      {_, 0} -> {:ok, []}
      {_, status} -> Mix.raise("building the erlang_python NIF failed (exit status #{status})")
    end
  end
end
