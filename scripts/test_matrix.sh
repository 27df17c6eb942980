#!/bin/sh
# Run the Common Test suites on the legs of the test matrix that `make test` does not cover:
#   otp27   Erlang/OTP 27.3 (scripts/ensure_otp27.sh: installed, or built once and cached)
#           with the default CPython (the python3 that built erlang/priv)
#   py3.12  OTP on PATH with pyenv's CPython 3.12 (~/.pyenv/versions/3.12.*)
#   py3.13  OTP on PATH with pyenv's CPython 3.13 (~/.pyenv/versions/3.13.*)
#   subinterp  as py3.12, with the default contexts in sub-interpreters of their own
#           (SUBINTERP_SUITES, below: the suites that run in both kinds of context)
# Usage: test_matrix.sh LEG... (run from the checkout after `make build`; SUITES=a,b runs
# some suites only), or test_matrix.sh build py3.X (only build that leg). Each leg builds into _build/matrix/LEG; what is slow to make and does
# not depend on the checkout (OTP, a venv per interpreter, cargo's build of the NIF per
# interpreter) is cached under $ERLANG_PYTHON_CACHE (default ~/.cache/erlang_python).
# Prints each leg's counts and time, then the total as "N passed, N failed"; exits
# non-zero when a leg failed.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${ERLANG_PYTHON_CACHE:-$HOME/.cache/erlang_python}
export ERLANG_PYTHON_CACHE="$cache"
dev_ebin=$root/erlang/_build/default/lib/erlang_python/ebin

log() { echo "test_matrix: $*" >&2; }

# The newest pyenv build of a minor version, e.g. 3.12 -> ~/.pyenv/versions/3.12.1/bin/python3.12
pyenv_python() {
    pyenv_root=${PYENV_ROOT:-$HOME/.pyenv}
    dir=$(ls -d "$pyenv_root"/versions/"$1".* 2>/dev/null | sort -V | tail -n 1)
    [ -n "$dir" ] && [ -x "$dir/bin/python$1" ] || { log "no CPython $1 under $pyenv_root/versions"; return 1; }
    echo "$dir/bin/python$1"
}

# A venv of the interpreter with the suites' packages, remade when tests/requirements.txt
# or the interpreter itself (its executable's bytes) changes.
ensure_venv() {
    python=$1 venv=$2
    stamp=$(cat "$root/tests/requirements.txt" "$python" 2>/dev/null | cksum | cut -d' ' -f1)
    if [ "$(cat "$venv/.ready" 2>/dev/null)" != "$stamp" ]; then
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/tests/requirements.txt"
        echo "$stamp" > "$venv/.ready"
    fi
}

# Run the suites with the leg's build; its counts go to _build/matrix/LEG/counts.
run_suites() {
    leg=$1 ebin=$2 venv=$3
    out=$root/_build/matrix/$leg/run_ct.out
    ERLANG_PYTHON_EBIN=$ebin ERLANG_PYTHON_VENV=$venv ERLANG_PYTHON_LEG_DIR=$root/_build/matrix/$leg \
        escript "$root/tests/run_ct.escript" "$root" ${SUITES:-} 2>&1 | tee "$out" || true
    grep -E '^[0-9]+ passed, [0-9]+ failed$' "$out" | tail -n 1 > "$root/_build/matrix/$leg/counts"
}

leg_otp27() {
    otp=$(sh "$root/scripts/ensure_otp27.sh")
    PATH=$otp/bin:$PATH
    export PATH
    sh "$root/scripts/ensure_proper.sh" "$otp"
    log "otp27: OTP $(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().') from $otp"
    # rebar3 compiles the application with this OTP (warnings are errors); the compile hook
    # rebuilds the default interpreter's NIF in erlang/priv, which cargo finds up to date.
    (cd "$root/erlang" && REBAR_BASE_DIR=$root/_build/matrix/otp27/rebar rebar3 compile)
    run_suites otp27 "$root/_build/matrix/otp27/rebar/default/lib/erlang_python/ebin" "$root/.venv"
}

# Sets `lib' (the leg's application directory) and `venv' for CPython `minor'.
build_python_leg() {
    leg=$1 minor=$2
    python=$(pyenv_python "$minor")
    version=$("$python" -c 'import platform; print(platform.python_version())')
    log "$leg: CPython $version ($python)"
    venv=$cache/venv-$version
    ensure_venv "$python" "$venv"
    # The application's beams from `make build`, its priv (NIF and shim) built for this
    # interpreter by cargo in a build directory of its own.
    lib=$root/_build/matrix/$leg/lib/erlang_python
    rm -rf "$lib/ebin"
    mkdir -p "$lib"
    cp -r "$dev_ebin" "$lib/ebin"
    PYTHON=$python CARGO_TARGET_DIR=$cache/cargo-target-$version sh "$root/scripts/build_nif.sh" "$lib/priv"
}

leg_python() {
    build_python_leg "$1" "$2"
    run_suites "$1" "$lib/ebin" "$venv"
}

# The suites whose every case must pass in a sub-interpreter context as in a main one:
# the subinterp leg runs them with the default contexts in sub-interpreters of their own.
# Left out, with the cases that differ by design (measured on 3.12.1, docs/api.md):
# py_convert_SUITE, py_values_SUITE, py_ext_SUITE and py_harden_depth_SUITE (numpy,
# ctypes and, on 3.12, _decimal refuse sub-interpreters; the last one's helper imports
# numpy), py_compat_threads_SUITE (erlang.async_call on a loop of the user's own is
# refused there), py_stop_SUITE (module globals end with the context's interpreter),
# py_layout_loop_SUITE (its start-up check breaks asyncio in the caller's interpreter
# only), py_otlp_SUITE (its test receiver runs in a context, on daemon threads, and must
# outlive an application stop), py_readme_SUITE (its cases build the README's dependency
# lines, which the default leg does).
SUBINTERP_SUITES=${SUBINTERP_SUITES:-py_call_SUITE,py_async_SUITE,py_erlang_SUITE,py_errors_SUITE,py_tracing_SUITE,py_compat_a_SUITE,py_compat_eval_SUITE,py_admin_SUITE,py_runtime_SUITE,py_quick_reply_SUITE,py_semaphore_SUITE,py_layout_SUITE,py_layout_erl_SUITE,py_telemetry_SUITE,py_trace_pipeline_SUITE,py_harden_modules_SUITE,py_harden_wedge_SUITE,py_harden_bounds_SUITE}

leg_subinterp() {
    # CPython 3.12, its NIF and venv as on the py3.12 leg; a missing 3.12 fails the leg.
    ERLANG_PYTHON_CONTEXT_MODE=subinterp
    export ERLANG_PYTHON_CONTEXT_MODE
    SUITES=${SUITES:-$SUBINTERP_SUITES}
    leg_python subinterp 3.12
}

[ -d "$dev_ebin" ] || { log "run 'make build' first"; exit 1; }
# `test_matrix.sh build py3.12': only build that leg, and print its ebin and venv
# (`make bench' runs the sub-interpreter benchmarks on them).
if [ "${1:-}" = build ]; then
    case ${2:-} in
        py3.*) build_python_leg "$2" "${2#py}" >&2 ;;
        *) log "build: a Python leg (py3.12, py3.13)"; exit 2 ;;
    esac
    echo "$lib/ebin $venv"
    exit 0
fi
# The README's dependency lines build a new project each, with cargo: minutes that the
# default leg (`make test`) spends once; a leg here would build them the same way (the
# python3 on PATH, rebar3 and mix as they are), so it leaves them out.
ERLANG_PYTHON_SKIP_DEPENDENCY_TESTS="the default leg (make test) builds the README's dependency lines"
export ERLANG_PYTHON_SKIP_DEPENDENCY_TESTS
[ $# -gt 0 ] || set -- otp27 py3.12 py3.13 subinterp
summary=""
total_passed=0
total_failed=0
for leg in "$@"; do
    dir=$root/_build/matrix/$leg
    mkdir -p "$dir"
    rm -f "$dir/counts"
    started=$(date +%s)
    # Each leg in a subshell of its own, so its PATH and variables stay there; errexit
    # holds inside it (it would not on the left of `||`). A leg that fails to set up
    # counts as one failure.
    case $leg in
        otp27 | py3.* | subinterp) ;;
        *) log "unknown leg $leg"; exit 2 ;;
    esac
    set +e
    (
        set -e
        case $leg in
            otp27) leg_otp27 ;;
            py3.*) leg_python "$leg" "${leg#py}" ;;
            subinterp) leg_subinterp ;;
        esac
    )
    set -e
    counts=$(cat "$dir/counts" 2>/dev/null || true)
    [ -n "$counts" ] || counts="0 passed, 1 failed"
    passed=${counts%% passed*}
    failed=${counts#*passed, }
    failed=${failed%% failed*}
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed))
    summary="$summary
  $leg: $counts in $(( $(date +%s) - started )) s"
    # Where each failed case failed (module:function, line), so a log cut short in the
    # middle still shows it here.
    failures=$(grep -E '^[a-z][A-Za-z0-9_]*:[A-Za-z0-9_]+ failed' "$dir/run_ct.out" 2>/dev/null | sort -u | sed 's/^/    /' || true)
    [ -z "$failures" ] || summary="$summary
$failures"
done
echo
echo "test matrix:$summary"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
