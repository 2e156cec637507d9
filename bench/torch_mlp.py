"""PyTorch twin of `gradscope bench`: the same four MLPs, the same step, the same output.

    python bench/torch_mlp.py [--config tiny|slide|deep|wide|all] [--threads N] [--steps N] [--json]

A step is forward, MSE loss, backward and a plain SGD update (lr 0.01) in float32 on one fixed
random batch, as gradscope times it. Prints the median, min and max milliseconds per step and the
achieved GFLOP/s, counting 2·m·k·n for each of the three products of every layer (forward,
dL/dW, dL/dx), exactly as `gradscope bench` counts.
"""
import torch
from timing import main, timed_row

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


def run(name, c, steps, warmup, warmup_secs=0.0):
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
    return timed_row(name, c, model, x, y, torch.nn.MSELoss(), flops(c), steps, warmup, warmup_secs)


def describe(r):
    s = r["shape"]
    return (f"{r['config']:6s} in {s['inputs']:4d} width {s['width']:5d} depth {s['depth']:3d} out {s['outputs']:3d} "
            f"batch {s['batch']:4d} {s['activation']:8s} median {r['median_ms']:9.3f} ms  min {r['min_ms']:9.3f}  "
            f"max {r['max_ms']:9.3f}  {r['gflops']:7.1f} GFLOP/s")


if __name__ == "__main__":
    main(__doc__, CONFIGS, run, describe)
