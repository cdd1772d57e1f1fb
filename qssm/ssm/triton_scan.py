"""Selective scan on CUDA as two Triton kernels: one launch forward, one backward.

The scheme of the native CPU kernel (qssm/native/scan_kernel.cpp), laid out for a GPU:
- grid (batch, channel block): a program owns one batch row and BLOCK_D channels, and keeps
  their (BLOCK_D, N) state in registers in float32 (float64 for float64 inputs) for the whole walk
  over time; inputs of float32, bfloat16 or float16 are read in their dtype, strided in place;
- forward saves the state entering every chunk of `chunk` steps, (B, L/chunk, di, N): memory
  O(B·di·N·L/chunk) on top of the inputs, nothing of size L·N;
- backward walks the chunks in reverse: it recomputes the chunk's states from its entry state into
  a small per-program scratch (K+1 states, cache-resident), then walks the chunk's steps in
  reverse with the adjoint recurrence G_t = C_t ⊗ gy_t + dA_{t+1} ⊙ G_{t+1}. Reductions across
  channel blocks (dB, dC, dA, dD) are written as per-block partials and summed by torch;
- `delta_softplus` applies softplus to the Δ input inside the kernels (and its derivative in
  backward), `reverse` walks time backwards (the Hydra blocks' flipped scan) without a flip copy.
Values are the plain recurrence's step by step, as `scan_reference` (no cumsum/exp closed form).
"""
from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .. import triton_support as ts

__all__ = ["scan_triton", "available", "DTYPES"]

DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)
_KERNELS: dict = {}


def available(*tensors) -> bool:
    """True when Triton can run these tensors (CUDA, or the interpreter) and their dtypes are ones
    the kernels take (x, Δ, B, C of one dtype; A and D float32/float64)."""
    return tensors[0].dtype in DTYPES and ts.usable(*tensors)


def kernels():
    """The jitted kernels, made on first use (Triton is imported only when it will run)."""
    if not _KERNELS:
        from ._triton_scan_kernels import acc_dtype, scan_bwd, scan_fwd

        _KERNELS.update(fwd=scan_fwd, bwd=scan_bwd, acc=acc_dtype)
    return _KERNELS


def block_d(bsz: int, di: int, backward: bool = False) -> int:
    """Channels per program: forward 32, or 16 when that is needed to give the GPU ~2 programs per
    SM; backward 16 (it holds ~3x the forward's live state: at 32 it spills on sm_80)."""
    blk = min(32, ts.next_pow2(di))
    if blk == 32 and (backward or bsz * -(-di // 32) < 256):
        blk = 16
    return blk


def _state_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _s3(t):
    return t.stride(0), t.stride(1), t.stride(2)


def _a_strides(A):
    return (0, A.stride(0)) if A.dim() == 1 else (A.stride(0), A.stride(1))


def _forward(x, delta, A, B, C, D, chunk, softplus, reverse, keep):
    D = D.contiguous()
    bsz, length, di = x.shape
    n = B.shape[-1]
    blk_d, blk_n = block_d(bsz, di), ts.next_pow2(n)
    n_chunks = -(-length // chunk)
    y = torch.empty(bsz, length, di, dtype=x.dtype, device=x.device)
    st_dtype = _state_dtype(x.dtype)
    states = torch.empty(bsz, n_chunks, di, n, dtype=st_dtype, device=x.device) if keep else y
    grid = (bsz, -(-di // blk_d))
    ts.launch(kernels()["fwd"], grid, x, delta, A, B, C, D, y, states, length, di, n, chunk,
              *_s3(x), *_s3(delta), *_a_strides(A), *_s3(B), *_s3(C),
              SOFTPLUS=softplus, REVERSE=reverse, KEEP=keep, BLOCK_D=blk_d, BLOCK_N=blk_n,
              ACC=kernels()["acc"](x.dtype == torch.float64))
    return y, (states if keep else None)


class _TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, chunk, softplus, reverse):
        y, states = _forward(x, delta, A, B, C, D, chunk, softplus, reverse, keep=True)
        ctx.save_for_backward(x, delta, A, B, C, D, states)
        ctx.opts = (chunk, softplus, reverse)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, delta, A, B, C, D, states = ctx.saved_tensors
        D = D.contiguous()
        chunk, softplus, reverse = ctx.opts
        bsz, length, di = x.shape
        n = B.shape[-1]
        blk_d, blk_n = block_d(bsz, di, backward=True), ts.next_pow2(n)
        n_blk = -(-di // blk_d)
        st = states.dtype
        dev = x.device
        gx = torch.empty(bsz, length, di, dtype=x.dtype, device=dev)
        gdelta = torch.empty(bsz, length, di, dtype=delta.dtype, device=dev)
        g_a = torch.empty(bsz, di, n, dtype=st, device=dev)  # per batch row, summed below
        g_d = torch.empty(bsz, di, dtype=st, device=dev)
        g_b = torch.empty(n_blk, bsz, length, n, dtype=st, device=dev)  # per channel block
        g_c = torch.empty(n_blk, bsz, length, n, dtype=st, device=dev)
        scratch = torch.empty(bsz, n_blk, min(chunk, length) + 1, blk_d, blk_n, dtype=st, device=dev)
        ts.launch(kernels()["bwd"], (bsz, n_blk), x, delta, A, B, C, D, states, gy, gx, gdelta, g_a, g_d,
                  g_b, g_c, scratch, length, di, n, chunk,
                  *_s3(x), *_s3(delta), *_a_strides(A), *_s3(B), *_s3(C), *_s3(gy),
                  SOFTPLUS=softplus, REVERSE=reverse, BLOCK_D=blk_d, BLOCK_N=blk_n,
                  ACC=kernels()["acc"](x.dtype == torch.float64))
        g_a = g_a.sum(0)
        g_a = (g_a.sum(0) if A.dim() == 1 else g_a).to(A.dtype)
        g_b = (g_b[0] if n_blk == 1 else g_b.sum(0)).to(B.dtype)
        g_c = (g_c[0] if n_blk == 1 else g_c.sum(0)).to(C.dtype)
        return gx, gdelta, g_a, g_b, g_c, g_d.sum(0).to(D.dtype), None, None, None


def _refusal(*tensors) -> str:
    kinds = sorted({f"{t.dtype} on {t.device}" for t in tensors})
    return (f"the Triton scan cannot run tensors of {', '.join(kinds)} ({ts.status()}); it takes CUDA tensors "
            "on one device, x/delta/B/C float32, bfloat16, float16 or float64")


def scan_triton(x, delta, A, B, C, D, *, chunk: int = 32, delta_softplus: bool = False, reverse: bool = False):
    """Selective scan (contract of `scan_reference`) on the Triton kernels.

    With `delta_softplus` the kernel takes Δ before softplus; with `reverse` it scans time from
    the end (equal to flipping every input along time, scanning, and flipping y back).
    Under ``torch.no_grad()`` (or when nothing requires grad) no state is kept.
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ValueError(f"chunk={chunk!r} must be a positive integer")
    tensors = (x, delta, A, B, C, D)
    if not available(*tensors) or len({t.dtype for t in (x, delta, B, C)}) != 1:
        raise RuntimeError(_refusal(*tensors))
    # the kernels index time within a batch row in 32 bits (int64 there costs registers): rows
    # of strided views that reach 2^31 elements are copied contiguous, and longer rows refused
    if any(t.shape[1] * max(t.stride(1), 1) + t.shape[2] >= 2**31 for t in (x, delta, B, C)):
        x, delta, B, C = (t.contiguous() for t in (x, delta, B, C))
        if x.shape[1] * x.shape[2] >= 2**31:
            raise ValueError(f"x of shape {tuple(x.shape)}: L*di must stay below 2^31 for the Triton scan")
        tensors = (x, delta, A, B, C, D)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return _TritonScan.apply(x, delta, A, B, C, D, chunk, bool(delta_softplus), bool(reverse))
    y, _ = _forward(x, delta, A, B, C, D, chunk, bool(delta_softplus), bool(reverse), keep=False)
    return y
