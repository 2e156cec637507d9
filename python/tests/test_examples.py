"""The examples under examples/python run (shortened) and write reports that show their layers by
module name: the CNN on MNIST, the LSTM on the adding problem, the transformer stack."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "python"


@pytest.mark.parametrize("script, args, kinds", [
    ("cnn_mnist.py", ["--steps", "12", "--every", "4"], {"Conv2d", "BatchNorm2d", "Linear"}),
    ("lstm_adding.py", ["--steps", "12", "--every", "4", "--length", "20"], {"LSTM", "Linear"}),
    ("transformer.py", ["--steps", "8", "--every", "4", "--layers", "2"],
     {"Embedding", "MultiheadAttention", "Linear", "LayerNorm"}),
])
def test_example_runs_and_reports(tmp_path, mnist_dir, script, args, kinds, gradscope_bin):
    out = tmp_path / "run"
    p = subprocess.run([sys.executable, str(EXAMPLES / script), *args, "--out", str(out)], capture_output=True,
                       text=True, env={**os.environ, "GRADSCOPE_MNIST_DIR": str(mnist_dir)})
    assert p.returncode == 0, p.stderr
    assert (out / "report.html").is_file()
    config = (out / "config.toml").read_text()
    for kind in kinds:
        assert f'kind = "{kind}"' in config, f"no {kind} layer in {script}'s model description"
    recs = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == list(range(0, int(args[1]), 4))
    # every watched layer got a gradient at every probed step
    assert all(l["grad_w_norm"] is not None and l["grad_w_norm"] > 0 for r in recs for l in r["layers"])
    subprocess.run([gradscope_bin, "report", str(out), "--out", str(tmp_path / "cli")], check=True,
                   capture_output=True)


@pytest.mark.parametrize("args, expect", [
    (["--per-step", "--steps", "3"], "unprobed steps, so watching every 10 steps costs"),
    (["--phases", "--steps", "3"], "opt.step"),
    (["--repeats", "2", "--steps", "3"], "alternated runs of 3 steps each"),
])
def test_the_overhead_script_runs(args, expect):
    """examples/python/overhead.py, whose figures docs/python.md quotes, runs each way (shortened)."""
    p = subprocess.run([sys.executable, str(EXAMPLES / "overhead.py"), *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert expect in p.stdout
