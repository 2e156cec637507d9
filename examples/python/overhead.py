"""What watching costs: training steps of a 20-layer MLP and of the MNIST CNN, plain and watched
every 10 steps, alternated, medians and minimums.

    python examples/python/overhead.py [--repeats 5] [--steps 100] [--threads 1] [--every 10]
    python examples/python/overhead.py --per-step | --phases [--steps 200]

Prints, per model, the median and the minimum over the runs of the time per step, plain and
watched, and the overhead in per cent by each (issue 15 asks for at most 5 %): in wall time, and
in this process's CPU time, which a machine loaded by other work disturbs less.
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


def timed(make, x, y, steps, watch_dir, every):
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    w = gradscope.watch(net, out=watch_dir, every=every, optimizer=opt, overwrite=True, report=False) \
        if watch_dir else None
    for k in range(steps + 5):  # 5 warm-up steps
        if k == 5:
            start, cpu = time.perf_counter(), time.process_time()
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        if w is not None:
            w.step(loss)
        opt.step()
    if x.is_cuda:
        torch.cuda.synchronize()
    elapsed = ((time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps)
    if w is not None:
        w.close()
    return elapsed


def per_step(make, x, y, steps, watch_dir):
    """CPU time of each step of one watched loop probing every other step: (probed, unprobed)."""
    torch.manual_seed(0)
    net = make()
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    times = ([], [])
    with gradscope.watch(net, out=watch_dir, every=2, optimizer=opt, overwrite=True, report=False) as w:
        for k in range(2 * steps + 4):
            start = time.process_time()
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x), y)
            loss.backward()
            w.step(loss)
            opt.step()
            if k >= 4:  # warm-up
                times[k % 2].append(time.process_time() - start)
    return times


def phases(make, x, y, steps, watch_dir):
    """The loop of `per_step`, each step cut into its phases (forward with the loss, backward,
    w.step, opt.step): per phase, the medians of the probed steps' and the plain steps' CPU times
    and of the watch's own time inside the probed ones (its entry points and norm calls, timed
    by wrapping them)."""
    import functools
    import importlib

    W = importlib.import_module("gradscope.watch")  # the module (gradscope.watch is also the function)

    inside = {"t": 0.0, "depth": 0}

    def timed_call(f):
        @functools.wraps(f)
        def call(*a, **k):
            if inside["depth"]:
                return f(*a, **k)
            inside["depth"] += 1
            start = time.process_time()
            try:
                return f(*a, **k)
            finally:
                inside["t"] += time.process_time() - start
                inside["depth"] -= 1
        return call

    saved = [(W.Watch, n, getattr(W.Watch, n)) for n in
             ("_on_any_forward", "_on_model_forward", "_before_update", "_after_update", "step")]
    saved += [(W, n, getattr(W, n)) for n in ("_norm", "_norm_list")]
    for owner, name, f in saved:
        setattr(owner, name, timed_call(f))
    try:
        torch.manual_seed(0)
        net = make()
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        rows = ([], [])
        with gradscope.watch(net, out=watch_dir, every=2, optimizer=opt, overwrite=True, report=False,
                             detail_every=10**9) as w:
            for k in range(2 * steps + 4):
                row, state = [], {}
                for phase in range(4):
                    inside["t"], start = 0.0, time.process_time()
                    if phase == 0:
                        opt.zero_grad()
                        state["loss"] = nn.functional.cross_entropy(net(x), y)
                    elif phase == 1:
                        state["loss"].backward()
                    elif phase == 2:
                        w.step(state["loss"])
                    else:
                        opt.step()
                    row.append((time.process_time() - start, inside["t"]))
                if k >= 4:
                    rows[k % 2].append(row)
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)
    med = lambda rs, p, i: statistics.median(r[p][i] for r in rs) * 1e3  # noqa: E731
    return [(name, med(rows[1], p, 0), med(rows[0], p, 0), med(rows[0], p, 1))
            for p, name in enumerate(("forward", "backward", "w.step", "opt.step"))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--every", type=int, default=10, help="probe every N steps (issue 15's figure: 10)")
    p.add_argument("--per-step", action="store_true",
                   help="time each step's CPU time in one loop probing every other step: a probed step's cost in "
                        "plain steps, r, gives the overhead at every N as (r - 1) / N")
    p.add_argument("--phases", action="store_true",
                   help="as --per-step, each step cut into forward, backward, w.step and opt.step, with the "
                        "watch's own time in each (the MLP only)")
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
            if a.phases:
                print(f"{name}, medians of {a.steps} probed and {a.steps} plain steps, CPU ms:")
                print("phase     plain  probed  watch  left over")
                for phase, plain, probed, own in phases(make, x, y, a.steps, Path(tmp) / "p"):
                    print(f"{phase:8s} {plain:6.2f}  {probed:6.2f} {own:6.2f}  {probed - own - plain:6.2f}")
                break
            if a.per_step:
                probed, plain = (statistics.median(t) for t in per_step(make, x, y, a.steps, Path(tmp) / "p"))
                r = probed / plain
                print(f"{name}: a probed step {probed * 1e3:.3f} ms of CPU time, an unprobed one {plain * 1e3:.3f} "
                      f"(medians of {a.steps} each): {r:.2f} unprobed steps, so watching every {a.every} steps "
                      f"costs {100 * (r - 1) / a.every:+.1f} %")
                continue
            plain, watched = [], []
            for r in range(a.repeats):  # alternate, so that a slower moment of the machine hits both,
                pair = [(plain, None), (watched, Path(tmp) / f"r{r}")]  # and which runs first too
                for times, out in pair if r % 2 == 0 else pair[::-1]:
                    times.append(timed(make, x, y, a.steps, out, a.every))
            for k, clock in enumerate(("wall", "CPU")):
                p_, w_ = [t[k] for t in plain], [t[k] for t in watched]
                mp, mw, lp, lw = statistics.median(p_), statistics.median(w_), min(p_), min(w_)
                print(f"{name}, {clock} time: plain {mp * 1e3:.3f} ms/step (min {lp * 1e3:.3f}), watched every "
                      f"{a.every} steps {mw * 1e3:.3f} ms/step (min {lw * 1e3:.3f}), "
                      f"overhead {100 * (mw - mp) / mp:+.1f} % "
                      f"by the medians, {100 * (lw - lp) / lp:+.1f} % by the minimums ({a.repeats} alternated runs "
                      f"of {a.steps} steps each, {a.threads} threads, {a.device})")

if __name__ == "__main__":
    main()
