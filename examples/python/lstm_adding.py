"""An nn.LSTM on the adding problem (Hochreiter & Schmidhuber 1997), watched by gradscope.

    python examples/python/lstm_adding.py [--steps 60] [--length 50] [--out runs/lstm]

Each sequence has two channels: random numbers in [0, 1), and a marker that is 1 at two
positions; the target is the sum of the two marked numbers. Writes runs/lstm with report.html.
"""

import argparse
import sys
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import loop  # noqa: E402


class Adder(nn.Module):
    def __init__(self, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


def batch(n, length, gen):
    values = torch.rand(n, length, generator=gen)
    marks = torch.zeros(n, length)
    first = torch.randint(0, length // 2, (n,), generator=gen)
    second = torch.randint(length // 2, length, (n,), generator=gen)
    marks[torch.arange(n), first] = 1
    marks[torch.arange(n), second] = 1
    return torch.stack([values, marks], -1), (values * marks).sum(1, keepdim=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--out", default="runs/lstm")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    net = Adder()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loop.train(net, opt, lambda: batch(64, a.length, gen), nn.functional.mse_loss, a.steps, a.out, every=a.every,
               loss="mse", data="adding")


if __name__ == "__main__":
    main()
