#!/usr/bin/env python3
"""`gradscope probe --weights` of a PyTorch recurrent state_dict against PyTorch's autograd (issue 14).

For nn.RNN (tanh and relu), nn.LSTM and nn.GRU, 2 layers, hidden 16, with an nn.Linear head on the
last step, this script saves the module's state_dict with safetensors (keys rnn.weight_ih_l0, ...,
fc.weight, fc.bias, float32, as PyTorch users write it), runs

    gradscope probe --cell CELL --num-layers 2 --data mnist:DIR --loss cross_entropy \
        --weights FILE --batch-size 32 --json

(row-by-row MNIST: 28 steps of 28 pixels, the first 32 training images) and compares the record
through time with autograd's, in float64, on the same 32 images:

    grad_h[t] = ||dL/dh_t|| of every layer, both paths (the layer above or the head, and step t+1)
    grad_x[t] = ||dL/dx_t|| of every layer's input (layer 0: the pixels; layer k: layer k-1's h_t)

PyTorch's nn.RNN does not expose h_t of inner layers, so each layer is stepped one step at a
time with the same weights (num_layers = 1 modules): dL/dh_t is then the gradient of the step's
output (the path upward) plus that of the state carried to step t+1. Relative error <= 1e-9
(float64 on both sides; the pixels are float32 / 255 in both).

    /work/pyenv/bin/python scripts/torch_recurrent_probe.py GRADSCOPE MNIST_DIR

Exit 0 when every comparison passes, 1 otherwise. Needs torch, numpy, safetensors.
"""
import gzip
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

TOL = 1e-9
ROWS, HIDDEN, LAYERS = 32, 16, 2


def idx(path):
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def find(folder, stem):
    for name in (stem, stem + ".gz"):
        if (Path(folder) / name).exists():
            return Path(folder) / name
    raise SystemExit(f"no {stem} in {folder}")


def module(cell, i, h, layers):
    if cell.startswith("rnn"):
        return torch.nn.RNN(i, h, layers, nonlinearity=cell.split("_")[1])
    return torch.nn.LSTM(i, h, layers) if cell == "lstm" else torch.nn.GRU(i, h, layers)


class Net(torch.nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = module(cell, 28, HIDDEN, LAYERS)
        self.fc = torch.nn.Linear(HIDDEN, 10)


def autograd_norms(net, cell, x, labels):
    """Per layer: ||dL/dh_t|| and ||dL/dx_t||, t = 1..T, from a step-by-step unrolled copy."""
    x = x.clone().requires_grad_(True)
    inputs, outs, states = [x[t] for t in range(x.shape[0])], [], []
    for k in range(LAYERS):
        layer = module(cell, inputs[0].shape[1], HIDDEN, 1).double()
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer, f"{name}_l0").data.copy_(getattr(net.rnn, f"{name}_l{k}").data)
        state, o_k, s_k = None, [], []
        for t, inp in enumerate(inputs):
            o, state = layer(inp[None], state)
            o.retain_grad()
            h = state[0] if cell == "lstm" else state
            h.retain_grad()
            o_k.append(o)
            s_k.append(h)
        outs.append(o_k)
        states.append(s_k)
        inputs = [o[0] for o in o_k]
    loss = F.cross_entropy(net.fc(outs[-1][-1][0]), labels)
    loss.backward()
    grad = lambda v: torch.zeros_like(v) if v.grad is None else v.grad  # unused: no gradient
    result = []
    for k in range(LAYERS):
        # the path upward (layer above or head) and the path to step t+1
        grad_h = [float((grad(outs[k][t]) + grad(states[k][t])).norm()) for t in range(len(outs[k]))]
        grad_x = [float(x.grad[t].norm()) for t in range(x.shape[0])] if k == 0 else [
            float(grad(o).norm()) for o in outs[k - 1]]
        result.append({"grad_h": grad_h, "grad_x": grad_x})
    return float(loss.detach()), result


def main():
    gradscope, mnist = sys.argv[1], sys.argv[2]
    images = idx(find(mnist, "train-images-idx3-ubyte"))[:ROWS]
    labels = torch.tensor(idx(find(mnist, "train-labels-idx1-ubyte"))[:ROWS].astype(np.int64))
    pixels = images.astype(np.float32) / np.float32(255.0)  # as gradscope's reader: f32 / 255
    x = torch.tensor(pixels.astype(np.float64)).permute(1, 0, 2).contiguous()  # [28 steps, rows, 28]
    worst, failed = 0.0, False
    with tempfile.TemporaryDirectory() as work:
        for n, cell in enumerate(["rnn_tanh", "rnn_relu", "lstm", "gru"]):
            torch.manual_seed(10 + n)
            net = Net(cell)
            path = Path(work) / f"{cell}.safetensors"
            save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
            out = subprocess.run(
                [gradscope, "probe", "--cell", cell, "--num-layers", str(LAYERS), "--width", str(HIDDEN),
                 "--data", f"mnist:{mnist}", "--loss", "cross_entropy", "--weights", str(path),
                 "--batch-size", str(ROWS), "--threads", "1", "--json", "--out", str(Path(work) / cell)],
                check=True, capture_output=True, text=True).stdout
            ours = json.loads(out)
            loss, theirs = autograd_norms(net.double(), cell, x, labels)
            errs = [abs(ours["train_loss"] - loss) / loss]
            for k in range(LAYERS):
                for key in ("grad_h", "grad_x"):
                    a, b = np.array(ours["time"]["layers"][k][key]), np.array(theirs[k][key])
                    errs.append(float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))
            err = max(errs)
            worst = max(worst, err)
            ratio = ours["time"]["vanishing_ratio_time"]
            print(f"{cell:9s} loss {ours['train_loss']:.6f}  max relative error {err:.1e}  "
                  f"first/last input gradient {ratio:.2e}  {'ok' if err <= TOL else 'FAILED'}")
            failed |= err > TOL
    print(f"worst relative error {worst:.1e} (tolerance {TOL:.0e})")
    print("recurrent probe: every comparison within its tolerance" if not failed else "recurrent probe: FAILED")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
