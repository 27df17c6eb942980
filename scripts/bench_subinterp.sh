#!/bin/sh
# The sub-interpreter benchmarks (bench/py_bench_subinterp.erl) need CPython 3.12 or newer;
# `make bench' runs its main table on the default python3, then this: the same escript on
# the py3.12 leg's build of the test matrix (scripts/test_matrix.sh), writing
# bench/RESULTS-subinterp.md. No CPython 3.12 under pyenv fails here, loudly.
# Usage: bench_subinterp.sh [run_bench.escript options, e.g. --rounds 9]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(sh "$root/scripts/test_matrix.sh" build py3.12) || {
    echo "bench_subinterp: no CPython 3.12 build: the sub-interpreter benchmarks did not run" >&2
    exit 1
}
ebin=${build% *}
venv=${build#* }
ERLANG_PYTHON_EBIN=$ebin ERLANG_PYTHON_VENV=$venv escript "$root/bench/run_bench.escript" "$root" \
    --only cpu_parallel_contexts,cpu_parallel,cpu_parallel_handles,subinterp_call_p50,subinterp_callers_8 \
    --out bench/RESULTS-subinterp.md "$@"
