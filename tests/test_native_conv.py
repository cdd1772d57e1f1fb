"""The fused causal depthwise conv + SiLU kernel (qssm/native/conv_kernel.cpp) against its torch
twin (Conv1d, slice, SiLU): values and the gradients of input, weight and bias."""
from __future__ import annotations

import pytest
import torch

from native_util import require_native
from qssm.ssm.blocks import causal_conv
from qssm.ssm.native_conv import _ConvSiLU, conv_silu, conv_silu_native, conv_silu_torch


@pytest.fixture(autouse=True)
def _kernels():
    require_native()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("bsz,length,ch", [(1, 1, 3), (2, 2, 16), (3, 3, 37), (2, 4, 8), (5, 33, 64)])
@pytest.mark.parametrize("threads", [1, 2])
def test_matches_torch_twin(dtype, tol, bsz, length, ch, threads):
    torch.manual_seed(bsz * 100 + length)
    conv = causal_conv(ch).to(dtype)
    base = torch.randn(bsz, length, 2 * ch, dtype=dtype, requires_grad=True)  # the in_proj split
    g = torch.randn(bsz, length, ch, dtype=dtype)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        results = []
        for fn in (conv_silu_torch, conv_silu_native):
            y = fn(conv, base[..., ch:])  # a strided view, read in place by the kernel
            results.append((y.detach(),) + torch.autograd.grad(y, (base, conv.weight, conv.bias), g))
    finally:
        torch.set_num_threads(old)
    for name, a, b in zip(("y", "dx", "dw", "dbias"), results[1], results[0]):
        scale = b.abs().max().item() + 1.0
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale, msg=lambda m: f"{name}: {m}")


def test_dispatch_and_gradcheck():
    conv = causal_conv(4).double()
    x = torch.randn(2, 6, 4, dtype=torch.float64, requires_grad=True)
    assert type(conv_silu(conv, x).grad_fn).__name__.startswith("_ConvSiLU")
    w = conv.weight.detach().clone().requires_grad_()
    b = conv.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(_ConvSiLU.apply, (x, w, b), eps=1e-6, atol=1e-8)
    with pytest.raises(RuntimeError, match="native conv cannot run"):
        conv_silu_native(conv, x.detach().to(torch.bfloat16))



def test_other_conv_geometries_take_the_torch_path():
    """The kernel implements only the blocks' causal depthwise conv; anything else is left to torch."""
    conv = torch.nn.Conv1d(6, 6, 3, groups=6, padding=1).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    y = conv_silu(conv, x)
    want = torch.nn.functional.silu(conv(x.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(y, want)
    with pytest.raises(ValueError, match="causal depthwise"):
        conv_silu_native(conv, x)
