"""Fused CPU selective scan: the chunked algorithm of `qssm.ssm.chunked` as one compiled kernel
(qssm/native/scan_kernel.cpp).

Same contract and same memory scheme as `scan_chunked` (state saved only at chunk starts,
recomputed inside a chunk in backward), but one pass per time step over a batch row's channels
keeps its N x di state in L1/L2 for the whole walk instead of passing it through memory once per
tensor op. CPU tensors of float32 or float64 only; `available(...)` says whether a call can take
this path, and `selective_scan` runs the torch twin otherwise (CUDA, other dtypes, no compiler,
QSSM_NATIVE=0).
"""
from __future__ import annotations

import torch

from torch.autograd.function import once_differentiable

from ..native import call, load, status, usable

__all__ = ["available", "scan_native", "status"]


def available(*tensors) -> bool:
    """True when every tensor is a CPU float32/float64 tensor of one dtype and the kernel loads."""
    return usable(*tensors)


def _ptr(t: torch.Tensor):
    return t.data_ptr() if t is not None else None


def _prepare(x, delta, A, B, C, D):
    di = x.shape[-1]
    a_t = (A.t() if A.dim() == 2 else A.view(-1, 1).expand(-1, di)).contiguous()  # (N, di)
    return [t.contiguous() for t in (x, delta)] + [a_t] + [t.contiguous() for t in (B, C, D)]


def _forward(x, delta, a_t, B, C, D, chunk, keep_states):
    bsz, length, di = x.shape
    n = B.shape[-1]
    y = torch.empty_like(x)
    n_chunks = -(-length // chunk)
    states = x.new_empty(bsz, n_chunks, n, di) if keep_states else None
    call("qssm_scan_fwd", x.dtype, *map(_ptr, (x, delta, a_t, B, C, D, y, states)), bsz, length, di, n,
         chunk, torch.get_num_threads())
    return y, states


class _NativeScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, chunk):
        ins = _prepare(x, delta, A, B, C, D)
        y, states = _forward(*ins, chunk, keep_states=True)
        ctx.save_for_backward(*ins, states)
        ctx.chunk, ctx.a_shared = chunk, A.dim() == 1
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, delta, a_t, B, C, D, states = ctx.saved_tensors
        lib = load()
        bsz, length, di = x.shape
        n = B.shape[-1]
        threads = torch.get_num_threads()
        groups = lib.qssm_scan_groups(bsz, di, threads, x.element_size())
        gy = gy.contiguous()
        gx, gdelta = torch.empty_like(x), torch.empty_like(x)
        g_a = x.new_zeros(threads, n, di)  # per worker
        g_d = x.new_zeros(threads, di)
        g_b = x.new_zeros(groups, bsz, length, n)  # per channel group
        g_c = x.new_zeros(groups, bsz, length, n)
        call("qssm_scan_bwd", x.dtype,
             *map(_ptr, (x, delta, a_t, B, C, D, states, gy, gx, gdelta, g_a, g_d, g_b, g_c)),
             bsz, length, di, n, ctx.chunk, threads, groups)
        g_a = g_a.sum(0)  # (N, di)
        g_a = g_a.sum(1) if ctx.a_shared else g_a.t()
        if groups == 1:  # no copy: the (B, L, N) gradients are the single partial
            g_b, g_c = g_b[0], g_c[0]
        else:
            g_b, g_c = g_b.sum(0), g_c.sum(0)
        return gx, gdelta, g_a, g_b, g_c, g_d.sum(0), None


def _refusal(*tensors) -> str:
    if load() is None:
        return f"the native scan cannot run: {status()}"
    kinds = sorted({f"{t.dtype} on {t.device}" for t in tensors})
    return f"the native scan cannot run tensors of {', '.join(kinds)}; it takes CPU float32 or float64, one dtype"


def scan_native(x, delta, A, B, C, D, *, chunk: int = 32):
    """Fused selective scan on CPU (contract of `scan_reference`); saves nothing under no_grad."""
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be a positive integer")
    if not available(x, delta, A, B, C, D):
        raise RuntimeError(_refusal(x, delta, A, B, C, D))
    tensors = (x, delta, A, B, C, D)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _NativeScan.apply(x, delta, A, B, C, D, chunk)
    y, _ = _forward(*_prepare(*tensors), chunk, keep_states=False)
    return y
