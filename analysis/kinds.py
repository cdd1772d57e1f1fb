"""One evaluator per kind of claim: each takes the claim, the rows of one implementation and
its label, and returns ``(checks, verdicts, evidence)`` — the sub-checks, and a verdict and an
evidence line per subject (model, model pair, or ``ordering``).

- ``slope``    log–log slope of a metric against a swept field, per model series;
- ``ratio``    the ratio of a metric between matched cells of two models, per series;
- ``order``    tiers of models compared pairwise in every context they share;
- ``exact``    parameter counts at the seed config against the document's table;
- ``relative`` parameter counts relative to QuantumMambaGated at the seed config.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from . import catalog as C
from . import scaling as SC
from . import stats as S
from .claims import Claim
from .findings import Check
from .io import as_float
from .rows import (_at_reference, _fmt, _label, _norm, _reference_values, _seed_config_rows, _si,
                   _sortkey, _varying, claim_models, group_rows, series_groups)


X_LABEL = {"q2q": "q·2^q", "T/C": "T/C"}


def _x_values(rows: pd.DataFrame, claim: Claim) -> np.ndarray:
    x = as_float(rows[claim.x])
    if claim.x_transform == "q2q":
        x = x * np.power(2.0, x)
    elif claim.x_transform == "T/C":
        x = as_float(rows["seq_len"]) / x
    return x


def _x_label(claim: Claim) -> str:
    return X_LABEL.get(claim.x_transform, claim.x)


def _where(fit: SC.ScalingFit, x_label: str) -> str:
    """Where the leading term takes over from the fixed cost, in words."""
    xc = fit.crossover
    if xc is None:
        return "no leading term"
    if xc <= fit.x_min:
        return "leading term the larger part from the smallest x"
    if math.isinf(xc) or xc > 1e6 * fit.x_max:
        return "fixed cost the larger part far beyond the range"
    where = "within the range" if xc <= fit.x_max else "beyond the range"
    return f"leading term the larger part beyond {x_label} ≈ {xc:.3g} ({where})"


def _eval_slope(claim: Claim, rows: pd.DataFrame, impl_name: str, n_boot: int, seed: int):
    """Scaling-model verdicts (analysis.scaling) per model series; the log–log slope beside."""
    checks, verdicts, evidence = [], {}, {}
    x_label = _x_label(claim)
    n_model = min(SC.N_BOOT_MODEL, n_boot)
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
            xv, yv = _x_values(g, claim), as_float(g[claim.metric])
            fit = SC.fit_scaling(xv, yv, n_boot=n_model, seed=seed)
            if fit is None:
                continue  # one x value: not a series
            v, why = SC.scaling_verdict(fit, claim.expected, claim.tol, claim.log_powers)
            slope = S.loglog_fit(xv, yv, n_boot=n_boot, seed=seed)
            xs = sorted(set(as_float(g[claim.x]).tolist()))
            detail = (f"{claim.x} {_fmt(_norm(xs[0]))}–{_fmt(_norm(xs[-1]))} ({fit.levels} values, {fit.n} cells); "
                      f"model {fit.formula(x_label)}")
            if fit.picks:
                detail += f" [resamples: {fit.picks_text(x_label)}]"
            if not fit.constant:
                detail += f"; fixed cost {_si(fit.c0, claim.metric)} = {fit.fixed_share_at_min:.0%} at the smallest x; " \
                          f"{_where(fit, x_label)}"
            if slope is not None and math.isfinite(slope.ci_lo):
                detail += f"; log–log slope {slope.slope:.2f} [{slope.ci_lo:.2f}, {slope.ci_hi:.2f}]"
            checks.append(Check(claim.id, impl_name, subj, _label(key_fields, key, vary), v, why,
                                0.0 if fit.constant else fit.i, fit.exp_lo, fit.exp_hi, claim.expected,
                                fit.n, detail))
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
        more = f" ({len(series_v)} series: {dict(Counter(series_v))})" if len(series_v) > 1 else ""
        c0 = "" if fit.constant else f", fixed cost {fit.fixed_share_at_min:.0%} at {x_label}={_fmt(_norm(fit.x_min))}"
        evidence[subj] = f"{fit.formula(x_label)}{c0}{more}"
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
            why += " (= the author's later public code, not the document's table)"
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


def _eval_share(claim: Claim, rows: pd.DataFrame, impl_name: str):
    """'Dominated by X': the mean share at each size (one point per distinct cell, its seeds and
    repeats the replicates) against ``expected``; a model's verdict combines its points as series."""
    checks, verdicts, evidence = [], {}, {}
    for m in claim.models:
        subj = C.short(m)
        rm = rows[rows["model"] == m]
        key_fields = [f for f in C.relevant_fields(m) if f != "seed" and f not in C.IMPL_FIELDS]
        vary = _varying(rm, key_fields)
        point_v, shown = [], []
        for key, g in sorted(group_rows(rm, key_fields).items(), key=lambda kv: _sortkey(kv[0])):
            vals = as_float(g[claim.metric])
            vals = vals[np.isfinite(vals)]
            n = len(vals)
            if n == 0:
                continue
            mean = float(vals.mean())
            if n >= 2:
                half = S.t975(n - 1) * float(vals.std(ddof=1)) / math.sqrt(n)
                lo, hi = mean - half, mean + half
                if lo > claim.expected:
                    v, why = S.SUPPORTED, f"CI above {claim.expected:g}"
                elif hi < claim.expected:
                    v, why = S.CONTRADICTED, f"CI below {claim.expected:g}"
                else:
                    v, why = S.INCONCLUSIVE, f"CI straddles {claim.expected:g}"
            else:
                lo = hi = math.nan
                v, why = S.INCONCLUSIVE, "1 cell: no interval (add repeats)"
            label = _label(key_fields, key, vary)
            checks.append(Check(claim.id, impl_name, subj, label, v, why, mean, lo, hi, claim.expected, n,
                                f"{claim.metric} over {n} cells: " + ", ".join(f"{x:.2f}" for x in vals)))
            point_v.append(v)
            shown.append((mean, v, label))
        if not point_v:
            verdicts[subj] = S.INCONCLUSIVE
            evidence[subj] = f"no cells with {claim.metric} (run cells with circuit_probe_steps > 0)"
            checks.append(Check(claim.id, impl_name, subj, "—", S.INCONCLUSIVE, evidence[subj],
                                expected=claim.expected, n_cells=len(rm)))
            continue
        verdicts[subj] = S.combine_series(point_v)
        means = [m for m, _, _ in shown]
        above = [lab for m, v, lab in shown if v == S.SUPPORTED]
        below = [lab for m, v, lab in shown if v == S.CONTRADICTED]
        ev = f"circuits {min(means):.0%}–{max(means):.0%} of the step over {len(shown)} sizes"
        if above:
            ev += f"; above {claim.expected:.0%} at {len(above)} ({', '.join(above[:2])}{' …' if len(above) > 2 else ''})"
        if below:
            ev += f"; below at {len(below)}"
        evidence[subj] = ev
    return checks, verdicts, evidence
