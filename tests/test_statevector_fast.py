"""The fast torch statevector (qssm/quantum/statevector.py) against the PennyLane backend."""
from __future__ import annotations

import os

import pytest
import torch

from qssm.quantum import gated_circuit, ssm_circuit
from qssm.quantum.statevector import _group_cap, _groups

TOL = 1e-5  # docs/models.md: same outputs and gradients within 1e-5


def _ssm_inputs(bsz, q, layers, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    embed = (torch.randn(bsz, q, generator=g, dtype=torch.float64) * 2).to(device=device, dtype=dtype)
    rot = (torch.randn(bsz, 3 * q * layers, generator=g, dtype=torch.float64) * 2).to(device=device, dtype=dtype)
    return embed.requires_grad_(), rot.requires_grad_()


def _gated_inputs(bsz, q, layers, dtype=torch.float64, seed=0, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    ang = (torch.rand(bsz, 4 * q * layers, generator=g, dtype=torch.float64) * 6.3).to(device=device, dtype=dtype)
    return (ang.requires_grad_(),)


def _value_and_grads(fn, inputs, seed=1):
    out = fn(*inputs)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    w = w.to(device=out.device, dtype=out.dtype)
    return out.detach(), torch.autograd.grad((out * w).sum(), inputs)


def _assert_close(a, b, tol=TOL):
    torch.testing.assert_close(a.cpu().to(torch.float64), b.cpu().to(torch.float64), rtol=0, atol=tol)


@pytest.mark.parametrize("q,layers", [(1, 1), (1, 3), (2, 2), (3, 1), (4, 2), (5, 3), (7, 2)])
def test_ssm_matches_pennylane(q, layers):
    inputs = _ssm_inputs(3, q, layers, seed=q * 10 + layers)
    a, ga = _value_and_grads(lambda e, r: ssm_circuit(e, r, backend="torch"), inputs)
    b, gb = _value_and_grads(lambda e, r: ssm_circuit(e, r, backend="pennylane"), inputs)
    _assert_close(a, b)
    for x, y in zip(ga, gb):
        _assert_close(x, y)


@pytest.mark.parametrize("q,layers", [(2, 1), (3, 2), (5, 2), (6, 1)])
def test_gated_matches_pennylane(q, layers):
    inputs = _gated_inputs(3, q, layers, seed=q * 10 + layers)
    a, ga = _value_and_grads(lambda t: gated_circuit(t, n_qubits=q, backend="torch"), inputs)
    b, gb = _value_and_grads(lambda t: gated_circuit(t, n_qubits=q, backend="pennylane"), inputs)
    _assert_close(a, b)
    _assert_close(ga[0], gb[0])


def test_float32_agrees_with_float64():
    e64, r64 = _ssm_inputs(5, 6, 2)
    e32, r32 = (t.detach().float().requires_grad_() for t in (e64, r64))
    a, ga = _value_and_grads(lambda e, r: ssm_circuit(e, r), (e64, r64))
    b, gb = _value_and_grads(lambda e, r: ssm_circuit(e, r), (e32, r32))
    assert b.dtype == torch.float32
    _assert_close(a, b)
    for x, y in zip(ga, gb):
        _assert_close(x, y)
    (t64,) = _gated_inputs(5, 5, 2)
    t32 = t64.detach().float().requires_grad_()
    a, ga = _value_and_grads(lambda t: gated_circuit(t, n_qubits=5), (t64,))
    b, gb = _value_and_grads(lambda t: gated_circuit(t, n_qubits=5), (t32,))
    _assert_close(a, b)
    _assert_close(ga[0], gb[0])


def test_gradcheck_float64():
    inputs = _ssm_inputs(2, 3, 2, seed=5)
    assert torch.autograd.gradcheck(lambda e, r: ssm_circuit(e, r), inputs, eps=1e-6, atol=1e-7)
    inputs = _gated_inputs(2, 3, 2, seed=5)
    assert torch.autograd.gradcheck(lambda t: gated_circuit(t, n_qubits=3), inputs, eps=1e-6, atol=1e-7)


def test_second_backward_with_retained_graph():
    """The hand-written backward reuses the saved state's storage; a second backward recomputes it."""
    e, r = _ssm_inputs(4, 5, 3, seed=9)
    out = ssm_circuit(e, r)
    w = torch.randn(out.shape, dtype=out.dtype)
    g1 = torch.autograd.grad((out * w).sum(), (e, r), retain_graph=True)
    g2 = torch.autograd.grad((out * w).sum(), (e, r))
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    (t,) = _gated_inputs(4, 4, 2, seed=9)
    out = gated_circuit(t, n_qubits=4)
    w = torch.randn(out.shape, dtype=out.dtype)
    (g1,) = torch.autograd.grad((out * w).sum(), t, retain_graph=True)
    (g2,) = torch.autograd.grad((out * w).sum(), t)
    torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)


@pytest.mark.parametrize("q", range(1, 21))
def test_fused_groups_stay_small(q):
    """Gates are fused over at most 4 wires and never over all q (no 2^q x 2^q matrix)."""
    groups = _groups(q)
    assert [w for s, k in groups for w in range(s, s + k)] == list(range(q))
    assert all(k <= _group_cap(q) <= 4 for _, k in groups)
    if q > 1:
        assert all(k < q for _, k in groups)


def _peak_rss_delta(fn):
    """Peak resident memory (bytes) while fn runs, above the resident memory at its start."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark to the current RSS

    def read(key):
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
        raise KeyError(key)

    base = read("VmRSS")
    fn()
    return read("VmHWM") - base


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_q16_batch64_runs_within_a_few_gb():
    q, bsz = 16, 64

    def run():
        e, r = _ssm_inputs(bsz, q, 2, dtype=torch.float32, seed=3)
        out = ssm_circuit(e, r)
        out.sum().backward()
        assert torch.isfinite(e.grad).all() and torch.isfinite(r.grad).all()
        (a,) = _gated_inputs(bsz, q, 1, dtype=torch.float32, seed=4)
        gated_circuit(a, n_qubits=q).sum().backward()
        assert torch.isfinite(a.grad).all()

    try:
        peak = _peak_rss_delta(run)
    except OSError:
        pytest.skip("cannot reset the RSS high-water mark here")
    # one state is 64 * 2^16 * 8 bytes = 32 MiB; a 2^16 x 2^16 matrix would be 32 GiB per sample
    assert peak < 3 * 2**30, f"peak RSS grew by {peak / 2**30:.2f} GiB"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    cpu = _ssm_inputs(4, 6, 2)
    gpu = tuple(t.detach().cuda().requires_grad_() for t in cpu)
    a, ga = _value_and_grads(lambda e, r: ssm_circuit(e, r), cpu)
    b, gb = _value_and_grads(lambda e, r: ssm_circuit(e, r), gpu)
    _assert_close(a, b, 1e-10)
    for x, y in zip(ga, gb):
        _assert_close(x, y, 1e-10)
    (t,) = _gated_inputs(4, 5, 2)
    tg = t.detach().cuda().requires_grad_()
    a, ga = _value_and_grads(lambda x: gated_circuit(x, n_qubits=5), (t,))
    b, gb = _value_and_grads(lambda x: gated_circuit(x, n_qubits=5), (tg,))
    _assert_close(a, b, 1e-10)
    _assert_close(ga[0], gb[0], 1e-10)
