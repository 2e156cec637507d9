#!/usr/bin/env bash
# One sitting of issue 16's protocol: gradscope against PyTorch on this machine, same configs,
# alternating the two tools, ROUNDS rounds at 1 and at 2 threads, MLPs and recurrent layers;
# then a table of median-of-medians, ratios and fractions of the peak `gradscope bench` measures.
#
#   bench/sitting.sh [BINARY] [OUT_DIR]        (defaults: target/release/gradscope, a temp dir)
#
# Environment: PYTHON (a Python that imports torch; default python3), ROUNDS (default 3),
# THREADS (default "1 2"), SUITES (default "mlp recurrent"), STEPS (timed steps per config, empty:
# each tool's default), JOIN=1 (also run `cargo bench --bench join`, rayon::join's latency, from
# the repository), BASELINE (another gradscope binary, e.g. the previous session's, run in each
# round right after BINARY: the summary then compares the two in the same sitting, which
# separates a change of the code from a change of the machine's state). Every raw JSON line is kept in OUT_DIR/raw.jsonl; the table is printed and
# written to OUT_DIR/summary.md. Run it on a quiet machine: on a shared one, two-thread times of
# either tool say more about the other processes than about the code.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-target/release/gradscope}
out=${2:-$(mktemp -d)}
python=${PYTHON:-python3}
rounds=${ROUNDS:-3}
threads=${THREADS:-1 2}
suites=${SUITES:-mlp recurrent}
steps=()
[[ -n ${STEPS:-} ]] && steps=(--steps "$STEPS")

[[ -x $bin ]] || { echo "error: no gradscope binary at $bin; build it with: cargo build --release" >&2; exit 2; }
[[ -z ${BASELINE:-} || -x $BASELINE ]] || { echo "error: BASELINE=$BASELINE is not an executable gradscope binary" >&2; exit 2; }
"$python" -c "import torch" 2>/dev/null || {
    echo "error: $python cannot import torch; set PYTHON to a Python that has it" >&2
    exit 2
}
mkdir -p "$out"
raw=$out/raw.jsonl
: >"$raw"

# Tags each JSON line of a run with the tool and the round, appending it to raw.jsonl.
tag() { "$python" -c '
import json, sys
for line in sys.stdin:
    if line.strip():
        r = json.loads(line); r["tool"], r["round"] = sys.argv[1], int(sys.argv[2]); print(json.dumps(r))
' "$1" "$2" >>"$raw"; }

echo "sitting: $bin${BASELINE:+ and $BASELINE} against $("$python" -c 'import torch; print("PyTorch", torch.__version__)'), $rounds rounds, threads $threads, suites $suites; raw lines in $raw" >&2
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$rounds"); do
    for t in $threads; do
        for suite in $suites; do
            case $suite in
                mlp) script=$here/torch_mlp.py ;;
                recurrent) script=$here/torch_rnn.py ;;
                *) echo "error: unknown suite '$suite' (mlp or recurrent)" >&2; exit 2 ;;
            esac
            echo "round $round, $t thread(s), $suite: gradscope, then PyTorch" >&2
            "$bin" bench --config "$suite" --threads "$t" --json "${steps[@]}" | tag gradscope "$round"
            if [[ -n ${BASELINE:-} ]]; then
                "$BASELINE" bench --config "$suite" --threads "$t" --json "${steps[@]}" | tag baseline "$round"
            fi
            "$python" "$script" --config all --threads "$t" --json "${steps[@]}" | tag pytorch "$round"
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$python" "$here/sitting_summary.py" "$raw" | tee "$out/summary.md"
if [[ ${JOIN:-0} == 1 ]]; then
    echo "rayon::join latency (benches/join.rs):" >&2
    (cd "$here/.." && cargo bench --locked --bench join) | tee "$out/join.txt"
fi
