#!/bin/sh
# Print the path of Debian trixie's upstream (orig) tarball of a source package, fetched
# once through apt's deb-src into $ERLANG_PYTHON_CACHE/src (default ~/.cache/erlang_python).
# Usage: trixie_source.sh SOURCE_PACKAGE
#
# The mirror is the one this machine's apt sources already use; the trixie deb-src entry
# lives in a private apt directory in the cache, so the system's apt setup is untouched.
# Progress goes to stderr.
set -eu
package=$1
cache=${ERLANG_PYTHON_CACHE:-$HOME/.cache/erlang_python}
aptdir=$cache/apt-trixie
srcdir=$cache/src
log() { echo "trixie_source: $*" >&2; }

find_tarball() {
    ls "$srcdir/${package}_"*.orig.tar.* 2>/dev/null | grep -v '\.asc$' | tail -n 1
}

tarball=$(find_tarball)
if [ -z "$tarball" ]; then
    mkdir -p "$aptdir/lists/partial" "$aptdir/archives/partial" "$srcdir"
    # The Debian mirror of this machine (deb822 or one-line sources), not its security one.
    mirror=$(
        { cat /etc/apt/sources.list.d/*.sources 2>/dev/null
          sed -n 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]*\)[[:space:]]\+\([^[:space:]]*\).*/URIs: \2\nSuites: \3\n/p' \
              /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null
        } | awk '
            /^URIs:/   { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/ && uri ~ /\/debian\/?$/) { print uri; exit } }
        '
    )
    [ -n "$mirror" ] || { log "no Debian mirror in /etc/apt/sources*"; exit 1; }
    echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
        > "$aptdir/sources.list"
    set -- -qq -o "Dir::Etc::SourceList=$aptdir/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o "Dir::State::Lists=$aptdir/lists" -o "Dir::Cache=$aptdir" -o APT::Sandbox::User=root
    # A day-old index is fine; a missing one is fetched.
    if [ -z "$(find "$aptdir/lists" -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
        log "updating trixie's source index from $mirror"
        apt-get "$@" update >&2
    fi
    log "fetching $package's source from trixie"
    # Only the upstream tarball is needed (apt checks it against the signed Sources index);
    # a mirror missing the .dsc or Debian tarball of a point release is no failure.
    (cd "$srcdir" && apt-get "$@" --tar-only source --download-only "$package" >&2) || true
    rm -f "$srcdir/${package}_"*.debian.tar.* "$srcdir/${package}_"*.dsc
    tarball=$(find_tarball)
    [ -n "$tarball" ] || { log "could not fetch $package's source from trixie"; exit 1; }
fi
echo "$tarball"
