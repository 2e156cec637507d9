#!/usr/bin/env bash
# probe_cost.sh CONFIG THREADS STEPS ROUNDS [BINARY] — what probing costs a training step:
# `BINARY bench --config CONFIG --threads THREADS --steps STEPS --probe-every 0|1|10`, ROUNDS
# times, the order turned over every round (0 1 10, then 10 1 0, …), and per round the ratios of
# the probed medians to the unprobed one. Ratios taken within a round, a minute apart, say more
# than medians across rounds on a host whose speed moves by phases (docs/performance.md,
# sessions 11–13). Prints each round, then the median and range of the ratios. Runs under
# `nice -n 19`. BINARY defaults to target/release/gradscope. Example:
#   bench/probe_cost.sh deep 2 200 4
set -euo pipefail
if [ $# -lt 4 ]; then
  echo "usage: bench/probe_cost.sh CONFIG THREADS STEPS ROUNDS [BINARY]" >&2
  exit 2
fi
cfg=$1; threads=$2; steps=$3; rounds=$4; bin=${5:-target/release/gradscope}
[ -x "$bin" ] || { echo "no gradscope binary at $bin (cargo build --release)" >&2; exit 2; }
for r in $(seq "$rounds"); do
  if (( r % 2 )); then order="0 1 10"; else order="10 1 0"; fi
  line="$r"
  for every in $order; do
    ms=$(nice -n 19 "$bin" bench --config "$cfg" --threads "$threads" --steps "$steps" --probe-every "$every" --json 2>/dev/null |
      python3 -c 'import sys, json; print(json.loads(sys.stdin.readline())["median_ms"])')
    line="$line $every:$ms"
  done
  echo "$line"
done | python3 -c '
import statistics, sys
cfg, threads = sys.argv[1:]
every1, every10, plain = [], [], []
for line in sys.stdin:
    ms = {k: float(v) for k, v in (x.split(":") for x in line.split()[1:])}
    every1.append(ms["1"] / ms["0"] - 1)
    every10.append(ms["10"] / ms["0"] - 1)
    plain.append(ms["0"])
    print(f"round {line.split()[0]}: unprobed {plain[-1]:.4g} ms, every step {100 * every1[-1]:+.1f} %, every 10 {100 * every10[-1]:+.1f} %")
def summary(xs):
    return f"{100 * statistics.median(xs):+.1f} % ({100 * min(xs):+.1f} to {100 * max(xs):+.1f})"
print(f"{cfg} at {threads} thread(s): unprobed {statistics.median(plain):.4g} ms; "
      f"probing every step {summary(every1)}, every 10 steps {summary(every10)}")
' "$cfg" "$threads"
