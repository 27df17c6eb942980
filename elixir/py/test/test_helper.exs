# mix starts erlang_python (a dependency) before this file runs; config/config.exs puts
# test/support on its python_path.
ExUnit.start()
