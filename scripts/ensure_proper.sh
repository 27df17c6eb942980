#!/bin/sh
# Make PropEr part of an OTP installation that lacks it, so the suites' include_lib of
# proper/include/proper.hrl and their properties work on that OTP: Debian trixie's
# erlang-proper source (scripts/trixie_source.sh), compiled by that OTP's own erlc into
# OTP_ROOT/lib/proper-VSN (with OTP 27 from scripts/ensure_otp27.sh, that is the cache).
# Usage: ensure_proper.sh OTP_ROOT
set -eu
otp=$1
here=$(cd "$(dirname "$0")" && pwd)
log() { echo "ensure_proper: $*" >&2; }
has_proper() {
    "$otp/bin/erl" -noshell -eval \
        'case code:lib_dir(proper) of {error, _} -> halt(1); _ -> halt(0) end.' 2>/dev/null
}
has_proper && exit 0
tarball=$(sh "$here/trixie_source.sh" erlang-proper)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$tarball" -C "$work"
src=$(ls -d "$work"/proper-*)
vsn=${src##*/proper-}
lib=$otp/lib/proper-$vsn
log "compiling PropEr $vsn into $lib"
rm -rf "$lib"
mkdir -p "$lib/ebin"
cp -r "$src/include" "$lib/include"
# vararg is a parse transform the other modules use, so it comes first; proper_target is
# a behaviour that proper_sa implements, so it comes before that one.
"$otp/bin/erlc" -o "$lib/ebin" -I "$lib/include" +debug_info "$src/src/vararg.erl"
"$otp/bin/erlc" -o "$lib/ebin" -I "$lib/include" -pa "$lib/ebin" +debug_info "$src/src/proper_target.erl"
"$otp/bin/erlc" -o "$lib/ebin" -I "$lib/include" -pa "$lib/ebin" +debug_info "$src"/src/*.erl
"$otp/bin/erl" -noshell -eval "
    {ok, [{application, proper, Props}]} = file:consult(\"$src/src/proper.app.src\"),
    Mods = [list_to_atom(filename:basename(F, \".beam\")) || F <- filelib:wildcard(\"$lib/ebin/*.beam\")],
    App = {application, proper, [{modules, Mods} | proplists:delete(modules, Props)]},
    ok = file:write_file(\"$lib/ebin/proper.app\", io_lib:format(\"~p.~n\", [App])),
    halt()."
has_proper || { log "PropEr is still not found by $otp/bin/erl"; exit 1; }
