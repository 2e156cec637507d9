"""Check gradscope's remedies against PyTorch: gradients in float64 and training steps in float32.

  python scripts/torch_remedies.py GRADSCOPE_BINARY data.csv TARGET_COLUMN

For each architecture below it runs `gradscope probe` (a fresh network; f64 gradients on every
CSV row, batch norm in training mode) and `gradscope train` (full-batch SGD with momentum and
clip_norm), builds the PyTorch module whose state_dict has gradscope's safetensors names
(`GradscopeMLP` below), loads gradscope's initial weights into it with load_state_dict, and
prints the largest relative error of any gradient and of any final state tensor (weights,
running estimates). Exits 1 when a gradient differs by more than 1e-10 (measured at most 3.2e-14)
or a trained state tensor by more than 1e-4 (measured at most 1.8e-6; float32 summation order),
relative (docs/remedies.md).
"""
import subprocess, sys, tempfile
import numpy as np, torch
from torch import nn
from safetensors.torch import load_file

torch.set_num_threads(2)
GRAD_TOLERANCE, STATE_TOLERANCE = 1e-10, 1e-4
ACT = dict(sigmoid=nn.Sigmoid(), tanh=nn.Tanh(), relu=nn.ReLU(), gelu=nn.GELU())


class GradscopeMLP(nn.Module):
    """The module layout of gradscope's weights.safetensors (state_dict names match)."""

    def __init__(self, sizes, act, residual=False, block=2, scale=1.0, norm="none", position="pre"):
        super().__init__()
        depth = len(sizes) - 2
        self.act, self.residual, self.block, self.scale, self.position = ACT[act], residual, block, scale, position
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        make = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}.get(norm)
        self.norms = nn.ModuleList(make(w) for w in sizes[1:-1]) if make else None
        self.shortcuts = nn.ModuleDict()
        if residual:
            for s in range(0, depth, block):
                e = min(s + block, depth) - 1
                if sizes[s] != sizes[e + 1]:
                    self.shortcuts[str(s)] = nn.Linear(sizes[s], sizes[e + 1])

    def forward(self, x):
        h, depth = x, len(self.layers) - 1
        for l in range(depth):
            if self.residual and l % self.block == 0:
                start, block_in = l, h
            z = self.layers[l](h)
            if self.norms is None:
                o = self.act(z)
            elif self.position == "pre":
                o = self.act(self.norms[l](z))
            else:
                o = self.norms[l](self.act(z))
            if self.residual and l == min(start + self.block, depth) - 1:
                skip = self.shortcuts[str(start)](block_in) if str(start) in self.shortcuts else block_in
                o = skip + self.scale * o
            h = o
        return self.layers[-1](h)


def rel(a, b):
    a, b = a.double(), b.double()
    d = max(a.norm().item(), b.norm().item())
    return 0.0 if d == 0 else (a - b).norm().item() / d


def main(binary, csv, target):
    cols = open(csv).readline().strip().split(",")
    k = cols.index(target)
    data = torch.from_numpy(np.loadtxt(csv, delimiter=",", skiprows=1, ndmin=2).astype(np.float32))
    x, y = torch.cat([data[:, :k], data[:, k + 1:]], 1), data[:, k:k + 1]
    cases = [
        ("tanh", dict(residual=True, block=2, scale=0.5), "none", "pre"),
        ("sigmoid", dict(residual=True, block=1, scale=1.0), "batch", "pre"),
        ("tanh", dict(residual=False), "batch", "post"),
        ("gelu", dict(residual=True, block=2, scale=0.7), "layer", "pre"),
        ("relu", dict(residual=True, block=1, scale=1.0), "layer", "post"),
        ("sigmoid", dict(residual=False), "batch", "pre"),
    ]
    worst_g, worst_t = 0.0, 0.0
    for act, res, norm, pos in cases:
        with tempfile.TemporaryDirectory() as tmp:
            flags = ["--data", f"csv:{csv}", "--target", target, "--test-fraction", "0", "--depth", "5", "--width", "16",
                     "--activation", act, "--norm", norm, "--norm-position", pos, "--seed", "3"]
            if res["residual"]:
                flags += ["--residual", "--residual-block", str(res["block"]), "--residual-scale", str(res["scale"])]
            subprocess.run([binary, "probe", *flags, "--dtype", "f64", "--out", f"{tmp}/p"], check=True, capture_output=True)
            steps, lr, clip = 20, 0.05, 1.0
            subprocess.run([binary, "train", *flags, "--batch-size", str(len(x)), "--steps", str(steps), "--lr", str(lr),
                            "--momentum", "0.9", "--clip-norm", str(clip), "--probe-every", "0", "--threads", "1",
                            "--quiet", "--no-report", "--out", f"{tmp}/t"], check=True, capture_output=True)
            w0 = load_file(f"{tmp}/p/weights.safetensors")
            grads = load_file(f"{tmp}/p/grads.safetensors")
            w1 = load_file(f"{tmp}/t/weights.safetensors")
            sizes = [x.shape[1]] + [16] * 5 + [1]
            kw = dict(residual=res["residual"], block=res.get("block", 2), scale=res.get("scale", 1.0), norm=norm, position=pos)
            # gradients, float64, training mode
            m = GradscopeMLP(sizes, act, **kw)
            m.load_state_dict(w0)
            m = m.double().train()
            loss = ((m(x.double()) - y.double()) ** 2).mean()
            loss.backward()
            assert {n for n, _ in m.named_parameters()} == set(grads)
            # a linear bias right before batch norm has no effect (the mean is subtracted): its
            # gradient is 0 up to rounding in both, and a relative error of rounding noise means
            # nothing; such tensors are compared in absolute terms
            top = max(p.grad.norm().item() for _, p in m.named_parameters())
            zero = {n: max(p.grad.norm().item(), grads[n].norm().item()) for n, p in m.named_parameters()
                    if p.grad.norm().item() < 1e-12 * top}
            g_err = {n: rel(p.grad, grads[n]) for n, p in m.named_parameters() if n not in zero}
            # training, float32: full batch, SGD with momentum, clip_grad_norm_
            m = GradscopeMLP(sizes, act, **kw)
            m.load_state_dict(w0)
            m.train()
            opt = torch.optim.SGD(m.parameters(), lr=lr, momentum=0.9)
            for _ in range(steps):
                opt.zero_grad()
                ((m(x) - y) ** 2).mean().backward()
                nn.utils.clip_grad_norm_(m.parameters(), clip)
                opt.step()
            sd = m.state_dict()
            assert set(sd) == set(w1), (set(sd) ^ set(w1))
            t_err = {n: rel(sd[n].float(), w1[n].float()) for n in sd}
            wg, wt = max(g_err, key=g_err.get), max(t_err, key=t_err.get)
            worst_g, worst_t = max(worst_g, g_err[wg]), max(worst_t, t_err[wt])
            print(f"{act:8s} {str(res):45s} norm {norm:5s} {pos:4s}  grads max rel err {g_err[wg]:.1e} ({wg})"
                  f"  after {steps} steps max rel err {t_err[wt]:.1e} ({wt})"
                  + (f"  [{len(zero)} zero gradients, both below {max(zero.values()):.0e} absolute]" if zero else ""))
    print(f"largest: gradients {worst_g:.1e}, trained state {worst_t:.1e}")
    if not (worst_g <= GRAD_TOLERANCE and worst_t <= STATE_TOLERANCE):
        print(f"FAILED: above the tolerance (gradients {GRAD_TOLERANCE:.0e}, trained state {STATE_TOLERANCE:.0e})")
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:4])
