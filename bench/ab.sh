#!/usr/bin/env bash
# ab.sh CONFIG THREADS STEPS ROUNDS BINARY... — alternates `BINARY bench --config CONFIG --threads
# THREADS --steps STEPS --json` over the binaries, ROUNDS times (A B, B A, A B, …, so that a change
# in the machine's load falls on both, and neither always runs first), and prints per binary the
# median and range of the runs' median ms per step, each run's median, and the median and range of
# the runs' fastest steps, with the load average before and after. Runs under `nice -n 19` (a
# shared machine). Example, a branch against main on `deep` at two threads:
#   bench/ab.sh deep 2 300 7 /tmp/gradscope-main target/release/gradscope
set -euo pipefail
if [ $# -lt 5 ]; then
  echo "usage: bench/ab.sh CONFIG THREADS STEPS ROUNDS BINARY..." >&2
  exit 2
fi
cfg=$1; threads=$2; steps=$3; rounds=$4; shift 4
declare -A medians minima
load_before=$(cut -d' ' -f1 /proc/loadavg)
# The order of the binaries turns over every round (A B, B A, …): on this host the first of two
# back-to-back runs gained up to 5 % (one binary twice, docs/performance.md, session 9).
for r in $(seq "$rounds"); do
  order=("$@")
  if (( r % 2 == 0 )); then
    order=()
    for ((i = $#; i >= 1; i--)); do order+=("${!i}"); done
  fi
  for b in "${order[@]}"; do
    read -r median min < <(nice -n 19 "$b" bench --config "$cfg" --threads "$threads" --steps "$steps" --json 2>/dev/null |
      python3 -c 'import sys, json; d = json.loads(sys.stdin.readline()); print(d["median_ms"], d["min_ms"])')
    medians[$b]="${medians[$b]:-} $median"
    minima[$b]="${minima[$b]:-} $min"
  done
done
echo "load average before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
for b in "$@"; do
  python3 - "$b" "${medians[$b]}" "${minima[$b]}" "$cfg" "$threads" <<'PY'
import statistics, sys
name, med, mins, cfg, threads = sys.argv[1:]
a, m = [float(x) for x in med.split()], [float(x) for x in mins.split()]
runs = " ".join(f"{x:.4g}" for x in a)
print(f"{name} {cfg} {threads} thr: medians {statistics.median(a):.4g} ({min(a):.4g}-{max(a):.4g}) [{runs}]; "
      f"minima {statistics.median(m):.4g} ({min(m):.4g}-{max(m):.4g})")
PY
done
