"""The chunked selective scan against its reference twin (scan.py), on both of its kernels:
"torch" (qssm/ssm/chunked.py, tensor ops, any device) and "native" (qssm/ssm/native_scan.py, the fused
compiled CPU kernel qssm/native/scan_kernel.cpp). Every test that takes the `scan` fixture runs on each."""
from __future__ import annotations

import functools

import pytest
import torch

from qssm.ssm import native_scan as native
from native_util import require_native
from qssm import native as native_lib
from qssm.ssm.scan import scan_reference, selective_scan

RTOL = {torch.float32: 1e-4, torch.float64: 1e-10}
DELTA_RANGES = {"tiny": (1e-4, 1e-3), "mamba": (1e-3, 1e-1), "large": (1.0, 10.0)}


@pytest.fixture(params=["torch", "native"])
def scan(request):
    """selective_scan(impl="chunked") pinned to one kernel."""
    if request.param == "native":
        require_native()  # a machine without a compiler runs the torch kernel only
    return functools.partial(selective_scan, impl="chunked", kernel=request.param)


def make_inputs(bsz, length, di, n, *, dtype, a_shape, delta_range=(1e-3, 1e-1), seed=0,
                device="cpu"):
    g = torch.Generator().manual_seed(seed)
    lo, hi = delta_range

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=dtype)

    x = r(bsz, length, di)
    # log-uniform Δ in [lo, hi]
    u = torch.rand(bsz, length, di, generator=g, dtype=dtype)
    delta = torch.exp(torch.log(torch.tensor(lo, dtype=dtype)) * (1 - u) + torch.log(torch.tensor(hi, dtype=dtype)) * u)
    if a_shape == "shared":
        A = -torch.arange(1, n + 1, dtype=dtype) * (0.5 + torch.rand(n, generator=g, dtype=dtype))
    else:
        A = -torch.arange(1, n + 1, dtype=dtype).repeat(di, 1) * (0.5 + torch.rand(di, n, generator=g, dtype=dtype))
    B, C = r(bsz, length, n), r(bsz, length, n)
    D = r(di)
    return [t.to(device).requires_grad_() for t in (x, delta, A, B, C, D)]


def values_and_grads(fn, inputs, gy):
    y = fn(*inputs)
    grads = torch.autograd.grad(y, inputs, gy)
    return (y.detach(),) + tuple(grads)


def assert_match(got, want, rtol):
    names = ("y", "dx", "ddelta", "dA", "dB", "dC", "dD")
    for name, a, b in zip(names, got, want):
        assert a.shape == b.shape, name
        scale = b.abs().max().item() + 1e-30
        torch.testing.assert_close(a, b, rtol=rtol, atol=rtol * scale, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("a_shape", ["shared", "channel"])
@pytest.mark.parametrize("length,chunk", [(1, 16), (5, 16), (16, 16), (37, 16), (37, 4), (50, 1)])
def test_matches_reference(scan, dtype, a_shape, length, chunk):
    inputs = make_inputs(3, length, 8, 4, dtype=dtype, a_shape=a_shape, seed=length * 7 + chunk)
    gy = torch.randn(3, length, 8, dtype=dtype)
    want = values_and_grads(scan_reference, inputs, gy)
    got = values_and_grads(lambda *a: scan(*a, chunk=chunk), inputs, gy)
    assert_match(got, want, RTOL[dtype])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("a_shape", ["shared", "channel"])
@pytest.mark.parametrize("delta_range", list(DELTA_RANGES))
def test_delta_ranges(scan, dtype, a_shape, delta_range):
    inputs = make_inputs(2, 45, 6, 5, dtype=dtype, a_shape=a_shape, delta_range=DELTA_RANGES[delta_range], seed=3)
    gy = torch.randn(2, 45, 6, dtype=dtype)
    want = values_and_grads(scan_reference, inputs, gy)
    got = values_and_grads(scan, inputs, gy)
    for t in got:
        assert torch.isfinite(t).all()
    assert_match(got, want, RTOL[dtype])


def test_float32_long_chunks_stay_finite(scan):
    """Large Δ·|A| over long chunks: a cumsum/exp closed form would overflow; the walk must not."""
    inputs = make_inputs(2, 300, 4, 16, dtype=torch.float32, a_shape="channel", delta_range=(1.0, 10.0))
    gy = torch.randn(2, 300, 4)
    got = values_and_grads(lambda *a: scan(*a, chunk=256), inputs, gy)
    want = values_and_grads(scan_reference, inputs, gy)
    for t in got:
        assert torch.isfinite(t).all()
    assert_match(got, want, RTOL[torch.float32])


@pytest.mark.parametrize("a_shape", ["shared", "channel"])
def test_gradcheck_float64(scan, a_shape):
    inputs = make_inputs(2, 5, 3, 2, dtype=torch.float64, a_shape=a_shape, seed=11)
    assert torch.autograd.gradcheck(lambda *a: scan(*a, chunk=2), inputs, eps=1e-6, atol=1e-8)


def test_non_contiguous_inputs_and_partial_grads(scan):
    x, delta, A, B, C, D = make_inputs(2, 20, 6, 3, dtype=torch.float64, a_shape="channel")
    xt = x.detach().transpose(1, 2).contiguous().transpose(1, 2).requires_grad_()  # strided view
    Bn = B.detach().clone()  # no grad wanted for B
    args = (xt, delta, A, Bn, C, D)
    gy = torch.randn(2, 20, 6, dtype=torch.float64)
    y1 = scan(*args, chunk=3)
    y2 = scan_reference(*args)
    torch.testing.assert_close(y1, y2, rtol=1e-10, atol=1e-12)
    want = [t for t in args if t.requires_grad]
    g1 = torch.autograd.grad(y1, want, gy)
    g2 = torch.autograd.grad(y2, want, gy)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert y1.is_contiguous() and y1.shape == (2, 20, 6)


def _saved(fn, inputs, exclude_inputs=True):
    """(number of packed tensors, bytes of distinct storages saved for backward)."""
    storages = {}
    skip = {t.untyped_storage().data_ptr() for t in inputs} if exclude_inputs else set()
    count = [0]

    def pack(t):
        count[0] += 1
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            storages[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = fn(*inputs)
    return y, count[0], sum(storages.values())


def test_no_grad_saves_nothing(scan):
    inputs = make_inputs(2, 40, 8, 4, dtype=torch.float32, a_shape="shared")
    with torch.no_grad():
        y, count, nbytes = _saved(scan, inputs)
    assert count == 0 and nbytes == 0
    assert y.grad_fn is None
    # inputs that do not require grad: also nothing saved, even with grad mode on
    plain = [t.detach() for t in inputs]
    y, count, _ = _saved(scan, plain)
    assert count == 0 and y.grad_fn is None


def test_saved_bytes_far_below_reference(scan):
    bsz, length, di, n, chunk = 2, 256, 16, 8, 16
    inputs = make_inputs(bsz, length, di, n, dtype=torch.float32, a_shape="channel")
    _, _, ref_bytes = _saved(scan_reference, inputs)
    y, _, fast_bytes = _saved(lambda *a: scan(*a, chunk=chunk), inputs)
    # chunk-entry states only: ceil(L/K) * B * N * di floats (+ the native kernel's (N, di) A^T)
    assert fast_bytes <= ((-(-length // chunk)) * bsz * n * di + n * di) * 4
    assert fast_bytes * 10 < ref_bytes
    y.sum().backward()  # and the graph still differentiates


def test_bad_chunk_rejected(scan):
    inputs = make_inputs(1, 4, 2, 2, dtype=torch.float32, a_shape="shared")
    with pytest.raises(ValueError, match="chunk"):
        scan(*inputs, chunk=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("a_shape", ["shared", "channel"])
def test_cuda_matches_cpu(a_shape):
    cpu = make_inputs(2, 37, 8, 4, dtype=torch.float64, a_shape=a_shape)
    gpu = [t.detach().cuda().requires_grad_() for t in cpu]
    gy = torch.randn(2, 37, 8, dtype=torch.float64)
    want = values_and_grads(scan_reference, cpu, gy)
    got = values_and_grads(lambda *a: selective_scan(*a, impl="chunked", chunk=16), gpu, gy.cuda())
    assert_match(tuple(t.cpu() for t in got), want, 1e-10)


# ------------------------------------------------------------------ the native kernel itself

needs_native = pytest.mark.skipif(native_lib.compiler() is None, reason="no C++ compiler")


@needs_native
@pytest.mark.parametrize("bsz,threads", [(1, 2), (3, 2), (5, 3), (8, 2)])
def test_native_work_splits_match_reference(bsz, threads):
    """Fewer batch rows than threads cuts the channels into groups (ragged last group, di=37):
    every split must give the reference's values and gradients."""
    inputs = make_inputs(bsz, 70, 37, 5, dtype=torch.float32, a_shape="channel", seed=bsz)
    gy = torch.randn(bsz, 70, 37)
    want = values_and_grads(scan_reference, inputs, gy)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = values_and_grads(lambda *a: selective_scan(*a, chunk=16, kernel="native"), inputs, gy)
    finally:
        torch.set_num_threads(old)
    assert_match(got, want, RTOL[torch.float32])


@needs_native
def test_native_is_the_cpu_default():
    inputs = make_inputs(2, 9, 4, 3, dtype=torch.float32, a_shape="shared")
    y = selective_scan(*inputs)
    assert type(y.grad_fn).__name__.startswith("_NativeScan")
    assert native.available(*inputs)
    assert not native.available(*[t.double() for t in inputs[:3]], *inputs[3:])  # mixed dtypes


@needs_native
def test_native_keeps_nan():
    """A NaN in Δ or A must reach the output (the harness records NaN runs as such)."""
    x, delta, A, B, C, D = (t.detach() for t in make_inputs(1, 6, 16, 4, dtype=torch.float32, a_shape="channel"))
    A2 = A.clone()
    A2[3, 1] = float("nan")
    y = selective_scan(x, delta, A2, B, C, D, kernel="native")
    assert torch.isnan(y[0, :, 3]).all() and torch.isfinite(y[0, :, 2]).all()
    d2 = delta.clone()
    d2[0, 2, 5] = float("nan")
    y = selective_scan(x, d2, A, B, C, D, kernel="native")
    assert torch.isnan(y[0, 2:, 5]).all() and torch.isfinite(y[0, :2]).all()


def test_unknown_kernel_rejected():
    inputs = make_inputs(1, 4, 2, 2, dtype=torch.float32, a_shape="shared")
    with pytest.raises(ValueError, match="kernel=.fast.*allowed: auto, native, triton, torch"):
        selective_scan(*inputs, kernel="fast")


def test_native_refuses_tensors_it_cannot_run():
    inputs = \
        [t.detach().to(torch.bfloat16) for t in make_inputs(1, 4, 2, 2, dtype=torch.float32, a_shape="shared")]
    with pytest.raises(RuntimeError, match="native scan cannot run"):
        selective_scan(*inputs, kernel="native")


@needs_native
def test_native_empty_batch_and_channels():
    """B = 0 or di = 0 are valid shapes: empty results, no crash (the work split divides by them)."""
    for shape in ((0, 5, 8), (2, 5, 0)):
        bsz, length, di = shape
        x = torch.zeros(bsz, length, di, requires_grad=True)
        delta = torch.ones(bsz, length, di)
        A = -torch.ones(di, 3)
        B, C = torch.zeros(bsz, length, 3), torch.zeros(bsz, length, 3)
        y = selective_scan(x, delta, A, B, C, torch.ones(di), kernel="native")
        assert y.shape == shape
        y.sum().backward()
        assert x.grad.shape == shape


@needs_native
def test_native_chunk_longer_than_sequence():
    """A chunk far longer than L costs no more than one of length L (scratch sized by min(K, L))."""
    inputs = make_inputs(2, 9, 8, 4, dtype=torch.float64, a_shape="channel")
    gy = torch.randn(2, 9, 8, dtype=torch.float64)
    want = values_and_grads(scan_reference, inputs, gy)
    got = values_and_grads(lambda *a: selective_scan(*a, chunk=2 ** 40, kernel="native"), inputs, gy)
    assert_match(got, want, RTOL[torch.float64])


@needs_native
def test_native_refuses_double_backward():
    inputs = make_inputs(1, 6, 4, 2, dtype=torch.float64, a_shape="shared")
    y = selective_scan(*inputs, kernel="native")
    (gx,) = torch.autograd.grad(y.sum(), inputs[0], create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable|does not require grad"):
        gx.sum().backward()
