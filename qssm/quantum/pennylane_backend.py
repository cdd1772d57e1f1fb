"""PennyLane backend: the two circuits as QNodes (torch interface), broadcast over the batch.

One QNode call simulates all B' circuits (parameter broadcasting), the fastest fair use of
PennyLane for per-sample parameters. Devices are imported only when chosen; a missing plugin
or lightning.gpu without CUDA raises one ImportError/RuntimeError naming what to install.
"""
from __future__ import annotations

import functools

import torch

QML_DEVICES = ("default.qubit", "lightning.qubit", "lightning.gpu", "lightning.kokkos")
_PLUGINS = {
    "lightning.qubit": ("pennylane_lightning", "pennylane-lightning"),
    "lightning.gpu": ("pennylane_lightning.lightning_gpu", "qssm-bench[gpu] (pennylane-lightning-gpu)"),
    "lightning.kokkos": ("pennylane_lightning.lightning_kokkos", "pennylane-lightning-kokkos"),
}


def _import_pennylane():
    try:
        import pennylane as qml
    except ImportError as exc:  # pragma: no cover - pennylane is a core dependency
        raise ImportError("quantum_backend='pennylane' needs PennyLane: pip install pennylane") from exc
    return qml


@functools.lru_cache(maxsize=None)
def make_device(name: str, wires: int):
    """Create (and cache) a PennyLane device, with an error that names the missing extra."""
    if name not in QML_DEVICES:
        raise ValueError(f"qml_device={name!r} is not supported; allowed: {', '.join(QML_DEVICES)}")
    qml = _import_pennylane()
    if name == "lightning.gpu" and not torch.cuda.is_available():
        raise RuntimeError(
            "qml_device='lightning.gpu' needs a CUDA GPU and the extra qssm-bench[gpu] "
            "(pip install 'qssm-bench[gpu]'); no CUDA device is visible here"
        )
    try:
        return qml.device(name, wires=wires)
    except Exception as exc:  # plugin missing or failing to load
        mod, extra = _PLUGINS.get(name, (name, name))
        raise ImportError(
            f"qml_device={name!r} could not be created ({type(exc).__name__}: {exc}); "
            f"install {extra}"
        ) from exc


def _diff_method(name: str) -> str:
    return "backprop" if name == "default.qubit" else "adjoint"


@functools.lru_cache(maxsize=None)
def _ssm_qnode(n: int, layers: int, device_name: str):
    qml = _import_pennylane()
    dev = make_device(device_name, n)

    @qml.qnode(dev, interface="torch", diff_method=_diff_method(device_name))
    def circuit(embed, rot):  # embed: (q, B'), rot: (3ql, B') -- leading axis indexes gates
        for i in range(n):
            qml.RY(embed[i], wires=i)
        k = 0
        for _ in range(layers):
            for i in range(n):
                qml.RX(rot[k], wires=i)
                qml.RY(rot[k + 1], wires=i)
                qml.RZ(rot[k + 2], wires=i)
                k += 3
            for i in range(n - 1):
                qml.CNOT(wires=[i, i + 1])
            if n > 1:
                qml.CNOT(wires=[n - 1, 0])
        return [qml.expval(qml.PauliZ(i)) for i in range(n)]

    return circuit


@functools.lru_cache(maxsize=None)
def _gated_qnode(n: int, layers: int, device_name: str):
    qml = _import_pennylane()
    dev = make_device(device_name, n)

    @qml.qnode(dev, interface="torch", diff_method=_diff_method(device_name))
    def circuit(ang):  # ang: (4ql, B')
        k = 0
        for _ in range(layers):
            for i in range(n):
                qml.RY(ang[k], wires=i)
                k += 1
            for i in range(n):
                qml.CRX(ang[k], wires=[i, (i + 1) % n])
                k += 1
            for i in range(n):
                qml.RY(ang[k], wires=i)
                k += 1
            for i in range(n - 1, -1, -1):
                qml.CRX(ang[k], wires=[i, (i - 1) % n])
                k += 1
        return (
            [qml.expval(qml.PauliX(i)) for i in range(n)]
            + [qml.expval(qml.PauliY(i)) for i in range(n)]
            + [qml.expval(qml.PauliZ(i)) for i in range(n)]
        )

    return circuit


def _stack(outs, like: torch.Tensor) -> torch.Tensor:
    cols = [torch.as_tensor(o).reshape(-1) for o in outs]
    return torch.stack(cols, 1).to(dtype=like.dtype, device=like.device)


def ssm_circuit_pennylane(embed: torch.Tensor, rotations: torch.Tensor, device_name: str) -> torch.Tensor:
    n = embed.shape[1]
    layers = rotations.shape[1] // (3 * n)
    qnode = _ssm_qnode(n, layers, device_name)
    return _stack(qnode(embed.T, rotations.T), embed)


def gated_circuit_pennylane(angles: torch.Tensor, n_qubits: int, device_name: str) -> torch.Tensor:
    layers = angles.shape[1] // (4 * n_qubits)
    qnode = _gated_qnode(n_qubits, layers, device_name)
    return _stack(qnode(angles.T), angles)
