"""Statistics behind the verdicts: log–log slopes with bootstrap CIs, ratios, pairwise order.

The tolerance rules (also printed in every report, ``RULES``):

* **Slope claims** ("time is linear in T", "memory is flat in T", "time ∝ q·2^q", "time ∝ T/C").
  One *series* = the ``status == ok`` cells of one model and one implementation whose cell fields
  are all equal except the swept one (and ``seed``; several seeds or attempts are replicates).
  Fit ``log(metric) = a + b·log(x)`` by least squares over the cells (each cell's median step time,
  or its peak memory, is one point). The 95% CI of ``b`` is the 2.5–97.5 percentile of ``b`` over
  2000 bootstrap resamples of the cells (resampled within each x level when every level has ≥ 2
  replicates; otherwise over all cells, dropping resamples with a single x value). A series needs
  ≥ 3 distinct x values, or ≥ 2 with ≥ 2 replicates each, spanning a factor ≥ 2; with fewer it is
  *inconclusive* (series with one x value are not series and are ignored). With expected exponent
  ``k`` and tolerance ``τ`` (τ = 0.25 for growth laws, 0.15 for "flat"/"minimal"): **supported**
  when the whole CI lies in ``[k − τ, k + τ]``; **contradicted** when the whole CI lies outside
  it; otherwise **inconclusive** (noisy, or on the edge). A slope below ``k − τ`` counts as a
  contradiction *in the measured range*: fixed per-step costs hide the claimed growth there — the
  evidence says so, and larger x settles whether the asymptotic claim holds.
* **Ratio claims** ("Hydra ~2× Mamba"). Cells of the two models are matched on every cell field
  that applies to both (fields that apply to one only are held at the seed-config value, or the
  most common one); per matched point the ratio of the medians over replicates. Pooled over the
  points of a series (all else fixed, ``seq_len`` free): the geometric mean, with a 95% bootstrap
  CI over the points when there are ≥ 3, else the range of the points' ratios (replicate ranges
  included). "~r×" is the band ``[r/1.5, 1.5·r]``; supported / contradicted / inconclusive as for
  slopes, on the log scale.
* **Order claims** ("classical models are fastest", "QuantumMambaGated has the lowest memory").
  Tiers of models, each tier below the next. Compared at each *context* (the same
  implementation and the same shared cell fields; model-specific fields held at the seed-config
  value, else the most common one): per model the median over its replicate cells and the range
  ``[min, max]`` of them. A pair "A below B" **holds** when the ranges do not overlap, A's is the
  lower, and the medians differ by more than the tie tolerance (5% relative for time and memory;
  0.02 absolute for accuracy, which also needs ≥ 2 seeds per model); it is **violated** when the
  same holds the other way; otherwise **unclear**. A context with every model of the claim is
  supported when all pairs hold, contradicted when any pair is violated, else inconclusive; a
  context missing some models can only contradict (a violated pair among those present).
* **Exact claims** (§8.2 counts at the seed config; parameter counts are deterministic):
  supported when equal (relative sizes: within 5% of the document's ratio), else contradicted.
* **Combining**: a model (or pair, or ordering) is contradicted when any of its series or contexts
  is, supported when at least one supports and none contradicts, else inconclusive. A claim, per
  implementation, is contradicted when any of its subjects is, supported when every subject it
  names is, otherwise inconclusive. No data at all is inconclusive, with the cells to add.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SUPPORTED = "supported"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE)

N_BOOT = 2000
CI_LEVEL = 0.95
SLOPE_TOL = 0.25        # growth exponents
FLAT_TOL = 0.15         # "flat" / "minimal" (expected exponent 0)
RATIO_FACTOR = 1.5      # "~r x" means within a factor 1.5 of r
TIE_REL = 0.05          # order claims on time and memory
TIE_ABS_ACCURACY = 0.02
RELATIVE_SIZE_TOL = 0.05
MIN_SPAN = 2.0

RULES = __doc__.split("The tolerance rules (also printed in every report, ``RULES``):", 1)[1].strip()


@dataclass
class SlopeFit:
    slope: float
    intercept: float
    ci_lo: float
    ci_hi: float
    n: int               # cells
    levels: int          # distinct x values
    span: float          # max x / min x
    method: str          # bootstrap flavour, or why there is no CI
    enough: bool         # whether the data allow a verdict
    reason: str = ""     # when not enough


def _levels(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    keys = np.round(np.log(x), 9)
    uniq, inverse = np.unique(keys, return_inverse=True)
    return uniq, inverse


def loglog_fit(x, y, n_boot: int = N_BOOT, seed: int = 0) -> SlopeFit | None:
    """OLS slope of log y on log x with a percentile bootstrap CI over the points (cells).

    Returns None when fewer than 2 distinct x values remain (no slope at all)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return None
    uniq, inverse = _levels(x)
    n_levels = len(uniq)
    if n_levels < 2:
        return None
    X, Y = np.log(x), np.log(y)
    xm, ym = X.mean(), Y.mean()
    sxx = ((X - xm) ** 2).sum()
    slope = float(((X - xm) * (Y - ym)).sum() / sxx)
    intercept = float(ym - slope * xm)
    counts = np.bincount(inverse)
    span = float(x.max() / x.min())
    replicated = bool((counts >= 2).all())
    enough = (n_levels >= 3 or replicated) and span >= MIN_SPAN - 1e-9
    reason = ""
    if not enough:
        if span < MIN_SPAN - 1e-9:
            reason = f"x spans only {span:.2g}x (need >= {MIN_SPAN:g}x)"
        else:
            reason = f"only {n_levels} x values without replicates (need >= 3, or >= 2 with replicates)"
    if len(x) < 3:
        return SlopeFit(slope, intercept, math.nan, math.nan, len(x), n_levels, span, "none", False,
                        reason or "2 cells: no confidence interval")
    rng = np.random.default_rng(seed)
    n = len(x)
    if replicated:
        idx = np.empty((n_boot, n), dtype=np.int64)
        for lv in range(n_levels):
            members = np.flatnonzero(inverse == lv)
            idx[:, members] = rng.choice(members, size=(n_boot, len(members)), replace=True)
        method = "bootstrap within x levels"
    else:
        idx = rng.integers(0, n, size=(n_boot, n))
        method = "bootstrap over cells"
    Xb, Yb = X[idx], Y[idx]
    Xc = Xb - Xb.mean(axis=1, keepdims=True)
    Yc = Yb - Yb.mean(axis=1, keepdims=True)
    sxx_b = (Xc ** 2).sum(axis=1)
    good = sxx_b > 1e-12
    slopes = (Xc * Yc).sum(axis=1)[good] / sxx_b[good]
    alpha = (1 - CI_LEVEL) / 2
    lo, hi = np.quantile(slopes, [alpha, 1 - alpha])
    # an exact power law gives a zero-width CI; round-off must not put it outside its own slope
    lo, hi = min(float(lo), slope), max(float(hi), slope)
    return SlopeFit(slope, intercept, lo, hi, n, n_levels, span, method, enough, reason)


def band_verdict(lo: float, hi: float, band_lo: float, band_hi: float) -> str:
    """supported: [lo, hi] inside the band; contradicted: disjoint from it; else inconclusive."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    eps = 1e-9
    if band_lo - eps <= lo and hi <= band_hi + eps:
        return SUPPORTED
    if hi < band_lo - eps or lo > band_hi + eps:
        return CONTRADICTED
    return INCONCLUSIVE


def slope_verdict(fit: SlopeFit | None, expected: float, tol: float) -> tuple[str, str]:
    """Verdict and a one-line reason for a fitted series."""
    if fit is None:
        return INCONCLUSIVE, "fewer than 2 distinct x values"
    if not fit.enough:
        return INCONCLUSIVE, fit.reason
    v = band_verdict(fit.ci_lo, fit.ci_hi, expected - tol, expected + tol)
    band = f"[{expected - tol:.2f}, {expected + tol:.2f}]"
    if v == SUPPORTED:
        why = f"CI inside {band}"
    elif v == CONTRADICTED:
        side = "steeper" if fit.ci_lo > expected + tol else "shallower"
        why = f"CI outside {band}: {side} than claimed"
        if side == "shallower" and expected > 0:
            why += " (fixed costs dominate the measured range?)"
    else:
        width = fit.ci_hi - fit.ci_lo
        why = (f"CI too wide ({width:.2f} > {2 * tol:.2f})" if width > 2 * tol
               else f"CI straddles the edge of {band}")
    return v, why


@dataclass
class RatioFit:
    ratio: float        # geometric mean over matched points
    ci_lo: float
    ci_hi: float
    n_points: int
    method: str


def ratio_fit(points: list[tuple[np.ndarray, np.ndarray]], n_boot: int = N_BOOT,
              seed: int = 0) -> RatioFit | None:
    """points: per matched point, (replicate values of the numerator model, of the denominator)."""
    logs, lows, highs = [], [], []
    for a, b in points:
        a = np.asarray(a, float)
        b = np.asarray(b, float)
        a, b = a[np.isfinite(a) & (a > 0)], b[np.isfinite(b) & (b > 0)]
        if len(a) == 0 or len(b) == 0:
            continue
        logs.append(math.log(np.median(a) / np.median(b)))
        lows.append(math.log(a.min() / b.max()))
        highs.append(math.log(a.max() / b.min()))
    if not logs:
        return None
    L = np.array(logs)
    est = float(L.mean())
    if len(L) >= 3:
        rng = np.random.default_rng(seed)
        means = L[rng.integers(0, len(L), size=(n_boot, len(L)))].mean(axis=1)
        alpha = (1 - CI_LEVEL) / 2
        lo, hi = np.quantile(means, [alpha, 1 - alpha])
        lo, hi = min(float(lo), est), max(float(hi), est)
        method = "bootstrap over matched points"
    else:
        lo, hi = min(lows), max(highs)
        method = "range of matched points"
    return RatioFit(math.exp(est), math.exp(lo), math.exp(hi), len(L), method)


def ratio_verdict(fit: RatioFit | None, expected: float, factor: float = RATIO_FACTOR) -> tuple[str, str]:
    if fit is None:
        return INCONCLUSIVE, "no matched cells"
    lo_b, hi_b = expected / factor, expected * factor
    v = band_verdict(math.log(fit.ci_lo), math.log(fit.ci_hi), math.log(lo_b), math.log(hi_b))
    band = f"[{lo_b:.2f}, {hi_b:.2f}]"
    if v == SUPPORTED:
        return v, f"CI inside {band}"
    if v == CONTRADICTED:
        return v, f"CI outside {band}"
    return v, f"CI overlaps the edge of {band}"


HOLDS, VIOLATED, UNCLEAR = "holds", "violated", "unclear"


def compare_below(a, b, tie_rel: float = TIE_REL, tie_abs: float = 0.0,
                  min_reps: int = 1) -> tuple[str, str]:
    """Is model A's metric below model B's? a, b: replicate values (cells)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return UNCLEAR, "missing"
    if len(a) < min_reps or len(b) < min_reps:
        return UNCLEAR, f"needs >= {min_reps} replicates per model"
    ma, mb = float(np.median(a)), float(np.median(b))
    lo_abs = min(abs(ma), abs(mb))
    tie = max(tie_abs, tie_rel * lo_abs)
    if a.max() < b.min() and mb - ma > tie:
        return HOLDS, ""
    if b.max() < a.min() and ma - mb > tie:
        return VIOLATED, ""
    if abs(ma - mb) <= tie:
        return UNCLEAR, "tie"
    return UNCLEAR, "ranges overlap"


def combine_series(verdicts: list[str]) -> str:
    """One subject from its series/contexts: any contradicted wins; else any supported; else
    inconclusive."""
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if SUPPORTED in verdicts:
        return SUPPORTED
    return INCONCLUSIVE


def combine_subjects(verdicts: list[str]) -> str:
    """One claim from its subjects: any contradicted wins; all supported; else inconclusive."""
    if not verdicts:
        return INCONCLUSIVE
    if CONTRADICTED in verdicts:
        return CONTRADICTED
    if all(v == SUPPORTED for v in verdicts):
        return SUPPORTED
    return INCONCLUSIVE
