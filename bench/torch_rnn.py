"""PyTorch twin of `gradscope bench --config lstm|rnn|gru`: the same recurrent step, the same output.

    python bench/torch_rnn.py [--config lstm|rnn|gru|all] [--threads N] [--steps N] [--json]

The shapes are row-by-row MNIST's (in 28, hidden 128, T 28, batch 128, one layer, 10 outputs
from the last step's hidden state through nn.Linear). A step is forward, cross-entropy loss,
backward and a plain SGD update (lr 0.01) in float32 on one fixed random batch, as gradscope
times it. Prints the median, min and max milliseconds per step and the achieved GFLOP/s,
counting 2·m·k·n for each of the three products (forward, dL/dW, dL/dinput) of x_t·W_ihᵀ and
h_(t-1)·W_hhᵀ at every step, and of the head, exactly as `gradscope bench` counts.
"""
import torch
from timing import main, timed_row

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


def run(name, c, steps, warmup, warmup_secs=0.0):
    torch.manual_seed(0)
    model = Net(c)
    x = torch.randn(c["seq_len"], c["batch"], c["inputs"])
    y = torch.randint(0, c["outputs"], (c["batch"],))
    return timed_row(name, c, model, x, y, torch.nn.functional.cross_entropy, flops(c), steps, warmup, warmup_secs)


def describe(r):
    s = r["shape"]
    return (f"{r['config']:5s} {s['cell']:8s} in {s['inputs']:3d} hidden {s['width']:4d} layers {s['depth']} "
            f"T {s['seq_len']:3d} out {s['outputs']:3d} batch {s['batch']:4d} median {r['median_ms']:9.3f} ms  "
            f"min {r['min_ms']:9.3f}  max {r['max_ms']:9.3f}  {r['gflops']:7.1f} GFLOP/s")


if __name__ == "__main__":
    main(__doc__, CONFIGS, run, describe)
