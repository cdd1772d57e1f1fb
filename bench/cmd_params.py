"""`qssm params`: the document's §8.2 parameter table for the seed config or any config."""
from __future__ import annotations

import dataclasses
import json

from qssm import MODELS, ModelConfig, build_model, count_parameters

# the document's §8.2 row order
DOC_ORDER = ("quantum_mamba_gated", "quantum_hydra_gated", "classical_mamba", "classical_hydra",
             "quantum_mamba_ssm", "quantum_hydra_ssm")
# the integer model settings, as flags; every setting that can change a parameter count is one
_INT_FIELDS = tuple(f.name for f in dataclasses.fields(ModelConfig) if type(f.default) is int)


def _int_or_text(text: str):
    """A flag's value: the integer it spells, else the text as given, which ModelConfig then
    refuses with its one-line message naming the field, the value and what is allowed."""
    try:
        return int(text)
    except ValueError:
        return text


def add_arguments(p) -> None:
    defaults = ModelConfig()
    g = p.add_argument_group("model settings (defaults: the seed config)")
    for name in _INT_FIELDS:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        g.add_argument(*flags, dest=name, type=_int_or_text, metavar="N", default=getattr(defaults, name),
                       help=f"[{getattr(defaults, name)}]")
    p.add_argument("--json", action="store_true", help="print JSON for machines")


def _count(name: str, config: dict) -> int:
    """Parameters of one model, built on the meta device (allocates nothing, so any width is quick)."""
    import torch
    with torch.device("meta"):
        return count_parameters(build_model(name, **config))


def table(config: dict) -> list[dict]:
    """Rows (model, class, parameters, relative) in the document's order, relative to the smallest."""
    rows = [{"model": n, "class": MODELS[n].__name__, "parameters": _count(n, config)} for n in DOC_ORDER]
    smallest = min(r["parameters"] for r in rows)
    for r in rows:
        r["relative"] = round(r["parameters"] / smallest, 2)
    return rows


def run(args) -> int:
    config = {k: getattr(args, k) for k in _INT_FIELDS}
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
