"""gradscope.watch on a small training loop: the run folder it writes, the report from Python and
from the CLI, the verdict, errors, and the theory from Python against `gradscope theory --json`."""

import importlib
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
    heat = (tmp_path / "cli" / "figures" / "heatmap.svg").read_text()  # its rows too
    assert "layer, in forward order" in heat and re.search(r">\s*4\s*</text>", heat)
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


def _deep_model():
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(6, 48), torch.nn.Tanh(), torch.nn.Linear(48, 48), torch.nn.ReLU(),
                                torch.nn.Linear(48, 48), torch.nn.Sigmoid(), torch.nn.Linear(48, 48), torch.nn.GELU(),
                                torch.nn.Linear(48, 3))
    with torch.no_grad():
        model[0].weight.mul_(4)  # a saturated tanh: some φ′ below max φ′ / 20
    return model


def _watch_deep(run, detail_every):
    model = _deep_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(80, 6, generator=torch.Generator().manual_seed(1)), torch.arange(80) % 3
    with gradscope.watch(model, out=run, every=1, optimizer=opt, report=False, detail_every=detail_every) as w:
        for _ in range(3):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            w.step(loss)
            opt.step()
    return records(run)


def _same_fields(a_records, b_records, fields):
    for a, b in zip(a_records, b_records, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-6)
        for la, lb in zip(a["layers"], b["layers"], strict=True):
            for f in fields:
                if la[f] is None or lb[f] is None:
                    assert la[f] is lb[f] is None, f"layer {la['layer']} {f}: {la[f]} {lb[f]}"
                else:
                    assert lb[f] == pytest.approx(la[f], rel=1e-5, abs=1e-7), f"layer {la['layer']} {f}"


FIELDS = ("grad_w_norm", "grad_b_norm", "grad_z_norm", "grad_h_norm", "act_mean", "act_std", "dact_mean",
          "saturation", "weight_norm", "update_ratio")


def test_probes_without_detail_give_the_same_numbers(tmp_path):
    """Probes without the detail (percentiles, φ′ histograms) take cheaper paths (tanh's φ′ from
    ‖h‖, counts by sign): every other field is the detailed probe's, to float32's precision."""
    detailed, cheap = _watch_deep(tmp_path / "d1", 1), _watch_deep(tmp_path / "d100", 100)
    assert [r["layers"][0]["act_p50"] is not None for r in cheap] == [True, False, False]
    assert [bool(r["layers"][0]["dact_hist"]) for r in cheap] == [True, False, False]
    assert detailed[1]["layers"][0]["saturation"] > 0.05  # the cheap count is tested where it counts
    _same_fields(detailed, cheap, FIELDS)


def test_the_device_path_gives_the_cpu_paths_numbers(tmp_path, monkeypatch):
    """Off the CPU (a GPU) the watch keeps every number on the device in float64 until one copy
    per probed step; taken on the CPU (by telling it the tensors are elsewhere), that path gives
    the CPU path's numbers, percentiles and histograms included."""
    cpu = _watch_deep(tmp_path / "cpu", 2)
    watch_module = importlib.import_module("gradscope.watch")
    monkeypatch.setattr(watch_module, "_on_cpu", lambda t: False)
    device = _watch_deep(tmp_path / "device", 2)
    _same_fields(cpu, device, FIELDS + ("act_p05", "act_p50", "act_p95"))
    for a, b in zip(cpu, device):
        for la, lb in zip(a["layers"], b["layers"]):
            assert lb["dact_hist"] == pytest.approx(la["dact_hist"], abs=1e-12)


class _LitModel(torch.nn.Module):
    """A LightningModule's shape: training_step(batch) returns the loss; the trainer does the rest."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch):
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x), y)


def _fit(module, opt, batches):
    """Lightning's automatic optimization, as its loop runs it: optimizer.step(closure), the
    closure running training_step, zero_grad and backward inside the optimizer's step."""
    for batch in batches:
        def closure():
            loss = module.training_step(batch)
            opt.zero_grad()
            loss.backward()
            return loss
        opt.step(closure=closure)


def test_the_optimizer_ends_steps_without_w_step(tmp_path):
    torch.manual_seed(0)
    module = _LitModel()
    opt = torch.optim.SGD(module.parameters(), lr=0.2)
    x = torch.randn(32, 4)
    batches = [(x, (x[:, 0] > 0).long())] * 7
    with gradscope.watch(module, out=tmp_path / "lit", every=3, optimizer=opt, report=False) as w:
        _fit(module, opt, batches)
    recs = records(tmp_path / "lit")
    assert [r["step"] for r in recs] == [0, 3, 6] and w.step_count == 7
    assert all(r["train_loss"] is not None and r["train_loss"] > 0 for r in recs)
    for r in recs:
        assert [l["update_ratio"] for l in r["layers"]] == pytest.approx(
            [0.2 * l["grad_w_norm"] / l["weight_norm"] for l in r["layers"]], rel=1e-5)
    # the loss recorded is the closure's: the loss at step 0 is the model's at initialisation
    torch.manual_seed(0)
    assert recs[0]["train_loss"] == pytest.approx(_LitModel().training_step(batches[0]).item(), rel=1e-6)


def test_w_step_after_the_optimizer_step(tmp_path):
    """w.step(loss) may come after optimizer.step(): the record is the same as before it."""
    out = {}
    for after in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
        opt = torch.optim.SGD(model.parameters(), lr=0.3)
        x = torch.randn(32, 4)
        y = (x[:, 1] > 0).long()
        with gradscope.watch(model, out=tmp_path / str(after), every=2, optimizer=opt, report=False) as w:
            for _ in range(5):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                if not after:
                    w.step(loss)
                opt.step()
                if after:
                    w.step(loss)
        out[after] = records(tmp_path / str(after))
    assert [r["step"] for r in out[True]] == [0, 2, 4]
    assert out[True] == out[False]


def test_a_lightning_trainer(tmp_path):
    """The same with PyTorch Lightning's own Trainer (pinned in .ci/run's venv): the watch starts
    in on_train_start, given the trainer's optimizer, and closes in on_train_end."""
    L = pytest.importorskip("lightning")

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            x, y = batch
            return torch.nn.functional.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.2)

        def on_train_start(self):
            self.watch = gradscope.watch(self, out=tmp_path / "lit", every=3, optimizer=self.trainer.optimizers[0],
                                         report=False)

        def on_train_end(self):
            self.watch.close()

    torch.manual_seed(0)
    x = torch.randn(7 * 32, 4)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, (x[:, 0] > 0).long()), batch_size=32)
    module = Lit()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, data)
    recs = records(tmp_path / "lit")
    assert [r["step"] for r in recs] == [0, 3, 6] and module.watch.step_count == 7
    assert all(r["train_loss"] is not None and r["train_loss"] > 0 for r in recs)
    for r in recs:
        assert [l["update_ratio"] for l in r["layers"]] == pytest.approx(
            [0.2 * l["grad_w_norm"] / l["weight_norm"] for l in r["layers"]], rel=1e-5)
    assert 'name = "net.0"' in (tmp_path / "lit" / "config.toml").read_text()


def test_changes_after_the_backward_pass_are_read_again(tmp_path):
    """On the CPU the watch reads gradients and weights in the backward pass, while they are in
    cache; what changes afterwards is read again: gradients clipped before `w.step` are recorded
    clipped (as PyTorch's own norm of them), weights changed in place before the optimizer's step
    give that weight's norm and update."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randn(32, 2)
    with gradscope.watch(model, out=tmp_path / "clip", every=1, optimizer=opt, report=False) as w:
        for step in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e-3)
            clipped = [model[i].weight.grad.norm().item() for i in (0, 2)]
            if step == 2:
                with torch.no_grad():
                    model[2].weight.mul_(2.0)  # after the backward pass, before the update
            before = [model[i].weight.detach().clone() for i in (0, 2)]
            w.step()
            opt.step()
            rec = records(tmp_path / "clip")[-1]["layers"]
            for k, i in enumerate((0, 2)):
                assert rec[k]["grad_w_norm"] == pytest.approx(clipped[k], rel=1e-6)
                assert rec[k]["weight_norm"] == pytest.approx(before[k].norm().item(), rel=1e-6)
                delta = (model[i].weight.detach() - before[k]).norm().item()
                assert rec[k]["update_ratio"] == pytest.approx(delta / before[k].norm().item(), rel=1e-5)


@pytest.mark.parametrize("act", [torch.nn.Tanh, torch.nn.Sigmoid, torch.nn.ReLU, torch.nn.GELU])
def test_gradients_at_both_sides_of_an_activation(tmp_path, act):
    """‖∂L/∂z‖ and ‖∂L/∂h‖ at every probe (after the first, both come from one hook on the
    activation's backward node) equal the norms of the gradients autograd computes."""
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(6, 24), act(), torch.nn.Linear(24, 24), act(), torch.nn.Linear(24, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(40, 6), torch.randn(40, 3)
    want = []
    with gradscope.watch(model, out=tmp_path / "g", every=1, optimizer=opt, report=False) as w:
        for _ in range(3):
            opt.zero_grad()
            zs, hs = [], []
            def keep(kept):
                def hook(module, args, out):
                    out.retain_grad()
                    kept.append(out)
                return hook
            handles = [model[i].register_forward_hook(keep(l)) for i, l in ((0, zs), (2, zs), (1, hs), (3, hs))]
            torch.nn.functional.mse_loss(model(x), y).backward()
            for hd in handles:
                hd.remove()
            w.step()
            opt.step()
            want.append(([t.grad.norm().item() for t in zs], [t.grad.norm().item() for t in hs]))
    for rec, (gz, gh) in zip(records(tmp_path / "g"), want):
        for k in range(2):
            assert rec["layers"][k]["grad_z_norm"] == pytest.approx(gz[k], rel=1e-5)
            assert rec["layers"][k]["grad_h_norm"] == pytest.approx(gh[k], rel=1e-5)


def test_an_output_used_twice_keeps_its_own_gradient_hook(tmp_path):
    """A layer output read by its activation and by something else (here a residual term): the
    activation's backward node sees only its share of ∂L/∂z, so the first probe's check keeps z's
    own hook, and every probe records all of ∂L/∂z, as autograd computes it."""
    class Residual(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act, self.out = torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2)

        def forward(self, x):
            z = self.lin(x)
            z.retain_grad()
            self.kept = z
            return self.out(self.act(z) + 0.5 * z)

    torch.manual_seed(3)
    model = Residual()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(20, 8), torch.randn(20, 2)
    want = []
    with gradscope.watch(model, out=tmp_path / "r", every=1, optimizer=opt, report=False) as w:
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            w.step()
            opt.step()
            want.append(model.kept.grad.norm().item())
        assert w._layers[model.lin].through is False
    for rec, gz in zip(records(tmp_path / "r"), want):
        assert rec["layers"][0]["grad_z_norm"] == pytest.approx(gz, rel=1e-5)


def test_the_core_refuses_a_copy_onto_what_it_copies():
    """`copy_sum_sqs` writes only into a destination that no other tensor of the call overlaps:
    a copy onto its own source, or onto another pair's source, is refused; an empty tensor
    overlaps nothing; the sums are those of `sum_sqs`."""
    core = gradscope._core
    lent = importlib.import_module("gradscope.watch")._lent
    a, b = torch.randn(64), torch.randn(64)
    buf = torch.empty(128)
    with pytest.raises(core.GradscopeError, match="overlap"):
        core.copy_sum_sqs([(lent(a), lent(a))])
    with pytest.raises(core.GradscopeError, match="overlap"):  # a's copy lands on what the other pair reads
        core.copy_sum_sqs([(lent(a), lent(buf[:64])), (lent(buf[32:96]), lent(b))])
    empty = torch.empty(0)
    dst_a, dst_b = torch.empty(64), torch.empty(64)
    got = core.copy_sum_sqs([(lent(a), lent(dst_a)), (lent(b), lent(dst_b)), (lent(empty), lent(torch.empty(0)))])
    assert got == core.sum_sqs([lent(a), lent(b), lent(empty)])
    assert torch.equal(dst_a, a) and torch.equal(dst_b, b)
