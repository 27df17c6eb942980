#!/bin/sh
# Make sure the Erlang tools the project needs are installed: OTP (erl, erlc, escript),
# rebar3, Common Test, PropEr and Elixir, all from Debian's packages.
set -eu
missing=""
command -v erl >/dev/null 2>&1 || missing="$missing erlang-nox erlang-dev"
command -v rebar3 >/dev/null 2>&1 || missing="$missing rebar3"
command -v ct_run >/dev/null 2>&1 || missing="$missing erlang-common-test"
ls /usr/lib/erlang/lib/proper-*/include/proper.hrl >/dev/null 2>&1 || missing="$missing erlang-proper erlang-proper-dev"
command -v elixir >/dev/null 2>&1 || missing="$missing elixir"
command -v cargo >/dev/null 2>&1 || { echo "cargo (Rust) is required: install it with rustup" >&2; exit 1; }
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "Missing Debian packages:$missing" >&2
    echo "Install them with: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
