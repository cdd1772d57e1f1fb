"""Model configuration: one frozen dataclass for all six models (a sweep passes one config).

Field comments give the design document's notation. Validation raises ConfigError (a ValueError)
naming the field, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .quantum import BACKENDS, QML_DEVICES
from .ssm.scan import SCAN_IMPLS

LAYOUTS = ("BDT", "BTD", "auto")


class ConfigError(ValueError):
    """A model setting with a value that is not allowed."""


@dataclass(frozen=True)
class ModelConfig:
    n_qubits: int = 4            # q, qubits per circuit
    n_timesteps: int = 100       # T, expected sequence length (informational; any T runs)
    qlcu_layers: int = 2         # l, circuit layers
    feature_dim: int = 64        # D, input features per timestep
    d_model: int = 128           # d, model width (SSM models); di = 2d
    d_state: int = 16            # N, SSM state size
    n_layers: int = 2            # L, blocks (SSM models)
    output_dim: int = 10         # O, classes
    dropout: float = 0.1         # dropout probability
    hidden_dim: int = 64         # H, gated recurrence width (Gated models)
    chunk_size: int = 16         # C, timesteps per chunk (Gated models)
    quantum_steps: int = 32      # timesteps given to the circuits (QuantumMambaSSM)
    quantum_backend: str = "torch"        # torch statevector or pennylane
    qml_device: str = "default.qubit"     # PennyLane device (pennylane backend)
    scan: str = "chunked"        # selective-scan implementation: chunked (fused) or reference (loop)
    layout: str = "BDT"          # input layout: BDT (the document's), BTD, or auto
    device: object = field(default=None, compare=False)  # torch device to place the model on

    def __post_init__(self):
        ints = {
            "n_qubits": 1, "n_timesteps": 1, "qlcu_layers": 1, "feature_dim": 1, "d_model": 1,
            "d_state": 1, "n_layers": 1, "output_dim": 1, "hidden_dim": 1, "chunk_size": 1,
            "quantum_steps": 1,
        }
        for name, low in ints.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(f"{name}={v!r} is not allowed; need an integer >= {low}")
        if self.n_qubits > 24:
            raise ConfigError(f"n_qubits={self.n_qubits!r} is not allowed; need 1..24 (statevector memory is 2^q)")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ConfigError(f"dropout={d!r} is not allowed; need a number in [0, 1)")
        for name, allowed in (("quantum_backend", BACKENDS), ("qml_device", QML_DEVICES),
                              ("scan", SCAN_IMPLS), ("layout", LAYOUTS)):
            v = getattr(self, name)
            if v not in allowed:
                raise ConfigError(f"{name}={v!r} is not allowed; choose one of {', '.join(allowed)}")

    @classmethod
    def from_kwargs(cls, **kwargs) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ConfigError(f"unknown model setting {unknown[0]!r}; known settings: {', '.join(sorted(known))}")
        return cls(**kwargs)


CONFIG_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig))
