defmodule PyDocsTest do
  @moduledoc """
  Runs every ```elixir block of docs/*.md, and those of the README's section on this
  package, exactly as written: each in a fresh process (a namespace of its own), where
  its pattern matches are the assertions.
  """
  # One block at a time: tracing is VM-wide, and a block that reads get_traces/0 must not
  # see the request spans of another block running meanwhile.
  use ExUnit.Case, async: false

  @root Path.expand("../../..", __DIR__)
  @files Path.wildcard(Path.join(@root, "docs/*.md")) ++ [Path.join(@root, "README.md")]
  for file <- @files, do: @external_resource(file)

  # The README's other Elixir blocks (dependency lines, the :py quick start that
  # tests/py_readme_SUITE.erl runs) are not code for this package.
  only_ours = fn file, text ->
    if Path.basename(file) == "README.md" do
      [_, section] = String.split(text, "## Elixir: the `Py` package\n", parts: 2)
      section |> String.split("\n## ", parts: 2) |> hd()
    else
      text
    end
  end

  blocks =
    for file <- @files,
        text = only_ours.(file, File.read!(file)),
        {[code], n} <-
          Enum.with_index(
            Regex.scan(~r/^```elixir\n(.*?)^```$/ms, text, capture: :all_but_first),
            1
          ) do
      {Path.relative_to(file, @root), n, code}
    end

  test "there are blocks to run" do
    assert length(unquote(Macro.escape(blocks))) >= 14
  end

  for {file, n, code} <- blocks do
    test "#{file}, Elixir block #{n}" do
      task = Task.async(fn -> Code.eval_string(unquote(code), [], file: unquote(file)) end)
      assert {_value, _binding} = Task.await(task, 30_000)
    end
  end
end
