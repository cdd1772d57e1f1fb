"""qssm: six hybrid quantum-classical sequence models (docs/models.md), built by name.

    from qssm import build_model, QuantumMambaSSM
    model = build_model("quantum_mamba_ssm", n_qubits=4, d_model=128)

This package knows nothing of sweeps, files or clusters (that is `bench`).
"""
from .config import CONFIG_FIELDS, ConfigError, ModelConfig
from .models import (
    MODEL_FIELDS,
    MODEL_NAMES,
    MODELS,
    ClassicalHydra,
    ClassicalMamba,
    QuantumHydraGated,
    QuantumHydraSSM,
    QuantumMambaGated,
    QuantumMambaSSM,
    build_model,
    count_parameters,
)

__all__ = [
    "build_model", "count_parameters", "MODELS", "MODEL_NAMES", "MODEL_FIELDS", "ModelConfig", "ConfigError",
    "CONFIG_FIELDS", "QuantumMambaSSM", "QuantumHydraSSM", "QuantumMambaGated", "QuantumHydraGated",
    "ClassicalMamba", "ClassicalHydra",
]
