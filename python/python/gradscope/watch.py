"""`gradscope.watch(model)`: per-layer gradient statistics of a PyTorch model as it trains.

Every `every` steps (and at step 0) the watch measures, for each layer that owns parameters, in
the order the forward pass runs them:

- forward hooks: the mean and standard deviation (and 5th/50th/95th percentiles) of the layer's
  output, or of the activation module right after it (ReLU, Tanh, …) when there is one; there,
  also φ′'s mean, histogram and the saturated fraction (φ′ < max φ′ / 20), as gradscope's probes;
- hooks on those outputs' gradients: ‖∂L/∂z‖ (the layer's output) and ‖∂L/∂h‖ (the activation's);
- after the backward pass (`w.step(loss)`): ‖∂L/∂W‖, ‖∂L/∂b‖ and ‖W‖;
- the optimizer's step hooks (when the watch is given the optimizer): ‖ΔW‖ / ‖W‖.

Everything is computed on the model's device; only the scalars of a probed step are copied to the
host, in one transfer. Unprobed steps cost one Python call (a forward pre-hook on the model) and,
with an optimizer, two (its step hooks). The records go through gradscope's Rust core into a run
folder (config.toml with a [model] table, metrics.jsonl, summary.json) that `gradscope report`,
`gradscope export` and `gradscope.report` read.
"""

from __future__ import annotations

import html
import json
import math
import os
import time
from pathlib import Path

from . import _core

DETAIL_SAMPLE = 4096  # entries sampled for percentiles and φ′ histograms (gradscope's probe::DETAIL_SAMPLE)
DACT_BINS = 20  # bins of the φ′ histogram (probe::DACT_BINS)

# Activation modules whose φ′ is known: torch class name → gradscope's activation name.
ACTIVATIONS = {
    "ReLU": "relu",
    "LeakyReLU": "leaky_relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "GELU": "gelu",
    "SiLU": "silu",
    "ELU": "elu",
    "SELU": "selu",
    "Softplus": "softplus",
    "Softsign": "softsign",
}

# Modules watched whole (their parameters together), not through their children.
COMPOSITES = ("MultiheadAttention",)

# Layer kinds as the report names them.
NORMS = ("BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm", "LocalResponseNorm")


def _kind(module) -> str:
    return type(module).__name__


def _first_tensor(x):
    import torch

    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (tuple, list)):
        for e in x:
            t = _first_tensor(e)
            if t is not None:
                return t
    return None


def _dphi(name: str, module, z, h):
    """φ′ at the activation's input z (h is its output), elementwise, as PyTorch's backward."""
    import torch

    if name == "relu":
        return (z > 0).to(h.dtype)
    if name == "leaky_relu":
        return torch.where(z > 0, 1.0, module.negative_slope).to(h.dtype)
    if name == "sigmoid":
        return h * (1 - h)
    if name == "tanh":
        return 1 - h * h
    if name == "elu":
        return torch.where(z > 0, torch.ones_like(h), h + module.alpha)
    if name == "selu":
        scale, alpha = 1.0507009873554804934193349852946, 1.6732632423543772848170429916717
        return torch.where(z > 0, torch.full_like(h, scale), h + scale * alpha)
    if name == "gelu":
        return torch.special.ndtr(z) + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    if name == "silu":
        s = torch.sigmoid(z)
        return s * (1 + z * (1 - s))
    if name == "softplus":
        return torch.sigmoid(module.beta * z)
    if name == "softsign":
        return 1 / (1 + z.abs()) ** 2
    return None


def _sq(t):
    """Σ x² in float64 on t's device (a float32 square underflows where gradients vanish)."""
    import torch

    return torch.linalg.vector_norm(t, dtype=torch.float64) ** 2


def _layer_norms(groups, device, wide=True):
    """‖·‖ of each group of tensors (a layer's weights, its gradients, …): one fused
    `_foreach_norm` over every tensor, then one `index_add_` of the squares per group; NaN for an
    empty group. `wide`: square in float64 (gradients and updates, which can vanish below
    float32's range); weights, whose norms are of order 1, are summed in their own dtype (the
    float64 copy of every weight cost more than the rest of the probe)."""
    import torch

    flat = [t for g in groups for t in g]
    out = torch.zeros(len(groups), dtype=torch.float64, device=device)
    if flat:
        norms = torch._foreach_norm(flat, 2, dtype=torch.float64) if wide else torch._foreach_norm(flat)
        norms = torch.stack([n.to(torch.float64) for n in norms]) if not wide else torch.stack(norms)
        index = torch.tensor([i for i, g in enumerate(groups) for _ in g], device=device)
        out.index_add_(0, index, norms * norms)
    empty = torch.tensor([not g for g in groups], device=device)
    return out.sqrt().masked_fill(empty, float("nan"))


class _Layer:
    """A watched layer: a module owning parameters (or a composite), and the activation after it."""

    def __init__(self, name, module, composite):
        self.name = name
        self.module = module
        params = module.named_parameters(recurse=composite)
        self.weights = [p for n, p in params if "bias" not in n.rsplit(".", 1)[-1]]
        self.biases = [p for n, p in module.named_parameters(recurse=composite) if "bias" in n.rsplit(".", 1)[-1]]
        self.activation = None  # (gradscope name, module)
        self.kind = _kind(module)

    def describe(self):
        d = {"name": self.name, "kind": self.kind, "parameters": sum(p.numel() for p in self.weights + self.biases)}
        if self.activation is not None:
            d["activation"] = self.activation[0]
        return d


class _Acc:
    """One layer's sums over the probed step's forward calls (device scalars)."""

    def __init__(self):
        self.h_sum = self.h_sq = self.count = None  # Σh, Σh², entries of the activation (or output)
        self.h_sample = None  # strided sample of h (first call)
        self.dphi_sum = self.dphi_below = self.dphi_count = None
        self.dphi_sample = None
        self.grad_z = []  # Σ(∂L/∂z)² per call
        self.grad_h = []
        self.mean_for_std = None


class Watch:
    """Watches a `torch.nn.Module` during training; see `gradscope.watch`."""

    def __init__(self, model, out="runs/exp", every=10, optimizer=None, loss=None, data="pytorch",
                 overwrite=False, report=True, seed=None):
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"gradscope.watch takes a torch.nn.Module, not {type(model).__name__}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every={every!r}: must be a whole number of steps ≥ 1 (probe every N steps)")
        self.model = model
        self.out = Path(out)
        self.every = every
        self.optimizer = optimizer
        self.loss_name = loss
        self.data = data
        self.overwrite = overwrite
        self.write_report = report
        self.seed = torch.initial_seed() % 2**63 if seed is None else int(seed)
        if _core.holds_run(str(self.out)) and not overwrite:
            raise _core.GradscopeError(
                f"{self.out}: already holds a run; pass overwrite=True to replace it, or choose another out=")
        self.step_count = 0  # updates so far = the step number of the next gradient
        self.epoch = 0
        self._layers = self._find_layers()
        if not self._layers:
            raise ValueError(f"{type(model).__name__} has no module with parameters to watch")
        self._device = next(model.parameters()).device
        self._order = None  # layers in execution order, fixed at the first probed forward
        self._run = None
        self._hooks = []
        self._collecting = False
        self._acc = {}
        self._last_out = None  # (layer, output tensor) of the last layer called, to attach activations
        self._pending = None  # a probed step waiting for the optimizer's update
        self._snapshot = None
        self._update = None
        self._last_loss = None
        self._batch_size = None
        self._start = None
        self._closed = False
        self._root = model.register_forward_pre_hook(self._on_model_forward)
        self._opt_hooks = []
        if optimizer is not None:
            self._opt_hooks = [optimizer.register_step_pre_hook(self._before_update),
                               optimizer.register_step_post_hook(self._after_update)]

    # -- discovery -----------------------------------------------------------------------------

    def _find_layers(self):
        layers = {}
        skip = []
        for name, m in self.model.named_modules():
            if any(name.startswith(p + ".") for p in skip):
                continue
            composite = _kind(m) in COMPOSITES
            if composite:
                skip.append(name)
            leaf = not any(True for _ in m.children())
            # leaf modules that own parameters, and composites whole; a container's own
            # parameters (a positional embedding beside its layers) are not a layer
            if composite or (leaf and any(True for _ in m.parameters(recurse=False))):
                layers[m] = _Layer(name or type(m).__name__, m, composite)
        return layers

    # -- hooks ---------------------------------------------------------------------------------

    def _on_model_forward(self, module, args):
        import torch

        if self._start is None:
            self._start = time.perf_counter()
        if self._batch_size is None:
            x = _first_tensor(args)
            if x is not None and x.dim() > 0:
                self._batch_size = int(x.shape[0])
        if self._collecting or self.step_count % self.every or not torch.is_grad_enabled():
            return
        self._collecting = True
        self._acc = {}
        self._seen = []  # layers in the order called (the first probed forward fixes the order)
        for m, layer in self._layers.items():
            self._hooks.append(m.register_forward_hook(self._layer_hook(layer)))
        if self._order is None or any(l.activation for l in self._layers.values()):
            for m in self.model.modules():
                act = ACTIVATIONS.get(_kind(m))
                if act is not None and m not in self._layers:
                    self._hooks.append(m.register_forward_hook(self._activation_hook(act)))

    def _layer_hook(self, layer):
        def hook(module, args, output):
            z = _first_tensor(output)
            if z is None or not z.is_floating_point():
                return
            acc = self._acc.setdefault(layer, _Acc())
            if layer not in self._seen:
                self._seen.append(layer)
            self._last_out = (layer, z)
            if self._order is None or layer.activation is None:
                self._forward_stats(acc, z.detach(), None, None)
            if z.requires_grad:
                def on_grad(g, acc=acc):
                    acc.grad_z.append(_sq(g))
                    if layer.activation is None:  # known by the backward pass: h is z
                        acc.grad_h.append(acc.grad_z[-1])
                z.register_hook(on_grad)
        return hook

    def _activation_hook(self, act):
        def hook(module, args, output):
            z, h = _first_tensor(args), _first_tensor(output)
            if self._last_out is None or z is not self._last_out[1] or h is None:
                return
            layer = self._last_out[0]
            self._last_out = None
            if self._order is None and layer.activation is None:
                layer.activation = (act, module)
            if layer.activation is None or layer.activation[1] is not module:
                return
            acc = self._acc[layer]
            if self._order is None:
                acc.h_sum = None  # first forward: the layer measured its own output before it knew
            self._forward_stats(acc, h.detach(), act, (module, z.detach()))
            if h.requires_grad:
                h.register_hook(lambda g, acc=acc: acc.grad_h.append(_sq(g)))
        return hook

    def _forward_stats(self, acc, h, act, dphi_of):
        import torch

        flat = h.reshape(-1)
        n = flat.numel()
        if n == 0:
            return
        s = flat.sum(dtype=torch.float64)
        q = _sq(flat)
        if acc.h_sum is None:
            acc.h_sum, acc.h_sq, acc.count = s, q, n
            stride = max(1, -(-n // DETAIL_SAMPLE))
            acc.h_sample = flat[::stride].to(torch.float64)
        else:
            acc.h_sum, acc.h_sq, acc.count = acc.h_sum + s, acc.h_sq + q, acc.count + n
        if act is not None:
            module, z = dphi_of
            d = _dphi(act, module, z, h).reshape(-1)
            top = _core.max_derivative(act, getattr(module, "negative_slope", 0.01))
            ds, below = d.sum(dtype=torch.float64), (d < top / 20).sum()
            if acc.dphi_sum is None:
                acc.dphi_sum, acc.dphi_below, acc.dphi_count = ds, below, n
                stride = max(1, -(-n // DETAIL_SAMPLE))
                sample = d[::stride].to(torch.float64)
                sample = sample[~torch.isnan(sample)]
                bins = (sample / top * DACT_BINS).floor().clamp(0, DACT_BINS - 1).long()
                acc.dphi_sample = torch.bincount(bins, minlength=DACT_BINS).to(torch.float64) / max(1, sample.numel())
            else:
                acc.dphi_sum, acc.dphi_below = acc.dphi_sum + ds, acc.dphi_below + below
                acc.dphi_count += n
        else:
            acc.dphi_sum = None

    def _before_update(self, optimizer, args, kwargs):
        if self._pending is not None or self._collecting:
            self._snapshot = [[w.detach().clone() for w in l.weights] for l in self._order or self._seen]

    def _after_update(self, optimizer, args, kwargs):
        import torch

        if self._snapshot is None:
            return
        layers = self._order or self._seen
        deltas = [torch._foreach_sub([w.detach() for w in l.weights], before) if before else []
                  for l, before in zip(layers, self._snapshot)]
        ratio = _layer_norms(deltas, self._device) / _layer_norms(self._snapshot, self._device, wide=False)
        ratios = [None if not before else ratio[i] for i, before in enumerate(self._snapshot)]
        self._snapshot = None
        if self._pending is not None:
            record, scalars = self._pending
            self._pending = None
            self._write(record, scalars, ratios)
        else:
            self._update = ratios

    # -- steps ---------------------------------------------------------------------------------

    def step(self, loss=None, *, test_loss=None, test_accuracy=None, epoch=None):
        """Ends a training step; call it after `loss.backward()` (before or after the optimizer's
        step). On probed steps it reads the gradients and writes the step's record (after the
        optimizer's update when the watch has the optimizer, for the update ratio)."""
        import torch

        if self._closed:
            raise RuntimeError("this watch is closed; start another gradscope.watch")
        if epoch is not None:
            self.epoch = int(epoch)
        if loss is not None:
            self._last_loss = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        if self._collecting:
            self._finish_collecting(test_loss, test_accuracy)
        self.step_count += 1

    def _finish_collecting(self, test_loss, test_accuracy):
        import torch

        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._collecting = False
        self._last_out = None
        if self._order is None:
            self._order = list(self._seen)
            if not self._order:
                raise RuntimeError("no watched layer ran in the forward pass before w.step(); is this the model "
                                   "being trained?")
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=self._device)
        scalars = []  # device scalars, copied to the host together

        def put(t):
            scalars.append(t if isinstance(t, torch.Tensor) else
                           torch.tensor(float(t), dtype=torch.float64, device=self._device))
            return len(scalars) - 1

        grad = lambda ps: [p.grad for p in ps if p.grad is not None]  # noqa: E731
        grad_w = _layer_norms([grad(l.weights) for l in self._order], self._device)
        grad_b = _layer_norms([grad(l.biases) for l in self._order], self._device)
        weight = _layer_norms([[w.detach() for w in l.weights] for l in self._order], self._device, wide=False)
        layers = []
        for i, l in enumerate(self._order):
            a = self._acc.get(l)
            g = {}
            g["grad_w_norm"] = put(grad_w[i])
            g["grad_b_norm"] = put(grad_b[i])
            g["weight_norm"] = put(weight[i])
            if a is not None and a.h_sum is not None:
                mean = a.h_sum / a.count
                g["act_mean"] = put(mean)
                g["act_std"] = put(((a.h_sq / a.count) - mean * mean).clamp(min=0).sqrt())
                qs = torch.quantile(a.h_sample, torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64,
                                                             device=a.h_sample.device))
                g["act_p05"], g["act_p50"], g["act_p95"] = put(qs[0]), put(qs[1]), put(qs[2])
            if a is not None and a.dphi_sum is not None:
                g["dact_mean"] = put(a.dphi_sum / a.dphi_count)
                g["saturation"] = put(a.dphi_below.to(torch.float64) / a.dphi_count)
                g["dact_hist"] = [put(v) for v in a.dphi_sample]
            if a is not None and a.grad_z:
                g["grad_z_norm"] = put(sum(a.grad_z).sqrt())
            if a is not None and a.grad_h:
                g["grad_h_norm"] = put(sum(a.grad_h).sqrt())
            layers.append(g)
        loss_i = put(self._last_loss.to(torch.float64)) if self._last_loss is not None else put(nan)
        record = {"step": self.step_count, "epoch": self.epoch, "loss": loss_i, "layers": layers,
                  "test_loss": test_loss, "test_accuracy": test_accuracy}
        self._acc = {}
        if self._update is not None:
            update, self._update = self._update, None
            self._write(record, scalars, update)
        elif self.optimizer is not None:
            self._pending = (record, scalars)
        else:
            self._write(record, scalars, None)

    def _grad_norm(self, params):
        import torch

        sq = [_sq(p.grad) for p in params if p.grad is not None]
        if not sq:
            return torch.tensor(float("nan"), dtype=torch.float64, device=self._device)
        return sum(sq).sqrt()

    def _write(self, record, scalars, update):
        import torch

        # one transfer of every scalar of the step to the host
        values = torch.stack([t.to(self._device, torch.float64).reshape(()) for t in scalars]).tolist()
        update_values = None
        if update is not None:
            update_values = [None if u is None else float(u) for u in update]
        nan = float("nan")

        def get(g, key):
            i = g.get(key)
            return nan if i is None else values[i]

        layers = []
        for k, g in enumerate(record["layers"]):
            layers.append({
                "layer": k,
                "grad_w_norm": get(g, "grad_w_norm"),
                "grad_b_norm": get(g, "grad_b_norm"),
                "grad_z_norm": get(g, "grad_z_norm"),
                "grad_h_norm": get(g, "grad_h_norm"),
                "act_mean": get(g, "act_mean"),
                "act_std": get(g, "act_std"),
                "act_p05": get(g, "act_p05"),
                "act_p50": get(g, "act_p50"),
                "act_p95": get(g, "act_p95"),
                "dact_mean": get(g, "dact_mean"),
                "dact_hist": [values[i] for i in g.get("dact_hist", [])],
                "saturation": get(g, "saturation"),
                "weight_norm": get(g, "weight_norm"),
                "update_ratio": None if update_values is None else update_values[k],
            })
        out = {"step": record["step"], "epoch": record["epoch"], "train_loss": values[record["loss"]],
               "vanishing_ratio": nan, "layers": layers}
        if record["test_loss"] is not None:
            out["test_loss"] = float(record["test_loss"])
        if record["test_accuracy"] is not None:
            out["test_accuracy"] = float(record["test_accuracy"])
        if self._run is None:
            self._run = _core.create_run(str(self.out), json.dumps(self._config()), json.dumps(self._model()),
                                         self.overwrite)
        self._run.append(_dumps(out))

    # -- the run folder ------------------------------------------------------------------------

    def _config(self):
        import torch

        acts = [l.activation[0] for l in self._order if l.activation is not None]
        # only names gradscope's config accepts (its keys are typed); the rest stays in [model]
        config = {
            "data": self.data,
            "depth": max(0, len(self._order) - 1),
            "width": 0,
            "probe_every": self.every,
            "seed": self.seed,
            "threads": torch.get_num_threads(),
        }
        if acts:
            config["activation"] = max(set(acts), key=acts.count)
        if self.loss_name in ("mse", "sse", "cross_entropy"):
            config["loss"] = self.loss_name
        if self._batch_size:
            config["batch_size"] = self._batch_size
        if self.optimizer is not None:
            if type(self.optimizer).__name__.lower() in ("sgd", "adam", "adamw"):
                config["optimizer"] = type(self.optimizer).__name__.lower()
            group = self.optimizer.param_groups[0]
            if isinstance(group.get("lr"), (int, float)):
                config["lr"] = float(group["lr"])
            if isinstance(group.get("momentum"), (int, float)):
                config["momentum"] = float(group["momentum"])
            if isinstance(group.get("weight_decay"), (int, float)):
                config["weight_decay"] = float(group["weight_decay"])
        return config

    def _model(self):
        return {
            "framework": "pytorch",
            "class": type(self.model).__name__,
            "parameters": sum(p.numel() for p in self.model.parameters() if p.requires_grad),
            "layers": [l.describe() for l in self._order],
            "text": repr(self.model),
        }

    def close(self):
        """Removes the hooks, writes summary.json (and report.html unless report=False); returns
        the run folder. Called by the `with` block's end."""
        if self._closed:
            return self.out
        self._closed = True
        for h in self._hooks + self._opt_hooks + [self._root]:
            h.remove()
        self._hooks = []
        if self._pending is not None:
            record, scalars = self._pending
            self._pending = None
            self._write(record, scalars, None)
        if self._run is None:
            return self.out  # nothing was probed: nothing written
        last = float(self._last_loss) if self._last_loss is not None else None
        end = {"steps": self.step_count, "epochs": self.epoch + 1, "train_loss": last,
               "wall_time_s": time.perf_counter() - self._start if self._start else 0.0,
               "seed": self.seed}
        self.summary = json.loads(self._run.finish(_dumps(end)))
        if self.write_report:
            _core.write_report([str(self.out)], str(self.out), f"gradscope.watch({type(self.model).__name__})")
        return self.out

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def verdict(self):
        """The verdict sentence of the run so far (needs a probed step)."""
        return _core.verdicts([str(self.out)])[0]

    def _repr_html_(self):
        page = self.out / "report.html"
        if not page.is_file():
            return f"<p>gradscope.watch → {html.escape(str(self.out))}: the report is written when the watch closes.</p>"
        return _iframe(page)


def _iframe(page: Path) -> str:
    doc = page.read_text(encoding="utf-8")
    return (f'<iframe srcdoc="{html.escape(doc, quote=True)}" style="width:100%;height:900px;border:0" '
            f'title="gradscope report {html.escape(str(page))}"></iframe>')


def _dumps(obj) -> str:
    """JSON with NaN and infinities as null (what gradscope's records hold for them)."""
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v
    return json.dumps(clean(obj))
