"""Causal depthwise Conv1d + SiLU of the Mamba-style blocks, fused on the native CPU kernel
(qssm/native/conv_kernel.cpp), with the torch path (`conv_silu_torch`) as its twin.

`conv_silu(conv, x)` takes x (B, T, C) -- a strided view such as the in_proj split is read in
place -- and returns SiLU(causal conv(x)) as a contiguous (B, T, C). On CPU float32/float64 it
runs the kernel when it loads (QSSM_NATIVE=0 turns it off); elsewhere (CUDA) the torch path.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from torch.autograd.function import once_differentiable

from ..native import call, usable

__all__ = ["conv_silu", "conv_silu_torch", "conv_silu_native"]


def conv_silu_torch(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """The reference: Conv1d over (B, C, T) with padding K-1, first T outputs, SiLU."""
    t = x.shape[1]
    return F.silu(conv(x.transpose(1, 2))[..., :t].transpose(1, 2))


def _strided(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


class _ConvSiLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias):
        x = _strided(x)
        bsz, length, ch = x.shape
        k = weight.shape[-1]
        w = weight.reshape(ch, k).contiguous()
        b = bias.contiguous()
        y = x.new_empty(bsz, length, ch)
        call("qssm_conv_silu_fwd", x.dtype, x.data_ptr(), w.data_ptr(), b.data_ptr(), y.data_ptr(), bsz, length,
             ch, k, x.stride(0), x.stride(1), torch.get_num_threads())
        ctx.save_for_backward(x, w, b)
        ctx.weight_shape = weight.shape
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        x, w, b = ctx.saved_tensors
        bsz, length, ch = x.shape
        k = w.shape[1]
        threads = torch.get_num_threads()
        gy = gy.contiguous()
        gx = x.new_empty(bsz, length, ch)
        gw = x.new_zeros(threads, k, ch)
        gb = x.new_zeros(threads, ch)
        call("qssm_conv_silu_bwd", x.dtype, x.data_ptr(), w.data_ptr(), b.data_ptr(), gy.data_ptr(), gx.data_ptr(),
             gw.data_ptr(), gb.data_ptr(), bsz, length, ch, k, x.stride(0), x.stride(1), threads)
        return gx, gw.sum(0).t().reshape(ctx.weight_shape), gb.sum(0)


def _is_causal_depthwise(conv: nn.Conv1d, x: torch.Tensor) -> bool:
    """The geometry the kernel implements: depthwise, stride 1, no dilation, padding K-1, bias."""
    ch = x.shape[-1]
    k = conv.kernel_size[0]
    return (conv.in_channels == conv.out_channels == conv.groups == ch and conv.stride == (1,)
            and conv.dilation == (1,) and conv.padding == (k - 1,) and conv.padding_mode == "zeros"
            and conv.bias is not None)


def conv_silu_native(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 3 or not _is_causal_depthwise(conv, x):
        raise ValueError("the native conv takes x (B, T, C) and a causal depthwise Conv1d(C, C, K, groups=C, "
                         "padding=K-1, bias=True)")
    if not usable(x, conv.weight, conv.bias):
        raise RuntimeError(f"the native conv cannot run this input (dtype {x.dtype}, device {x.device})")
    return _ConvSiLU.apply(x, conv.weight, conv.bias)


def conv_silu(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """SiLU(causal depthwise conv(x)) for x (B, T, C) -> (B, T, C).

    CPU: the native kernel when it loads. CUDA (or Triton's interpreter): the Triton kernel or
    cuDNN's conv1d, whichever `triton_conv.choose` measured faster for this shape. Else torch."""
    if x.dim() == 3 and _is_causal_depthwise(conv, x):
        if usable(x, conv.weight, conv.bias):
            return _ConvSiLU.apply(x, conv.weight, conv.bias)
        from . import triton_conv

        if triton_conv.available(x, conv.weight, conv.bias) \
                and triton_conv.choose(conv, x, conv_silu_torch) == "triton":
            return triton_conv.conv_silu_triton(conv, x)
    return conv_silu_torch(conv, x)
