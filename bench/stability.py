"""Training precision and stability: what a cell's `precision` runs, where a divergence started,
and how large each block's activations grew.

precision   parameters  forward / backward                       state of scan and circuits
fp32        float32     float32                                  float32
fp64        float64     float64                                  float64
bf16-mixed  float32     autocast to bfloat16 (torch.autocast)    float32 (the kernels upcast)
fp16-mixed  float32     autocast to float16, loss scaled         float32
                        (dynamic loss scaling as torch.amp.GradScaler does it -- which cannot
                        unscale the models' complex parameters: a step with inf gradients is
                        skipped and the scale halved, 2000 good steps double it)

Divergence: a step whose loss or gradient norm is not finite stops the cell (status `nan`). Before
the optimiser would apply it, the step is replayed on the rank's model with a hook on every module:
the first module whose output is non-finite (forward, in execution order), or else the module
whose backward turned a finite output gradient into a non-finite input gradient (backward), is
the row's `diverged_module` with
`diverged_phase`; `diverged_step` is the step. `activation_rms_max` is the largest RMS of each
block's output seen so far (tracked steps and the replay). Blocks are the model's top-level
modules, with the members of a ModuleList (the SSM models' `blocks.0`, `blocks.1`, ..) listed one
by one; for those, "<block>:in" is the RMS of the residual stream entering the block.
"""
from __future__ import annotations

import contextlib
import json
import math
import warnings

__all__ = ["PRECISIONS", "Precision", "block_modules", "ActivationTracker", "locate_divergence", "grad_norm"]

PRECISIONS = ("fp32", "fp64", "bf16-mixed", "fp16-mixed")


class Precision:
    """Autocast context, gradient scaler and parameter dtype of a cell's precision on a device."""

    def __init__(self, precision: str, device):
        import torch

        if precision not in PRECISIONS:
            raise ValueError(f"precision={precision!r} is not supported; allowed: {', '.join(PRECISIONS)}")
        self.name = precision
        self.device = device
        self.param_dtype = torch.float64 if precision == "fp64" else torch.float32
        self.autocast_dtype = {"bf16-mixed": torch.bfloat16, "fp16-mixed": torch.float16}.get(precision)
        self.scaler = None
        if self.autocast_dtype is not None:
            self._check_autocast(torch)
            if precision == "fp16-mixed":
                self.scaler = LossScaler()

    def _check_autocast(self, torch) -> None:
        """Refuse, in one line, a precision that this device's autocast would silently disable."""
        kind = self.device.type
        if not torch.amp.is_autocast_available(kind):
            raise ValueError(f"precision={self.name}: torch {torch.__version__} has no autocast on {kind}")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with torch.autocast(kind, dtype=self.autocast_dtype):
                on = torch.is_autocast_enabled(kind)
        if not on or any("not supported" in str(w.message) for w in caught):
            raise ValueError(f"precision={self.name}: autocast on {kind} does not support "
                             f"{str(self.autocast_dtype).replace('torch.', '')} in torch {torch.__version__}; "
                             "use fp32 or another mixed precision")

    def autocast(self):
        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


class LossScaler:
    """Dynamic loss scaling (GradScaler's defaults: 2^16, x0.5 on overflow, x2 after 2000 good
    steps) over real and complex gradients alike."""

    def __init__(self, scale: float = 2.0 ** 16, growth_interval: int = 2000):
        self.scale, self.growth_interval, self.good = scale, growth_interval, 0
        self.skipped = 0

    def state(self) -> dict:
        return {"scale": self.scale, "good": self.good, "skipped": self.skipped}

    def restore(self, state: dict | None) -> None:
        if state:
            self.scale, self.good, self.skipped = state["scale"], state["good"], state["skipped"]

    def scaled(self, loss):
        return loss * self.scale

    def unscale_(self, params) -> None:
        import torch

        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.scale)

    def update(self, finite: bool) -> None:
        if not finite:
            self.scale *= 0.5
            self.good = 0
            self.skipped += 1
            return
        self.good += 1
        if self.good >= self.growth_interval:
            self.scale *= 2.0
            self.good = 0


def grad_norm(params):
    """Total 2-norm of the gradients, accumulated in float64 (a float32 sum of squares overflows
    at gradients of ~1e19, long before any gradient is infinite)."""
    import torch

    grads = [torch.view_as_real(p.grad) if p.grad.is_complex() else p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), dtype=torch.float64)
    norms = torch._foreach_norm(grads, 2, dtype=torch.float64) if hasattr(torch, "_foreach_norm") else \
        [torch.linalg.vector_norm(g, dtype=torch.float64) for g in grads]
    return torch.linalg.vector_norm(torch.stack([n.to(grads[0].device) for n in norms]))


def clip_(params, total, max_norm: float = 1.0) -> None:
    """Scale the gradients by max_norm / total where total > max_norm (clip_grad_norm_'s rule)."""
    import torch

    grads = [p.grad for p in params if p.grad is not None]
    coef = min(1.0, max_norm / (float(total) + 1e-6))
    if grads and coef < 1.0:
        torch._foreach_mul_(grads, coef)


def block_modules(model):
    """[(name, module)]: top-level children, ModuleList members one by one."""
    from torch import nn

    out = []
    for name, child in model.named_children():
        if isinstance(child, nn.ModuleList):
            out += [(f"{name}.{i}", m) for i, m in enumerate(child)]
        else:
            out.append((name, child))
    return out


def _first_tensor(out):
    import torch

    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, torch.Tensor):
                return o
    return None


def _rms(t) -> float:
    import torch

    if t.is_complex():
        t = t.abs()
    return float(torch.sqrt(t.detach().double().pow(2).mean()))


class ActivationTracker:
    """Per-block output RMS every `every` steps (and the running maximum per block)."""

    def __init__(self, model, every: int):
        self.every = every
        self.curve: list = []
        self.maxima: dict = {}
        self._now: dict | None = None
        self._pending: tuple | None = None  # (step, outputs) kept for flush()
        self._handles = []
        if every > 0:
            for name, mod in block_modules(model):
                self._handles.append(mod.register_forward_hook(self._hook(name, "." in name)))

    def _hook(self, name, stream: bool):
        """Records the block's output; for ModuleList members (residual blocks) also its input,
        the residual stream entering it, as "<name>:in"."""
        def keep(key, t):
            if t is not None and (t.is_floating_point() or t.is_complex()):
                self._now[key] = t.detach()

        def hook(_mod, inp, out):
            if self._now is not None:
                keep(name, _first_tensor(out))
                if stream:
                    keep(name + ":in", _first_tensor(inp))
        return hook

    @contextlib.contextmanager
    def step(self, step: int):
        """Keep the blocks' outputs of this step's forward when step % every == 0; `flush()`
        reduces them afterwards (outside the step's clock)."""
        on = self.every > 0 and step % self.every == 0
        self._now = {} if on else None
        try:
            yield
        finally:
            self._pending = (step, self._now) if on else None
            self._now = None

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            step, outs = pending
            rms = {k: _rms(v) for k, v in outs.items()}
            self.curve.append([step, {k: round(v, 6) if math.isfinite(v) else v for k, v in rms.items()}])
            self.note(rms)

    def state(self) -> dict:
        return {"curve": list(self.curve), "maxima": dict(self.maxima)}

    def restore(self, state: dict | None) -> None:
        if state:
            self.curve, self.maxima = list(state.get("curve", [])), dict(state.get("maxima", {}))

    def note(self, rms: dict) -> None:
        """Fold RMS values into the per-block maxima (a NaN counts as the largest)."""
        for k, v in rms.items():
            cur = self.maxima.get(k)
            if cur is None or math.isnan(v) or (not math.isnan(cur) and v > cur):
                self.maxima[k] = v

    def close(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def curve_json(self) -> str | None:
        return json.dumps(self.curve, allow_nan=True) if self.every > 0 else None

    def maxima_json(self) -> str | None:
        return json.dumps({k: v for k, v in self.maxima.items()}, allow_nan=True) if self.maxima else None


def _backward_culprit(loss, outs):
    """The module whose backward made a gradient non-finite: its output gradient finite, its input
    gradient not (the innermost such module); else the first non-finite output gradient's."""
    import torch

    tensors, index = [], {}
    for _, t_in, t_out in outs:
        for t in (t_in, t_out):
            if t is not None and id(t) not in index:
                index[id(t)] = len(tensors)
                tensors.append(t)
    grads = torch.autograd.grad(loss, tensors, allow_unused=True)

    def bad(t):
        g = grads[index[id(t)]] if t is not None else None
        return g is not None and not bool(torch.isfinite(g).all())

    best = None
    for name, t_in, t_out in reversed(outs):  # backward order
        if not bad(t_out) and bad(t_in) and (best is None or name.startswith(best + ".")):
            best = name
    if best is None:
        best = next((name for name, _, t_out in reversed(outs) if bad(t_out)), None)
    return best


def locate_divergence(model, x, y, precision: Precision, loss_fn) -> dict:
    """Replay one step's forward and backward on `model` with a hook on every module; returns
    {module, phase, block_rms}. Backward differentiates only the modules' outputs (never the
    parameters: under DDP, parameter gradients would start collectives on this rank alone).
    Leaves no hooks and no gradients."""
    import torch

    found = {"module": None, "phase": None}
    handles, outs = [], []
    blocks = dict((id(m), n) for n, m in block_modules(model))
    block_rms: dict = {}

    def fwd_hook(name):
        def hook(mod, _inp, out):
            t = _first_tensor(out)
            if t is None or not (t.is_floating_point() or t.is_complex()):
                return
            if id(mod) in blocks:
                block_rms[blocks[id(mod)]] = _rms(t)
            if found["module"] is None and not bool(torch.isfinite(t.detach()).all()):
                found.update(module=name, phase="forward")
            if t.requires_grad:
                t_in = _first_tensor(_inp)
                outs.append((name, t_in if t_in is not None and t_in.requires_grad else None, t))
        return hook

    for name, mod in model.named_modules():
        if name:
            handles.append(mod.register_forward_hook(fwd_hook(name)))
    try:
        with precision.autocast():
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        if found["module"] is None and not bool(torch.isfinite(loss.detach()).all()):
            found.update(module="(loss)", phase="forward")
        if found["module"] is None and outs:
            found.update(module=_backward_culprit(loss, outs), phase="backward")
            if found["module"] is None:
                found["phase"] = None
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
    return {**found, "block_rms": block_rms}
