"""gradscope for PyTorch: watch how the gradient of your own model vanishes or explodes, layer by
layer, and read it in gradscope's report, TensorBoard or pandas.

    import gradscope
    with gradscope.watch(model, out="runs/exp", every=10, optimizer=opt) as w:
        for x, y in batches:
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            w.step(loss)
            opt.step()
    # runs/exp/report.html; `gradscope report runs/exp` and gradscope.report(["runs/exp"]) too

The record format, the run folder, the verdicts, the theory, the report and the exports are
gradscope's Rust core (`gradscope._core`); this package measures PyTorch models and calls it.
See docs/python.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import _core
from ._core import GradscopeError
from .watch import Watch

__all__ = ["watch", "Watch", "report", "Report", "theory", "verdicts", "export_tensorboard", "export_csv",
           "GradscopeError", "__version__"]
__version__ = _core.version()


def watch(model, out="runs/exp", every=10, optimizer=None, loss=None, data="pytorch", overwrite=False,
          report=True, seed=None, detail_every=10) -> Watch:
    """Watches `model` (any `torch.nn.Module`) and writes a gradscope run folder `out`.

    every: probe every N steps (and step 0). optimizer: its step hooks measure ‖ΔW‖/‖W‖.
    loss, data: names shown in the report (e.g. "cross_entropy", "mnist"). overwrite: replace a
    run already in `out` (else that is an error). report: write out/report.html when the watch
    closes. detail_every: the percentiles and φ′ histograms every N-th probed step (the first
    included; they cost more than the rest of a probe). Call `w.step(loss)` after each
    `loss.backward()`, or let the optimizer's step end each step (a PyTorch Lightning loop: the
    loss is the value of the closure passed to `optimizer.step`); `w.close()` (or the end of a
    `with` block) writes summary.json and the report.
    """
    return Watch(model, out=out, every=every, optimizer=optimizer, loss=loss, data=data, overwrite=overwrite,
                 report=report, seed=seed, detail_every=detail_every)


class Report:
    """A written report: `path` is its report.html; shown inline in notebooks."""

    def __init__(self, path):
        self.path = Path(path)

    def _repr_html_(self):
        from .watch import _iframe

        return _iframe(self.path)

    def __repr__(self):
        return f"gradscope.Report({str(self.path)!r})"


def report(runs, out=None) -> Report:
    """Writes report.html and figures/ of run folders (a path or a list), as `gradscope report`
    does, into `out` (default: the run folder, or the first run's parent for several)."""
    runs = [str(runs)] if isinstance(runs, (str, Path)) else [str(r) for r in runs]
    if out is None:
        out = runs[0] if len(runs) == 1 else str(Path(runs[0]).parent)
    return Report(_core.write_report(runs, str(out), "gradscope.report(" + ", ".join(map(repr, runs)) + ")"))


def verdicts(runs) -> list:
    """The verdict sentence of each run folder (as the report and the terminal give it)."""
    runs = [str(runs)] if isinstance(runs, (str, Path)) else [str(r) for r in runs]
    return _core.verdicts(runs)


def theory(activation="tanh", sigma_w2=None, sigma_b2=0.0, critical=False, init="gaussian", q0=1.0,
           q0_fixed=False, depth=30, width=1000, negative_slope=0.01) -> dict:
    """The mean-field prediction for a random MLP: the `theory` field of
    `gradscope theory --json` with the same arguments (q*, χ₁, ξ_q, ξ_c, … and layer by layer)."""
    return json.loads(_core.theory_json(activation, init, sigma_w2, sigma_b2, critical, q0, q0_fixed, depth,
                                        width, negative_slope))


def export_tensorboard(runs, logdir) -> list:
    """Writes TensorBoard event files of run folders under `logdir` (one subfolder per run), as
    `gradscope export --tensorboard`; returns their paths."""
    runs = [str(runs)] if isinstance(runs, (str, Path)) else [str(r) for r in runs]
    return [Path(p) for p in _core.export_tensorboard(runs, str(logdir))]


def export_csv(runs, path) -> Path:
    """Writes the flat CSV (`run,step,layer,field,value`) of run folders, as `gradscope export
    --csv`; returns its path (`pandas.read_csv(path)`)."""
    runs = [str(runs)] if isinstance(runs, (str, Path)) else [str(r) for r in runs]
    _core.export_csv(runs, str(path))
    return Path(path)
