"""`qssm params`: the document's §8.2 parameter table for the seed config or any config."""
from __future__ import annotations

import json

from qssm import CONFIG_FIELDS, MODELS, ModelConfig, build_model, count_parameters

# the document's §8.2 row order
DOC_ORDER = ("quantum_mamba_gated", "quantum_hydra_gated", "classical_mamba", "classical_hydra",
             "quantum_mamba_ssm", "quantum_hydra_ssm")
_INT_FIELDS = ("n_qubits", "n_timesteps", "qlcu_layers", "feature_dim", "d_model", "d_state", "n_layers",
               "output_dim", "hidden_dim", "chunk_size", "quantum_steps")


def add_arguments(p) -> None:
    defaults = ModelConfig()
    for name in _INT_FIELDS:
        p.add_argument(f"--{name}", type=int, default=getattr(defaults, name),
                       help=f"default {getattr(defaults, name)} (the seed config)")
    p.add_argument("--json", action="store_true", help="print JSON for machines")


def table(config: dict) -> list[dict]:
    """Rows (model, class, parameters, relative) in the document's order, relative to the smallest."""
    rows = [{"model": n, "class": MODELS[n].__name__, "parameters": count_parameters(build_model(n, **config))}
            for n in DOC_ORDER]
    smallest = min(r["parameters"] for r in rows)
    for r in rows:
        r["relative"] = round(r["parameters"] / smallest, 2)
    return rows


def run(args) -> int:
    config = {k: getattr(args, k) for k in _INT_FIELDS if k in CONFIG_FIELDS}
    ModelConfig.from_kwargs(**config)
    rows = table(config)
    if args.json:
        print(json.dumps({"config": config, "models": rows}, indent=2))
        return 0
    print("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    print(f"{'Model':<20} {'Parameters':>12} {'Relative Size':>14}")
    for r in rows:
        print(f"{r['class']:<20} {r['parameters']:>12,} {r['relative']:>13.1f}x")
    return 0
