"""Mixed precision at the models' numerically sensitive parts.

Under torch.autocast (bf16/fp16 mixed precision) the linear layers run in half precision, but the
selective scan's state and the circuits' statevector must stay float32 or better: a half-precision
recurrence over thousands of steps, or a unitary applied in bfloat16, loses the result. The scan
(except its Triton kernel, which reads half inputs and keeps a float32 state) and both circuits
therefore take their inputs up to float32 and run with autocast off (`full_precision`).
"""
from __future__ import annotations

import contextlib

import torch

HALF = (torch.float16, torch.bfloat16)
__all__ = ["full_precision", "upcast", "needs_full_precision"]


def needs_full_precision(*tensors) -> bool:
    """True under autocast on the tensors' device, or when any tensor is float16/bfloat16."""
    dev = tensors[0].device.type
    return any(t.dtype in HALF for t in tensors) or (dev in ("cpu", "cuda") and torch.is_autocast_enabled(dev))


def full_precision(device_type: str):
    """Autocast off on this device type inside the block (a no-op where it is off already)."""
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def upcast(*tensors):
    return tuple(t.float() if t.dtype in HALF else t for t in tensors)
