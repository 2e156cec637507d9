"""The same numbers both ways (issue 15): an nn.Sequential MLP watched in PyTorch (float32) and
the same weights and batch probed by `gradscope probe --weights` (float64) give the same
per-layer statistics, to float32's precision."""

import json
import subprocess

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import gradscope

ROWS, FEATURES, WIDTH = 96, 5, 24
# float32 forward and backward against gradscope's float64: relative differences are a few
# float32 ulps times the depth (measured below 2e-6); 1e-5 leaves room and still catches a
# wrong formula (a missing factor, a mean for a sum, another layer's tensor).
RTOL = 1e-5


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "relu"])
def test_watch_matches_probe(tmp_path, gradscope_bin, act):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(ROWS, FEATURES)).astype(np.float32)
    y = (np.sin(x[:, 0]) + 0.5 * x[:, 1]).astype(np.float32)
    csv = tmp_path / "data.csv"
    np.savetxt(csv, np.column_stack([x, y]), delimiter=",", fmt="%.9g",
               header=",".join([f"x{i}" for i in range(FEATURES)] + ["y"]), comments="")
    phi = {"tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid, "relu": torch.nn.ReLU}[act]
    model = torch.nn.Sequential(torch.nn.Linear(FEATURES, WIDTH), phi(), torch.nn.Linear(WIDTH, WIDTH), phi(),
                                torch.nn.Linear(WIDTH, WIDTH), phi(), torch.nn.Linear(WIDTH, 1))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "w.safetensors"))

    # the same rows, read back from the CSV as gradscope reads them (float32)
    data = np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float32)
    xt, yt = torch.from_numpy(data[:, :FEATURES]), torch.from_numpy(data[:, FEATURES:])
    run = tmp_path / "watched"
    w = gradscope.watch(model, out=run, every=1, loss="mse", report=False)
    loss = torch.nn.functional.mse_loss(model(xt), yt)
    loss.backward()
    w.step(loss)
    w.close()
    watched = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])

    probe = tmp_path / "probe"
    subprocess.run([gradscope_bin, "probe", "--data", f"csv:{csv}", "--target", "y", "--test-fraction", "0",
                    "--activation", act, "--loss", "mse", "--weights", str(tmp_path / "w.safetensors"),
                    "--out", str(probe), "--json"], check=True, capture_output=True)
    probed = json.loads((probe / "probe.json").read_text())

    assert watched["train_loss"] == pytest.approx(probed["train_loss"], rel=RTOL)
    assert len(watched["layers"]) == len(probed["layers"]) == 4
    fields = ["grad_w_norm", "grad_b_norm", "grad_z_norm", "grad_h_norm", "act_mean", "act_std", "act_p05",
              "act_p50", "act_p95", "weight_norm"]
    for l, (a, b) in enumerate(zip(watched["layers"], probed["layers"])):
        for f in fields:
            assert a[f] == pytest.approx(b[f], rel=RTOL, abs=1e-7), f"layer {l} {f}: watch {a[f]}, probe {b[f]}"
        if l < 3:  # hidden layers: φ′ is known (the output layer has no activation module)
            count = ROWS * WIDTH
            assert a["dact_mean"] == pytest.approx(b["dact_mean"], rel=RTOL), f"layer {l} dact_mean"
            assert a["saturation"] == pytest.approx(b["saturation"], abs=1.5 / count), f"layer {l} saturation"
            assert a["dact_hist"] == pytest.approx(b["dact_hist"], abs=1.5 / count), f"layer {l} dact_hist"
    assert watched["vanishing_ratio"] == pytest.approx(probed["vanishing_ratio"], rel=RTOL)


def test_a_wrong_layer_is_caught(tmp_path, gradscope_bin):
    """The comparison can fail: probing other weights (layer 1 scaled) breaks the equality."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x = torch.randn(32, 3)
    y = x[:, :1]
    csv = tmp_path / "d.csv"
    np.savetxt(csv, torch.cat([x, y], 1).numpy(), delimiter=",", fmt="%.9g", header="a,b,c,y", comments="")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["2.weight"] *= 1.01
    save_file(state, str(tmp_path / "w.safetensors"))
    w = gradscope.watch(model, out=tmp_path / "r", every=1, report=False)
    xt = torch.from_numpy(np.loadtxt(csv, delimiter=",", skiprows=1, dtype=np.float32))
    loss = torch.nn.functional.mse_loss(model(xt[:, :3]), xt[:, 3:])
    loss.backward()
    w.step(loss)
    w.close()
    subprocess.run([gradscope_bin, "probe", "--data", f"csv:{csv}", "--target", "y", "--test-fraction", "0",
                    "--activation", "tanh", "--loss", "mse", "--weights", str(tmp_path / "w.safetensors"),
                    "--out", str(tmp_path / "p")], check=True, capture_output=True)
    a = json.loads((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()[0])["layers"][1]
    b = json.loads((tmp_path / "p" / "probe.json").read_text())["layers"][1]
    assert a["weight_norm"] != pytest.approx(b["weight_norm"], rel=RTOL)
