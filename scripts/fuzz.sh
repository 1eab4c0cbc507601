#!/usr/bin/env bash
# Runs every libFuzzer target in BUILD: `short` = replay the committed corpus, then a fixed number
# of runs with a fixed seed (deterministic, part of make test); `long` = 10 minutes each, new
# inputs kept in fuzz/corpus/<target>/.
set -euo pipefail
build=${1:?usage: fuzz.sh BUILD short|long}
mode=${2:-short}
root=$(cd "$(dirname "$0")/.." && pwd)
status=0
shopt -s nullglob
targets=("$build"/fuzz_*)
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $build"; exit 1; }
for bin in "${targets[@]}"; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    corpus="$root/fuzz/corpus/$name"
    mkdir -p "$corpus" "$root/fuzz/artifacts"
    if [ "$mode" = short ]; then
        scratch=$(mktemp -d)
        if "$bin" -seed=1 -runs=200000 -artifact_prefix="$root/fuzz/artifacts/$name-" "$scratch" "$corpus" \
            >"$scratch.log" 2>&1; then
            echo "fuzz: $name ok ($(grep -o 'Done [0-9]* runs' "$scratch.log" || echo done))"
        else
            echo "fuzz: $name FAILED"; tail -40 "$scratch.log"; status=1
        fi
        rm -rf "$scratch" "$scratch.log"
    else
        "$bin" -max_total_time=600 -artifact_prefix="$root/fuzz/artifacts/$name-" "$corpus" || status=1
    fi
done
exit $status
