#!/usr/bin/env python3
"""gradscope's recurrent gradients against PyTorch's autograd (issue 14).

For every case written by `cargo run --release --example recurrent_grads -- DIR` (RNN tanh and
relu, LSTM, GRU; 1 and 2 layers; every init; last-step head with MSE and every-step head with
cross-entropy; full BPTT and truncation every 5 steps; f64 and f32), this script loads the same
weights into

    class Net(nn.Module):           # state_dict keys rnn.weight_ih_l{k}, ..., fc.weight, fc.bias
        rnn = nn.RNN / nn.LSTM / nn.GRU(input_size, hidden_size, num_layers)   # time-major
        fc = nn.Linear(hidden_size, output_size)

runs the same sequence, and compares every tensor's gradient and dL/dx:
relative error ||g_gradscope - g_torch|| / ||g_torch|| <= 1e-10 in f64, <= 1e-5 in f32.
Truncated BPTT is PyTorch's usual idiom: run the sequence in windows of K steps and detach the
hidden state between them.

    /work/pyenv/bin/python scripts/check_recurrent.py [DIR]   # without DIR: runs the example

Exit 0 when every case passes, 1 otherwise. Needs torch, numpy, safetensors.
"""
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

TOL = {"f64": 1e-10, "f32": 1e-5}


class Net(torch.nn.Module):
    def __init__(self, case):
        super().__init__()
        i, h, l, o = case["input_size"], case["hidden_size"], case["layers"], case["output_size"]
        cell = case["cell"]
        if cell.startswith("rnn"):
            self.rnn = torch.nn.RNN(i, h, l, nonlinearity=cell.split("_")[1])
        elif cell == "lstm":
            self.rnn = torch.nn.LSTM(i, h, l)
        else:
            self.rnn = torch.nn.GRU(i, h, l)
        self.fc = torch.nn.Linear(h, o)

    def forward(self, x, head, bptt):
        if bptt is None:
            out, _ = self.rnn(x)
        else:
            outs, state = [], None
            for s in range(0, x.shape[0], bptt):
                o, state = self.rnn(x[s : s + bptt], state)
                outs.append(o)
                state = tuple(t.detach() for t in state) if isinstance(state, tuple) else state.detach()
            out = torch.cat(outs)
        if head == "last":
            return self.fc(out[-1])
        return self.fc(out).reshape(-1, self.fc.out_features)


def check(case, root):
    d = root / case["name"]
    dtype = torch.float64 if case["dtype"] == "f64" else torch.float32
    net = Net(case).to(dtype)
    net.load_state_dict(load_file(d / "weights.safetensors"))
    batch = load_file(d / "batch.safetensors")
    x = batch["x"].clone().requires_grad_(True)
    y = net(x, case["head"], case["bptt"])
    if case["loss"] == "cross_entropy":
        loss = F.cross_entropy(y, batch["classes"])
    else:
        loss = F.mse_loss(y, batch["target"])
    loss.backward()
    ours = load_file(d / "grads.safetensors")
    theirs = {n: p.grad for n, p in net.named_parameters()}
    theirs["input"] = x.grad
    assert set(ours) == set(theirs), (set(ours) ^ set(theirs))
    worst = ("", 0.0)
    for name, g in theirs.items():
        rel = ((ours[name] - g).norm() / g.norm()).item()
        if rel > worst[1]:
            worst = (name, rel)
    return worst


def main():
    if len(sys.argv) > 1:
        root = Path(sys.argv[1])
    else:
        root = Path(tempfile.mkdtemp(prefix="gradscope-recurrent-"))
        subprocess.run(["cargo", "run", "--release", "--example", "recurrent_grads", "--", str(root)], check=True)
    cases = json.loads((root / "cases.json").read_text())
    failed = 0
    worst_by_dtype = {"f64": ("", "", 0.0), "f32": ("", "", 0.0)}
    for case in cases:
        name, rel = check(case, root)
        tol = TOL[case["dtype"]]
        ok = rel <= tol
        failed += not ok
        w = worst_by_dtype[case["dtype"]]
        if rel > w[2]:
            worst_by_dtype[case["dtype"]] = (case["name"], name, rel)
        if not ok:
            print(f"FAIL {case['name']}: {name} relative error {rel:.3e} > {tol:.0e}")
    print(f"torch {torch.__version__}: {len(cases) - failed}/{len(cases)} cases pass")
    for dtype, (case, tensor, rel) in worst_by_dtype.items():
        print(f"  {dtype}: largest relative error {rel:.2e} ({case}, {tensor}); tolerance {TOL[dtype]:.0e}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
