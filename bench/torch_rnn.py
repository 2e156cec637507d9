"""PyTorch twin of `gradscope bench --config lstm|rnn|gru`: the same recurrent step, the same output.

    python bench/torch_rnn.py [--config lstm|rnn|gru|all] [--threads N] [--steps N] [--json]

The shapes are row-by-row MNIST's (in 28, hidden 128, T 28, batch 128, one layer, 10 outputs
from the last step's hidden state through nn.Linear). A step is forward, cross-entropy loss,
backward and a plain SGD update (lr 0.01) in float32 on one fixed random batch, as gradscope
times it. Prints the median, min and max milliseconds per step and the achieved GFLOP/s,
counting 2·m·k·n for each of the three products (forward, dL/dW, dL/dinput) of x_t·W_ihᵀ and
h_(t-1)·W_hhᵀ at every step, and of the head, exactly as `gradscope bench` counts.
"""
import argparse
import json
import statistics
import time

import torch

SHAPE = dict(inputs=28, width=128, depth=1, outputs=10, batch=128, activation="tanh", seq_len=28)
CONFIGS = {
    "lstm": dict(SHAPE, cell="lstm"),
    "rnn": dict(SHAPE, cell="rnn_tanh"),
    "gru": dict(SHAPE, cell="gru"),
}
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1}


class Net(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[c["cell"]]
        self.rnn = kind(c["inputs"], c["width"], c["depth"])
        self.fc = torch.nn.Linear(c["width"], c["outputs"])

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[-1])


def flops(c):
    g, h, b, t = GATES[c["cell"]], c["width"], c["batch"], c["seq_len"]
    fan_ins = [c["inputs"]] + [h] * (c["depth"] - 1)
    return sum(t * 3 * 2 * b * g * h * (i + h) for i in fan_ins) + 3 * 2 * b * h * c["outputs"]


def run(name, c, steps, warmup):
    torch.manual_seed(0)
    model = Net(c)
    x = torch.randn(c["seq_len"], c["batch"], c["inputs"])
    y = torch.randint(0, c["outputs"], (c["batch"],))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
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
            print(f"{r['config']:5s} {s['cell']:8s} in {s['inputs']:3d} hidden {s['width']:4d} layers {s['depth']} "
                  f"T {s['seq_len']:3d} out {s['outputs']:3d} batch {s['batch']:4d} median {r['median_ms']:9.3f} ms  "
                  f"min {r['min_ms']:9.3f}  max {r['max_ms']:9.3f}  {r['gflops']:7.1f} GFLOP/s")
    if not a.json:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {a.steps} timed steps per config")


if __name__ == "__main__":
    main()
