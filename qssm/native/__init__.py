"""Native CPU kernels: compiled on first use, loaded through ctypes, each with a torch twin.

  scan_kernel.cpp         the chunked selective scan, state kept in L1/L2 (qssm.ssm.native_scan)
  conv_kernel.cpp         causal depthwise conv + SiLU of the blocks (qssm.ssm.native_conv)
  gated_kernel.cpp        the Gated circuit, a block of samples per vector lane
  ssm_circuit_kernel.cpp  the SSM circuit, likewise (both: qssm.quantum.native_circuits)

`usable(*tensors)` says whether a call can take a native path: CPU tensors of one dtype,
float32 or float64, and a library that builds and loads. Otherwise the callers run their torch
implementations (CUDA, other dtypes, no compiler, QSSM_NATIVE=0); `status()` says why.
"""
from __future__ import annotations

import torch

from ..triton_support import interpreting
from .build import compiler, load, loaded_status, status

__all__ = ["usable", "suffix", "call", "load", "status", "loaded_status", "compiler"]

_SUFFIX = {torch.float32: "f32", torch.float64: "f64"}


def usable(*tensors) -> bool:
    if interpreting():  # Triton's interpreter stands for the CUDA code path: no CPU kernels on it
        return False
    dtype = tensors[0].dtype
    if dtype not in _SUFFIX or any(t.device.type != "cpu" or t.dtype != dtype for t in tensors):
        return False
    return load() is not None


def suffix(dtype: torch.dtype) -> str:
    """The kernels' name suffix for a dtype (f32 / f64)."""
    return _SUFFIX[dtype]


_FAILURES = {1: "out of memory", 2: "an internal error", -1: "a work-split mismatch between its calls"}


def call(name: str, dtype: torch.dtype, *args) -> None:
    """Run kernel entry point `name` for `dtype`; a failure inside it raises RuntimeError
    (MemoryError when it ran out of memory), never takes the process down."""
    rc = getattr(load(), f"{name}_{suffix(dtype)}")(*args)
    if rc == 1:
        raise MemoryError(f"native kernel {name} ran out of memory")
    if rc != 0:
        raise RuntimeError(f"native kernel {name} failed with {_FAILURES.get(rc, f'status {rc}')}")
