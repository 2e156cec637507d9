"""What the PyTorch twins of `gradscope bench` share: the timed step (forward, loss, backward,
plain SGD lr 0.01, on one fixed batch, as gradscope times it), the result row `gradscope bench
--json` prints, and the command line."""
import argparse
import json
import statistics
import time

import torch


# The default warm-up's floor in time, as `gradscope bench`'s (src/bench.rs, `Warmup`): the
# untimed steps go on until they have taken this long, so that the threads have settled.
WARMUP_SECS = 0.2


def timed_row(name, c, model, x, y, loss_fn, flops, steps, warmup, warmup_secs=0.0):
    """Times `steps` steps of `model` after at least `warmup` untimed ones that took at least
    `warmup_secs` seconds, and returns gradscope bench's JSON row."""
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    began, step, timed_from = time.perf_counter(), 0, None
    while timed_from is None or step < timed_from + steps:
        warming = timed_from is None and (step < warmup or time.perf_counter() - began < warmup_secs)
        if not warming and timed_from is None:
            timed_from = step
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if not warming:
            times.append((time.perf_counter() - start) * 1e3)
        step += 1
    median = statistics.median(times)
    return dict(config=name, shape=dict(name=name, **c), threads=torch.get_num_threads(), steps=steps,
                probe_every=0, median_ms=median, min_ms=min(times), max_ms=max(times),
                flops_per_step=float(flops), gflops=flops / (median * 1e-3) / 1e9)


def main(doc, configs, run, describe):
    """The command line: `--config NAME|all --threads N --steps N --warmup N --json`; `run(name,
    config, steps, warmup)` times one config, `describe(row)` is its line of text."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--config", default="all", choices=[*configs, "all"])
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps first (default: steps/5, between 2 and 20, and more until 0.2 s)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    names = list(configs) if a.config == "all" else [a.config]
    # a warm-up given is taken exactly; the default also lasts at least WARMUP_SECS
    warmup = a.warmup if a.warmup is not None else (1 if a.steps < 10 else max(2, min(20, a.steps // 5)))
    secs = 0.0 if a.warmup is not None else WARMUP_SECS
    for r in (run(n, configs[n], a.steps, warmup, secs) for n in names):
        print(json.dumps(r) if a.json else describe(r))
    if not a.json:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {a.steps} timed steps per config")
