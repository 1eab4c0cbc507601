#!/bin/sh
# Prepare what the MongoDB tests need, cached outside the repo and keyed by version, quick when cached:
#   - FerretDB (the one MongoDB-protocol server that runs here: ../shared/FINDINGS.md), built from its Go module
#     source. A plain `go install ...@VERSION` binary panics at start ("Invalid build/version/version.txt file
#     content") because the module zip ships that file empty, so: `go mod download` the module, copy it, write
#     the version into build/version/version.txt, `go build -trimpath ./cmd/ferretdb`.
#     -> $CACHE/ferretdb/$FERRETDB_VERSION/ferretdb   (~90 s cold on 2 cores, ~1 GB of Go module + build cache)
#   - pymongo 4.x (OP_MSG handshake) from PyPI in a venv made by Debian's python with --system-site-packages.
#     -> $CACHE/pymongo/$PYMONGO_VERSION-pyX.Y/venv
#   Debian's python3-pymongo 3.11 (legacy OP_QUERY isMaster handshake) comes from scripts/install-deps.sh.
#
# The two pymongos cannot share one interpreter (both are the package `pymongo`). The pytest process
# (/usr/bin/python3) imports pymongo 4: scripts/sandbox.py puts this venv's site-packages first on sys.path
# (same interpreter, so its C extensions load). pymongo 3.11 runs in a child `/usr/bin/python3 -s` (Debian's
# dist-packages only); tests hand it a small script and read JSON back (scripts/sandbox.py: run_pymongo3).
#
#   scripts/install-ferretdb.sh                 build/install what is missing, print one summary line
#   scripts/install-ferretdb.sh --print-paths   the same, then print  ferretdb=/path  and  pymongo4_site=/path
# Cache root: $SY_MONGO_CACHE (default /var/cache/switchyard). $SY_GO picks a go binary.
set -eu

FERRETDB_VERSION=v1.24.2
PYMONGO_VERSION=4.10.1
CACHE=${SY_MONGO_CACHE:-/var/cache/switchyard}
PY=/usr/bin/python3
PRINT=0

while [ $# -gt 0 ]; do
    case "$1" in
        --print-paths) PRINT=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "install-ferretdb: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'ferretdb: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

mkdir -p "$CACHE/ferretdb" "$CACHE/pymongo"
exec 9>"$CACHE/ferretdb/.lock"       # one build at a time per machine
flock 9

# --- FerretDB ------------------------------------------------------------------------------------------------
FDIR="$CACHE/ferretdb/$FERRETDB_VERSION"
FERRETDB="$FDIR/ferretdb"
if [ -f "$FDIR/.complete" ] && [ -x "$FERRETDB" ]; then
    F_STATE=cached
else
    GO=${SY_GO:-}
    if [ -z "$GO" ]; then
        if [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go
        elif command -v go >/dev/null 2>&1; then GO=$(command -v go)
        else die "no go toolchain (/usr/local/go/bin/go or go on PATH; set SY_GO)"; fi
    fi
    say "building FerretDB $FERRETDB_VERSION with $("$GO" env GOVERSION) (about 90 s the first time)"
    t0=$(date +%s)
    tmp=$(mktemp -d "$CACHE/ferretdb/.build.XXXXXX")
    log="$tmp/build.log"
    src=$(cd /tmp && GOFLAGS=-mod=mod "$GO" mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" \
          2>"$log" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    if [ -z "$src" ] || [ ! -d "$src/cmd/ferretdb" ]; then
        cat "$log" >&2
        rm -rf "$tmp"
        die "go mod download github.com/FerretDB/FerretDB@$FERRETDB_VERSION failed (module proxy reachable?)"
    fi
    cp -r "$src" "$tmp/src"            # the module cache is read-only
    chmod -R u+w "$tmp/src"
    printf '%s\n' "$FERRETDB_VERSION" >"$tmp/src/build/version/version.txt"
    if ! (cd "$tmp/src" && GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
            "$GO" build -trimpath -o "$tmp/ferretdb" ./cmd/ferretdb) >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -rf "$tmp"
        die "go build of FerretDB $FERRETDB_VERSION failed"
    fi
    "$tmp/ferretdb" --version >"$tmp/VERSION" 2>&1 || { cat "$tmp/VERSION" >&2; rm -rf "$tmp"; \
        die "the built ferretdb does not run"; }
    grep -q "$FERRETDB_VERSION" "$tmp/VERSION" || { cat "$tmp/VERSION" >&2; rm -rf "$tmp"; \
        die "the built ferretdb does not report $FERRETDB_VERSION"; }
    rm -rf "$tmp/src" "$log"
    chmod 755 "$tmp"
    touch "$tmp/.complete"
    rm -rf "$FDIR"
    mv "$tmp" "$FDIR"
    F_STATE="built in $(( $(date +%s) - t0 )) s"
fi

# --- pymongo 4 in a venv ----------------------------------------------------------------------------------------
pyver=$("$PY" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
PDIR="$CACHE/pymongo/$PYMONGO_VERSION-$pyver"
if [ -f "$PDIR/.complete" ]; then
    P_STATE=cached
else
    say "installing pymongo $PYMONGO_VERSION into $PDIR/venv"
    tmp=$(mktemp -d "$CACHE/pymongo/.venv.XXXXXX")
    # The venv is built at its final path (venv scripts embed it); .complete marks it done.
    rm -rf "$PDIR"
    if ! "$PY" -m venv --system-site-packages "$PDIR/venv" >"$tmp/log" 2>&1 ||
       ! "$PDIR/venv/bin/pip" install -q --disable-pip-version-check "pymongo==$PYMONGO_VERSION" >>"$tmp/log" 2>&1
    then
        cat "$tmp/log" >&2
        rm -rf "$tmp" "$PDIR"
        die "pip install pymongo==$PYMONGO_VERSION failed (PyPI reachable? python3-venv installed?)"
    fi
    rm -rf "$tmp"
    touch "$PDIR/.complete"
    P_STATE=installed
fi
SITE=$("$PDIR/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
got=$("$PDIR/venv/bin/python" -c 'import pymongo; print(pymongo.version)')
[ "$got" = "$PYMONGO_VERSION" ] || die "venv imports pymongo $got, expected $PYMONGO_VERSION"
old=$("$PY" -s -c 'import pymongo; print(pymongo.version)' 2>/dev/null || echo none)
case "$old" in 3.*) ;; *) die "$PY -s imports pymongo '$old', expected Debian's 3.x (scripts/install-deps.sh)" ;; esac

say "FerretDB $FERRETDB_VERSION $F_STATE ($FERRETDB), pymongo $PYMONGO_VERSION $P_STATE, Debian pymongo $old"
if [ "$PRINT" = 1 ]; then
    printf 'ferretdb=%s\npymongo4_site=%s\n' "$FERRETDB" "$SITE"
fi
