"""A small CNN (Conv2d, BatchNorm2d, ReLU) on MNIST, watched by gradscope.

    python examples/python/cnn_mnist.py [--steps 60] [--out runs/cnn]

Writes runs/cnn (metrics.jsonl, summary.json, report.html) and prints the verdict.
"""

import argparse
import sys
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import mnist  # noqa: E402

import gradscope  # noqa: E402


def model():
    # named modules: the report's axes show these names
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 16, 3, padding=1)), ("bn1", nn.BatchNorm2d(16)), ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2)),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("bn2", nn.BatchNorm2d(32)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(32 * 7 * 7, 64)), ("relu3", nn.ReLU()), ("fc2", nn.Linear(64, 10)),
    ]))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--out", default="runs/cnn")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    x, y = mnist.load("train", rows=a.steps * a.batch_size)
    xt, yt = mnist.load("test", rows=1000)
    x, y, xt, yt = map(torch.from_numpy, (x, y, xt, yt))
    net = model()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    with gradscope.watch(net, out=a.out, every=a.every, optimizer=opt, loss="cross_entropy", data="mnist",
                         overwrite=True) as w:
        for step in range(a.steps):
            i = slice(step * a.batch_size, (step + 1) * a.batch_size)
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[i]), y[i])
            loss.backward()
            test = {}
            if step % a.every == 0:
                net.eval()
                with torch.no_grad():
                    logits = net(xt)
                    test = dict(test_loss=nn.functional.cross_entropy(logits, yt).item(),
                                test_accuracy=(logits.argmax(1) == yt).float().mean().item())
                net.train()
            w.step(loss, **test)
            opt.step()
    print(w.verdict())
    print(f"report: {Path(a.out) / 'report.html'}")


if __name__ == "__main__":
    main()
