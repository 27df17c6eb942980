# erlang_python: `make test`, `make demo` and `make bench` set up everything they need
# on a fresh Debian machine (Erlang from apt when missing, the Rust NIF, a Python venv).

PYTHON ?= python3
VENV   := $(CURDIR)/.venv
EBIN   := erlang/_build/default/lib/erlang_python/ebin
export PYTHON

.PHONY: all build deps erlang-tools python-venv test rust-test elixir-test lint test-all test-matrix demo bench bench-subinterp clean

all: build

erlang-tools:
	@sh scripts/ensure_erlang.sh

# Python packages the tests and the demo use, in a venv of the chosen interpreter.
python-venv: $(VENV)/.ready
$(VENV)/.ready: tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

deps: erlang-tools python-venv

build: erlang-tools
	cd erlang && rebar3 compile

# SUITES=name1,name2 runs some suites only. The benchmarks run first in --quick mode
# (tiny counts, every result checked) so they never rot; the suites' summary comes last.
test: deps build lint rust-test elixir-test
	escript bench/run_bench.escript $(CURDIR) --quick
	escript tests/run_ct.escript $(CURDIR) $(SUITES)

# The Rust unit tests (those that need no BEAM: see Cargo.toml's workspace).
rust-test:
	PYO3_PYTHON=$$(command -v $(PYTHON)) cargo test --release

# The ExUnit tests of the Elixir package `Py` (elixir/py), which builds erlang_python as
# its mix path dependency (the NIF from the same cargo target directory, so no rebuild).
# Its Python helpers need the standard library only, so not the venv.
elixir-test: erlang-tools
	cd elixir/py && mix deps.get && mix test

# Clippy with warnings as errors (every `unsafe` documented, see Cargo.toml), and no
# cycle between the crate's modules (docs/runtime.md, "Module map").
lint:
	PYO3_PYTHON=$$(command -v $(PYTHON)) cargo clippy --release --all-targets --quiet -- -D warnings
	$(PYTHON) scripts/module_cycles.py src > /dev/null || $(PYTHON) scripts/module_cycles.py src

# The whole test matrix (README, "Requirements"): `make test` (OTP from apt, the default
# CPython), then the suites on OTP 27.3 and on CPython 3.12 and 3.13 (scripts/test_matrix.sh;
# LEGS="otp27 py3.13" runs some legs only). CI runs this.
test-all: test test-matrix

test-matrix: deps build
	sh scripts/test_matrix.sh $(LEGS)

demo: deps build
	escript examples/demo.escript $(CURDIR)
	escript examples/token_stream.escript $(CURDIR)
	escript examples/trace_demo.escript $(CURDIR)

# The main table on the default python3 (bench/RESULTS.md), then the sub-interpreter
# scenarios on CPython 3.12 (bench/RESULTS-subinterp.md, scripts/bench_subinterp.sh).
bench: deps build
	escript bench/run_bench.escript $(CURDIR) $(BENCH_ARGS)
	sh scripts/bench_subinterp.sh

bench-subinterp: deps build
	sh scripts/bench_subinterp.sh $(BENCH_ARGS)

# Leaves the OTP 27 build, venvs and cargo builds cached in ~/.cache/erlang_python.
clean:
	rm -rf target erlang/_build erlang/priv _build priv
