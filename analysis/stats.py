"""Statistics behind the verdicts: log–log slopes with bootstrap CIs, ratios, pairwise order.

The tolerance rules (also printed in every report, ``RULES``):

* **Scaling claims** ("time is O(T)", "memory is flat in T", "time ∝ q·2^q", "time ∝ T/C").
  A *series* is the ``ok`` cells of one model and one implementation whose cell fields are all
  equal except the swept one (``seed`` and ``repeat`` make replicates). Each series gets a
  scaling model in Extra-P's performance-model normal form (Calotoiu et al., SC'13),
  ``t(x) = c0 + c1·x^i·log2(x)^j`` with c0, c1 >= 0, i in {0, 1/4, 1/3, 1/2, 2/3, 3/4, 1, 5/4,
  4/3, 3/2, 2, 3}, j in {0, 1, 2}; c0 is the fixed cost (dispatch, optimiser, head, launches),
  the x-term the leading term a complexity claim is about. Fit: least squares on relative errors;
  choice: leave-one-x-out cross-validation, the simpler hypothesis (constant, then fewer log
  factors) when within 25% of the best error; uncertainty: 400 residual-bootstrap resamples
  redo the choice. With claimed exponent ``k`` and tolerance ``τ`` (0.25; 0.15 for "flat"):
  growth claims are **supported** when >= 90% of the resamples pick a leading term that lies,
  asymptotically, between x^(k−τ) and x^(k+τ) (log factors allowed below the claimed exponent;
  at it only where the claim allows them: x·log x is not O(x)), **contradicted** when >= 90% pick
  another growing term; when most resamples pick the constant model, the growth is hidden under
  the fixed cost in the measured range: inconclusive, extend x. Flat claims are **supported**
  when the chosen models grow by at most the factor (x_max/x_min)^τ over the range in 97.5% of
  the resamples (leading exponent 0, or c1·x negligible against c0), **contradicted** when they
  grow by more in 97.5% and >= 90% pick a growing term. A series needs >= 3 distinct x values
  spanning a factor >= 2. The report gives the model, c0, the fixed cost's share at the
  smallest x, the x beyond which the leading term is the larger part, the resamples' picks, and
  the pure log–log slope (95% CI) beside as a secondary figure. Rules in full:
  ``analysis/scaling.py``.
* **Share claims** ("dominated by circuit simulation"): ``circuit_share`` (1 − circuit-free
  pass / full pass, measured in the cell, ``circuit_probe_steps``) at each size, the mean over its
  cells (seeds, repeats) with a t interval: supported above 0.5 when the interval is, contradicted
  when the interval is below; a model combines its sizes as series do. Kept apart from the
  complexity verdict: a step can grow as q·2^q while the circuits are a small part of it.
* **Ratio claims** ("Hydra ~2× Mamba"). Cells of the two models are matched on every cell field
  that applies to both (a field that applies to one only is held at its seed-config value, or its
  most common one). A series is the matched cells with all else fixed and ``seq_len`` free; fit
  ``log y = μ_point + δ·[Hydra]`` by least squares over all its cells (one μ per matched point):
  the ratio is e^δ, its 95% CI ``δ ± t(N−P−1)·SE`` for N cells at P points; with no degrees of
  freedom left (one cell per model at a single point) the range of the ratios.
  "~r×" is the band ``[r/1.5, 1.5·r]``; verdict as for slopes, on the log scale.
* **Order claims** ("classical models are fastest", "QuantumMambaGated has the lowest memory").
  Tiers of models, each tier below the next; every pair (A in a lower tier, B in a higher one)
  is compared at each *context*: the same implementation and the same shared cell fields, with
  model-specific fields held at the seed-config value (else the most common one). Per model: the
  median of its cells and an interval — mean ± t(n−1)·s/√n over its n ≥ 2 replicate cells; for a
  single cell, its fastest-to-p90 step range (step time) or the value itself. In a context, "A
  below B" holds when the intervals do not overlap, A's is lower, and the medians differ by more
  than the tie tolerance (5% relative for time and memory; 0.02 absolute for accuracy, which also
  needs ≥ 2 seeds per model); it is violated the other way round; otherwise unclear. Over the
  contexts where both were measured, a pair is **violated** when it is violated in more contexts
  than it holds and in at least two (or in the only one) — one stray context is not enough; it
  **holds** when it holds somewhere and is violated nowhere; else it is inconclusive. The ordering
  is contradicted when any pair is violated, supported when every pair holds, else inconclusive.
* **Exact claims** (§8.2 counts at the seed config; parameter counts are deterministic):
  supported when equal (relative sizes: within 5% of the document's ratio), else contradicted.
* **Combining**: a model (or a matched pair) is contradicted when any of its series is, supported
  when at least one supports and none contradicts, else inconclusive. A claim, per
  implementation, is contradicted when any of its subjects is, supported when every subject it
  names is, otherwise inconclusive. No data at all is inconclusive, and the report lists the
  cells to add.
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
MAX_CI_BANDS = 3.0      # a CI wider than 3 tolerance bands decides nothing

# two-sided 95% Student t quantiles (t_0.975) by degrees of freedom; scipy is not a dependency
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
         10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110,
         18: 2.101, 19: 2.093, 20: 2.086, 22: 2.074, 24: 2.064, 26: 2.056, 28: 2.048, 30: 2.042,
         40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (table, interpolated in
    1/df; 1.96 beyond 120)."""
    if df < 1:
        return math.inf
    if df in _T975:
        return _T975[df]
    keys = sorted(_T975)
    if df > keys[-1]:
        lo, hi, tlo, thi = keys[-1], math.inf, _T975[keys[-1]], 1.959964
    else:
        hi = next(k for k in keys if k > df)
        lo = max(k for k in keys if k < df)
        tlo, thi = _T975[lo], _T975[hi]
    w = (1 / lo - 1 / df) / (1 / lo - (0 if hi == math.inf else 1 / hi))
    return tlo + w * (thi - tlo)


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
    fitted = intercept + slope * X
    resid = (Y - fitted) * math.sqrt(n / (n - 2))      # leverage-free small-sample inflation
    Yb = fitted + resid[rng.integers(0, n, size=(n_boot, n))]
    Yc = Yb - Yb.mean(axis=1, keepdims=True)
    slopes = (Yc * (X - xm)).sum(axis=1) / sxx
    half = t975(n - 2) * float(slopes.std(ddof=1))
    method = f"residual bootstrap over {n} cells, t({n - 2}) interval"
    return SlopeFit(slope, intercept, slope - half, slope + half, n, n_levels, span, method, enough, reason)


def band_verdict(lo: float, hi: float, band_lo: float, band_hi: float) -> str:
    """supported: [lo, hi] inside the band; contradicted: disjoint from it and no wider than
    MAX_CI_BANDS band widths (a wider CI is too noisy to place); else inconclusive."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return INCONCLUSIVE
    if hi - lo > MAX_CI_BANDS * (band_hi - band_lo):
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


def _ratio_reason(v, lo, hi, band) -> str:
    if v == SUPPORTED:
        return f"CI inside {band}"
    if v == CONTRADICTED:
        return f"CI outside {band}"
    return f"CI too wide ({hi / lo:.2g}x)" if lo > 0 and hi / lo > RATIO_FACTOR ** 2 else f"CI overlaps the edge of {band}"


@dataclass
class RatioFit:
    ratio: float        # geometric mean over matched points
    ci_lo: float
    ci_hi: float
    n_points: int
    method: str


def ratio_fit(points: list[tuple[np.ndarray, np.ndarray]], n_boot: int = N_BOOT,
              seed: int = 0) -> RatioFit | None:
    """points: per matched point, (replicate values of the numerator model, of the denominator).

    log y = μ_point + δ·[numerator] + ε, fitted by least squares over every cell: δ is the pooled
    log ratio. With N cells at P points, CI = δ ± t(N−P−1)·SE; with no degrees of freedom left
    (one cell per model and point, P ≤ 2) the range of the points' ratios."""
    del n_boot, seed  # the interval is analytic (kept for a uniform signature)
    cleaned = []
    for a, b in points:
        a = np.log(np.asarray([v for v in np.asarray(a, float) if np.isfinite(v) and v > 0]))
        b = np.log(np.asarray([v for v in np.asarray(b, float) if np.isfinite(v) and v > 0]))
        if len(a) and len(b):
            cleaned.append((a, b))
    if not cleaned:
        return None
    w = np.array([len(a) * len(b) / (len(a) + len(b)) for a, b in cleaned])
    d = np.array([a.mean() - b.mean() for a, b in cleaned])
    delta = float((w * d).sum() / w.sum())
    n_cells = sum(len(a) + len(b) for a, b in cleaned)
    dof = n_cells - len(cleaned) - 1
    if dof >= 1:
        sse = 0.0
        for a, b in cleaned:
            mu = (np.concatenate([a - delta, b])).mean()
            sse += float(((a - delta - mu) ** 2).sum() + ((b - mu) ** 2).sum())
        se = math.sqrt(sse / dof / w.sum())
        half = t975(dof) * se
        lo, hi = delta - half, delta + half
        method = f"{len(cleaned)} matched points, {n_cells} cells, t({dof}) interval"
    else:
        lo = min(float(a.min() - b.max()) for a, b in cleaned)
        hi = max(float(a.max() - b.min()) for a, b in cleaned)
        lo, hi = min(lo, delta), max(hi, delta)
        method = f"{len(cleaned)} matched points, range"
    return RatioFit(math.exp(delta), math.exp(lo), math.exp(hi), len(cleaned), method)


def ratio_verdict(fit: RatioFit | None, expected: float, factor: float = RATIO_FACTOR) -> tuple[str, str]:
    if fit is None:
        return INCONCLUSIVE, "no matched cells"
    lo_b, hi_b = expected / factor, expected * factor
    v = band_verdict(math.log(fit.ci_lo), math.log(fit.ci_hi), math.log(lo_b), math.log(hi_b))
    return v, _ratio_reason(v, fit.ci_lo, fit.ci_hi, f"[{lo_b:.2f}, {hi_b:.2f}]")


HOLDS, VIOLATED, UNCLEAR = "holds", "violated", "unclear"


def interval(values, spread=None) -> tuple[float, float, float]:
    """(centre, low, high) of one model's replicate cells: the median, and mean ± t·s/√n for
    n >= 2 cells; for one cell its ``spread`` (fastest..p90 step) when given, else the value."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    centre = float(np.median(v))
    if len(v) >= 2:
        half = t975(len(v) - 1) * float(v.std(ddof=1)) / math.sqrt(len(v))
        return centre, min(centre, float(v.mean()) - half), max(centre, float(v.mean()) + half)
    if spread is not None:
        return centre, float(spread[0]), float(spread[1])
    return centre, centre, centre


def compare_below(a, b, tie_rel: float = TIE_REL, tie_abs: float = 0.0, min_reps: int = 1,
                  a_range=None, b_range=None) -> tuple[str, str]:
    """Is model A's metric below model B's? a, b: replicate values (cells); ``*_range``: a single
    cell's step-time spread (fastest, p90)."""
    a = np.asarray(a, float)
    b = np.asarray(b, float)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return UNCLEAR, "missing"
    if len(a) < min_reps or len(b) < min_reps:
        return UNCLEAR, f"needs >= {min_reps} replicates per model"
    ma, a_lo, a_hi = interval(a, a_range)
    mb, b_lo, b_hi = interval(b, b_range)
    tie = max(tie_abs, tie_rel * min(abs(ma), abs(mb)))
    if abs(ma - mb) <= tie:
        return UNCLEAR, "tie"
    if a_hi < b_lo and ma < mb:
        return HOLDS, ""
    if b_hi < a_lo and mb < ma:
        return VIOLATED, ""
    return UNCLEAR, "intervals overlap"


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
