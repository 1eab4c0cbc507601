#!/bin/sh
# Oracle's mysql-connector-python (PyPI) in a venv outside the repo, for tests/integration/test_cluster_clients.py
# (`make conformance`). The venv is made by Debian's /usr/bin/python3 with --system-site-packages (pytest and
# PyMySQL stay Debian's) and is keyed by the connector's version and the interpreter's, so a version bump
# installs a new one and the first install is paid once per machine. The tests use its pure-Python protocol
# implementation (use_pure=True); the wheel's C extension is not used.
#
#   scripts/install-mysql-connector-python.sh                 install if missing, print one summary line
#   scripts/install-mysql-connector-python.sh --print-paths   the same, then print  site=/path  version=X
# Cache root: $SY_MYCONN_CACHE (default /var/cache/switchyard/mysql-connector-python).
set -eu

VERSION=26.10.0
PY=/usr/bin/python3
CACHE=${SY_MYCONN_CACHE:-/var/cache/switchyard/mysql-connector-python}
PRINT=0
case "${1:-}" in
    --print-paths) PRINT=1 ;;
    "") ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-mysql-connector-python: unknown argument $1" >&2; exit 2 ;;
esac

say() { printf 'mysql-connector-python: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
mkdir -p "$CACHE" 2>/dev/null || $SUDO mkdir -p "$CACHE"
[ -w "$CACHE" ] || die "cache dir $CACHE is not writable (set SY_MYCONN_CACHE)"
exec 9>"$CACHE/.lock"                  # two suites starting together must not build the same venv
flock 9

pyver=$("$PY" -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
DIR="$CACHE/$VERSION-$pyver"
STATE=cached
if [ ! -f "$DIR/.complete" ]; then
    if ! "$PY" -c 'import ensurepip' >/dev/null 2>&1; then
        say "installing python3-venv (apt)"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv \
            >/dev/null 2>&1 || { $SUDO apt-get update -q >/dev/null 2>&1 || true
            $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-venv \
                >/dev/null; }
    fi
    say "installing mysql-connector-python $VERSION into $DIR/venv"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    log="$DIR/install.log"
    # The venv is built at its final path (its scripts embed it); .complete marks it done.
    if ! "$PY" -m venv --system-site-packages "$DIR/venv" >"$log" 2>&1 ||
       ! "$DIR/venv/bin/pip" install -q --disable-pip-version-check "mysql-connector-python==$VERSION" \
            >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip install mysql-connector-python==$VERSION failed (PyPI reachable? log: $log)"
    fi
    rm -f "$log"
    touch "$DIR/.complete"
    STATE=installed
fi
SITE=$("$DIR/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
got=$("$DIR/venv/bin/python" -c 'import mysql.connector as m; print(m.__version__)')
[ "$got" = "$VERSION" ] || die "the venv imports mysql-connector-python $got, expected $VERSION"
say "$VERSION $STATE ($DIR)"
if [ "$PRINT" = 1 ]; then
    printf 'site=%s\nversion=%s\n' "$SITE" "$VERSION"
fi
