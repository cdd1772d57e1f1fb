"""Which cells would let an inconclusive claim reach a verdict: ``_suggest`` fills a
``ClaimResult``'s ``suggestions`` (text) and ``suggestion_yaml`` (a sweep file adding the cells).

Subjects lacking data get the levels of the swept field to measure (``_levels_for``, CPU or GPU
sized); subjects measured but too noisy or too close to call get replicates at the same cells.
"""
from __future__ import annotations

from collections import Counter

import pandas as pd

from . import catalog as C
from . import stats as S
from .claims import Claim
from .findings import Check, ClaimResult
from .rows import _obj, claim_models


def _levels_for(x: str, device: str | None) -> list[int]:
    gpu = device == "cuda"
    if x == "seq_len":
        return [512, 1024, 2048, 4096, 8192] if gpu else [32, 64, 128, 256]
    if x == "n_qubits":
        return [4, 6, 8, 10, 12] if gpu else [2, 4, 6, 8]
    if x == "chunk_size":
        return [4, 8, 16, 32, 64] if gpu else [4, 8, 16, 32]
    return []


_SUGGEST_FIXED = ("task", "batch_size", "world_size", "nodes", "device", "dtype", "steps", "warmup_steps",
                  "seq_len", "n_qubits", "chunk_size", "scan", "quantum_backend", "qml_device")


def _base_fields(df: pd.DataFrame, impl: dict, models) -> dict:
    """Fixed fields for a suggested sweep: the implementation, then the most common values among
    the claim's models' cells (or all cells); only fields that apply to one of the models."""
    relevant = {f for m in models for f in C.relevant_fields(m)}
    own = df[df["model"].isin(list(models))]
    src = own if len(own) else df
    base = {}
    for f in _SUGGEST_FIXED:
        if f not in relevant:
            continue
        if f in impl and impl[f] is not None:
            base[f] = impl[f]
            continue
        if f in src.columns:
            vals = [v for v in _obj(src[f]) if v is not None]
            if vals:
                base[f] = Counter(vals).most_common(1)[0][0]
    return base


_NOISE_WORDS = ("wide", "straddles", "edge", "overlap", "tie", "unstable", "too noisy")
_RANGE_WORDS = "extend the range"


def _is_noise(check: Check) -> bool:
    return check.verdict == S.INCONCLUSIVE and any(w in check.reason for w in _NOISE_WORDS)


def _suggest(claim: Claim, impl: dict, all_ok: pd.DataFrame, result: ClaimResult) -> None:
    """Which cells would let an inconclusive claim reach a verdict (text and a sweep file)."""
    lacking = [s for s, v in result.subject_verdicts.items() if v == S.INCONCLUSIVE]
    if not lacking:
        return
    models = claim_models(claim)
    base = _base_fields(all_ok, impl, models)
    device = impl.get("device") or base.get("device")
    by_subject: dict[str, list[Check]] = {}
    for c in result.checks:
        by_subject.setdefault(c.subject, []).append(c)
    need_data = [s for s in lacking if not any(_is_noise(c) for c in by_subject.get(s, []))]
    noisy = [s for s in lacking if s not in need_data]
    fixed = lambda b: ", ".join(f"{k}={v}" for k, v in b.items())  # noqa: E731
    lines, grid = [], {}
    if claim.kind == "slope":
        lack_models = [m for m in models if C.short(m) in lacking]
        data_models = [m for m in models if C.short(m) in need_data]
        levels = _levels_for(claim.x, device)
        have = sorted({v for v in _obj(all_ok[all_ok["model"].isin(lack_models)][claim.x]) if v is not None})
        if not data_models:  # only noise: replicate the x values already measured
            levels = have if len(have) >= 3 else levels
        elif have and any(_RANGE_WORDS in c.reason for s in data_models for c in by_subject.get(C.short(s), [])):
            # growth hidden under the fixed cost: larger x (chunks: smaller C, so more chunks)
            if claim.x_transform == "T/C":
                ext = [have[0] // 2, have[0] // 4]        # smaller C: more chunks
            elif claim.x_transform == "q2q":
                ext = [have[-1] + 2, have[-1] + 4]        # q·2^q grows ~8x per 2 qubits
            else:
                ext = [have[-1] * 2, have[-1] * 4]
            levels = sorted(set(have) | {v for v in ext if v >= 1})
        base.pop(claim.x, None)
        if data_models:
            lines.append(f"cells of {', '.join(data_models)} at {claim.x} ∈ {levels} with every other "
                         f"field fixed ({fixed(base)})")
        grid = {"model": lack_models, claim.x: levels}
    elif claim.kind == "ratio":
        pairs = [p for p in claim.pairs if f"{C.short(p[0])}/{C.short(p[1])}" in lacking]
        ms = list(dict.fromkeys(m for p in pairs for m in p))
        present = set(all_ok["model"].astype(str))
        ms = [m for m in ms if m not in present] or ms   # the twins that have no cells at all
        if claim.metric == "n_params":
            if need_data:
                lines.append(f"cells of {', '.join(ms)} at one config ({fixed(base)})")
            grid = {"model": ms}
        else:
            if need_data:
                lines.append(f"cells of {', '.join(ms)} at the same settings ({fixed(base)}), "
                             f">= 3 values of seq_len")
            base.pop("seq_len", None)
            grid = {"model": ms, "seq_len": _levels_for("seq_len", device)}
    elif claim.kind == "order":
        if claim.at_largest_seq_len:
            base["seq_len"] = max(_levels_for("seq_len", device))
        absent = [m for m in models if "no cells of" in result.evidence and C.short(m) in
                  result.evidence.split("no cells of", 1)[1]]
        if need_data:
            if absent:
                lines.append(f"cells of {', '.join(absent)} at the settings of the other models' cells "
                             f"({fixed(base)})")
            else:
                lines.append(f"cells of all of {', '.join(models)} at the same settings ({fixed(base)})")
        grid = {"model": list(models)}
        if claim.min_reps > 1:
            lines.append(f"at least {claim.min_reps} seeds per model at those settings")
            grid["seed"] = list(range(max(claim.min_reps, 3)))
    elif claim.kind == "share":
        lack_models = [m for m in models if C.short(m) in lacking]
        lines.append(f"cells of {', '.join(lack_models)} with circuit_probe_steps: 6 and repeat: [0, 1] "
                     f"({fixed(base)}), at each size of interest (n_qubits, seq_len)")
        base["circuit_probe_steps"] = 6
        grid = {"model": lack_models, "repeat": [0, 1]}
        noisy = []
    else:  # exact / relative
        seed_cfg = {k: v for k, v in C.SEED_CONFIG.items() if k != "dropout"}
        lack_models = [m for m in models if C.short(m) in lacking]
        if claim.kind == "relative" and "no cells at the seed config for QuantumMambaGated" in result.evidence:
            lack_models = ["quantum_mamba_gated"] + [m for m in lack_models if m != "quantum_mamba_gated"]
        lines.append(f"cells of {', '.join(lack_models)} at the seed config: "
                     + ", ".join(f"{k}={v}" for k, v in seed_cfg.items()))
        for k in ("seq_len", "chunk_size", "n_qubits"):
            base.pop(k, None)
        base = {**base, **{k: v for k, v in seed_cfg.items()
                           if any(k in C.relevant_fields(m) for m in lack_models)}}
        grid = {"model": lack_models}
    if noisy:
        rep = "seed" if claim.metric == "accuracy" else "repeat"
        lines.append(f"{', '.join(noisy)}: measured but too noisy or too close to call — add replicates "
                     f"({rep}: [0, 1, 2]) at the same cells, or more timed steps")
        grid.setdefault(rep, [0, 1, 2])
    result.suggestions = lines
    result.suggestion_yaml = {**base, "grid": grid}
