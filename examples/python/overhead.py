"""What watching costs: training steps of a 20-layer MLP and of the MNIST CNN, plain and watched
every 10 steps, alternated, medians.

    python examples/python/overhead.py [--repeats 5] [--steps 100] [--threads 1]

Prints, per model, the median time per step plain and watched and the overhead in per cent
(issue 15 asks for at most 5 %).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
import cnn_mnist  # noqa: E402

import gradscope  # noqa: E402


def mlp(depth=20, width=256, inputs=784):
    layers = [nn.Linear(inputs, width), nn.Tanh()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Tanh()]
    return nn.Sequential(*layers, nn.Linear(width, 10))


def timed(make, x, y, steps, watch_dir):
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    w = gradscope.watch(net, out=watch_dir, every=10, optimizer=opt, overwrite=True, report=False) \
        if watch_dir else None
    for k in range(steps + 5):  # 5 warm-up steps
        if k == 5:
            start = time.perf_counter()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        if w is not None:
            w.step(loss)
        opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    elapsed = (time.perf_counter() - start) / steps
    if w is not None:
        w.close()
    return elapsed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    cases = [
        ("20-layer tanh MLP, width 256, batch 128", lambda: mlp().to(dev),
         torch.randn(128, 784, device=dev), torch.randint(0, 10, (128,), device=dev)),
        ("MNIST CNN (Conv2d/BatchNorm2d/ReLU), batch 64", lambda: cnn_mnist.model().to(dev),
         torch.randn(64, 1, 28, 28, device=dev), torch.randint(0, 10, (64,), device=dev)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for name, make, x, y in cases:
            plain, watched = [], []
            for r in range(a.repeats):  # alternate, so that a slower moment of the machine hits both
                plain.append(timed(make, x, y, a.steps, None))
                watched.append(timed(make, x, y, a.steps, Path(tmp) / f"r{r}"))
            mp, mw = statistics.median(plain), statistics.median(watched)
            print(f"{name}: plain {mp * 1e3:.3f} ms/step, watched every 10 steps {mw * 1e3:.3f} ms/step, "
                  f"overhead {100 * (mw - mp) / mp:+.1f} % (median of {a.repeats}, {a.steps} steps each, "
                  f"{a.threads} threads, {a.device})")


if __name__ == "__main__":
    main()
