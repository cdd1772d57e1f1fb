"""Count what one training step dispatches: torch (aten) ops plus Triton kernel launches.

On a GPU nearly every aten op that touches data is a kernel launch, so this count is the launch
bound of a step; a step whose count grows with T is launch-bound at long T. `count_step` runs
the model's code path for the tensors' device -- on a machine without a GPU the CUDA code path
runs on CPU tensors through Triton's interpreter (QSSM_TRITON=interpret, TRITON_INTERPRET=1).
Views and other metadata-only ops are counted apart (they launch nothing).
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ["OpCounter", "count_step"]


class OpCounter(TorchDispatchMode):
    """Counts aten ops dispatched inside the `with` block (autograd's backward included)."""

    def __init__(self):
        super().__init__()
        self.ops = 0
        self.views = 0
        self.names: dict = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if torch.Tag.view_copy in func.tags or func.is_view or func._schema.name in ("aten::detach",):
            self.views += 1
        else:
            self.ops += 1
            self.names[func.__name__] = self.names.get(func.__name__, 0) + 1
        return func(*args, **(kwargs or {}))


def count_step(model_name: str, config: dict, batch: int, device: str = "cpu") -> dict:
    """{torch_ops, views, triton_launches, total} of one training step (forward, cross-entropy,
    backward, Adam) of `model_name` at `config` (qssm.build_model settings, layout BDT)."""
    from qssm import build_model, triton_support

    torch.manual_seed(0)
    model = build_model(model_name, **dict(config, device=device))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, config["feature_dim"], config["n_timesteps"], generator=g).to(device)
    y = torch.randint(0, config["output_dim"], (batch,), generator=g).to(device)

    def step(inputs):
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(inputs), y).backward()
        opt.step()

    # first step: the optimiser's state; on CUDA at the full shape, so that the conv's one-time
    # Triton/cuDNN timing is not counted (in the interpreter a short step does: no timing there)
    step(x if x.is_cuda else x[..., :8])
    before = triton_support.launches()
    with OpCounter() as counter:
        step(x)
    launches = triton_support.launches() - before
    return {"torch_ops": counter.ops, "views": counter.views, "triton_launches": launches,
            "total": counter.ops + launches, "ops_by_name": counter.names}
