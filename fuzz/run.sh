#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time (default 60 s each) and prints, per target,
# the seconds it ran, the executions libFuzzer reports and whether it found a crash.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo-fuzz passes nightly-only flags to rustc;
# on a stable toolchain this script sets RUSTC_BOOTSTRAP=1, which lets stable rustc accept them.
# The sanitizer is off by default (SANITIZER=address to turn it on): gradscope and its readers
# are safe Rust, what the fuzzing looks for is panics, hangs and runaway allocations, which
# libFuzzer catches without it (-rss_limit_mb), at about twice the speed.
# Seeds are made here (with the gradscope binary for the safetensors files); the corpus grows
# in a scratch folder, crashes land in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(idx csv config safetensors checkpoint)
sanitizer=${SANITIZER:-none}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# seeds
for t in idx csv config safetensors checkpoint; do mkdir -p "$work/seeds/$t" "$work/corpus/$t"; done
printf '\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03\x01\x02\x03\x04\x05\x06' > "$work/seeds/idx/plain"
gzip -c "$work/seeds/idx/plain" > "$work/seeds/idx/gzipped"
printf '\x00\x00\x08\x01\x00\x00\x00\x02\x07\x09' > "$work/seeds/idx/labels"
printf '\x00a,b,y\n1,2,0.5\n3,4,1.5\n' > "$work/seeds/csv/values"
printf '\x01\xef\xbb\xbfa,y\r\n0.1,0\r\n0.2,2\r\n' > "$work/seeds/csv/classes"
printf 'depth = 3\nwidth = 8\nactivation = "relu"\n' > "$work/seeds/config/short"
printf 'a,b,c,y\n1,2,3,0\n2,3,4,1\n3,4,5,0\n4,5,6,1\n5,6,7,1\n' > "$work/seed.csv"
# (built without RUSTC_BOOTSTRAP, which would change every fingerprint of the main build)
(cd .. && cargo build --release --quiet)
../target/release/gradscope train --data "csv:$work/seed.csv" --target y --test-fraction 0 --loss cross_entropy \
    --depth 1 --width 4 --activation tanh --optimizer adam --steps 2 --checkpoint-every 1 --threads 1 \
    --quiet --no-report --out "$work/run" >/dev/null
cp "$work/run/config.toml" "$work/seeds/config/resolved"
cp "$work/run/weights.safetensors" "$work/seeds/safetensors/weights"
cp "$work/run/checkpoint.safetensors" "$work/seeds/checkpoint/checkpoint"

export RUSTC_BOOTSTRAP=1

for t in "${targets[@]}"; do cargo fuzz build --release --sanitizer "$sanitizer" "$t"; done

status=0
printf '%-12s %8s %12s  %s\n' target seconds executions result
for t in "${targets[@]}"; do
    log="$work/$t.log"
    start=$(date +%s)
    if cargo fuzz run --release --sanitizer "$sanitizer" "$t" "$work/corpus/$t" "$work/seeds/$t" "../tests/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log" 2>&1; then
        result="no crash"
    else
        result="CRASH: see fuzz/artifacts/$t/ and $log"
        status=1
        cp "$log" "artifacts/$t.log" 2>/dev/null || true
    fi
    end=$(date +%s)
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    printf '%-12s %8s %12s  %s\n' "$t" "$((end - start))" "$execs" "$result"
done
exit $status
