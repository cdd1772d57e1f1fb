"""The two variational circuits of docs/models.md behind one API, on two interchangeable backends.

- ``backend="torch"`` (default): the project's own simulators: on CPU the compiled kernels of
  native_circuits.py where they are faster (see MAX_QUBITS there), on CUDA the Triton kernels of
  triton_circuits.py (one launch forward, one backward), the batched statevector (statevector.py)
  otherwise (no Triton, QSSM_TRITON=0, other dtypes).
- ``backend="pennylane"``: a QNode with the torch interface on the named PennyLane ``device``
  (default.qubit, lightning.qubit, lightning.gpu, lightning.kokkos).
"""
from __future__ import annotations

import torch

from .pennylane_backend import QML_DEVICES, gated_circuit_pennylane, ssm_circuit_pennylane
from .statevector import gated_circuit_torch, ssm_circuit_torch

BACKENDS = ("torch", "pennylane")
MAX_QUBITS = 24  # a 2^q statevector per sample: q = 24 is 128 MiB per sample in complex64
__all__ = ["ssm_circuit", "gated_circuit", "circuit_kernel", "BACKENDS", "QML_DEVICES", "MAX_QUBITS"]


def circuit_kernel(circuit: str, n_qubits: int, *tensors: torch.Tensor) -> str:
    """Which simulator backend="torch" runs for these inputs (the dispatch of ssm_circuit and
    gated_circuit): "native" (CPU kernel), "triton" (CUDA kernels) or "torch" (the batched
    statevector)."""
    from . import triton_circuits
    from .native_circuits import available

    if available(circuit, n_qubits, *tensors):
        return "native"
    if triton_circuits.available(*tensors) and len({t.dtype for t in tensors}) == 1:
        return "triton"
    return "torch"


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"quantum_backend={backend!r} is not supported; allowed: {', '.join(BACKENDS)}")


def _check_2d(name: str, t: torch.Tensor) -> None:
    if not isinstance(t, torch.Tensor) or t.dim() != 2:
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a 2-D tensor (B', ...); got {got}")


def _check_qubits(n) -> None:
    if not 1 <= n <= MAX_QUBITS:
        raise ValueError(f"n_qubits={n} is not allowed; need 1..{MAX_QUBITS} (statevector memory is 2^q per sample)")


def _check_batch(name: str, t: torch.Tensor) -> None:
    if t.shape[0] < 1:
        raise ValueError(f"{name} must hold at least one circuit (B' >= 1); got shape {tuple(t.shape)}")


def ssm_circuit(embed: torch.Tensor, rotations: torch.Tensor, *, backend: str = "torch",
                device: str | None = None) -> torch.Tensor:
    """docs/models.md. embed (B', q) RY angles, rotations (B', 3*q*l) -> (B', q) of <Z_i>.

    ``rotations`` is ordered layer by layer, qubit by qubit, (RX, RY, RZ) per qubit.
    ``device`` names the PennyLane device (pennylane backend only; default default.qubit).
    """
    _check_backend(backend)
    _check_2d("embed", embed)
    _check_2d("rotations", rotations)
    bsz, n = embed.shape
    _check_qubits(n)
    _check_batch("embed", embed)
    if rotations.shape[0] != bsz or rotations.shape[1] % (3 * n) or rotations.shape[1] == 0:
        raise ValueError(
            f"rotations must have shape (B', 3*q*l) with B'={bsz}, q={n}, l>=1; got {tuple(rotations.shape)}"
        )
    from ..amp import full_precision, needs_full_precision, upcast

    if needs_full_precision(embed, rotations):  # mixed precision: a float32 statevector, autocast off
        with full_precision(embed.device.type):
            return ssm_circuit(*upcast(embed, rotations), backend=backend, device=device)
    if backend == "torch":
        kernel = circuit_kernel("ssm", n, embed, rotations)
        if kernel == "native":  # CPU, small q: the compiled kernel
            from .native_circuits import ssm_circuit_native

            return ssm_circuit_native(embed, rotations)
        if kernel == "triton":  # CUDA
            from .triton_circuits import ssm_circuit_triton

            return ssm_circuit_triton(embed, rotations)
        return ssm_circuit_torch(embed, rotations)
    return ssm_circuit_pennylane(embed, rotations, device or "default.qubit")


def gated_circuit(angles: torch.Tensor, *, n_qubits: int, backend: str = "torch",
                  device: str | None = None) -> torch.Tensor:
    """docs/models.md. angles (B', 4*q*l) -> (B', 3q): <X_i> for all i, then <Y_i>, then <Z_i>.

    Per layer the angles are consumed as: RY on each qubit, forward CRX ring (i = 0..q-1),
    RY on each qubit, backward CRX ring (i = q-1..0). Needs n_qubits >= 2.
    """
    _check_backend(backend)
    _check_2d("angles", angles)
    if not isinstance(n_qubits, int) or n_qubits < 2:
        raise ValueError(f"n_qubits={n_qubits!r} is not allowed for the gated circuit; need an integer >= 2 "
                         "(its CRX rings need two distinct wires)")
    _check_qubits(n_qubits)
    _check_batch("angles", angles)
    if angles.shape[1] == 0 or angles.shape[1] % (4 * n_qubits):
        raise ValueError(f"angles must have shape (B', 4*q*l) with q={n_qubits}, l>=1; got {tuple(angles.shape)}")
    from ..amp import full_precision, needs_full_precision, upcast

    if needs_full_precision(angles):  # mixed precision: a float32 statevector, autocast off
        with full_precision(angles.device.type):
            return gated_circuit(*upcast(angles), n_qubits=n_qubits, backend=backend, device=device)
    if backend == "torch":
        kernel = circuit_kernel("gated", n_qubits, angles)
        if kernel == "native":  # CPU: the compiled kernel (same values and gradients)
            from .native_circuits import gated_circuit_native

            return gated_circuit_native(angles, n_qubits)
        if kernel == "triton":  # CUDA: the Triton kernels
            from .triton_circuits import gated_circuit_triton

            return gated_circuit_triton(angles, n_qubits)
        return gated_circuit_torch(angles, n_qubits)
    return gated_circuit_pennylane(angles, n_qubits, device or "default.qubit")
