#!/bin/sh
# Print the root of an Erlang/OTP 27 installation, building one when none is at hand.
#
# Order: $OTP27_ROOT if set; then an `erl` on PATH that is OTP 27; then the build cached
# under $ERLANG_PYTHON_CACHE (default ~/.cache/erlang_python); else build OTP 27.3 from
# Debian trixie's source package (scripts/trixie_source.sh) into that cache (configure +
# make: ~7 minutes on 2 cores), so later runs on the same machine reuse it.
#
# The +dfsg tarball lacks common_test's jQuery files; Debian's libjs-jquery and
# libjs-jquery-tablesorter provide them (installed here when missing, as root).
# Everything but the final path goes to stderr.
set -eu
cache=${ERLANG_PYTHON_CACHE:-$HOME/.cache/erlang_python}
want=27

otp_release() {
    "$1/bin/erl" -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null || true
}

if [ -n "${OTP27_ROOT:-}" ]; then
    [ "$(otp_release "$OTP27_ROOT")" = "$want" ] || { echo "OTP27_ROOT=$OTP27_ROOT is not OTP $want" >&2; exit 1; }
    echo "$OTP27_ROOT"; exit 0
fi
if command -v erl >/dev/null 2>&1; then
    root=$(erl -noshell -eval 'io:put_chars(code:root_dir()), halt().' 2>/dev/null || true)
    if [ -n "$root" ] && [ "$(otp_release "$root")" = "$want" ]; then echo "$root"; exit 0; fi
fi
prefix=$cache/otp-$want
if [ -x "$prefix/bin/erl" ] && [ "$(otp_release "$prefix/lib/erlang")" = "$want" ]; then
    echo "$prefix/lib/erlang"; exit 0
fi

log() { echo "ensure_otp27: $*" >&2; }
mkdir -p "$cache"

tarball=$(sh "$(dirname "$0")/trixie_source.sh" erlang)
version=$(basename "$tarball" | sed 's/^erlang_\(.*\)\.orig\.tar\.xz$/\1/')
log "building OTP $version into $prefix (about 7 minutes on 2 cores)"

# --- build dependencies and the jQuery files common_test's logs need ---------------------
# crypto/ssl (rebar3 needs them) and the shell's terminal support are built from these.
missing=""
for pkg in libssl-dev libncurses-dev libjs-jquery libjs-jquery-tablesorter; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" -eq 0 ] || { log "install these Debian packages first:$missing"; exit 1; }
    log "installing:$missing"
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2; }
fi
jquery=/usr/share/javascript/jquery/jquery.min.js
tablesorter=/usr/share/javascript/jquery-tablesorter/jquery.tablesorter.min.js

# --- configure, make, install --------------------------------------------------------------
build=$cache/build-otp-$want
rm -rf "$build" "$prefix"
mkdir -p "$build"
tar -xJf "$tarball" -C "$build" --strip-components=1
cp "$jquery" "$build/lib/common_test/priv/jquery-latest.js"
cp "$tablesorter" "$build/lib/common_test/priv/jquery.tablesorter.min.js"
(
    cd "$build"
    # Only what the project and its tests use: no GUI, docs, Java or ODBC.
    ./configure --prefix="$prefix" --without-javac --without-odbc --without-wx \
        --without-debugger --without-observer --without-et --without-megaco \
        --without-jinterface --disable-dynamic-ssl-lib >"$build/configure.log" 2>&1 \
        || { tail -n 30 "$build/configure.log" >&2; exit 1; }
    make -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -n 40 "$build/make.log" >&2; exit 1; }
    make install >"$build/install.log" 2>&1 || { tail -n 20 "$build/install.log" >&2; exit 1; }
)
rm -rf "$build"
[ "$(otp_release "$prefix/lib/erlang")" = "$want" ] || { log "the build did not give OTP $want"; exit 1; }
log "OTP $version installed in $prefix"
echo "$prefix/lib/erlang"
