"""Evaluate the claims registry on a results folder's ``ok`` rows.

``evaluate(ok_rows)`` returns one ``ClaimResult`` per (claim, implementation): its verdict, the
sub-checks behind it (one per model series, matched pair series or ordering context), a short
evidence line and, when data are lacking, which cells to add. The rules are in ``analysis.stats``.

The pieces: ``findings`` (``Check``, ``ClaimResult``), ``rows`` (normalising, grouping and
selecting rows), ``kinds`` (one evaluator per kind of claim), ``suggest`` (the cells to add).
The row helpers other modules use are importable from here as before.
"""
from __future__ import annotations

import pandas as pd

from . import stats as S
from .claims import CLAIMS
from .findings import Check, ClaimResult
from .kinds import _eval_exact, _eval_order, _eval_ratio, _eval_relative, _eval_share, _eval_slope
from .rows import (CLAMPED, _metric_rows, _seed_config_rows, claim_models, group_rows, impl_label,
                   implementations, prepare, select_impl, series_groups)
from .suggest import _suggest


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
            if claim.at_seed_config:
                rows = pd.concat([_seed_config_rows(rows, m) for m in models]) if len(rows) else rows
            if claim.metric == "accuracy" and len(rows):
                rows = _one_repeat(rows)
            if claim.kind == "slope":
                checks, verdicts, evidence = _eval_slope(claim, rows, name, n_boot, seed)
            elif claim.kind == "ratio":
                checks, verdicts, evidence = _eval_ratio(claim, rows, name, n_boot, seed)
            elif claim.kind == "order":
                checks, verdicts, evidence = _eval_order(claim, rows, name)
            elif claim.kind == "share":
                checks, verdicts, evidence = _eval_share(claim, rows, name)
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


def _one_repeat(rows: pd.DataFrame) -> pd.DataFrame:
    """Accuracy replicates are seeds: of the repeats of one cell (same seed), keep the first."""
    from bench import schema
    key = [f for f in schema.CELL_FIELD_NAMES if f not in ("repeat", "circuit_probe_steps", "time_budget_s")
           and f in rows.columns]
    rep = pd.to_numeric(rows["repeat"], errors="coerce").fillna(0)
    ordered = rows.assign(_rep=rep.to_numpy()).sort_values("_rep", kind="stable")
    return ordered.drop_duplicates(subset=key, keep="first").drop(columns="_rep")


# what other modules (plots, report, tests) use from here
__all__ = ["Check", "ClaimResult", "CLAMPED", "evaluate", "prepare", "group_rows", "impl_label",
           "claim_models", "implementations", "select_impl", "series_groups", "_seed_config_rows"]
