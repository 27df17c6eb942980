#!/bin/sh
# Build the Rust NIF (release profile) and lay it out in erlang/priv with the Python shim.
# Runs from erlang/ as a rebar3 pre-compile hook. PYTHON picks the interpreter to link.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
: "${PYTHON:=python3}"
PYO3_PYTHON=$(command -v "$PYTHON")
export PYO3_PYTHON
cargo build --release --quiet --manifest-path "$here/Cargo.toml"
mkdir -p "$here/erlang/priv"
cp "$here/target/release/liberlang_python_nif.so" "$here/erlang/priv/py_nif.so.tmp"
mv "$here/erlang/priv/py_nif.so.tmp" "$here/erlang/priv/py_nif.so"
rm -rf "$here/erlang/priv/erlang_shim"
mkdir -p "$here/erlang/priv/erlang_shim"
cp "$here"/python/erlang_shim/*.py "$here"/python/erlang_shim/py.typed "$here/erlang/priv/erlang_shim/"
# Type stubs of the native `erlang` module (PEP 561 stub-only package).
rm -rf "$here/erlang/priv/erlang-stubs"
cp -r "$here/python/erlang-stubs" "$here/erlang/priv/erlang-stubs"
