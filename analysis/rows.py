"""The rows behind a verdict: normalising values, grouping cells into series, choosing an
implementation, holding the fields a comparison does not vary at reference values.

Values are read through ``_norm`` (None for nulls, ints for whole numbers) so that a parquet
column of floats with nulls groups the way the cells were written. ``CLAMPED`` fields are stored
as ``min(requested, seq_len)``; matching and series building read them that way.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from . import catalog as C
from .claims import Claim
from .io import as_float


def _norm(v):
    if v is None or v is pd.NA:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        f = float(v)
        return None if math.isnan(f) else (int(f) if f.is_integer() else f)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _obj(series: pd.Series) -> np.ndarray:
    """Normalised Python values (None for nulls, ints for whole numbers) of a column."""
    return np.array([_norm(v) for v in series.tolist()] + [None], dtype=object)[:-1]


def group_rows(df: pd.DataFrame, fields) -> dict[tuple, pd.DataFrame]:
    fields = list(fields)
    if df.empty:
        return {}
    if not fields:
        return {(): df}
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(df[fields].itertuples(index=False, name=None)):
        groups.setdefault(tuple(_norm(v) for v in row), []).append(i)
    return {k: df.iloc[idx] for k, idx in groups.items()}


def _sortkey(key: tuple) -> tuple:
    return tuple((v is None, type(v).__name__ if not isinstance(v, (int, float)) else "", v if v is not None else 0)
                 for v in key)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _label(fields, key, vary: set[str] | None = None) -> str:
    parts = [f"{f}={_fmt(v)}" for f, v in zip(fields, key)
             if v is not None and (vary is None or f in vary)]
    return " ".join(parts) if parts else "all cells"


def _varying(df: pd.DataFrame, fields) -> set[str]:
    out = set()
    for f in fields:
        if f in df.columns and len({v for v in _obj(df[f]) if v is not None}) > 1:
            out.add(f)
    return out


def prepare(ok: pd.DataFrame) -> pd.DataFrame:
    """Null every model-specific field a model does not use (whatever the row holds), and
    qml_device unless the backend is PennyLane."""
    df = ok.reset_index(drop=True).copy()
    for model in df["model"].dropna().unique():
        rel = set(C.relevant_fields(str(model)))
        mask = (df["model"] == model).to_numpy(dtype=bool, na_value=False)
        for f in C.MODEL_SPECIFIC:
            if f not in rel and f in df.columns:
                df.loc[mask, f] = pd.NA
    if "qml_device" in df.columns:
        not_pl = ~(df["quantum_backend"] == "pennylane").to_numpy(dtype=bool, na_value=False)
        df.loc[not_pl, "qml_device"] = pd.NA
    return df


def impl_label(impl: dict) -> str:
    if not impl:
        return "any implementation"
    prec = impl.get("precision")
    shown = prec if prec and prec not in ("fp32", "fp64") else impl.get("dtype")
    parts = [f"{impl.get('device') or '?'}/{shown or '?'}"]
    if impl.get("scan"):
        parts.append(f"scan={impl['scan']}")
    if impl.get("quantum_backend"):
        qb = impl["quantum_backend"]
        if impl.get("qml_device"):
            qb += f":{impl['qml_device']}"
        parts.append(f"quantum={qb}")
    return " · ".join(parts)


def claim_models(claim: Claim) -> tuple[str, ...]:
    if claim.kind == "ratio":
        return tuple(dict.fromkeys(m for p in claim.pairs for m in p))
    if claim.kind == "order":
        return tuple(m for t in claim.tiers for m in t)
    return claim.models


def implementations(df: pd.DataFrame, models) -> list[dict]:
    """The implementations present among the rows of these models: device, dtype and precision, the scan
    (if an SSM model is among them) and the quantum backend (if a quantum model is)."""
    rows = df[df["model"].isin(list(models))]
    use_scan = any(m in C.SSM for m in models)
    use_q = any(m in C.QUANTUM for m in models)
    out = []
    for (device, dtype, precision), sub in group_rows(rows, ["device", "dtype", "precision"]).items():
        scans = sorted({_norm(v) for v in sub["scan"]} - {None}) if use_scan else []
        backends = sorted({(_norm(b), _norm(q)) for b, q in zip(sub["quantum_backend"], sub["qml_device"])
                           if _norm(b) is not None}, key=str) if use_q else []
        for scan in scans or [None]:
            for qb, qd in backends or [(None, None)]:
                impl = {"device": device, "dtype": dtype, "precision": precision}
                if use_scan:
                    impl["scan"] = scan
                if use_q:
                    impl["quantum_backend"] = qb
                    impl["qml_device"] = qd
                out.append(impl)
    return out


def select_impl(df: pd.DataFrame, impl: dict) -> pd.DataFrame:
    if not impl:
        return df
    mask = np.ones(len(df), dtype=bool)
    for f, v in impl.items():
        col = _obj(df[f])
        isna = np.array([c is None for c in col], dtype=bool)
        eq = np.array([c == v for c in col], dtype=bool)
        if f in ("device", "dtype", "precision") or v is None:
            mask &= eq if v is not None else isna
        else:  # a model that has no such field (null) fits every implementation
            mask &= isna | eq
    return df[mask]


# Fields the harness clamps to seq_len (a cell stores min(requested, T)): a row matches a
# requested value R when its value is min(R, T).
CLAMPED = ("quantum_steps", "chunk_size")


def _compatible(rows: pd.DataFrame, f: str, v) -> np.ndarray:
    vals = _obj(rows[f])
    if f in CLAMPED and v is not None:
        ts = _obj(rows["seq_len"])
        return np.array([c is None or c == v or (t is not None and c == t and t <= v)
                         for c, t in zip(vals, ts)], dtype=bool)
    return np.array([c is None or c == v for c in vals], dtype=bool)


def _reference_values(rows: pd.DataFrame, fields) -> dict:
    """Per model-specific field: the seed-config value when the rows have it, else the most
    common one (for a clamped field: the seed value when every row is compatible with it)."""
    ref = {}
    for f in fields:
        vals = [v for v in _obj(rows[f]) if v is not None]
        if not vals:
            continue
        seed = C.SEED_CONFIG.get(f)
        if seed is not None and (seed in vals or (f in CLAMPED and _compatible(rows, f, seed).all())):
            ref[f] = seed
        else:
            counts = Counter(vals)
            top = max(counts.values())
            ref[f] = sorted((v for v, c in counts.items() if c == top), key=str)[0]
    return ref


def _at_reference(rows: pd.DataFrame, ref: dict) -> pd.DataFrame:
    mask = np.ones(len(rows), dtype=bool)
    for f, v in ref.items():
        mask &= _compatible(rows, f, v)
    return rows[mask]


def series_groups(rows: pd.DataFrame, key_fields: list, x: str) -> list[tuple[tuple, pd.DataFrame]]:
    """Rows grouped into series: all key fields equal. Along seq_len, a clamped field (chunk_size,
    quantum_steps) equal to T is read as any requested value >= T, so that one requested value
    forms one series across T."""
    cf = next((f for f in CLAMPED if f in key_fields), None)
    if x != "seq_len" or cf is None:
        return sorted(group_rows(rows, key_fields).items(), key=lambda kv: _sortkey(kv[0]))
    i = key_fields.index(cf)
    base = [f for f in key_fields if f != cf]
    out = []
    for key, g in group_rows(rows, base).items():
        v, t = as_float(g[cf]), as_float(g["seq_len"])
        unknown = ~np.isfinite(v)
        ambiguous = np.isfinite(v) & (v >= t)
        definite = sorted({float(a) for a in v[np.isfinite(v) & (v < t)]})
        if unknown.any():
            out.append((key[:i] + (None,) + key[i:], g[unknown]))
        if not definite:
            if ambiguous.any():
                out.append((key[:i] + (None,) + key[i:], g[ambiguous]))
            continue
        for r in definite:
            exact = np.isfinite(v) & (v == r) & (v < t)
            if len(definite) > 1 and len(set(t[exact])) < 2:
                continue  # a value requested at one T only (a chunk sweep): not a T series
            m = exact | (ambiguous & (t <= r))
            out.append((key[:i] + (_norm(r),) + key[i:], g[m]))
    return sorted(out, key=lambda kv: _sortkey(kv[0]))


def _metric_rows(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    y = as_float(df[metric]) if metric in df.columns else np.full(len(df), np.nan)
    keep = np.isfinite(y)
    if metric != "accuracy":
        keep &= y > 0
    return df[keep]


def _si(v: float, metric: str) -> str:
    if not math.isfinite(v):
        return "—"
    if metric.endswith("_bytes") or metric == "saved_bytes_per_step":
        for unit, div in (("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)):
            if abs(v) >= div:
                return f"{v / div:.3g} {unit}"
        return f"{v:.0f} B"
    if metric.endswith("_s"):
        if abs(v) < 1e-3:
            return f"{v * 1e6:.3g} µs"
        if abs(v) < 1:
            return f"{v * 1e3:.3g} ms"
        return f"{v:.3g} s"
    if metric == "n_params":
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _seed_config_rows(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    rm = rows[rows["model"] == model]
    rel = set(C.relevant_fields(model))
    for f in C.COUNT_FIELDS:
        if f in rel and len(rm):
            rm = rm[np.array([v == C.SEED_CONFIG[f] for v in _obj(rm[f])], dtype=bool)]
    return rm
