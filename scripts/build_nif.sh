#!/bin/sh
# Build the Rust NIF (release profile) and lay it out, with the Python shim and the type
# stubs, in a priv directory: the one given as the first argument, else erlang/priv.
# Runs as the compile pre-hook of erlang/rebar.config (developers), of the root
# rebar.config (rebar3 git dependencies) and from the root mix.exs (mix dependencies).
# PYTHON picks the interpreter to link; CARGO_TARGET_DIR, when set, where cargo builds
# (the test matrix gives each interpreter its own).
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
priv=${1:-$here/erlang/priv}
mkdir -p "$priv"
priv=$(cd "$priv" && pwd)
: "${PYTHON:=python3}"
PYO3_PYTHON=$(command -v "$PYTHON") || { echo "build_nif.sh: no interpreter '$PYTHON'" >&2; exit 1; }
export PYO3_PYTHON
target=${CARGO_TARGET_DIR:-$here/target}
case $target in /*) ;; *) target=$(pwd)/$target ;; esac
# From the checkout, so that cargo reads its .cargo/config.toml (pyo3 flags).
(cd "$here" && cargo build --release --quiet --manifest-path "$here/Cargo.toml" --target-dir "$target")
cp "$target/release/liberlang_python_nif.so" "$priv/py_nif.so.tmp"
mv "$priv/py_nif.so.tmp" "$priv/py_nif.so"
rm -rf "$priv/erlang_shim"
mkdir -p "$priv/erlang_shim"
cp "$here"/python/erlang_shim/*.py "$here"/python/erlang_shim/py.typed "$priv/erlang_shim/"
# Type stubs of the native `erlang` module (PEP 561 stub-only package).
rm -rf "$priv/erlang-stubs"
cp -r "$here/python/erlang-stubs" "$priv/erlang-stubs"
