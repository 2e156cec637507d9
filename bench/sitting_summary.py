"""The table of one sitting (bench/sitting.sh): median of each tool's per-run medians, ratios, peak.

    python bench/sitting_summary.py RAW.jsonl

RAW.jsonl holds the JSON lines of `gradscope bench --json` and bench/torch_*.py --json, each
tagged with "tool" (gradscope or pytorch) and "round". For every config and thread count: the
median over rounds of each tool's median ms per step (with the range of the rounds), the ratio
PyTorch ÷ gradscope (above 1: gradscope is faster), both tools' GFLOP/s as a fraction of the peak
that `gradscope bench` measured at that thread count, and issue 16's goal for the ratio. Lines
tagged "baseline" (bench/sitting.sh with BASELINE=…) add a second table: the baseline binary
against this one, and PyTorch against the baseline, in the same sitting.
"""
import json
import statistics
import sys
from collections import defaultdict

ORDER = ["tiny", "slide", "deep", "wide", "lstm", "rnn", "gru"]
# issue 16: 2 threads tiny ≥ 20×, slide ≥ 1.25×, deep ≥ 1.5×, wide ≥ 1.15×; 1 thread ≥ 1.0×
# everywhere; the recurrent goal (issue 14) is ≥ 1.5× at 2 threads.
GOALS = {2: {"tiny": 20.0, "slide": 1.25, "deep": 1.5, "wide": 1.15, "lstm": 1.5, "rnn": 1.5, "gru": 1.5}}


def main():
    runs = defaultdict(list)
    peaks = defaultdict(list)
    for line in open(sys.argv[1]):
        r = json.loads(line)
        runs[(r["config"], r["threads"], r["tool"])].append(r)
        if r["tool"] == "gradscope" and r.get("peak_gflops"):
            peaks[r["threads"]].append(r["peak_gflops"])
    keys = sorted({(c, t) for c, t, _ in runs}, key=lambda k: (k[1], ORDER.index(k[0]) if k[0] in ORDER else 99, k[0]))
    rounds = max(r["round"] for rs in runs.values() for r in rs)
    print(f"Median over {rounds} round(s) of each run's median ms per step (range over the rounds).\n")
    print("| threads | config | gradscope ms (range) | PyTorch ms (range) | PyTorch ÷ gradscope | goal "
          "| gradscope GFLOP/s | of peak | PyTorch GFLOP/s | of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for config, threads in keys:
        gs, pt = runs.get((config, threads, "gradscope"), []), runs.get((config, threads, "pytorch"), [])
        if not gs or not pt:
            continue
        peak = statistics.median(peaks[threads]) if peaks[threads] else None
        cells = [str(threads), config]
        meds = []
        for rs in (gs, pt):
            ms = [r["median_ms"] for r in rs]
            meds.append(statistics.median(ms))
            cells.append(f"{meds[-1]:.4g} ({min(ms):.4g}–{max(ms):.4g})")
        ratio = meds[1] / meds[0]
        goal = GOALS.get(threads, {}).get(config, 1.0)
        cells += [f"{ratio:.2f}×", f"≥ {goal:g}× {'met' if ratio >= goal else 'NOT met'}"]
        for med, rs in zip(meds, (gs, pt)):
            gflops = rs[0]["flops_per_step"] / (med * 1e-3) / 1e9
            cells += [f"{gflops:.1f}", f"{gflops / peak:.0%}" if peak else "—"]
        print("| " + " | ".join(cells) + " |")
    wide = runs.get(("wide", 2, "gradscope"), [])
    if wide and peaks[2]:
        gflops = wide[0]["flops_per_step"] / (statistics.median(r["median_ms"] for r in wide) * 1e-3) / 1e9
        frac = gflops / statistics.median(peaks[2])
        print(f"\nwide at 2 threads: {frac:.0%} of the peak (issue 16's goal: ≥ 75 %, {'met' if frac >= 0.75 else 'NOT met'})")
    baseline_table(runs, keys)
    for t in sorted(peaks):
        p = peaks[t]
        print(f"\npeak at {t} thread(s), measured by gradscope bench: median {statistics.median(p):.1f} GFLOP/s "
              f"({min(p):.1f}–{max(p):.1f} over {len(p)} runs)", end="")
    print()


def baseline_table(runs, keys):
    """The baseline binary against gradscope's, per config and thread count, if it ran."""
    rows = [(c, t) for c, t in keys if runs.get((c, t, "baseline")) and runs.get((c, t, "gradscope"))]
    if not rows:
        return
    print("\nThe baseline binary in the same sitting (baseline ÷ gradscope above 1: this binary is faster):\n")
    print("| threads | config | baseline ms (range) | gradscope ms | baseline ÷ gradscope | PyTorch ÷ baseline |")
    print("|---|---|---|---|---|---|")
    for config, threads in rows:
        med = lambda tool: statistics.median(r["median_ms"] for r in runs.get((config, threads, tool), []))
        base = [r["median_ms"] for r in runs[(config, threads, "baseline")]]
        b, g = statistics.median(base), med("gradscope")
        pt = f"{med('pytorch') / b:.2f}×" if runs.get((config, threads, "pytorch")) else "—"
        print(f"| {threads} | {config} | {b:.4g} ({min(base):.4g}–{max(base):.4g}) | {g:.4g} | {b / g:.2f}× | {pt} |")


if __name__ == "__main__":
    main()
