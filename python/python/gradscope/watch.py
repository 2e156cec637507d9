"""`gradscope.watch(model)`: per-layer gradient statistics of a PyTorch model as it trains.

Every `every` steps (and at step 0) the watch measures, for each layer that owns parameters, in
the order the forward pass runs them:

- forward hooks: the mean and standard deviation (and 5th/50th/95th percentiles) of the layer's
  output, or of the activation module right after it (ReLU, Tanh, …) when there is one; there,
  also φ′'s mean, histogram and the saturated fraction (φ′ < max φ′ / 20), as gradscope's probes;
- backward hooks: ‖∂L/∂z‖ (the layer's output) and ‖∂L/∂h‖ (the activation's), both from one
  hook on the activation's backward node where the activation is z's only reader (checked at the
  first probe), else from a hook on each;
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

    if name == "relu":  # h > 0 exactly where z > 0 (a comparison costs 7 sign()s on a CPU)
        return h.sign()
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


# A float32 norm on the CPU outside [TINY, HUGE] is taken again in float64: below, its squares may
# have underflowed (an entry under 1e-19 squares to a subnormal float32), above, overflowed.
TINY, HUGE = 1e-12, 1e18


def _acc_dtype(t):
    """The dtype a CPU reduction of t runs in: float32 for the half types, t's own otherwise."""
    import torch

    return torch.float32 if t.dtype in (torch.float16, torch.bfloat16) else t.dtype


def _on_cpu(t) -> bool:
    return t.is_cpu


def _sum(t):
    """Σ t: on the CPU a float, in t's precision (torch's cascade sum: a relative error of a few
    float32 ulps); elsewhere a device scalar in float64 (the cast is free inside the kernel)."""
    import torch

    if _on_cpu(t):
        return t.sum(dtype=_acc_dtype(t)).item()
    return t.sum(dtype=torch.float64)


_FLOATS = {}  # torch.float32 → False, torch.float64 → True (made at the first call: torch loads late)


def _lent(t):
    """t as gradscope's core borrows it for one call (python/src/lib.rs `Lent`): (address,
    entries, float64?) of a contiguous float32/float64 CPU tensor; None for any other tensor,
    which PyTorch's own operations measure."""
    if not _FLOATS:
        import torch

        _FLOATS.update({torch.float32: False, torch.float64: True})
    double = _FLOATS.get(t.dtype)
    if double is None or not _on_cpu(t) or not t.is_contiguous():
        return None
    return t.data_ptr(), t.numel(), double


def _norm(t):
    """‖t‖. On the CPU a float: by gradscope's core in one pass, each square in float64 (as its
    own probes); for a tensor the core does not read, by PyTorch in t's precision, and again in
    float64 when that falls outside [TINY, HUGE] (a vanishing gradient's float32 squares
    underflow). Elsewhere a float64 device scalar (no sync)."""
    import torch

    if not _on_cpu(t):
        return torch.linalg.vector_norm(t, dtype=torch.float64)
    lent = _lent(t)
    if lent is not None:
        return math.sqrt(_core.sum_sq(lent))
    n = torch.linalg.vector_norm(t, dtype=_acc_dtype(t)).item()
    if not TINY <= n <= HUGE:
        n = torch.linalg.vector_norm(t, dtype=torch.float64).item()
    return n


def _norm_list(ts):
    """‖t‖ of each tensor, as `_norm`: those the core reads in one call."""
    lent = [_lent(t) for t in ts]
    sums = iter(_core.sum_sqs([x for x in lent if x is not None]))
    return [math.sqrt(next(sums)) if x is not None else _norm(t) for t, x in zip(ts, lent)]


def _checked(norms, again):
    """A float64 vector of norms; on the CPU each outside [TINY, HUGE] is replaced by `again(i)`."""
    import torch

    norms = norms.to(torch.float64)
    if _on_cpu(norms):
        for i, v in enumerate(norms.tolist()):
            if not TINY <= v <= HUGE:
                norms[i] = again(i)
    return norms


def _norms(tensors):
    """‖t‖ of each tensor by one fused `_foreach_norm`: a float64 vector, precision as `_norm`."""
    import torch

    if not _on_cpu(tensors[0]):
        return torch.stack(torch._foreach_norm(tensors, 2, dtype=torch.float64))
    wide = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    return _checked(torch.stack(torch._foreach_norm(tensors, 2, dtype=wide)),
                    lambda i: torch.linalg.vector_norm(tensors[i], dtype=torch.float64))


_INDEX = {}  # (tensors per group, device) → (each tensor's group, which groups are empty)


def _by_layer(norms, groups, device):
    """Per group (a layer's tensors) the norm over its tensors from each tensor's norm; NaN for
    an empty group. From a list of floats (the CPU's), a list; else by one `index_add_` of the
    squares, a float64 vector on `device`."""
    import torch

    if isinstance(norms, list):
        it = iter(norms)
        return [math.sqrt(sum(v * v for v in [next(it) for _ in g])) if g else math.nan for g in groups]

    sizes = tuple(len(g) for g in groups)
    key = (sizes, str(device))
    if key not in _INDEX:  # the same layers every probe: made once
        _INDEX[key] = (torch.tensor([i for i, k in enumerate(sizes) for _ in range(k)], device=device),
                       torch.tensor([k == 0 for k in sizes], device=device))
    index, empty = _INDEX[key]
    out = torch.zeros(len(groups), dtype=torch.float64, device=device)
    if norms is not None:
        out.index_add_(0, index, norms * norms)
    return out.sqrt().masked_fill(empty, float("nan"))


def _layer_norms(device, *groupsets):
    """For each list of groups of tensors (the layers' weights, their gradients, …) the norm of
    each group, as `_by_layer`, from one `_norms` over every tensor of them all."""
    flat = [t for groups in groupsets for g in groups for t in g]
    norms = _norms(flat) if flat else None
    out, at = [], 0
    for groups in groupsets:
        k = sum(len(g) for g in groups)
        out.append(_by_layer(norms[at:at + k] if k else None, groups, device))
        at += k
    return out


def _distances(new, old):
    """‖a − b‖ of each pair (`old`: copies of ours). On the CPU a list of floats, by gradscope's
    core, one pass over both, nothing written; otherwise a float64 vector, as b −= a in place (sparing a fresh
    a − b, whose new pages cost more than the subtraction) and its norm read at once, while b is
    in cache, precision as `_norm` (a difference of float32 weights is a multiple of their ulp:
    no underflow)."""
    import torch

    lent = [(_lent(a), _lent(b)) for a, b in zip(new, old)]
    if all(a is not None and b is not None for a, b in lent):
        # the last layers first: the optimizer updated them last, they are still in cache
        d = _core.diff_sum_sqs(lent[::-1])
        return [math.sqrt(v) for v in reversed(d)]
    d = torch.stack([torch.linalg.vector_norm(b.sub_(a), dtype=_acc_dtype(b)) for a, b in zip(new, old)])
    return _checked(d, lambda i: torch.linalg.vector_norm(old[i], dtype=torch.float64))


def _pick(vector, have, want):
    """The entries of `vector` (one per layer of `have`) for the layers of `want`, in its order."""
    import torch

    if have is want or have == want:
        return vector
    if isinstance(vector, list):
        return [vector[have.index(l)] for l in want]
    return vector.index_select(0, torch.tensor([have.index(l) for l in want], device=vector.device))


class _Layer:
    """A watched layer: a module owning parameters (or a composite), and the activation after it."""

    def __init__(self, name, module, composite):
        self.name = name
        self.module = module
        params = list(module.named_parameters(recurse=composite))
        self.weights = [p for n, p in params if "bias" not in n.rsplit(".", 1)[-1]]
        self.biases = [p for n, p in params if "bias" in n.rsplit(".", 1)[-1]]
        self.activation = None  # (gradscope name, module)
        self.kind = _kind(module)
        # ∂L/∂z read from the activation's backward node (its input's gradient, beside ∂L/∂h: one
        # callback instead of two): None until the first probe compares it with z's own gradient,
        # then whether they agreed (they do when the activation is z's only consumer)
        self.through = None

    def describe(self):
        d = {"name": self.name, "kind": self.kind, "parameters": sum(p.numel() for p in self.weights + self.biases)}
        if self.activation is not None:
            d["activation"] = self.activation[0]
        return d


class _Acc:
    """One layer's measurements over the probed step's forward calls: device scalars, one entry
    per call (a module called twice, weight sharing, adds both)."""

    def __init__(self):
        self.h = []  # (Σh, ‖h − mean h‖, entries) of the activation's output, else the layer's
        self.d = []  # (Σφ′, entries with φ′ < max φ′ / 20, entries)
        self.quantiles = None  # p05, p50, p95 of the first call's h sample (detail steps)
        self.hist = None  # the φ′ histogram of the first call's sample (detail steps)
        self.grad_z = []  # ‖∂L/∂z‖ per call
        self.grad_h = []  # ‖∂L/∂h‖ per call
        self.through = []  # ‖∂L/∂z‖ through the activation alone, per call (the first probe's check)


class _Record:
    """A probed step whose gradients are read: device tensors until `_write` copies them, at once."""

    def __init__(self, step, epoch, loss, test_loss, test_accuracy, grad_w, grad_b, weight, acc):
        self.step, self.epoch, self.loss = step, epoch, loss
        self.test_loss, self.test_accuracy = test_loss, test_accuracy
        self.grad_w, self.grad_b, self.weight, self.acc = grad_w, grad_b, weight, acc


class Watch:
    """Watches a `torch.nn.Module` during training; see `gradscope.watch`."""

    def __init__(self, model, out="runs/exp", every=10, optimizer=None, loss=None, data="pytorch",
                 overwrite=False, report=True, seed=None, detail_every=10):
        import torch

        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"gradscope.watch takes a torch.nn.Module, not {type(model).__name__}")
        for name, v in (("every", every), ("detail_every", detail_every)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name}={v!r}: must be a whole number ≥ 1 (every: probe every N steps; "
                                 "detail_every: percentiles and φ′ histograms every N-th probe)")
        self.model = model
        self.out = Path(out)
        self.every = every
        self.detail_every = detail_every
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
        self._detail = False
        self._probes = 0
        self._acc = {}
        self._seen = []
        self._last_out = None  # (layer, output) of the last layer called, for an activation to claim
        self._unclaimed = None  # (acc, output) whose statistics wait to see whether an activation follows
        self._awaiting = None  # (layer, acc, output) whose gradient the activation after it is to read
        self._tops = {}
        self._core_acts = {}  # activation module → its (name, slope) for the core, or None
        self._after = {}  # layer → the parameters of the layer after it in execution order
        self._grad_read = {}  # parameter → (its gradient, that tensor's version, its norm) read in the backward pass
        self._cpu = False  # this probe reads the parameters in the backward pass (on the CPU)
        self._weight_read = {}  # weight → (its version, ‖W‖, its copy or None)
        self._kept = {}  # weight → the buffer its copy is kept in, between probes
        self._frozen = False  # the optimizer's pre-hook ran: the weights' norms and copies are final
        self._dispatch = None  # (layers' order known?, module → its forward hook)
        self._manual = None  # True: w.step ends steps; False: the optimizer's step does (Lightning)
        self._deferred = False  # the optimizer stepped; whether w.step follows is not known yet
        self._pending = None  # a record waiting for the optimizer's update
        self._pre = None  # (layers, ‖W‖ before the update, its copy) of a probed step's update
        self._update = None  # the update ratios, when they come before the step ends
        self._weight = None  # (layers, ‖W‖ before the update) measured by the optimizer's pre-hook
        self._auto_loss = None
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

    # -- hooks: registered at a probed step's forward, removed when its gradients are read ------

    def _on_model_forward(self, module, args):
        import torch

        if self._start is None:
            self._start = time.perf_counter()
        if self._batch_size is None:
            x = _first_tensor(args)
            if x is not None and x.dim() > 0:
                self._batch_size = int(x.shape[0])
        if self._deferred:  # a new step began and no w.step ended the last: the optimizer ends steps
            self._manual = False
            self._end_step(self._auto_loss, None, None)
        if self._collecting or self.step_count % self.every or not torch.is_grad_enabled():
            return
        self._collecting = True
        self._detail = self._probes % self.detail_every == 0
        self._acc, self._seen = {}, []
        if self._dispatch is None or self._dispatch[0] != (self._order is not None):
            self._dispatch = (self._order is not None, self._forward_hooks())
        # one global forward hook for the probed forward (dispatching on the module) rather than
        # one per module: registering and removing dozens of hooks at every probe costs more
        self._hooks.append(torch.nn.modules.module.register_module_forward_hook(self._on_any_forward))
        self._watch_parameters()

    def _forward_hooks(self):
        """module → its forward hook: the watched layers, and the activations after them (at the
        first probe every activation module, to find which follows which layer)."""
        calls = {m: self._layer_hook(layer) for m, layer in self._layers.items()}
        if self._order is None:
            acts = [(m, ACTIVATIONS[_kind(m)]) for m in self.model.modules()
                    if _kind(m) in ACTIVATIONS and m not in self._layers]
        else:
            acts = list({id(l.activation[1]): l.activation[::-1] for l in self._order if l.activation}.values())
        calls.update((m, self._activation_hook(act)) for m, act in acts)
        return calls

    def _on_any_forward(self, module, args, output):
        hook = self._dispatch[1].get(module)
        if hook is not None:
            hook(module, args, output)
        elif module is self.model:  # the forward pass ends: nothing is left to claim
            self._settle()

    def _layer_hook(self, layer):
        def hook(module, args, output):
            z = _first_tensor(output)
            if z is None or not z.is_floating_point():
                return
            self._settle()
            acc = self._acc.get(layer)
            if acc is None:
                acc = self._acc[layer] = _Acc()
                self._seen.append(layer)
            self._last_out = (layer, z)
            if self._order is None:  # an activation module may follow: its output is measured then
                self._unclaimed = (acc, z.detach())
            elif layer.activation is None:
                self._forward_stats(acc, z)
            if not z.requires_grad:
                return
            if layer.through and self._order is not None:
                self._awaiting = (layer, acc, z)  # its activation's backward node reads ∂L/∂z, if it claims z
            else:
                self._grad_z_hook(layer, acc, z)
        return hook

    def _grad_z_hook(self, layer, acc, z):
        def on_grad(g):
            n = _norm(g)
            acc.grad_z.append(n)
            if layer.activation is None:  # known by the backward pass: h is z
                acc.grad_h.append(n)
        z.register_hook(on_grad)

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
            self._unclaimed = None
            acc = self._acc[layer]
            self._forward_stats(acc, h, (act, module, z))
            awaited, self._awaiting = self._awaiting, None
            node = h.grad_fn if h.requires_grad and h is not z else None
            if node is None or layer.through is False:
                if awaited is not None:
                    self._grad_z_hook(*awaited)
                if h.requires_grad:
                    h.register_hook(lambda g: acc.grad_h.append(_norm(g)))
                return
            # one callback after the activation's backward: ∂L/∂h (its output's gradient, all of
            # it) and the gradient it passes to z — all of ∂L/∂z where the activation is z's only
            # consumer, which the first probe checks against z's own hook (`through`)
            into = acc.grad_z if awaited is not None else acc.through
            # the layer after this one ran its backward just before this node: its parameters'
            # gradients were just written, and are read here while in cache (`_grad_norms`; the
            # weights' copies are not: taken here they measured slower, their stores evict what
            # the backward pass reads next)
            after = self._after.get(layer, ()) if self._cpu else ()

            def on_node(grad_inputs, grad_outputs):
                gz = grad_inputs[0] if grad_inputs else None
                ts = [grad_outputs[0]] if gz is None else [grad_outputs[0], gz]
                ready = [(p, p.grad) for p in after if p.grad is not None]
                norms = _norm_list(ts + [g for _, g in ready])
                acc.grad_h.append(norms[0])
                if gz is not None:
                    into.append(norms[1])
                for (p, g), n in zip(ready, norms[len(ts):]):
                    self._grad_read[p] = (g, g._version, n)
            node.register_hook(on_node)
        return hook

    def _settle(self):
        """The last layer's output that no activation claimed is measured as the layer's own, and
        its gradient read by a hook of its own."""
        if self._unclaimed is not None:
            acc, z = self._unclaimed
            self._unclaimed = None
            self._forward_stats(acc, z)
        if self._awaiting is not None:
            awaited, self._awaiting = self._awaiting, None
            self._grad_z_hook(*awaited)

    def _forward_stats(self, acc, h, activation=None):
        """Measures h (a forward output: the core reads it as it is; PyTorch's operations on a
        detached view, outside the graph)."""
        if self._core_stats(acc, h, activation):
            return
        import torch

        h = h.detach()
        if activation is not None:
            activation = (activation[0], activation[1], activation[2].detach())
        flat = h.reshape(-1)
        n = flat.numel()
        if n == 0:
            return
        s, dev, q = _mean_dev(flat, n)
        acc.h.append((s, dev, n))
        sample = self._detail and acc.quantiles is None
        stride = max(1, -(-n // DETAIL_SAMPLE))
        if sample:
            acc.quantiles = torch.quantile(flat[::stride].to(torch.float64), self._q(flat.device))
        if activation is None:
            return
        act, module, z = activation
        top = self._top(act, module)
        d = _dphi(act, module, z, h).reshape(-1) if sample or act != "tanh" or q is None else None
        if d is None:  # tanh: φ′ = 1 − h², so Σφ′ = n − ‖h‖² (known), and φ′ < 1/20 where h² > 19/20
            acc.d.append((n - q * q, _count_positive((flat * flat).sub_(0.95), n), n))
        else:  # relu: φ′ is 0 or 1, so the saturated entries are the others
            ds = _sum(d)
            acc.d.append((ds, n - ds if act == "relu" else _count_positive(top / 20 - d, n), n))
        if sample:
            s = d[::stride].to(torch.float64)
            s = s[~torch.isnan(s)]
            bins = (s / top * DACT_BINS).floor().clamp(0, DACT_BINS - 1).long()
            acc.hist = torch.bincount(bins, minlength=DACT_BINS).to(torch.float64) / max(1, s.numel())

    def _core_stats(self, acc, h, activation):
        """The forward statistics by gradscope's core (`probe::flat`, the numbers its own probes
        take) in one call, where it reads the tensors and knows the activation as the module has
        it; False otherwise (PyTorch's operations measure them then)."""
        import torch

        if activation is None:
            z, act = h, None
        else:
            name, module, z = activation
            act = self._core_acts.get(module, False)
            if act is False:  # what the core makes of the module, fixed at its first probe
                act = self._core_acts[module] = _core_activation(name, module)
            if act is None:
                return False
        lz, lh = _lent(z), _lent(h)
        if lz is None or lh is None or lz[1:] != lh[1:] or lh[1] == 0:
            return False
        sample = self._detail and acc.quantiles is None
        mean, std, dact, saturation, quantiles, hist = _core.forward_stats(lz, lh, act, sample)
        n = lh[1]
        acc.h.append((mean * n, std * math.sqrt(n), n))
        if dact is not None:
            acc.d.append((dact * n, saturation * n, n))
        if quantiles is not None:
            acc.quantiles = torch.tensor(quantiles, dtype=torch.float64)
        if hist is not None:
            acc.hist = torch.tensor(hist, dtype=torch.float64)
        return True

    def _q(self, device):
        import torch

        return torch.tensor([0.05, 0.5, 0.95], dtype=torch.float64, device=device)

    def _top(self, act, module):
        key = (act, getattr(module, "negative_slope", 0.01))
        if key not in self._tops:
            self._tops[key] = _core.max_derivative(*key)
        return self._tops[key]

    # -- parameters: gradients in the backward pass, weights after it, by gradscope's core --------

    def _watch_parameters(self):
        """Starts a probe's reading of the parameters. On the CPU the gradients of a layer are
        read by the hook of the activation below it, in the backward pass, while in cache
        (`_grad_norms` keeps those still current); the weights' norms and copies (for ‖ΔW‖) are
        taken in one pass each by the core (`_read_weights`), once, after the backward pass and
        before the update, and again if a weight changed in place since (its `_version` moved).
        Copying them in the backward pass too, or in per-parameter post-accumulate-grad hooks,
        measured slower (docs/python.md, Overhead). Elsewhere (a GPU) fused kernels read
        everything after the backward pass: one launch each."""
        self._weight_read, self._frozen, self._grad_read = {}, False, {}
        first = next(iter(self._layers.values()))
        params = first.weights + first.biases
        self._cpu = bool(params) and _on_cpu(params[0])

    def _read_weights(self, layers):
        """‖W‖ (and with an optimizer its copy, in the same pass) of each weight of `layers` not
        read since it last changed."""
        if self._frozen:
            return
        todo = []
        for layer in layers:
            for p in layer.weights:
                seen = self._weight_read.get(p)
                if seen is None or seen[0] != p._version or (seen[2] is None and self.optimizer is not None):
                    todo.append(p)
        if not todo:
            return
        if self.optimizer is not None:
            read = self._keep(todo)
        else:
            read = [(n, None) for n in _norm_list([p.detach() for p in todo])]
        for p, (norm, copy) in zip(todo, read):
            self._weight_read[p] = (p._version, norm, copy)

    def _keep(self, ps):
        """[(‖p‖, a copy of weight p in the buffer kept for it)] for the weights `ps`: one pass
        each by gradscope's core on the CPU, all in one call (a fresh copy would cost twice: new
        pages)."""
        import torch

        out, pairs = [], []
        for p in ps:
            kept = self._kept.get(p)
            if kept is None or kept[0].shape != p.shape or kept[0].dtype != p.dtype:
                buf = torch.empty_like(p, requires_grad=False, memory_format=torch.contiguous_format)
                kept = self._kept[p] = (buf, _lent(buf))
            buf, dst = kept
            src = _lent(p)
            if src is not None and dst is not None:
                pairs.append((src, dst))
                out.append((None, buf))
            else:
                w = p.detach()
                out.append((_norm(w), buf.copy_(w)))
        sums = iter(_core.copy_sum_sqs(pairs) if pairs else ())
        return [(math.sqrt(next(sums)) if n is None else n, buf) for n, buf in out]

    def _grad_norms(self, layers):
        """Per layer ‖∂L/∂W‖ and ‖∂L/∂b‖ over its tensors (NaN for a layer without one), as two
        lists: a gradient read in the backward pass (`_grad_read`) if it is still that tensor,
        unchanged since (its `_version`), the others by one call of the core."""
        per = [[p.grad for p in ps if p.grad is not None] for l in layers for ps in (l.weights, l.biases)]
        read = {id(g): n for g, v, n in self._grad_read.values() if g._version == v}
        norms = iter(_norm_list([g for gs in per for g in gs if id(g) not in read]))
        values = [[read[id(g)] if id(g) in read else next(norms) for g in gs] for gs in per]
        out = [math.sqrt(sum(v * v for v in vs)) if vs else math.nan for vs in values]
        self._grad_read = {}  # holds no gradient past the probe
        return out[0::2], out[1::2]

    def _weight_norm(self, p):
        seen = self._weight_read.get(p)
        return seen[1] if seen is not None and seen[0] == p._version else _norm(p.detach())

    def _weight_copy(self, p):
        seen = self._weight_read.get(p)
        if seen is not None and seen[0] == p._version and seen[2] is not None:
            return seen[2]
        return self._keep([p])[0][1]

    def _cpu_norms(self, layers, norm, params):
        """Per layer ‖·‖ over its tensors' norms (NaN for a layer without one), as `_by_layer`: a list."""
        out = []
        for layer in layers:
            values = [v for v in (norm(p) for p in params(layer)) if v is not None]
            out.append(math.sqrt(sum(v * v for v in values)) if values else math.nan)
        return out

    # -- the optimizer's step hooks: ‖ΔW‖ / ‖W‖ --------------------------------------------------

    def _before_update(self, optimizer, args, kwargs):
        if self._deferred:  # another update and no w.step since the last: the optimizer ends steps
            self._manual = False
            self._end_step(self._auto_loss, None, None)
        result = None
        if self._manual is not True:  # the loss of a step the optimizer ends: its closure's value
            args, kwargs, result = self._catch_loss(args, kwargs)
        probing = self._pending is not None or self._collecting or (
            self._manual is not True and self.step_count % self.every == 0)
        if not probing:
            return result
        layers = self._order or list(self._layers.values())
        groups = [[w.detach() for w in l.weights] for l in layers]
        if self._cpu:  # copies kept between probes (`_keep`); elsewhere the allocator caches memory
            self._read_weights(layers)
            before = [self._weight_copy(w) for l in layers for w in l.weights]
            self._frozen = True
        else:
            before = [w.clone() for g in groups for w in g]
        if self._pending is not None:  # w.step read ‖W‖ already
            weight = self._pending.weight
        else:
            weight = (self._cpu_norms(layers, self._weight_norm, lambda l: l.weights) if self._cpu
                      else _layer_norms(self._device, groups)[0])
            self._weight = (layers, weight)
        self._pre = (layers, groups, weight, before)
        return result

    def _catch_loss(self, args, kwargs):
        closure = kwargs.get("closure", args[0] if args else None)
        if not callable(closure):
            return args, kwargs, None

        def caught():
            loss = closure()
            self._auto_loss = loss
            return loss
        if "closure" in kwargs:
            kwargs = {**kwargs, "closure": caught}
        else:
            args = (caught, *args[1:])
        return args, kwargs, (args, kwargs)

    def _after_update(self, optimizer, args, kwargs):
        if self._pre is not None:
            layers, groups, weight, before = self._pre
            self._pre = None
            flat = [w for g in groups for w in g]
            delta = _by_layer(_distances(flat, before) if flat else [], groups, self._device)
            if isinstance(weight, list) or isinstance(delta, list):  # the CPU's floats
                delta, weight = (v if isinstance(v, list) else v.tolist() for v in (delta, weight))
                self._update = (layers, [_ratio(d, w) for d, w in zip(delta, weight)])
            else:
                self._update = (layers, delta / weight)
        if self._manual is True:
            if self._pending is not None:
                record, self._pending = self._pending, None
                self._write(record, self._take_update())
        elif self._manual is False:
            self._end_step(self._auto_loss, None, None)
        else:  # a w.step may still come for this step (after optimizer.step), or the next forward
            self._deferred = True

    def _take_update(self):
        if self._update is None:
            return None
        (layers, ratio), self._update = self._update, None
        return _pick(ratio, layers, self._order)

    # -- steps ---------------------------------------------------------------------------------

    def step(self, loss=None, *, test_loss=None, test_accuracy=None, epoch=None):
        """Ends a training step; call it after `loss.backward()` (before or after the optimizer's
        step). On probed steps it reads the gradients and writes the step's record (after the
        optimizer's update when the watch has the optimizer, for the update ratio). Without
        `w.step`, a watch given the optimizer ends each step at the optimizer's step."""
        if self._closed:
            raise RuntimeError("this watch is closed; start another gradscope.watch")
        self._manual = True
        self._end_step(loss, test_loss, test_accuracy, epoch)

    def _end_step(self, loss, test_loss, test_accuracy, epoch=None):
        import torch

        self._deferred = False
        self._auto_loss = None
        if epoch is not None:
            self.epoch = int(epoch)
        if loss is not None:
            loss = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
            self._last_loss = loss.to(self._device, torch.float64).reshape(())
        if self._collecting:
            record = self._read_grads(test_loss, test_accuracy)
            if self._update is not None:
                self._write(record, self._take_update())
            elif self.optimizer is not None and self._manual:
                self._pending = record  # the optimizer's post-hook writes it, with the update
            else:
                self._write(record, None)
        self._update = None
        self.step_count += 1

    def _read_grads(self, test_loss, test_accuracy):
        """Ends a probed step's measurement: removes its hooks, reads the gradient and weight norms."""
        for h in self._hooks:
            h.remove()
        self._hooks = []
        self._settle()
        self._collecting = False
        self._last_out = None
        if self._order is None:
            self._order = list(self._seen)
            if not self._order:
                raise RuntimeError("no watched layer ran in the forward pass before w.step(); is this the model "
                                   "being trained?")
            self._after = {a: b.weights + b.biases for a, b in zip(self._order, self._order[1:])}
        order, dev = self._order, self._device
        for layer in order:  # whether ∂L/∂z can be read from the activation's node (`_Layer.through`)
            if layer.through is None:
                acc = self._acc.get(layer)
                layer.through = bool(layer.activation and acc and acc.through
                                     and [float(v) for v in acc.through] == [float(v) for v in acc.grad_z])
        grads = lambda ps: [p.grad.detach() for p in ps if p.grad is not None]  # noqa: E731
        pre, self._weight = self._weight, None  # ‖W‖ measured before the update by the optimizer's pre-hook
        if self._cpu:
            if pre is None:
                self._read_weights(order)
            grad_w, grad_b = self._grad_norms(order)
            weight = self._cpu_norms(order, self._weight_norm, lambda l: l.weights) if pre is None else None
        else:
            weights = [[w.detach() for w in l.weights] for l in order] if pre is None else [[] for _ in order]
            grad_w, grad_b, weight = _layer_norms(dev, [grads(l.weights) for l in order],
                                                  [grads(l.biases) for l in order], weights)
        if pre is not None:
            weight = _pick(pre[1], pre[0], order)
        record = _Record(self.step_count, self.epoch, self._last_loss, test_loss, test_accuracy, grad_w, grad_b,
                         weight, self._acc)
        self._acc = {}
        self._probes += 1
        return record

    def _write(self, record, update):
        import torch

        # every device scalar and vector of the step in one tensor: one copy to the host (on the
        # CPU most are floats already)
        n = len(self._order)
        vectors = [record.grad_w, record.grad_b, record.weight] + ([update] if update is not None else [])
        accs = [record.acc.get(layer) or _Acc() for layer in self._order]
        vectors += [t for a in accs for t in (a.quantiles, a.hist) if t is not None]
        items = [x for a in accs for x in _flat_items(a)]
        if record.loss is not None:
            items.append(record.loss)
        tensors = [x for x in items if isinstance(x, torch.Tensor)]
        if tensors:
            vectors.append(torch.stack(tensors))
        values = iter(_host(vectors))
        grad_w, grad_b, weight = ([next(values) for _ in range(n)] for _ in range(3))
        ratio = [next(values) for _ in range(n)] if update is not None else [None] * n
        detail = [([next(values) for _ in range(3)] if a.quantiles is not None else [None] * 3,
                   [next(values) for _ in range(DACT_BINS)] if a.hist is not None else []) for a in accs]
        items = iter([next(values) if isinstance(x, torch.Tensor) else x for x in items])
        row, hists = [], []
        for k, a in enumerate(accs):
            mean, std = _h_stats([(next(items), next(items), c) for *_, c in a.h])
            dact = [(next(items), next(items), c) for *_, c in a.d]
            grad_z = _root_sum_sq([next(items) for _ in a.grad_z])
            grad_h = _root_sum_sq([next(items) for _ in a.grad_h])
            count = sum(c for *_, c in dact)
            (p05, p50, p95), hist = detail[k]
            # in the order of python/src/lib.rs FIELDS
            row += [grad_w[k], grad_b[k], grad_z, grad_h, mean, std, p05, p50, p95,
                    sum(d for d, _, _ in dact) / count if count else None, sum(b for _, b, _ in dact) / count if count else None,
                    weight[k], ratio[k]]
            hists.append(hist)
        loss = next(items) if record.loss is not None else None
        test = [None if v is None else float(v) for v in (record.test_loss, record.test_accuracy)]
        if self._run is None:
            self._run = _core.create_run(str(self.out), json.dumps(self._config()), json.dumps(self._model()),
                                         self.overwrite)
        self._run.append_values(record.step, record.epoch, [loss] + test, row, hists)

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
        if self._deferred:  # the optimizer ended the last step and no w.step followed
            self._manual = False
            self._end_step(self._auto_loss, None, None)
        self._closed = True
        for h in self._hooks + self._opt_hooks + [self._root]:
            h.remove()
        self._hooks = []
        if self._pending is not None:
            record, self._pending = self._pending, None
            self._write(record, None)
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


def _host(vectors):
    """The entries of each vector (a list of floats, or a tensor), in order, as floats: the
    tensors' in one copy to the host."""
    import torch

    tensors = [v.to(torch.float64).reshape(-1) for v in vectors if isinstance(v, torch.Tensor)]
    host = iter(torch.cat(tensors).tolist() if tensors else ())
    out = []
    for v in vectors:
        out.extend([next(host) for _ in range(v.numel())] if isinstance(v, torch.Tensor) else v)
    return out


def _iframe(page: Path) -> str:
    doc = page.read_text(encoding="utf-8")
    return (f'<iframe srcdoc="{html.escape(doc, quote=True)}" style="width:100%;height:900px;border:0" '
            f'title="gradscope report {html.escape(str(page))}"></iframe>')


def _h_stats(calls):
    """(mean, standard deviation) of h over the calls' (Σh, ‖h − its mean‖, entries), dividing by
    the count; (None, None) without an entry."""
    count = sum(c for _, _, c in calls)
    if not count:
        return None, None
    mean = sum(s for s, _, _ in calls) / count
    var = sum(dev * dev + c * (s / c - mean) ** 2 for s, dev, c in calls) / count
    return mean, math.sqrt(max(var, 0.0)) if not math.isnan(var) else var


def _mean_dev(flat, n):
    """(Σh, ‖h − mean h‖, ‖h‖ or None) of a flat tensor. On the CPU from one-pass float32 sums
    of h and h² when the variance is at least a tenth of E[h²] (then their rounding moves the
    standard deviation by under 1e-6, relative), else in two passes, as gradscope's probe;
    elsewhere always two passes, as device scalars."""
    s = _sum(flat)
    if isinstance(s, float):
        q = _norm(flat)
        mean, sq = s / n, q * q / n
        if sq - mean * mean >= 0.1 * sq and math.isfinite(sq):
            return s, math.sqrt((sq - mean * mean) * n), q
        return s, _norm(flat - mean), q
    return s, _norm(flat - (s / n).to(flat.dtype)), None


def _core_activation(name, module):
    """(gradscope's name, negative slope) of an activation module whose φ′ gradscope's core
    computes as the module does; None for a variant it does not (ELU's alpha ≠ 1, Softplus's beta
    or threshold other than 1 and 20, GELU's tanh approximation)."""
    if name == "elu" and getattr(module, "alpha", 1.0) != 1.0:
        return None
    if name == "softplus" and (getattr(module, "beta", 1.0) != 1.0 or getattr(module, "threshold", 20.0) != 20.0):
        return None
    if name == "gelu" and getattr(module, "approximate", "none") != "none":
        return None
    return name, float(getattr(module, "negative_slope", 0.01))


def _count_positive(x, n):
    """Entries of x (a temporary, overwritten) above 0, as (n + Σ sign x) / 2 rounded down: on a
    CPU a comparison and the count of its booleans cost 3× these passes. An entry exactly 0 counts
    ½ (a second one then makes the count one too high)."""
    s = _sum(x.sign_())
    return math.floor((n + s) / 2) if isinstance(s, float) else ((n + s) / 2).floor()


def _flat_items(acc):
    """A layer's measurements in the order `Watch._write` reads them back."""
    return ([x for s, dev, _ in acc.h for x in (s, dev)] + [x for s, below, _ in acc.d for x in (s, below)]
            + acc.grad_z + acc.grad_h)


def _ratio(x, y):
    """x / y as a float64 tensor divides (IEEE: ±inf, or NaN for 0 / 0), for floats."""
    if y != 0 or math.isnan(y):
        return x / y
    return math.nan if x == 0 or math.isnan(x) else math.copysign(math.inf, x) * math.copysign(1.0, y)


def _root_sum_sq(norms):
    """‖·‖ over several calls from each call's norm; None without a call."""
    return math.sqrt(sum(v * v for v in norms)) if norms else None


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
