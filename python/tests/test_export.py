"""Exports: TensorBoard event files read back by TensorBoard's own EventAccumulator, and the flat
CSV read by pandas-style parsing; from Python and from `gradscope export`."""

import csv
import json
import math
import subprocess

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import gradscope
from test_watch import records, train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "exp"
    train(out, steps=12, every=4, report=False)
    return out


def test_tensorboard_reads_the_events(run, tmp_path, gradscope_bin):
    for logdir in [tmp_path / "py", tmp_path / "cli"]:
        if logdir.name == "py":
            files = gradscope.export_tensorboard(run, logdir)
            assert len(files) == 1
        else:
            subprocess.run([gradscope_bin, "export", str(run), "--tensorboard", str(logdir)], check=True,
                           capture_output=True)
        acc = EventAccumulator(str(logdir / "exp"))
        acc.Reload()
        tags = acc.Tags()["scalars"]
        assert "loss/train" in tags and "grad_w_norm/0" in tags and "update_ratio/4" in tags
        recs = records(run)
        loss = acc.Scalars("loss/train")
        assert [e.step for e in loss] == [r["step"] for r in recs]
        assert [e.value for e in loss] == pytest.approx([r["train_loss"] for r in recs], rel=1e-6)
        g = acc.Scalars("grad_w_norm/2")
        assert [e.value for e in g] == pytest.approx([r["layers"][1]["grad_w_norm"] for r in recs], rel=1e-6)


def test_csv_is_flat(run, tmp_path, gradscope_bin):
    path = gradscope.export_csv(run, tmp_path / "py.csv")
    subprocess.run([gradscope_bin, "export", str(run), "--csv", str(tmp_path / "cli.csv")], check=True,
                   capture_output=True)
    assert path.read_bytes() == (tmp_path / "cli.csv").read_bytes()
    rows = list(csv.DictReader(path.open()))
    assert list(rows[0]) == ["run", "step", "layer", "field", "value"]
    recs = records(run)
    got = {(int(r["step"]), r["layer"], r["field"]): float(r["value"]) for r in rows}
    for rec in recs:
        assert got[(rec["step"], "", "train_loss")] == pytest.approx(rec["train_loss"])
        for name, l in zip(["0", "2", "4"], rec["layers"]):
            assert got[(rec["step"], name, "grad_w_norm")] == pytest.approx(l["grad_w_norm"])
            sat = got.get((rec["step"], name, "saturation"))
            assert (l["saturation"] is None and math.isnan(sat)) or sat == pytest.approx(l["saturation"])


def test_export_needs_a_format(run, gradscope_bin):
    p = subprocess.run([gradscope_bin, "export", str(run)], capture_output=True, text=True)
    assert p.returncode == 2 and "--tensorboard" in p.stderr
