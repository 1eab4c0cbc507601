#!/bin/sh
# Build the real-client test drivers of tests/clients/ (Java JDBC + HikariCP, Go database/sql, the Node.js
# MongoDB driver) into a cache
# outside the repo, keyed by the toolchain versions and a hash of the client sources, so `make test` pays the
# build once per machine and a source or version change rebuilds by itself. Installs a missing JDK, Maven or
# Go first (apt; Go falls back to a newer toolchain module when Debian's is older than go.mod needs). Nothing
# is written in the repo. Drivers come from Maven Central (~/.m2) and the Go module proxy (module cache), so
# after the first fetch a rebuild works offline. Node's packages come from the npm registry (npm ci from the
# committed package-lock.json; ~/.npm caches them).
#
#   scripts/install-test-clients.sh                 build what is missing, print one summary line
#   scripts/install-test-clients.sh --print-paths   the same, then print  java=/path  go=/path  node=/path
#   scripts/install-test-clients.sh --only java|go|node  one of the three
#   scripts/install-test-clients.sh --only node-mysql2   the Node.js mysql2 driver (make conformance only):
#                                                   prints node-mysql2=/path with --print-paths
# Cache root: $SY_TEST_CLIENTS_CACHE (default /var/cache/switchyard/test-clients). $SY_GO picks a go binary.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SELF="$ROOT/scripts/install-test-clients.sh"   # part of every cache key: a recipe change rebuilds
SRC="$ROOT/tests/clients"
CACHE=${SY_TEST_CLIENTS_CACHE:-/var/cache/switchyard/test-clients}
GO_MIN_MINOR=21                      # go.mod says go 1.21(.0): older go commands cannot even parse it
GO_FALLBACK_TOOLCHAIN=go1.22.12      # fetched as the golang.org/toolchain module when the local go is older
PRINT=0
ONLY=

while [ $# -gt 0 ]; do
    case "$1" in
        --print-paths) PRINT=1 ;;
        --only) shift; ONLY=${1:-} ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "install-test-clients: unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
case "$ONLY" in ""|java|go|node|node-mysql2) ;; *) echo "install-test-clients: --only java|go|node|node-mysql2" >&2; exit 2 ;; esac

say() { printf 'test-clients: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo

# apt_install PKG...: install Debian packages (no recommends); `apt-get update` first only if needed.
apt_install() {
    log=$(mktemp /tmp/sy-test-clients-apt.XXXXXX)
    say "installing $* (apt)"
    if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >"$log" 2>&1
    then
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q >>"$log" 2>&1 || true
        if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" \
                >>"$log" 2>&1; then
            tail -n 30 "$log" >&2
            die "apt-get install $* failed (log: $log)"
        fi
    fi
    rm -f "$log"
}

# hash_of FILE...: one sha256 over the repo-relative names and the contents of the files, so every clone of
# the repo (any path) shares one build.
hash_of() {
    for f in "$@"; do
        printf '%s\n' "${f#"$ROOT"/}"
        sha256sum <"$f"
    done | sha256sum | cut -c1-16
}

# publish TMP DIR: a finished build in TMP becomes the cache entry DIR (complete, readable by all) at once.
publish() {
    chmod 755 "$1"                             # mktemp made it 0700
    touch "$1/.complete"
    rm -rf "$2"
    mv "$1" "$2"
}

mkdir -p "$CACHE" 2>/dev/null || $SUDO mkdir -p "$CACHE"
[ -w "$CACHE" ] || die "cache dir $CACHE is not writable (set SY_TEST_CLIENTS_CACHE)"
# One build at a time per machine: two suites starting together must not race on the same directory.
exec 9>"$CACHE/.lock"
flock 9

# --- Java: Maven fetches the jars (dependency:copy-dependencies only), javac compiles ------------------------
java_client() {
    if ! command -v javac >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then
        apt_install default-jdk-headless maven
    fi
    javac_bin=$(readlink -f "$(command -v javac)")
    java_bin="$(dirname "$javac_bin")/java"
    [ -x "$java_bin" ] || die "no java next to $javac_bin"
    jdk=$("$javac_bin" -version 2>&1 | tr -cd '0-9.' )
    sources=$(find "$SRC/java/src" -name '*.java' | LC_ALL=C sort)
    # shellcheck disable=SC2086 # the source list splits on newlines; paths have no spaces
    key="jdk$jdk-$(hash_of "$SRC/java/pom.xml" $sources "$SELF")"
    dir="$CACHE/java-$key"
    JAVA_PATH="$dir/sy-java-client"
    if [ -f "$dir/.complete" ]; then
        JAVA_STATE="cached"
        return
    fi
    tmp=$(mktemp -d "$CACHE/.java-build.XXXXXX")
    mkdir "$tmp/pom"
    cp "$SRC/java/pom.xml" "$tmp/pom/"         # run Maven outside the repo: it must leave no target/ there
    log="$tmp/build.log"
    # Offline first (every jar already in ~/.m2 after the first fetch), then online.
    if ! (cd "$tmp/pom" && mvn -B -q -o dependency:copy-dependencies -DoutputDirectory="$tmp/lib") >"$log" 2>&1 &&
       ! (cd "$tmp/pom" && mvn -B -q dependency:copy-dependencies -DoutputDirectory="$tmp/lib") >>"$log" 2>&1
    then
        tail -n 40 "$log" >&2
        rm -rf "$tmp"
        die "Maven could not fetch the Java client's jars (Maven Central reachable? ~/.m2 writable?)"
    fi
    # shellcheck disable=SC2086
    if ! "$javac_bin" -Xlint:all -Werror -encoding UTF-8 -d "$tmp/classes" -cp "$tmp/lib/*" $sources >>"$log" 2>&1
    then
        cat "$log" >&2
        rm -rf "$tmp"
        die "javac failed on tests/clients/java"
    fi
    # Light JVM: C1 only and the default CDS archive start the client in well under a second.
    cat >"$tmp/sy-java-client" <<EOF
#!/bin/sh
# Built by scripts/install-test-clients.sh from tests/clients/java ($(ls "$tmp/lib" | tr '\n' ' '))
d=\$(dirname "\$0")
exec "$java_bin" -XX:TieredStopAtLevel=1 -Xshare:auto -XX:+UseSerialGC -Xmx256m \\
    -cp "\$d/classes:\$d/lib/*" switchyard.testclient.Main "\$@"
EOF
    chmod 755 "$tmp/sy-java-client"
    ls "$tmp/lib" >"$tmp/VERSIONS"
    rm -rf "$log" "$tmp/pom"
    publish "$tmp" "$dir"
    JAVA_STATE="built"
}

# --- Go: /usr/local/go, else go on PATH, else Debian's golang-go; older than go.mod allows: a toolchain module
go_minor() { "$1" env GOVERSION 2>/dev/null | sed -n 's/^go1\.\([0-9]*\).*/\1/p'; }

find_go() {
    GO=${SY_GO:-}
    if [ -z "$GO" ]; then
        if [ -x /usr/local/go/bin/go ]; then
            GO=/usr/local/go/bin/go
        elif command -v go >/dev/null 2>&1; then
            GO=$(command -v go)
        else
            apt_install golang-go
            GO=$(command -v go) || die "golang-go installed but no go on PATH"
        fi
    fi
    minor=$(go_minor "$GO")
    [ -n "$minor" ] || die "cannot tell the version of $GO"
    if [ "$minor" -lt "$GO_MIN_MINOR" ]; then
        GO_TC="$CACHE/toolchain-$GO_FALLBACK_TOOLCHAIN"
        if [ ! -f "$GO_TC/.complete" ]; then
            # The same module the go command itself downloads for GOTOOLCHAIN=auto (Go >= 1.21).
            mod="golang.org/toolchain@v0.0.1-$GO_FALLBACK_TOOLCHAIN.linux-$(dpkg --print-architecture)"
            say "$GO is $("$GO" env GOVERSION), go.mod needs go1.$GO_MIN_MINOR: fetching $mod"
            tdir=$(cd /tmp && GOFLAGS=-mod=mod "$GO" mod download -json "$mod" |
                   sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
            [ -n "$tdir" ] && [ -f "$tdir/bin/go" ] || die "could not fetch $mod through the Go module proxy"
            # Module zips carry no exec bits: copy the toolchain into the cache and mark its programs executable.
            rm -rf "$GO_TC"
            cp -r "$tdir" "$GO_TC"
            chmod -R u+w "$GO_TC"
            find "$GO_TC/bin" "$GO_TC/pkg/tool" -type f -exec chmod 755 {} +
            touch "$GO_TC/.complete"
        fi
        GO="$GO_TC/bin/go"
    fi
}

go_client() {
    find_go
    gov=$(GOTOOLCHAIN=local "$GO" env GOVERSION)
    drv=$(sed -n 's/^require github.com\/go-sql-driver\/mysql \(v[^ ]*\).*/\1/p' "$SRC/go/go.mod")
    key="$gov-mysql${drv:-unknown}-$(hash_of "$SRC/go/go.mod" "$SRC/go/go.sum" "$SRC"/go/*.go "$SELF")"
    dir="$CACHE/go-$key"
    GO_PATH="$dir/sy-go-client"
    if [ -f "$dir/.complete" ]; then
        GO_STATE="cached"
        return
    fi
    tmp=$(mktemp -d "$CACHE/.go-build.XXXXXX")
    log="$tmp/build.log"
    mkdir "$tmp/src"
    cp "$SRC/go/go.mod" "$SRC/go/go.sum" "$SRC"/go/*.go "$tmp/src/"   # -mod=mod may touch go.mod: not in the repo
    # GOTOOLCHAIN=local: build with the go chosen above, never a silent toolchain switch.
    if ! (cd "$tmp/src" && GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 \
            "$GO" build -trimpath -o "$tmp/sy-go-client" .) >"$log" 2>&1; then
        cat "$log" >&2
        rm -rf "$tmp"
        die "go build failed on tests/clients/go (module proxy reachable? module cache writable?)"
    fi
    printf '%s\ngithub.com/go-sql-driver/mysql %s\n' "$gov" "$drv" >"$tmp/VERSIONS"
    rm -rf "$log" "$tmp/src"
    publish "$tmp" "$dir"
    GO_STATE="built"
}

# --- Node.js clients: a driver by npm ci from the committed lock file; Debian's nodejs + npm if missing --------
# node_build DIR PACKAGE SCRIPT LAUNCHER: tests/clients/DIR (its package.json pins PACKAGE) into the cache; the
# launcher's path in NODE_BUILT, "built" or "cached" in NODE_BUILT_STATE.
node_build() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    node_bin=$(readlink -f "$(command -v node)")
    nodev=$("$node_bin" --version)
    nsrc="$SRC/$1"
    drv=$(sed -n 's/^[[:space:]]*"'"$2"'": "\([^"]*\)".*/\1/p' "$nsrc/package.json")
    key="$nodev-$2${drv:-unknown}-$(hash_of "$nsrc/package.json" "$nsrc/package-lock.json" "$nsrc/$3" "$SELF")"
    dir="$CACHE/node-$key"
    NODE_BUILT="$dir/$4"
    if [ -f "$dir/.complete" ]; then
        NODE_BUILT_STATE="cached"
        return
    fi
    tmp=$(mktemp -d "$CACHE/.node-build.XXXXXX")
    log="$tmp/build.log"
    cp "$nsrc/package.json" "$nsrc/package-lock.json" "$nsrc/$3" "$tmp/"
    # Offline first (every package already in ~/.npm after the first fetch), then online.
    if ! (cd "$tmp" && npm ci --offline --no-audit --no-fund --omit=dev) >"$log" 2>&1 &&
       ! (cd "$tmp" && npm ci --no-audit --no-fund --omit=dev) >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        rm -rf "$tmp"
        die "npm ci failed on tests/clients/$1 (npm registry reachable? ~/.npm writable?)"
    fi
    cat >"$tmp/$4" <<EOF
#!/bin/sh
# Built by scripts/install-test-clients.sh from tests/clients/$1 (node $nodev, $2 $drv)
exec "$node_bin" "\$(dirname "\$0")/$3" "\$@"
EOF
    chmod 755 "$tmp/$4"
    printf 'node %s\n%s %s\n' "$nodev" "$2" "$drv" >"$tmp/VERSIONS"
    rm -f "$log"
    publish "$tmp" "$dir"
    NODE_BUILT_STATE="built"
}

node_client() {
    node_build node-mongo mongodb sy_node_mongo.js sy-node-mongo
    NODE_CLIENT=$NODE_BUILT
    NODE_STATE=$NODE_BUILT_STATE
}

JAVA_STATE=skipped
GO_STATE=skipped
NODE_STATE=skipped
JAVA_PATH=
GO_PATH=
NODE_CLIENT=
if [ -z "$ONLY" ] || [ "$ONLY" = java ]; then java_client; fi
if [ -z "$ONLY" ] || [ "$ONLY" = go ]; then go_client; fi
if [ -z "$ONLY" ] || [ "$ONLY" = node ]; then node_client; fi
if [ "$ONLY" = node-mysql2 ]; then
    node_build node-mysql2 mysql2 sy_node_mysql2.js sy-node-mysql2
    say "node-mysql2 $NODE_BUILT_STATE ($NODE_BUILT)"
    [ "$PRINT" = 0 ] || printf 'node-mysql2=%s\n' "$NODE_BUILT"
    exit 0
fi
say "java $JAVA_STATE${JAVA_PATH:+ ($JAVA_PATH)}, go $GO_STATE${GO_PATH:+ ($GO_PATH)}," \
    "node $NODE_STATE${NODE_CLIENT:+ ($NODE_CLIENT)}"
if [ "$PRINT" = 1 ]; then
    [ -z "$JAVA_PATH" ] || printf 'java=%s\n' "$JAVA_PATH"
    [ -z "$GO_PATH" ] || printf 'go=%s\n' "$GO_PATH"
    [ -z "$NODE_CLIENT" ] || printf 'node=%s\n' "$NODE_CLIENT"
fi
