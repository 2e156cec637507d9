"""Check gradscope's gradients against PyTorch autograd, in float64.

  gradscope probe --data csv:data.csv --target y --test-fraction 0 --activation tanh --loss mse --out p
  python scripts/torch_probe_check.py p data.csv y tanh mse [weights.safetensors, if probed with --weights]
  python scripts/torch_probe_check.py --cases FILE   (one such argument list per line; one import of torch)

Rebuilds the probed network (plain MLP: Linear and activation layers) in PyTorch from the weights
gradscope probed, recomputes the loss on every CSV row (`--test-fraction 0` keeps them all, in file
order) and compares every gradient in grads.safetensors and every layer's grad_w_norm in
probe.json. Exits 1 when the largest relative error of a gradient tensor exceeds the tolerance of
its dtype: 1e-6 for f32 (measured at most 5.2e-8 over 495 configurations, docs/pytorch.md), 1e-10
for f64 (measured at most 1.7e-14).
"""
import json
import sys

import numpy as np
import torch
from safetensors.torch import load_file

TOLERANCE = {torch.float32: 1e-6, torch.float64: 1e-10}


def rel(a, b):
    """|a − b| / |a| in the Frobenius norm; 0 when both are 0."""
    d = a.norm().item()
    e = (a - b).norm().item()
    return 0.0 if d == 0 and e == 0 else e / d


def check(out, csv, target, act, loss, *wts):
    """Compares one probe; returns whether its largest error is within the tolerance."""
    print(f"== {out}: {act}, {loss}")
    phi = {"identity": torch.nn.Identity(), "sigmoid": torch.nn.Sigmoid(), "tanh": torch.nn.Tanh(),
           "relu": torch.nn.ReLU(), "leaky_relu": torch.nn.LeakyReLU(0.01), "elu": torch.nn.ELU(),
           "selu": torch.nn.SELU(), "gelu": torch.nn.GELU(), "silu": torch.nn.SiLU(),
           "softsign": torch.nn.Softsign(), "softplus": torch.nn.Softplus()}[act]
    wts = wts[0] if wts else f"{out}/weights.safetensors"  # gradscope writes it for a fresh init
    W = {k: v.double().requires_grad_() for k, v in load_file(wts).items()}
    G = load_file(f"{out}/grads.safetensors")
    layers = sorted({k.rsplit(".", 1)[0] for k in W}, key=lambda s: int(s.rsplit(".", 1)[-1]))
    t = open(csv).readline().strip().split(",").index(target)  # gradscope reads the CSV as float32
    data = torch.from_numpy(np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2).astype(np.float32)).double()
    x, y = torch.cat([data[:, :t], data[:, t + 1:]], 1), data[:, t]

    h = x
    for i, l in enumerate(layers):
        h = h @ W[l + ".weight"].T + W[l + ".bias"]
        h = phi(h) if i < len(layers) - 1 else h
    if loss == "cross_entropy":
        L = torch.nn.functional.cross_entropy(h, y.long())
    else:  # class labels (several outputs) become one-hot targets
        Y = torch.nn.functional.one_hot(y.long(), h.shape[1]).double() if h.shape[1] > 1 else y[:, None]
        L = ((h - Y) ** 2).mean() if loss == "mse" else ((h - Y) ** 2).sum()
    L.backward()

    probe = json.load(open(f"{out}/probe.json"))
    print(f"loss  torch {L.item():.10g}  gradscope {probe['train_loss']:.10g}")
    errs = {k: rel(W[k].grad, G[k].double()) for k in W}
    for k in sorted(W, key=lambda k: layers.index(k.rsplit(".", 1)[0])):
        print(f"{k:18s} rel err {errs[k]:.2e}")
    for l, s in zip(layers, probe["layers"]):
        g = W[l + ".weight"].grad.norm().item()
        print(f"{l:18s} grad_w_norm rel err {abs(g - s['grad_w_norm']) / g if g else abs(s['grad_w_norm']):.2e}")
    worst = max(errs.values())
    tol = max(TOLERANCE[v.dtype] for v in G.values())
    print(f"max rel err {worst:.2e}")
    if not worst <= tol:
        print(f"FAILED: above the tolerance {tol:.0e} of {', '.join(sorted({str(v.dtype) for v in G.values()}))}")
    return worst <= tol


def main(args):
    torch.set_num_threads(2)
    if args[:1] == ["--cases"] and len(args) == 2:
        cases = [line.split() for line in open(args[1]) if line.strip()]
    elif len(args) in (5, 6):
        cases = [args]
    else:
        sys.exit(__doc__)
    ok = [check(*case) for case in cases]
    sys.exit(0 if all(ok) else 1)


if __name__ == "__main__":
    main(sys.argv[1:])
