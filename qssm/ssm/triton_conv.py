"""Causal depthwise conv + SiLU of the blocks on CUDA: a Triton kernel, or cuDNN's conv1d.

`conv_silu_triton(conv, x)` runs the fused Triton kernels (qssm/ssm/_triton_conv_kernels.py): one
pass reads x (strided in place) and writes y; backward recomputes the pre-activation. Which of
the two is faster on a given GPU and shape is measured, not assumed: `choose(conv, x)` times one
fwd+bwd of each the first time a (shape, dtype, device) is seen and caches the winner (like
cudnn.benchmark); QSSM_CONV=triton|cudnn pins one. `qssm micro --device cuda` prints both.
"""
from __future__ import annotations

import os
import time

import torch
from torch.autograd.function import once_differentiable

from .. import triton_support as ts

__all__ = ["conv_silu_triton", "available", "choose", "choices"]

_KERNELS: dict = {}
_CHOICE: dict = {}


def available(x, weight, bias) -> bool:
    return x.dtype in (torch.float32, torch.float64, torch.bfloat16, torch.float16) and ts.usable(x, weight, bias)


def kernels():
    if not _KERNELS:
        from ._triton_conv_kernels import conv_silu_bwd, conv_silu_fwd
        from ._triton_scan_kernels import acc_dtype

        _KERNELS.update(fwd=conv_silu_fwd, bwd=conv_silu_bwd, acc=acc_dtype)
    return _KERNELS


def _blocks(ch, backward=False):
    """(BLOCK_T, BLOCK_C): backward recomputes K shifted tiles, so it takes smaller tiles (no spills)."""
    return (16, min(32, ts.next_pow2(ch))) if backward else (32, min(64, ts.next_pow2(ch)))


class _ConvSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        if x.stride(-1) != 1:
            x = x.contiguous()
        bsz, length, ch = x.shape
        k = weight.shape[-1]
        w = weight.reshape(ch, k).contiguous()
        bt, bc = _blocks(ch)
        y = x.new_empty(bsz, length, ch)
        grid = (bsz, -(-length // bt), -(-ch // bc))
        bias = bias.contiguous()
        ts.launch(kernels()["fwd"], grid, x, w, bias, y, length, ch, x.stride(0), x.stride(1),
                  K=k, BLOCK_T=bt, BLOCK_C=bc, ACC=kernels()["acc"](x.dtype == torch.float64))
        ctx.save_for_backward(x, w, bias)
        ctx.weight_shape = weight.shape
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, w, bias = ctx.saved_tensors
        bsz, length, ch = x.shape
        k = w.shape[1]
        if gy.stride(-1) != 1:
            gy = gy.contiguous()
        bt, bc = _blocks(ch, backward=True)
        n_t = -(-length // bt)
        acc = torch.float64 if x.dtype == torch.float64 else torch.float32
        gx = x.new_empty(bsz, length, ch)
        gw = torch.empty(bsz * n_t, k, ch, dtype=acc, device=x.device)
        gb = torch.empty(bsz * n_t, ch, dtype=acc, device=x.device)
        ts.launch(kernels()["bwd"], (bsz, n_t, -(-ch // bc)), x, w, bias, gy, gx, gw, gb, length, ch,
                  x.stride(0), x.stride(1), gy.stride(0), gy.stride(1),
                  K=k, BLOCK_T=bt, BLOCK_C=bc, ACC=kernels()["acc"](x.dtype == torch.float64))
        gw = gw.sum(0).t().reshape(ctx.weight_shape).to(w.dtype)
        return gx, gw, gb.sum(0).to(bias.dtype)


def conv_silu_triton(conv, x: torch.Tensor) -> torch.Tensor:
    """SiLU(causal depthwise conv(x)) for x (B, T, C) on the Triton kernels (caller checked geometry)."""
    if not available(x, conv.weight, conv.bias):
        raise RuntimeError(f"the Triton conv cannot run {x.dtype} on {x.device} ({ts.status()})")
    return _ConvSiLU.apply(x, conv.weight, conv.bias)


def _time_once(fn, conv, x) -> float:
    """Best of 3 fwd+bwd of fn on a private copy of the conv and of x: the module's parameters,
    their .grad and their hooks are never touched."""
    twin = type(conv)(conv.in_channels, conv.out_channels, conv.kernel_size[0], groups=conv.groups,
                      padding=conv.padding[0], bias=True).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        twin.weight.copy_(conv.weight)
        twin.bias.copy_(conv.bias)
    xs = x.detach().clone().requires_grad_(x.requires_grad)
    best = float("inf")
    for _ in range(3):
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        t0 = time.perf_counter()
        y = fn(twin, xs)
        if y.requires_grad:
            torch.autograd.grad(y, [xs] + list(twin.parameters()) if xs.requires_grad else list(twin.parameters()),
                                torch.ones_like(y))
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        best = min(best, time.perf_counter() - t0)
    return best


def choose(conv, x, torch_path) -> str:
    """"triton" or "cudnn" for this (shape, dtype, device): QSSM_CONV if set, else measured once.
    Under the interpreter (no GPU to measure) the Triton kernel is taken."""
    pinned = os.environ.get("QSSM_CONV", "")
    if pinned in ("triton", "cudnn"):
        return pinned
    if ts.interpreting():
        return "triton"
    key = (tuple(x.shape), x.dtype, str(x.device), tuple(conv.weight.shape), torch.is_grad_enabled())
    pick = _CHOICE.get(key)
    if pick is None:
        with torch.enable_grad() if key[-1] else torch.no_grad():
            t_triton = _time_once(conv_silu_triton, conv, x)
            t_cudnn = _time_once(torch_path, conv, x)
        pick = _CHOICE[key] = "triton" if t_triton <= t_cudnn else "cudnn"
    return pick


def choices() -> dict:
    """The measured picks so far: {"B×T×C dtype device": "triton" | "cudnn"}."""
    return {f"{'x'.join(map(str, k[0]))} {str(k[1]).replace('torch.', '')} {k[2]}": v for k, v in _CHOICE.items()}
