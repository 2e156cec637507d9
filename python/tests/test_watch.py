"""gradscope.watch on a small training loop: the run folder it writes, the report from Python and
from the CLI, the verdict, errors, and the theory from Python against `gradscope theory --json`."""

import json
import re
import subprocess

import pytest
import torch

import gradscope


def train(out, steps=25, every=5, optimizer_hooked=True, **kw):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.Sigmoid(), torch.nn.Linear(32, 32),
                                torch.nn.Sigmoid(), torch.nn.Linear(32, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(64, 4)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    with gradscope.watch(model, out=out, every=every, optimizer=opt if optimizer_hooked else None,
                         loss="cross_entropy", **kw) as w:
        for _ in range(steps):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            w.step(loss)
            opt.step()
    return w


def records(run):
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def test_run_folder_and_report(tmp_path, gradscope_bin):
    run = tmp_path / "exp"
    w = train(run)
    recs = records(run)
    assert [r["step"] for r in recs] == [0, 5, 10, 15, 20]
    assert all(len(r["layers"]) == 3 for r in recs)
    first = recs[0]["layers"]
    # update ratios come from the optimizer's step hook; ‖ΔW‖ = lr·‖∂L/∂W‖ for plain SGD
    for l in first:
        assert l["update_ratio"] == pytest.approx(0.5 * l["grad_w_norm"] / l["weight_norm"], rel=1e-5)
    assert first[0]["saturation"] is not None and first[2]["saturation"] is None  # no activation after the output
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 25 and summary["status"] == "completed"
    assert (run / "report.html").is_file()
    config = (run / "config.toml").read_text()
    assert "[model]" in config and 'kind = "Linear"' in config and 'activation = "sigmoid"' in config
    verdict = w.verdict()  # the Rust core's sentence, from the first and last records and the summary
    assert verdict.startswith("gradient at layer 0 is ") and f"{recs[0]['vanishing_ratio']:.4f} of layer 2's" in verdict
    assert gradscope.verdicts(run) == [verdict]
    assert "<iframe" in w._repr_html_()
    # the CLI renders the same folder, with the module names on the gradient-flow figure
    subprocess.run([gradscope_bin, "report", str(run), "--out", str(tmp_path / "cli")], check=True,
                   capture_output=True)
    svg = (tmp_path / "cli" / "figures" / "gradient-flow.svg").read_text()
    # the Sequential's module names 0, 2, 4 label the axis (indices would end at 2)
    assert re.search(r">\s*4\s*</text>", svg) and not re.search(r">\s*1\s*</text>", svg)
    page = gradscope.report([run], out=tmp_path / "py")
    assert page.path.name == "report.html" and "Gradient flow" in page.path.read_text()


def test_without_optimizer_there_is_no_update_ratio(tmp_path):
    run = tmp_path / "r"
    train(run, steps=3, every=1, optimizer_hooked=False, report=False)
    assert all(l["update_ratio"] is None for r in records(run) for l in r["layers"])
    assert not (run / "report.html").exists()


def test_refuses_a_folder_holding_a_run(tmp_path):
    run = tmp_path / "r"
    train(run, steps=1, report=False)
    with pytest.raises(gradscope.GradscopeError, match="overwrite=True"):
        gradscope.watch(torch.nn.Linear(2, 2), out=run)
    train(run, steps=2, every=1, overwrite=True, report=False)
    assert len(records(run)) == 2


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        gradscope.watch("model")
    with pytest.raises(ValueError, match="every"):
        gradscope.watch(torch.nn.Linear(2, 2), every=0)
    with pytest.raises(ValueError, match="no module with parameters"):
        gradscope.watch(torch.nn.ReLU())


@pytest.mark.parametrize("args", [
    dict(activation="tanh", sigma_w2=1.5, depth=10),
    dict(activation="relu", critical=True, depth=5),
    dict(activation="sigmoid", init="xavier_uniform", depth=3, width=200),
])
def test_theory_is_the_clis(gradscope_bin, args):
    flags = []
    for k, v in args.items():
        flag = "--" + k.replace("_", "-")
        flags += [flag] if v is True else [flag, str(v)]
    cli = json.loads(subprocess.run([gradscope_bin, "theory", "--json", *flags], check=True, capture_output=True,
                                    text=True).stdout)
    assert gradscope.theory(**args) == cli["theory"]


def test_theory_errors_name_the_value():
    with pytest.raises(gradscope.GradscopeError, match="sigma_w2"):
        gradscope.theory(activation="tanh", init="gaussian")
    with pytest.raises(gradscope.GradscopeError, match="relu"):
        gradscope.theory(activation="rleu", sigma_w2=1.0)
