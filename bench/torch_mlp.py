"""PyTorch twin of `gradscope bench`: the same four MLPs, the same step, the same output.

    python bench/torch_mlp.py [--config tiny|slide|deep|wide|all] [--threads N] [--steps N] [--json]

A step is forward, MSE loss, backward and a plain SGD update (lr 0.01) in float32 on one fixed
random batch, as gradscope times it. Prints the median, min and max milliseconds per step and the
achieved GFLOP/s, counting 2·m·k·n for each of the three products of every layer (forward,
dL/dW, dL/dx), exactly as `gradscope bench` counts.
"""
import argparse
import json
import statistics
import time

import torch

CONFIGS = {
    "tiny": dict(inputs=32, width=32, depth=10, outputs=1, batch=64, activation="sigmoid"),
    "slide": dict(inputs=784, width=256, depth=10, outputs=10, batch=128, activation="sigmoid"),
    "deep": dict(inputs=784, width=128, depth=50, outputs=10, batch=128, activation="tanh"),
    "wide": dict(inputs=784, width=2048, depth=4, outputs=10, batch=256, activation="relu"),
}
ACT = {"sigmoid": torch.nn.Sigmoid, "tanh": torch.nn.Tanh, "relu": torch.nn.ReLU}


def flops(c):
    sizes = [c["inputs"]] + [c["width"]] * c["depth"] + [c["outputs"]]
    return sum(3 * 2 * c["batch"] * a * b for a, b in zip(sizes, sizes[1:]))


def run(name, c, steps, warmup):
    torch.manual_seed(0)
    sizes = [c["inputs"]] + [c["width"]] * c["depth"] + [c["outputs"]]
    layers = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(ACT[c["activation"]]())
    model = torch.nn.Sequential(*layers)
    x = torch.randn(c["batch"], c["inputs"])
    y = torch.randn(c["batch"], c["outputs"])
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.MSELoss()
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        if step >= warmup:
            times.append((time.perf_counter() - start) * 1e3)
    median = statistics.median(times)
    return dict(config=name, shape=dict(name=name, **c), threads=torch.get_num_threads(), steps=steps,
                probe_every=0, median_ms=median, min_ms=min(times), max_ms=max(times),
                flops_per_step=float(flops(c)), gflops=flops(c) / (median * 1e-3) / 1e9)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    names = list(CONFIGS) if a.config == "all" else [a.config]
    warmup = a.warmup if a.warmup is not None else (1 if a.steps < 10 else max(2, min(20, a.steps // 5)))
    rows = [run(n, CONFIGS[n], a.steps, warmup) for n in names]
    for r in rows:
        if a.json:
            print(json.dumps(r))
        else:
            s = r["shape"]
            print(f"{r['config']:6s} in {s['inputs']:4d} width {s['width']:5d} depth {s['depth']:3d} out {s['outputs']:3d} "
                  f"batch {s['batch']:4d} {s['activation']:8s} median {r['median_ms']:9.3f} ms  min {r['min_ms']:9.3f}  "
                  f"max {r['max_ms']:9.3f}  {r['gflops']:7.1f} GFLOP/s")
    if not a.json:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {a.steps} timed steps per config")


if __name__ == "__main__":
    main()
