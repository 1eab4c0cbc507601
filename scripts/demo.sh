#!/usr/bin/env bash
# make demo: the whole story on two sandbox MariaDB servers (business + DR): switchyardd in front of
# them, the forward instance (precheck, initial sync, incremental), a workload through the proxy with
# the mariadb CLI and sysbench, create-reverse, a switchover under a running sysbench (status before and
# after, the measured pause), a switchback, verify -- then everything it started is stopped, also on
# failure or Ctrl-C.
set -euo pipefail
build=${1:?usage: demo.sh BUILD_DIR}
root=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
work=$(mktemp -d /tmp/sy-demo-XXXXXX)
state="$work/servers.json"
daemon_pid=""

cleanup() {
    set +e
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null
    fi
    "$py" "$root/scripts/sandbox.py" stop --state "$state" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "starting two sandbox MariaDB servers (business, dr)"
"$py" "$root/scripts/sandbox.py" start 2 --state "$state"
read -r bport dport < <("$py" -c 'import json,sys; s=json.load(open(sys.argv[1]))["servers"]; print(s[0]["port"], s[1]["port"])' "$state")
echo "business 127.0.0.1:$bport   dr 127.0.0.1:$dport"

cat > "$work/switchyard.ini" <<INI
[switchyard]
admin_socket = $work/admin.sock
state_dir    = $work/state
log_level    = info

[pair orders]
engine         = mariadb
listen         = 127.0.0.1:0
business       = 127.0.0.1:$bport
dr             = 127.0.0.1:$dport
admin_user     = switchyard
admin_password = sy-admin-pw
objects        = shop.*, sbtest.*
txn_drain_ms   = 2000
max_hold_ms    = 5000
INI
step "starting switchyardd (config: $work/switchyard.ini)"
"$build/switchyardd" -c "$work/switchyard.ini" --foreground 2> "$work/switchyardd.log" &
daemon_pid=$!
ctl() { "$build/switchyardctl" -s "$work/admin.sock" "$@"; }
for _ in $(seq 100); do ctl status >/dev/null 2>&1 && break; sleep 0.1; done
port=$(ctl --json status | "$py" -c 'import json,sys; print(json.load(sys.stdin)["pairs"][0]["listen"].rsplit(":",1)[1])')
echo "applications connect to 127.0.0.1:$port"

step "creating an application account and schema on both sides"
for p in "$bport" "$dport"; do
    mariadb --protocol=TCP -h 127.0.0.1 -P "$p" -u switchyard -psy-admin-pw -e \
        "CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'app-pw'; GRANT ALL ON shop.* TO 'app'@'%';
         GRANT ALL ON sbtest.* TO 'app'@'%'; CREATE DATABASE IF NOT EXISTS shop; CREATE DATABASE IF NOT EXISTS sbtest;"
done

step "mariadb CLI through the proxy"
mysql_app() { mariadb --protocol=TCP -h 127.0.0.1 -P "$port" -u app -papp-pw "$@"; }
mysql_app shop -e "CREATE TABLE IF NOT EXISTS orders (id INT PRIMARY KEY AUTO_INCREMENT, item VARCHAR(40), qty INT);
                   INSERT INTO orders (item, qty) VALUES ('anvil', 1), ('rope', 3), ('rocket skates', 2);
                   START TRANSACTION; UPDATE orders SET qty = qty + 1 WHERE item = 'rope'; COMMIT;
                   SELECT id, item, qty FROM orders ORDER BY id; SELECT CURRENT_USER(), @@last_gtid;"
echo "wrong password, as the server words it:"
mysql_app -pnot-the-password -e "SELECT 1" || true

step "sysbench oltp_read_write through the proxy (8 threads, 10 s)"
sb=(sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="$port" --mysql-user=app
    --mysql-password=app-pw --mysql-db=sbtest --tables=2 --table-size=5000)
"${sb[@]}" prepare | tail -n 2
"${sb[@]}" --threads=8 --time=10 run | sed -n '/SQL statistics/,/Latency/p;/95th/p'

step "forward instance: precheck, initial synchronization, incremental"
ctl precheck orders | head -n 25
for _ in $(seq 600); do
    ctl --json status orders | "$py" -c 'import json,sys; i=json.load(sys.stdin)["pairs"][0]["instances"][0]; sys.exit(0 if i["state"]=="running" and i["write"]["lag_events"]==0 else 1)' && break
    sleep 0.1
done
ctl status orders

step "switchyardctl clients orders (one idle session held open)"
mysql_app -e "SELECT SLEEP(2)" >/dev/null &
sleep 0.5
ctl clients orders
wait $!

step "create-reverse orders (DR -> business: precheck, then collecting, not writing)"
ctl create-reverse orders | tail -n 3
sleep 1

step "switchover under a running sysbench (8 threads, 12 s) -- the clients stay connected"
"${sb[@]}" --threads=8 --time=12 --report-interval=2 run > "$work/sysbench.out" 2>&1 &
sb_pid=$!
sleep 3
echo "-- before:"; ctl status orders | head -n 4
ctl switchover orders
echo "-- after:"; ctl status orders
sleep 3
step "switchback orders (still under load)"
ctl switchback orders
wait "$sb_pid" || true
sed -n '/^\[/p;/SQL statistics/,/Latency/p;/95th/p' "$work/sysbench.out"
echo "(sysbench 'ignored errors' are deadlocks it retries; a lost connection would have stopped it)"

step "verify orders (row counts and chunked checksums on both sides)"
ctl verify orders | tail -n 6

step "switchyardctl status"
ctl status
step "stopping everything the demo started"
