"""Triton kernels on CUDA: whether they can run, what ran, and how many kernels were launched.

The GPU fast paths (`qssm.ssm.triton_scan`, `qssm.ssm.triton_conv`, `qssm.quantum.triton_circuits`)
are Triton kernels, each with a torch twin that runs wherever Triton cannot. Triton is optional
(the ``gpu`` extra); it is imported only when a CUDA tensor (or the interpreter, below) asks.

``usable(*tensors)`` is True when Triton imports, is not turned off and the tensors are CUDA
tensors on one device. Two switches:
  QSSM_TRITON=0          never use Triton (the torch twins run on CUDA)
  QSSM_TRITON=interpret  with TRITON_INTERPRET=1: run the Triton kernels on CPU tensors through
                         Triton's interpreter (exact semantics, slow) -- the CUDA code path on a
                         machine without a GPU, used by the tests.
Every launch goes through `launch`, which counts it (`launches()`), so a test can count a
training step's kernel launches on the CUDA code path: torch ops plus Triton launches.
"""
from __future__ import annotations

import functools
import os

__all__ = ["usable", "status", "interpreting", "launch", "launches", "import_triton", "next_pow2"]

_COUNT = [0]


@functools.lru_cache(maxsize=None)
def import_triton():
    """(triton module or None, reason). Never raises: a missing or broken Triton is a status."""
    if os.environ.get("QSSM_TRITON", "") == "0":
        return None, "off (QSSM_TRITON=0)"
    try:
        import triton  # noqa: F401
        import triton.language  # noqa: F401
    except Exception as exc:  # ImportError, or a wheel that does not match this machine
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"triton is not importable ({msg}); install the gpu extra for the CUDA kernels"
    return triton, f"triton {triton.__version__}"


def interpreting() -> bool:
    """True when the Triton kernels run on CPU tensors through Triton's interpreter."""
    return os.environ.get("TRITON_INTERPRET", "") == "1" and os.environ.get("QSSM_TRITON", "") == "interpret"


def usable(*tensors) -> bool:
    """Whether a call with these tensors can take a Triton kernel (see the module docstring)."""
    dev = tensors[0].device
    if any(t.device != dev for t in tensors):
        return False
    if dev.type == "cuda":
        if os.environ.get("TRITON_INTERPRET", "") == "1":
            return False  # the interpreter runs on host memory only
    elif not (dev.type == "cpu" and interpreting()):
        return False
    return import_triton()[0] is not None


def status() -> str:
    """One line: which GPU kernels a CUDA tensor gets in this process, and why."""
    triton, why = import_triton()
    if triton is None:
        return f"torch twins on CUDA: {why}"
    if interpreting():
        return f"{why}, interpreter on CPU tensors (QSSM_TRITON=interpret, TRITON_INTERPRET=1)"
    try:
        import torch

        cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover - torch always imports here
        cuda = False
    return f"{why} on CUDA" if cuda else f"{why} (no CUDA device in this process: CPU paths run)"


def launch(kernel, grid, *args, **kwargs):
    """Launch a Triton kernel on `grid`, counting the launch."""
    _COUNT[0] += 1
    return kernel[grid](*args, **kwargs)


def launches() -> int:
    """Triton kernel launches made by this process so far."""
    return _COUNT[0]


def next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())
