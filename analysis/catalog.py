"""What ``analysis`` knows about the six models without importing them.

Names, the cell fields that affect each model (docs/models.md; a field that does not affect a model is
treated as absent for it, whatever a row holds), the document's §8.2 table and the seed config.
"""
from __future__ import annotations

from bench import schema

# registry name -> the document's class name, in the document's §8.1 order
MODEL_CLASS = {
    "quantum_mamba_ssm": "QuantumMambaSSM",
    "quantum_hydra_ssm": "QuantumHydraSSM",
    "quantum_mamba_gated": "QuantumMambaGated",
    "quantum_hydra_gated": "QuantumHydraGated",
    "classical_mamba": "ClassicalMamba",
    "classical_hydra": "ClassicalHydra",
}
MODEL_NAMES = tuple(MODEL_CLASS)
SHORT = {  # for dense tables and legends
    "quantum_mamba_ssm": "QMambaSSM",
    "quantum_hydra_ssm": "QHydraSSM",
    "quantum_mamba_gated": "QMambaGated",
    "quantum_hydra_gated": "QHydraGated",
    "classical_mamba": "CMamba",
    "classical_hydra": "CHydra",
}

QUANTUM = ("quantum_mamba_ssm", "quantum_hydra_ssm", "quantum_mamba_gated", "quantum_hydra_gated")
CLASSICAL = ("classical_mamba", "classical_hydra")
GATED = ("quantum_mamba_gated", "quantum_hydra_gated")
SSM = ("quantum_mamba_ssm", "quantum_hydra_ssm", "classical_mamba", "classical_hydra")
QSSM = ("quantum_mamba_ssm", "quantum_hydra_ssm")
# (Hydra, Mamba) pairs of the "Hydra ~2x" claims
HYDRA_MAMBA_PAIRS = (
    ("quantum_hydra_ssm", "quantum_mamba_ssm"),
    ("quantum_hydra_gated", "quantum_mamba_gated"),
    ("classical_hydra", "classical_mamba"),
)

QUANTUM_FIELDS = ("n_qubits", "qlcu_layers", "quantum_backend", "qml_device")
SSM_FIELDS = ("d_model", "d_state", "n_layers", "scan")
GATED_FIELDS = ("hidden_dim", "chunk_size")
MODEL_SPECIFIC = QUANTUM_FIELDS + SSM_FIELDS + GATED_FIELDS + ("quantum_steps",)
# Cell columns that do not tell apart what cells measure: a run limit (not in the id), the replicate
# index (cells differing only in it are replicates) and the circuit probe (run after the timed steps).
NOT_IDENTITY = ("time_budget_s", "repeat", "circuit_probe_steps")
# Run fields: every other cell field (task, seq_len, batch_size, world_size, nodes, device, dtype, steps,
# seed, feature_dim, ...); they affect every model. Taken from the schema so that a field added
# there is held fixed in every comparison.
RUN_FIELDS = tuple(f for f in schema.CELL_FIELD_NAMES
                   if f != "model" and f not in MODEL_SPECIFIC and f not in NOT_IDENTITY)
# The run's shape: how many ranks and over how many nodes (world_size / nodes ranks on each). Run
# fields like the others (held fixed in every comparison); the world-size plot and the "Scaling
# over ranks" table (analysis.ranks) draw along them instead of grouping by them.
RUN_SHAPE = ("world_size", "nodes")


def relevant_fields(model: str) -> tuple[str, ...]:
    """Cell fields that can change this model's results; an unknown model gets all of them."""
    out = RUN_FIELDS
    if model not in MODEL_CLASS:
        return out + MODEL_SPECIFIC
    if model in QUANTUM:
        out += QUANTUM_FIELDS
    if model in SSM:
        out += SSM_FIELDS
    if model in GATED:
        out += GATED_FIELDS
    if model == "quantum_mamba_ssm":
        out += ("quantum_steps",)
    return out


# The implementation a measurement is about. qml_device only matters with the pennylane backend.
IMPL_FIELDS = ("device", "dtype", "precision", "scan", "quantum_backend", "qml_device")

# Fields that determine the parameter count (docs/models.md formulas: T, C, B, dropout do not).
COUNT_FIELDS = ("n_qubits", "qlcu_layers", "feature_dim", "d_model", "d_state", "n_layers",
                "output_dim", "hidden_dim")

# The document's §8.2 test configuration ("the seed config", docs/models.md).
SEED_CONFIG = {"n_qubits": 4, "qlcu_layers": 2, "seq_len": 100, "feature_dim": 64, "d_model": 128,
               "d_state": 16, "n_layers": 2, "output_dim": 10, "dropout": 0.1, "hidden_dim": 64,
               "chunk_size": 16, "quantum_steps": 32}

# §8.2: parameters at the seed config and the "Relative Size" column.
DOC_PARAMS = {
    "quantum_mamba_gated": 49_296,
    "quantum_hydra_gated": 92_639,
    "classical_mamba": 242_954,
    "classical_hydra": 240_842,
    "quantum_mamba_ssm": 402_684,
    "quantum_hydra_ssm": 834_377,
}
DOC_RELATIVE = {
    "quantum_mamba_gated": 1.0,
    "quantum_hydra_gated": 1.9,
    "classical_mamba": 4.9,
    "classical_hydra": 4.9,
    "quantum_mamba_ssm": 8.2,
    "quantum_hydra_ssm": 16.9,
}
# docs/models.md: the author's later public code at the seed config (quantum models only).
LATER_CODE_PARAMS = {
    "quantum_mamba_ssm": 420_525,
    "quantum_hydra_ssm": 888_156,
    "quantum_mamba_gated": 50_880,
    "quantum_hydra_gated": 97_391,
}


def short(model: str) -> str:
    return SHORT.get(model, model)


def class_name(model: str) -> str:
    return MODEL_CLASS.get(model, model)
