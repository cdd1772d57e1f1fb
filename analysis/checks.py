"""Evaluate the claims registry on a results folder's ``ok`` rows.

``evaluate(ok_rows)`` returns one ``ClaimResult`` per (claim, implementation): its verdict, the
sub-checks behind it (one per model series, matched pair series or ordering context), a short
evidence line and, when data are lacking, which cells to add. The rules are in ``analysis.stats``.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import catalog as C
from . import stats as S
from .claims import CLAIMS, Claim
from .io import as_float


# ---------------------------------------------------------------------------------------- data
@dataclass
class Check:
    claim_id: str
    implementation: str
    subject: str
    context: str
    verdict: str
    reason: str
    estimate: float = math.nan
    ci_lo: float = math.nan
    ci_hi: float = math.nan
    expected: float = math.nan
    n_cells: int = 0
    detail: str = ""            # x range, ratios per point, medians per model...


@dataclass
class ClaimResult:
    claim: Claim
    implementation: str
    impl: dict
    verdict: str
    subject_verdicts: dict[str, str]
    subject_evidence: dict[str, str]
    checks: list[Check]
    suggestions: list[str] = field(default_factory=list)
    suggestion_yaml: dict | None = None

    @property
    def evidence(self) -> str:
        parts = []
        for s, v in self.subject_verdicts.items():
            ev = self.subject_evidence.get(s, "")
            parts.append(f"{s}: {_MARK[v]} {ev}".rstrip())
        return "; ".join(parts)


_MARK = {S.SUPPORTED: "✓", S.CONTRADICTED: "✗", S.INCONCLUSIVE: "?"}


# ------------------------------------------------------------------------------------ helpers
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
    parts = [f"{impl.get('device') or '?'}/{impl.get('dtype') or '?'}"]
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
    """The implementations present among the rows of these models: device and dtype, the scan
    (if an SSM model is among them) and the quantum backend (if a quantum model is)."""
    rows = df[df["model"].isin(list(models))]
    use_scan = any(m in C.SSM for m in models)
    use_q = any(m in C.QUANTUM for m in models)
    out = []
    for (device, dtype), sub in group_rows(rows, ["device", "dtype"]).items():
        scans = sorted({_norm(v) for v in sub["scan"]} - {None}) if use_scan else []
        backends = sorted({(_norm(b), _norm(q)) for b, q in zip(sub["quantum_backend"], sub["qml_device"])
                           if _norm(b) is not None}, key=str) if use_q else []
        for scan in scans or [None]:
            for qb, qd in backends or [(None, None)]:
                impl = {"device": device, "dtype": dtype}
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
        if f in ("device", "dtype") or v is None:
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


# -------------------------------------------------------------------------------- suggestions
def _levels_for(x: str, device: str | None) -> list[int]:
    gpu = device == "cuda"
    if x == "seq_len":
        return [512, 1024, 2048, 4096, 8192] if gpu else [32, 64, 128, 256]
    if x == "n_qubits":
        return [4, 6, 8, 10, 12] if gpu else [2, 4, 6, 8]
    if x == "chunk_size":
        return [4, 8, 16, 32, 64] if gpu else [4, 8, 16, 32]
    return []


_SUGGEST_FIXED = ("task", "batch_size", "world_size", "device", "dtype", "steps", "warmup_steps",
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


_NOISE_WORDS = ("wide", "straddles", "edge", "overlap", "tie")


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
        if not data_models:  # only noise: replicate the x values already measured
            have = sorted({v for v in _obj(all_ok[all_ok["model"].isin(lack_models)][claim.x]) if v is not None})
            levels = have if len(have) >= 3 else levels
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
        lines.append(f"{', '.join(noisy)}: measured but too noisy or too close to call — add replicates "
                     "(seed: [0, 1, 2]) at the same cells, or more timed steps")
        grid.setdefault("seed", [0, 1, 2])
    result.suggestions = lines
    result.suggestion_yaml = {**base, "grid": grid}


# -------------------------------------------------------------------------------- the kinds
def _x_values(rows: pd.DataFrame, claim: Claim) -> np.ndarray:
    x = as_float(rows[claim.x])
    if claim.x_transform == "q2q":
        x = x * np.power(2.0, x)
    return x


def _eval_slope(claim: Claim, rows: pd.DataFrame, impl_name: str, n_boot: int, seed: int):
    checks, verdicts, evidence = [], {}, {}
    x_label = "q·2^q" if claim.x_transform == "q2q" else claim.x
    for m in claim.models:
        subj = C.short(m)
        rm = rows[rows["model"] == m]
        rm = rm[np.isfinite(as_float(rm[claim.x]))] if len(rm) else rm
        key_fields = [f for f in C.relevant_fields(m)
                      if f not in (claim.x, "seed") and f not in C.IMPL_FIELDS]
        vary = _varying(rm, key_fields)
        series_v = []
        best = None
        for key, g in series_groups(rm, key_fields, claim.x):
            fit = S.loglog_fit(_x_values(g, claim), as_float(g[claim.metric]), n_boot=n_boot, seed=seed)
            if fit is None:
                continue  # one x value: not a series
            v, why = S.slope_verdict(fit, claim.expected, claim.tol)
            xs = sorted(set(as_float(g[claim.x]).tolist()))
            detail = (f"{claim.x} {_fmt(_norm(xs[0]))}–{_fmt(_norm(xs[-1]))} ({fit.levels} values), "
                      f"{fit.method}")
            if claim.metric == "step_time_median_s":  # fastest steps: less sensitive to a busy machine
                fmin = S.loglog_fit(_x_values(g, claim), as_float(g["step_time_min_s"]), n_boot=n_boot, seed=seed)
                if fmin is not None:
                    detail += f"; slope of the fastest steps {fmin.slope:.2f}"
            checks.append(Check(claim.id, impl_name, subj, _label(key_fields, key, vary), v, why,
                                fit.slope, fit.ci_lo, fit.ci_hi, claim.expected, fit.n, detail))
            series_v.append(v)
            rank = (v != S.INCONCLUSIVE, fit.levels, fit.n)
            if best is None or rank > best[0]:
                best = (rank, fit, v)
        if not series_v:
            verdicts[subj] = S.INCONCLUSIVE
            have = sorted(set(as_float(rm[claim.x]).tolist())) if len(rm) else []
            evidence[subj] = (f"no series: {len(rm)} cells, {claim.x} values {[_norm(v) for v in have]}"
                              if len(rm) else "no cells")
            checks.append(Check(claim.id, impl_name, subj, "—", S.INCONCLUSIVE, evidence[subj],
                                expected=claim.expected, n_cells=len(rm)))
            continue
        verdicts[subj] = S.combine_series(series_v)
        fit = best[1]
        ci = f"[{fit.ci_lo:.2f}, {fit.ci_hi:.2f}]" if math.isfinite(fit.ci_lo) else "(no CI)"
        more = f" ({len(series_v)} series: {dict(Counter(series_v))})" if len(series_v) > 1 else ""
        evidence[subj] = f"slope vs {x_label} {fit.slope:.2f} {ci}{more}"
    return checks, verdicts, evidence


def _pair_points(claim: Claim, rows: pd.DataFrame, a: str, b: str):
    """Matched (a, b) cells grouped into series: {series_key: [(a_vals, b_vals, seq_len)]}."""
    ra, rb = rows[rows["model"] == a], rows[rows["model"] == b]
    if ra.empty or rb.empty:
        return {}, [], set()
    rel_a, rel_b = set(C.relevant_fields(a)), set(C.relevant_fields(b))
    if claim.metric == "n_params":
        shared = [f for f in C.COUNT_FIELDS if f in rel_a and f in rel_b]
        point_field = None
    else:
        shared = [f for f in C.relevant_fields(a) if f in rel_b and f != "seed" and f not in C.IMPL_FIELDS]
        point_field = "seq_len"
    ra = _at_reference(ra, _reference_values(ra, [f for f in rel_a - rel_b if f in C.MODEL_SPECIFIC]))
    rb = _at_reference(rb, _reference_values(rb, [f for f in rel_b - rel_a if f in C.MODEL_SPECIFIC]))
    ga, gb = group_rows(ra, shared), group_rows(rb, shared)
    series_fields = [f for f in shared if f != point_field]
    idx = [shared.index(f) for f in series_fields]
    out: dict[tuple, list] = {}
    for key in ga.keys() & gb.keys():
        skey = tuple(key[i] for i in idx)
        pt = key[shared.index(point_field)] if point_field else None
        out.setdefault(skey, []).append((as_float(ga[key][claim.metric]), as_float(gb[key][claim.metric]), pt))
    vary = _varying(pd.concat([ra, rb]), series_fields)
    return out, series_fields, vary


def _eval_ratio(claim: Claim, rows: pd.DataFrame, impl_name: str, n_boot: int, seed: int):
    checks, verdicts, evidence = [], {}, {}
    for a, b in claim.pairs:
        subj = f"{C.short(a)}/{C.short(b)}"
        series, fields, vary = _pair_points(claim, rows, a, b)
        vs, best = [], None
        for skey, pts in sorted(series.items(), key=lambda kv: _sortkey(kv[0])):
            fit = S.ratio_fit([(pa, pb) for pa, pb, _ in pts], n_boot=n_boot, seed=seed)
            v, why = S.ratio_verdict(fit, claim.expected, claim.tol)
            if fit is None:
                continue
            per = ", ".join(f"{np.median(pa) / np.median(pb):.2f}" + (f"@T={pt}" if pt is not None else "")
                            for pa, pb, pt in sorted(pts, key=lambda p: (p[2] is None, p[2] or 0)))
            checks.append(Check(claim.id, impl_name, subj, _label(fields, skey, vary), v, why, fit.ratio,
                                fit.ci_lo, fit.ci_hi, claim.expected,
                                int(sum(len(pa) + len(pb) for pa, pb, _ in pts)),
                                f"{fit.method}: {per}"))
            vs.append(v)
            if best is None or fit.n_points > best.n_points:
                best = fit
        if not vs:
            verdicts[subj] = S.INCONCLUSIVE
            na, nb = int((rows["model"] == a).sum()), int((rows["model"] == b).sum())
            evidence[subj] = f"no matched cells ({C.short(a)}: {na} cells, {C.short(b)}: {nb})"
            checks.append(Check(claim.id, impl_name, subj, "—", S.INCONCLUSIVE, evidence[subj],
                                expected=claim.expected, n_cells=na + nb))
            continue
        verdicts[subj] = S.combine_series(vs)
        more = f" ({len(vs)} series: {dict(Counter(vs))})" if len(vs) > 1 else ""
        evidence[subj] = f"ratio {best.ratio:.2f} [{best.ci_lo:.2f}, {best.ci_hi:.2f}]{more}"
    return checks, verdicts, evidence


def _eval_order(claim: Claim, rows: pd.DataFrame, impl_name: str):
    models = claim_models(claim)
    tier_of = {m: i for i, t in enumerate(claim.tiers) for m in t}
    rows = rows[rows["model"].isin(list(models))]
    if claim.metric == "n_params":
        shared = [f for f in C.COUNT_FIELDS if f in C.RUN_FIELDS]
        specific = [f for f in C.COUNT_FIELDS if f not in C.RUN_FIELDS]
    else:
        shared = [f for f in C.RUN_FIELDS if f != "seed" and f not in C.IMPL_FIELDS]
        specific = [f for f in C.MODEL_SPECIFIC if f not in C.IMPL_FIELDS]
    contexts = []
    for key, g in group_rows(rows, shared).items():
        g = _at_reference(g, _reference_values(g, specific))
        per_model, spans = {}, {}
        for m, gm in g.groupby("model", observed=True):
            if m not in tier_of:
                continue
            per_model[m] = as_float(gm[claim.metric])
            if claim.metric == "step_time_median_s" and len(gm) == 1:
                lo, hi = as_float(gm["step_time_min_s"])[0], as_float(gm["step_time_p90_s"])[0]
                if math.isfinite(lo) and math.isfinite(hi) and lo <= per_model[m][0] <= hi:
                    spans[m] = (lo, hi)
        contexts.append((key, per_model, spans))
    if claim.at_largest_seq_len and contexts:
        i_t = shared.index("seq_len")
        best: dict[tuple, tuple] = {}
        for ctx in contexts:
            key, pm = ctx[0], ctx[1]
            rest = key[:i_t] + key[i_t + 1:]
            rank = (len(pm) == len(models), key[i_t] or 0)
            if rest not in best or rank > best[rest][0]:
                best[rest] = (rank, ctx)
        contexts = [v[1] for v in best.values()]
    vary = _varying(rows, shared)
    contexts = sorted(contexts, key=lambda kv: _sortkey(kv[0]))
    pairs = [(a, b) for a in models for b in models if tier_of[a] < tier_of[b]]
    checks, pair_verdicts, violated_pairs = [], {}, []
    for a, b in pairs:
        outcome = {S.HOLDS: [], S.VIOLATED: [], S.UNCLEAR: []}
        why_unclear, medians, n_cells = [], [], 0
        for key, pm, spans in contexts:
            if a not in pm or b not in pm or not len(pm[a]) or not len(pm[b]):
                continue
            r, why = S.compare_below(pm[a], pm[b], tie_rel=0.0 if claim.tie_abs else S.TIE_REL,
                                     tie_abs=claim.tie_abs, min_reps=claim.min_reps,
                                     a_range=spans.get(a), b_range=spans.get(b))
            label = _label(shared, key, vary)
            outcome[r].append(label)
            if r == S.UNCLEAR:
                why_unclear.append(why)
            n_cells += len(pm[a]) + len(pm[b])
            medians.append(f"{label}: {_si(float(np.median(pm[a])), claim.metric)} vs "
                           f"{_si(float(np.median(pm[b])), claim.metric)}")
        h, v, u = len(outcome[S.HOLDS]), len(outcome[S.VIOLATED]), len(outcome[S.UNCLEAR])
        n = h + v + u
        subj = f"{C.short(a)} < {C.short(b)}"
        if n == 0:
            verdict, reason = S.INCONCLUSIVE, "never measured at the same cells"
        elif v >= min(2, n) and v > h:
            verdict = S.CONTRADICTED
            reason = f"violated in {v} of {n} contexts ({', '.join(outcome[S.VIOLATED][:3])})"
            violated_pairs.append(subj)
        elif h >= 1 and v == 0:
            verdict = S.SUPPORTED
            reason = f"holds in {h} of {n} contexts" + (f"; {u} unclear" if u else "")
        else:
            verdict = S.INCONCLUSIVE
            parts = [f"holds in {h}", f"violated in {v}", f"unclear in {u}"]
            common = Counter(why_unclear).most_common(1)
            reason = ", ".join(parts) + f" of {n} contexts" + (f" ({common[0][0]})" if common else "")
        pair_verdicts[subj] = verdict
        checks.append(Check(claim.id, impl_name, subj, f"{n} contexts" if n != 1 else
                            (outcome[S.HOLDS] + outcome[S.VIOLATED] + outcome[S.UNCLEAR])[0],
                            verdict, reason, n_cells=n_cells, detail="; ".join(medians[:6])))
    counts = Counter(pair_verdicts.values())
    if counts[S.CONTRADICTED]:
        v = S.CONTRADICTED
        ev = f"violated: {', '.join(violated_pairs[:4])}" + (" …" if len(violated_pairs) > 4 else "")
    elif counts[S.SUPPORTED] == len(pairs):
        v = S.SUPPORTED
        ev = f"all {len(pairs)} pairs hold"
    else:
        v = S.INCONCLUSIVE
        missing = [C.short(m) for m in models if not any(m in pm for _, pm, _ in contexts)]
        ev = f"{counts[S.SUPPORTED]}/{len(pairs)} pairs hold"
        if missing:
            ev += f"; no cells of {', '.join(missing)}"
        else:
            unc = [c for c in checks if c.verdict == S.INCONCLUSIVE]
            if unc:
                ev += f"; {unc[0].subject}: {unc[0].reason}"
    return checks, {"ordering": v}, {"ordering": ev}


def _seed_config_rows(rows: pd.DataFrame, model: str) -> pd.DataFrame:
    rm = rows[rows["model"] == model]
    rel = set(C.relevant_fields(model))
    for f in C.COUNT_FIELDS:
        if f in rel and len(rm):
            rm = rm[np.array([v == C.SEED_CONFIG[f] for v in _obj(rm[f])], dtype=bool)]
    return rm


def _eval_exact(claim: Claim, rows: pd.DataFrame, impl_name: str):
    checks, verdicts, evidence = [], {}, {}
    for m in claim.models:
        subj = C.short(m)
        vals = sorted({int(v) for v in as_float(_seed_config_rows(rows, m)["n_params"]) if math.isfinite(v)})
        doc = C.DOC_PARAMS[m]
        if not vals:
            verdicts[subj], evidence[subj] = S.INCONCLUSIVE, "no cells at the seed config"
            checks.append(Check(claim.id, impl_name, subj, "seed config", S.INCONCLUSIVE,
                                evidence[subj], expected=doc))
            continue
        v = S.SUPPORTED if vals == [doc] else S.CONTRADICTED
        why = f"measured {', '.join(f'{x:,}' for x in vals)} vs document {doc:,}"
        if v == S.CONTRADICTED and C.LATER_CODE_PARAMS.get(m) in vals:
            why += " (= the author's later code, MODELS.md §6)"
        verdicts[subj], evidence[subj] = v, why
        checks.append(Check(claim.id, impl_name, subj, "seed config", v, why, float(vals[0]),
                            expected=doc, n_cells=len(vals)))
    return checks, verdicts, evidence


def _eval_relative(claim: Claim, rows: pd.DataFrame, impl_name: str):
    checks, verdicts, evidence = [], {}, {}
    base_vals = {int(v) for v in as_float(_seed_config_rows(rows, "quantum_mamba_gated")["n_params"])
                 if math.isfinite(v)}
    for m in claim.subjects:
        subj = C.short(m)
        vals = {int(v) for v in as_float(_seed_config_rows(rows, m)["n_params"]) if math.isfinite(v)}
        doc = C.DOC_RELATIVE[m]
        if not vals or not base_vals:
            why = "no cells at the seed config" + ("" if base_vals else " for QuantumMambaGated (baseline)")
            verdicts[subj], evidence[subj] = S.INCONCLUSIVE, why
            checks.append(Check(claim.id, impl_name, subj, "seed config", S.INCONCLUSIVE, why, expected=doc))
            continue
        ratios = sorted(v / b for v in vals for b in base_vals)
        ok = all(abs(r - doc) <= claim.tol * doc for r in ratios)
        v = S.SUPPORTED if ok else S.CONTRADICTED
        why = f"measured {', '.join(f'{r:.2f}×' for r in ratios)} vs document {doc}×"
        verdicts[subj], evidence[subj] = v, why
        checks.append(Check(claim.id, impl_name, subj, "seed config", v, why, ratios[0], ratios[0],
                            ratios[-1], doc, len(vals)))
    return checks, verdicts, evidence


# ------------------------------------------------------------------------------------ driver
def evaluate(ok: pd.DataFrame, claims=CLAIMS, n_boot: int = S.N_BOOT, seed: int = 0) -> list[ClaimResult]:
    """Every claim on the ok rows: one ClaimResult per claim and implementation present (or one
    inconclusive result naming no implementation when the claim has no data at all)."""
    df = prepare(ok)
    results = []
    for claim in claims:
        models = claim_models(claim)
        mrows = _metric_rows(df[df["model"].isin(list(models))], claim.metric)
        impls = [{}] if claim.implementation_free else implementations(mrows, models)
        if not impls:
            impls = [None]
        for impl in impls:
            if impl is None:
                name, rows, impl = "— (no data)", mrows.iloc[0:0], {}
            else:
                name, rows = impl_label(impl), select_impl(mrows, impl)
            if claim.kind == "slope":
                checks, verdicts, evidence = _eval_slope(claim, rows, name, n_boot, seed)
            elif claim.kind == "ratio":
                checks, verdicts, evidence = _eval_ratio(claim, rows, name, n_boot, seed)
            elif claim.kind == "order":
                checks, verdicts, evidence = _eval_order(claim, rows, name)
            elif claim.kind == "exact":
                checks, verdicts, evidence = _eval_exact(claim, rows, name)
            elif claim.kind == "relative":
                checks, verdicts, evidence = _eval_relative(claim, rows, name)
            else:  # pragma: no cover - registry validated by tests
                raise ValueError(f"unknown claim kind {claim.kind!r}")
            res = ClaimResult(claim, name, impl, S.combine_subjects(list(verdicts.values())),
                              verdicts, evidence, checks)
            if res.verdict == S.INCONCLUSIVE:
                _suggest(claim, impl, df, res)
            results.append(res)
    return results
