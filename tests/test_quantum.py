"""Both circuit backends against each other and against an independent dense simulation."""
import functools

import numpy as np
import pytest
import torch

from qssm.quantum import gated_circuit, ssm_circuit

I2 = np.eye(2)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]])
Z = np.diag([1.0, -1.0]).astype(complex)


def rx(t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * X


def ry(t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * Y


def rz(t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * Z


def on(op, wire, n):
    return functools.reduce(np.kron, [op if w == wire else I2 for w in range(n)])


def controlled(op, ctrl, tgt, n):
    p0, p1 = np.diag([1, 0]).astype(complex), np.diag([0, 1]).astype(complex)
    a = functools.reduce(np.kron, [p0 if w == ctrl else I2 for w in range(n)])
    b = functools.reduce(np.kron, [p1 if w == ctrl else (op if w == tgt else I2) for w in range(n)])
    return a + b


def dense_ssm(embed, rot):
    n = len(embed)
    layers = len(rot) // (3 * n)
    psi = np.zeros(2 ** n, complex)
    psi[0] = 1
    for i in range(n):
        psi = on(ry(embed[i]), i, n) @ psi
    k = 0
    for _ in range(layers):
        for i in range(n):
            psi = on(rz(rot[k + 2]) @ ry(rot[k + 1]) @ rx(rot[k]), i, n) @ psi
            k += 3
        for i in range(n - 1):
            psi = controlled(X, i, i + 1, n) @ psi
        if n > 1:
            psi = controlled(X, n - 1, 0, n) @ psi
    return np.array([np.vdot(psi, on(Z, i, n) @ psi).real for i in range(n)])


def dense_gated(ang, n):
    layers = len(ang) // (4 * n)
    psi = np.zeros(2 ** n, complex)
    psi[0] = 1
    k = 0
    for _ in range(layers):
        for i in range(n):
            psi = on(ry(ang[k]), i, n) @ psi
            k += 1
        for i in range(n):
            psi = controlled(rx(ang[k]), i, (i + 1) % n, n) @ psi
            k += 1
        for i in range(n):
            psi = on(ry(ang[k]), i, n) @ psi
            k += 1
        for i in range(n - 1, -1, -1):
            psi = controlled(rx(ang[k]), i, (i - 1) % n, n) @ psi
            k += 1
    return np.array([np.vdot(psi, on(P, i, n) @ psi).real for P in (X, Y, Z) for i in range(n)])


@pytest.mark.parametrize("backend", ["torch", "pennylane"])
@pytest.mark.parametrize("q", [1, 2, 3, 4])
@pytest.mark.parametrize("l", [1, 2])
def test_ssm_circuit_matches_dense(backend, q, l):
    g = torch.Generator().manual_seed(q * 10 + l)
    embed = torch.rand(3, q, generator=g, dtype=torch.float64) * 6 - 3
    rot = torch.rand(3, 3 * q * l, generator=g, dtype=torch.float64) * 8 - 4
    out = ssm_circuit(embed, rot, backend=backend)
    assert out.shape == (3, q) and out.dtype == torch.float64
    ref = np.stack([dense_ssm(e, r) for e, r in zip(embed.numpy(), rot.numpy())])
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("backend", ["torch", "pennylane"])
@pytest.mark.parametrize("q", [2, 3, 4])
@pytest.mark.parametrize("l", [1, 2])
def test_gated_circuit_matches_dense(backend, q, l):
    g = torch.Generator().manual_seed(q * 10 + l)
    ang = torch.rand(3, 4 * q * l, generator=g, dtype=torch.float64) * 2 * np.pi
    out = gated_circuit(ang, n_qubits=q, backend=backend)
    assert out.shape == (3, 3 * q)
    ref = np.stack([dense_gated(a, q) for a in ang.numpy()])
    np.testing.assert_allclose(out.detach().numpy(), ref, atol=1e-10)


def _grads(fn, *inputs):
    out = fn(*inputs)
    w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    return out, torch.autograd.grad((out * w).sum(), inputs)


@pytest.mark.parametrize("q", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("l", [1, 2])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_backends_agree_values_and_gradients(q, l, dtype):
    g = torch.Generator().manual_seed(7 * q + l)
    embed = (torch.randn(4, q, generator=g, dtype=torch.float64) * 2).to(dtype).requires_grad_()
    rot = (torch.randn(4, 3 * q * l, generator=g, dtype=torch.float64) * 2).to(dtype).requires_grad_()
    a, ga = _grads(lambda e, r: ssm_circuit(e, r, backend="torch"), embed, rot)
    b, gb = _grads(lambda e, r: ssm_circuit(e, r, backend="pennylane"), embed, rot)
    tol = 1e-5
    torch.testing.assert_close(a, b.to(a.dtype), atol=tol, rtol=0)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y.to(x.dtype), atol=tol, rtol=0)
    if q >= 2:
        ang = (torch.rand(4, 4 * q * l, generator=g, dtype=torch.float64) * 6.28).to(dtype).requires_grad_()
        a, ga = _grads(lambda t: gated_circuit(t, n_qubits=q, backend="torch"), ang)
        b, gb = _grads(lambda t: gated_circuit(t, n_qubits=q, backend="pennylane"), ang)
        torch.testing.assert_close(a, b.to(a.dtype), atol=tol, rtol=0)
        torch.testing.assert_close(ga[0], gb[0].to(ga[0].dtype), atol=tol, rtol=0)


def test_lightning_qubit_agrees_when_installed():
    pytest.importorskip("pennylane_lightning")
    embed = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    rot = torch.randn(3, 18, dtype=torch.float64, requires_grad=True)
    a, ga = _grads(lambda e, r: ssm_circuit(e, r), embed, rot)
    b, gb = _grads(lambda e, r: ssm_circuit(e, r, backend="pennylane", device="lightning.qubit"), embed, rot)
    torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for x, y in zip(ga, gb):
        torch.testing.assert_close(x, y, atol=1e-6, rtol=0)


def test_gated_circuit_rejects_one_qubit():
    with pytest.raises(ValueError, match="n_qubits"):
        gated_circuit(torch.zeros(2, 4), n_qubits=1)


@pytest.mark.parametrize("kwargs,match", [
    (dict(backend="qiskit"), "quantum_backend"),
    (dict(backend="pennylane", device="nope.qubit"), "qml_device"),
])
def test_bad_backend_or_device(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ssm_circuit(torch.zeros(2, 2), torch.zeros(2, 6), **kwargs)


def test_lightning_gpu_without_cuda_names_the_extra():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    with pytest.raises((ImportError, RuntimeError), match=r"qssm-bench\[gpu\]"):
        ssm_circuit(torch.zeros(2, 2), torch.zeros(2, 6), backend="pennylane", device="lightning.gpu")


def test_shape_errors():
    with pytest.raises(ValueError, match="rotations"):
        ssm_circuit(torch.zeros(2, 3), torch.zeros(2, 7))
    with pytest.raises(ValueError, match="angles"):
        gated_circuit(torch.zeros(2, 9), n_qubits=2)


def test_qubit_limit_is_an_error_not_an_allocation():
    with pytest.raises(ValueError, match=r"n_qubits=30 .*1\.\.24"):
        ssm_circuit(torch.zeros(1, 30), torch.zeros(1, 90))
    with pytest.raises(ValueError, match=r"n_qubits=25"):
        gated_circuit(torch.zeros(1, 100), n_qubits=25)


def test_empty_batch_is_an_error():
    with pytest.raises(ValueError, match="at least one circuit"):
        gated_circuit(torch.zeros(0, 16), n_qubits=2)
    with pytest.raises(ValueError, match="at least one circuit"):
        ssm_circuit(torch.zeros(0, 2), torch.zeros(0, 6))
