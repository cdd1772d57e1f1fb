"""The circuits' native CPU kernels (qssm/native/gated_kernel.cpp, ssm_circuit_kernel.cpp) against
their twins, the batched torch statevector (statevector.py): values and gradients, every batch
tail and thread split. (The twins are checked against a dense simulation and PennyLane in
test_quantum.py and test_statevector_fast.py.)"""
from __future__ import annotations

import pytest
import torch

from native_util import require_native
from qssm.quantum import gated_circuit, ssm_circuit
from qssm.quantum.native_circuits import MAX_QUBITS, available, gated_circuit_native, ssm_circuit_native
from qssm.quantum.statevector import gated_circuit_torch, ssm_circuit_torch


@pytest.fixture(autouse=True)
def _kernels():
    require_native()


def _values_and_grads(fn, angles, g):
    a = angles.detach().clone().requires_grad_()
    out = fn(a)
    (ga,) = torch.autograd.grad(out, a, g)
    return out.detach(), ga


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("q,l", [(1, 1), (1, 2), (2, 1), (3, 2), (4, 2), (5, 3), (8, 1)])
@pytest.mark.parametrize("bsz", [1, 7, 17, 33])
def test_ssm_matches_statevector_twin(dtype, tol, q, l, bsz):
    g = torch.Generator().manual_seed(q * 100 + l * 10 + bsz)
    embed = (torch.rand(bsz, q, generator=g, dtype=dtype) * 6 - 3).requires_grad_()
    rot = torch.randn(bsz, 3 * q * l, generator=g, dtype=dtype).requires_grad_()
    gout = torch.randn(bsz, q, generator=g, dtype=dtype)
    results = []
    for fn in (ssm_circuit_torch, ssm_circuit_native):
        out = fn(embed, rot)
        results.append((out.detach(),) + torch.autograd.grad(out, (embed, rot), gout))
    for name, x, y in zip(("values", "d embed", "d rotations"), results[1], results[0]):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")


def test_ssm_gradcheck_and_default_path():
    embed = (torch.rand(3, 3, dtype=torch.float64) * 6 - 3).requires_grad_()
    rot = torch.randn(3, 18, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(ssm_circuit_native, (embed, rot), eps=1e-6, atol=1e-8)
    assert type(ssm_circuit(embed, rot).grad_fn).__name__.startswith("_NativeSSM")
    big = torch.rand(2, MAX_QUBITS["ssm"] + 1, dtype=torch.float64)
    assert not available("ssm", big.shape[1], big)


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize("q,l", [(2, 1), (3, 2), (4, 2), (5, 1), (6, 3), (8, 1)])
@pytest.mark.parametrize("bsz", [1, 7, 17, 33])
def test_gated_matches_statevector_twin(dtype, tol, q, l, bsz):
    g = torch.Generator().manual_seed(q * 100 + l * 10 + bsz)
    angles = torch.rand(bsz, 4 * q * l, generator=g, dtype=dtype) * 6.3 - 0.01
    gout = torch.randn(bsz, 3 * q, generator=g, dtype=dtype)
    want = _values_and_grads(lambda a: gated_circuit_torch(a, q), angles, gout)
    got = _values_and_grads(lambda a: gated_circuit_native(a, q), angles, gout)
    for name, x, y in zip(("values", "gradients"), got, want):
        torch.testing.assert_close(x, y, rtol=tol, atol=tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_splits_agree(threads):
    angles = torch.rand(50, 32, dtype=torch.float64) * 6.28
    gout = torch.randn(50, 12, dtype=torch.float64)
    want = _values_and_grads(lambda a: gated_circuit_torch(a, 4), angles, gout)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        got = _values_and_grads(lambda a: gated_circuit_native(a, 4), angles, gout)
    finally:
        torch.set_num_threads(old)
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-12)


def test_gradcheck():
    angles = (torch.rand(3, 24, dtype=torch.float64) * 6.28).requires_grad_()
    assert torch.autograd.gradcheck(lambda a: gated_circuit_native(a, 3), (angles,), eps=1e-6, atol=1e-8)


def test_default_cpu_path_and_its_limits():
    a = torch.rand(4, 32, requires_grad=True)
    out = gated_circuit(a, n_qubits=4)  # backend="torch" on CPU takes the kernel
    assert type(out.grad_fn).__name__.startswith("_NativeGated")
    assert not available("gated", 4, a.to(torch.bfloat16))
    assert not available("gated", MAX_QUBITS["gated"] + 1, a)
    with pytest.raises(RuntimeError, match="native gated circuit cannot run"):
        gated_circuit_native(a.to(torch.bfloat16), 4)


def test_no_grad_keeps_nothing():
    a = torch.rand(5, 16, requires_grad=True)
    with torch.no_grad():
        out = gated_circuit_native(a, 2)
    assert out.grad_fn is None and out.shape == (5, 6)
