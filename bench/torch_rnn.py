"""PyTorch twin of the recurrent benchmark: nn.LSTM / nn.RNN + nn.Linear, one training step.

    python bench/torch_rnn.py [--config lstm|rnn|gru|all] [--threads N] [--steps N] [--json]

The shapes are row-by-row MNIST's (in 28, hidden 128, T 28, batch 128, 10 outputs from the last
step). A step is forward, cross-entropy loss, backward and a plain SGD update (lr 0.01) in float32
on one fixed random batch, as `examples/recurrent_bench.rs` times gradscope's (until
`gradscope bench --config lstm` exists). Prints the median, min and max milliseconds per step.
"""
import argparse
import json
import statistics
import time

import torch

CONFIGS = {
    "lstm": dict(cell="lstm", inputs=28, hidden=128, seq=28, batch=128, outputs=10),
    "rnn": dict(cell="rnn_tanh", inputs=28, hidden=128, seq=28, batch=128, outputs=10),
    "gru": dict(cell="gru", inputs=28, hidden=128, seq=28, batch=128, outputs=10),
}


class Net(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        kind = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN}[c["cell"]]
        self.rnn = kind(c["inputs"], c["hidden"])
        self.fc = torch.nn.Linear(c["hidden"], c["outputs"])

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[-1])


def run(name, c, steps, warmup):
    torch.manual_seed(0)
    model = Net(c)
    x = torch.randn(c["seq"], c["batch"], c["inputs"])
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
    return dict(config=name, shape=c, threads=torch.get_num_threads(), steps=steps,
                median_ms=statistics.median(times), min_ms=min(times), max_ms=max(times))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="all", choices=[*CONFIGS, "all"])
    p.add_argument("--threads", type=int, default=0, help="0: all cores")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    names = list(CONFIGS) if a.config == "all" else [a.config]
    for n in names:
        r = run(n, CONFIGS[n], a.steps, a.warmup)
        if a.json:
            print(json.dumps(r))
        else:
            print(f"{n:5s} median {r['median_ms']:8.2f} ms  min {r['min_ms']:8.2f}  max {r['max_ms']:8.2f}")
    if not a.json:
        print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads, {a.steps} timed steps per config")


if __name__ == "__main__":
    main()
