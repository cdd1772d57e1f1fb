"""Native CPU kernels: compiled on first use, loaded through ctypes, each with a torch twin.

  scan_kernel.cpp   the chunked selective scan with the state in registers (qssm.ssm.native_scan)
  gated_kernel.cpp  the Gated circuit, one sample's statevector in L1 (qssm.quantum.native_gated)

`usable(*tensors)` says whether a call can take a native path: CPU tensors of one dtype,
float32 or float64, and a library that builds and loads. Otherwise the callers run their torch
implementations (CUDA, other dtypes, no compiler, QSSM_NATIVE=0); `status()` says why.
"""
from __future__ import annotations

import torch

from .build import compiler, load, loaded_status, status

__all__ = ["usable", "suffix", "load", "status", "loaded_status", "compiler"]

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def usable(*tensors) -> bool:
    dtype = tensors[0].dtype
    if dtype not in _SUFFIX or any(t.device.type != "cpu" or t.dtype != dtype for t in tensors):
        return False
    return load() is not None


def suffix(dtype: torch.dtype) -> str:
    """The kernels' name suffix for a dtype (f32 / f64)."""
    return _SUFFIX[dtype]
