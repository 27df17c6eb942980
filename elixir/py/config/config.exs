import Config

# The tests' Python helpers (test/support/*.py) are importable by module name. The
# application reads `python_path` when it starts, which mix does before test_helper.exs.
if config_env() == :test do
  config :erlang_python, python_path: [Path.expand("../test/support", __DIR__)]
end

# Failed calls log their traceback at debug level: the tests fail calls on purpose.
if config_env() == :test do
  config :logger, level: :info
end
