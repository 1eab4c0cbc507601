#!/bin/sh
# Install the Debian 12 packages Switchyard needs to build, test and benchmark.
# Idempotent and quick: one dpkg-query; apt is not touched at all when everything is present, and
# `apt-get update` runs only when something is missing. Never starts services (a temporary
# policy-rc.d answers 101 while apt runs). linux-perf is optional: its absence is a warning.
# chromium, chromium-driver and python3-selenium drive the web console in tests/integration/test_console_browser.py;
# prometheus scrapes switchyardd in test_prometheus.py (and brings promtool for contrib/prometheus/alerts.yml).
# Tests run with /usr/bin/python3 (Debian's, which sees python3-pymysql etc.), not a pyenv python3 on PATH.
set -eu

REQUIRED="build-essential cmake pkg-config clang libclang-rt-14-dev libevent-dev libssl-dev libmariadb-dev
libmongoc-dev libbson-dev freetds-dev freetds-bin libinih-dev libjansson-dev mariadb-server mariadb-client
sysbench haproxy python3-pymysql python3-pytest python3-pytest-timeout python3-pytest-xdist python3-pymongo python3-venv zlib1g-dev libdeflate-dev openssl
postgresql-15 python3-psycopg2 python3-pymssql python3-tds etcd-server libsystemd-dev groff-base
chromium chromium-driver python3-selenium prometheus"
OPTIONAL="linux-perf strace"

# Prints the packages of "$@" that are not fully installed.
missing() {
    for p in "$@"; do
        st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
        case "$st" in
            ii*) ;;
            *) printf '%s\n' "$p" ;;
        esac
    done
}

# shellcheck disable=SC2086 # word splitting of the package lists is intended
need=$(missing $REQUIRED | tr '\n' ' ')
# shellcheck disable=SC2086
need_opt=$(missing $OPTIONAL | tr '\n' ' ')
need=${need% }
need_opt=${need_opt% }

if [ -z "$need" ]; then
    # Optional packages alone never trigger apt: a machine without linux-perf stays quick to check.
    echo "deps: all present${need_opt:+ (optional, not installed: $need_opt)}"
    exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deps: missing ($need $need_opt) and not root (no sudo)" >&2
        exit 1
    fi
fi

# Keep package maintainer scripts from starting mariadb/haproxy. An existing policy-rc.d is saved and restored.
POLICY=/usr/sbin/policy-rc.d
SAVED=
restore_policy() {
    if [ -n "$SAVED" ]; then
        $SUDO mv -f "$SAVED" "$POLICY"
    else
        $SUDO rm -f "$POLICY"
    fi
}
if [ -e "$POLICY" ]; then
    SAVED=$($SUDO mktemp /usr/sbin/.policy-rc.d.sy-XXXXXX)
    $SUDO cp -p "$POLICY" "$SAVED"
fi
trap restore_policy EXIT
trap 'exit 130' INT TERM HUP
printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
$SUDO chmod 755 "$POLICY"

export DEBIAN_FRONTEND=noninteractive
APT_OPTS="-y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"
log=$(mktemp /tmp/sy-install-deps.XXXXXX)

if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1; then
    cat "$log" >&2
    echo "deps: apt-get update failed (log above)" >&2
    exit 1
fi
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install $APT_OPTS $need >>"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "deps: apt-get install failed for: $need (full log: $log)" >&2
    exit 1
fi
opt_note=
if [ -n "$need_opt" ]; then
    # shellcheck disable=SC2086
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install $APT_OPTS $need_opt >>"$log" 2>&1; then
        need="${need:+$need }$need_opt"
    else
        opt_note=" (optional, unavailable: $need_opt)"
    fi
fi
rm -f "$log"

# The test suite depends on these imports under Debian's interpreter; say so now rather than mid-suite.
if ! /usr/bin/python3 -c 'import pymysql, pytest, pytest_timeout, xdist' 2>/dev/null; then
    echo "deps: /usr/bin/python3 cannot import pymysql/pytest/pytest_timeout/xdist after install" >&2
    exit 1
fi

echo "deps: installed $need$opt_note"
