"""Exact parameter counts (docs/models.md, the document's §8.2)."""
import math
import random

import pytest

import qssm

SEED = dict(n_qubits=4, qlcu_layers=2, n_timesteps=100, feature_dim=64, d_model=128, d_state=16,
            n_layers=2, output_dim=10, dropout=0.1, hidden_dim=64, chunk_size=16)
ALT1 = dict(n_qubits=6, qlcu_layers=3, n_timesteps=50, feature_dim=32, d_model=36, d_state=8, n_layers=3,
            output_dim=2, hidden_dim=32, chunk_size=8)
ALT2 = dict(n_qubits=3, qlcu_layers=1, n_timesteps=40, feature_dim=10, d_model=96, d_state=4, n_layers=1,
            output_dim=5, hidden_dim=48, chunk_size=32)
ORDER = ["quantum_mamba_gated", "quantum_hydra_gated", "classical_mamba", "classical_hydra",
         "quantum_mamba_ssm", "quantum_hydra_ssm"]
TABLE = {
    "seed": (SEED, [49_296, 92_639, 242_954, 240_842, 402_684, 834_377]),
    "alt1": (ALT1, [18_520, 41_767, 32_726, 31_520, 55_460, 119_528]),
    "alt2": (ALT2, [22_345, 40_552, 62_981, 66_245, 114_957, 229_759]),
}


@pytest.mark.parametrize("config", list(TABLE))
@pytest.mark.parametrize("index", range(6))
def test_table_counts(config, index):
    cfg, counts = TABLE[config]
    model = qssm.build_model(ORDER[index], **cfg)
    assert qssm.count_parameters(model) == counts[index]


def formula(name, q, l, D, d, N, L, O, H):
    """The closed forms of docs/models.md (r = floor(2d/16), r_c = ceil(d/16))."""
    r, rc = (2 * d) // 16, math.ceil(d / 16)
    if name == "classical_mamba":
        return (D + 1) * d + L * (6 * d * d + 2 * d * (2 * rc + 3 * N + 7) + d) + d + d * O + O
    if name == "classical_hydra":
        h = d // 2
        return (D + 1) * d + L * (6 * d * d + d * (4 * N + 3 * rc + 17)) + d + d * h + h + h * O + O
    if name == "quantum_mamba_ssm":
        return ((D + 3) * d + 9 * q * l * (d + 1) + q * (4 * d + 1) + d + 6
                + L * (10 * d * d + 2 * d * (2 * r + 2 * N + 8) + N) + d * d + 3 * d + d * O + O)
    if name == "quantum_hydra_ssm":
        return ((D + 3) * d + 27 * q * l * (d + 1) + 3 * q * (d + 1) + d * (9 * q + 1) + 18
                + L * (22 * d * d + 2 * d * (4 * r + 4 * N + 7) + 2 * N + 3) + 3 + 2 * d + d * O + O)
    if name == "quantum_mamba_gated":
        return D * D + D + 12 * q * l * (D + 2) + 6 + 9 * H * H + H * (3 * q + 8 + O) + O
    if name == "quantum_hydra_gated":
        return D * D + D + 36 * q * l * (D + 2) + 21 + 16 * H * H + H * (9 * q + 15 + O) + O
    raise KeyError(name)


@pytest.mark.parametrize("trial", range(12))
def test_counts_match_formulas_at_random_configs(trial):
    rng = random.Random(1000 + trial)
    cfg = dict(n_qubits=rng.randint(2, 7), qlcu_layers=rng.randint(1, 4), n_timesteps=rng.randint(1, 64),
               feature_dim=rng.randint(1, 40), d_model=rng.choice([8, 17, 24, 33, 40, 64, 100]),
               d_state=rng.randint(1, 20), n_layers=rng.randint(1, 3), output_dim=rng.randint(1, 12),
               hidden_dim=rng.randint(1, 50), chunk_size=rng.randint(1, 20))
    args = [cfg[k] for k in ("n_qubits", "qlcu_layers", "feature_dim", "d_model", "d_state", "n_layers",
                             "output_dim", "hidden_dim")]
    for name in ORDER:
        assert qssm.count_parameters(qssm.build_model(name, **cfg)) == formula(name, *args), (name, cfg)


def test_seed_relative_sizes_match_document():
    # §8.2 "Relative Size" column, rounded to one decimal
    counts = TABLE["seed"][1]
    rel = [round(c / counts[0], 1) for c in counts]
    assert rel == [1.0, 1.9, 4.9, 4.9, 8.2, 16.9]
