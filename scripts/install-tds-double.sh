#!/bin/sh
# Prepare what the SQL Server double (tests/doubles/, test code only) and its conformance tests need, cached
# outside the repo and keyed by version and source hash, so `make integration` pays once per machine:
#   - a Python venv (Debian's /usr/bin/python3, --system-site-packages so it sees python3-psycopg2) with
#     sqlglot from PyPI: the interpreter that runs tests/doubles/tds_server.py;
#   - sy-go-mssql, the go-mssqldb client of tests/clients/go-mssql (go >= 1.25: /usr/local/go, $SY_GO or PATH).
# Debian packages (postgresql-15, python3-psycopg2, python3-pymssql, python3-tds, freetds-bin) come from
# scripts/install-deps.sh. Nothing is written in the repo.
#
#   scripts/install-tds-double.sh                 build what is missing, print one summary line
#   scripts/install-tds-double.sh --print-paths   the same, then  python=/path  and  go_mssql=/path
#   scripts/install-tds-double.sh --only python   skip the Go client
# Cache root: $SY_TDS_DOUBLE_CACHE (default /var/cache/switchyard/tds-double).
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/scripts/install-tds-double.sh"
CACHE=${SY_TDS_DOUBLE_CACHE:-/var/cache/switchyard/tds-double}
SQLGLOT_VERSION=30.30.0
PRINT=0
ONLY=
while [ $# -gt 0 ]; do
    case "$1" in
        --print-paths) PRINT=1 ;;
        --only) shift; ONLY=${1:-} ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) echo "install-tds-double: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done

say() { printf 'tds-double: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }
hash_of() {
    for f in "$@"; do
        printf '%s\n' "${f#"$ROOT"/}"
        sha256sum <"$f"
    done | sha256sum | cut -c1-16
}

mkdir -p "$CACHE"
[ -w "$CACHE" ] || die "cache dir $CACHE is not writable (set SY_TDS_DOUBLE_CACHE)"
exec 9>"$CACHE/.lock"
flock 9

# --- the double's interpreter -------------------------------------------------------------------------------
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_DIR="$CACHE/venv-py$pyver-sqlglot$SQLGLOT_VERSION-$(hash_of "$SELF")"
PY_STATE=cached
if [ ! -f "$PY_DIR/.complete" ]; then
    /usr/bin/python3 -c 'import psycopg2' 2>/dev/null || die "python3-psycopg2 missing (scripts/install-deps.sh)"
    # a venv records its own path, so it is built in place; .complete (written last, under the lock) marks it usable
    rm -rf "$PY_DIR"
    log=$(mktemp /tmp/sy-tds-double-venv.XXXXXX)
    if ! /usr/bin/python3 -m venv --system-site-packages "$PY_DIR/venv" >"$log" 2>&1 ||
       ! "$PY_DIR/venv/bin/pip" install -q --disable-pip-version-check "sqlglot==$SQLGLOT_VERSION" >>"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$PY_DIR" "$log"
        die "could not build the venv with sqlglot $SQLGLOT_VERSION (PyPI reachable?)"
    fi
    rm -f "$log"
    touch "$PY_DIR/.complete"
    PY_STATE=built
fi
PYTHON="$PY_DIR/venv/bin/python"

# --- the go-mssqldb client ----------------------------------------------------------------------------------
GO_MSSQL=
GO_STATE=skipped
if [ "$ONLY" != python ]; then
    SRC="$ROOT/tests/clients/go-mssql"
    GO=${SY_GO:-}
    [ -n "$GO" ] || { [ -x /usr/local/go/bin/go ] && GO=/usr/local/go/bin/go; } || GO=$(command -v go || true)
    [ -n "$GO" ] || die "no go toolchain (/usr/local/go/bin/go, \$SY_GO or go on PATH) for tests/clients/go-mssql"
    gov=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
    key="$gov-$(hash_of "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go "$SELF")"
    dir="$CACHE/go-mssql-$key"
    GO_MSSQL="$dir/sy-go-mssql"
    GO_STATE=cached
    if [ ! -f "$dir/.complete" ]; then
        tmp=$(mktemp -d "$CACHE/.go.XXXXXX")
        mkdir "$tmp/src"
        cp "$SRC/go.mod" "$SRC/go.sum" "$SRC"/*.go "$tmp/src/"
        if ! (cd "$tmp/src" && GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
                "$GO" build -trimpath -o "$tmp/sy-go-mssql" .) >"$tmp/build.log" 2>&1; then
            cat "$tmp/build.log" >&2
            rm -rf "$tmp"
            die "go build failed on tests/clients/go-mssql (needs go >= 1.25; module proxy reachable?)"
        fi
        rm -rf "$tmp/src" "$tmp/build.log"
        chmod 755 "$tmp"
        touch "$tmp/.complete"
        rm -rf "$dir"
        mv "$tmp" "$dir"
        GO_STATE=built
    fi
fi

say "python $PY_STATE ($PYTHON), go-mssql $GO_STATE${GO_MSSQL:+ ($GO_MSSQL)}"
if [ "$PRINT" = 1 ]; then
    printf 'python=%s\n' "$PYTHON"
    [ -z "$GO_MSSQL" ] || printf 'go_mssql=%s\n' "$GO_MSSQL"
fi
