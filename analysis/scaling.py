"""Overhead-aware scaling models in the style of Extra-P's performance-model normal form
(A. Calotoiu, T. Hoefler, M. Poke, F. Wolf: "Using automated performance modeling to find
scalability bugs in complex codes", SC'13).

A series (one model, all cell fields fixed but one, ``x``) is described by

    t(x) = c0 + c1 · x^i · log2(x)^j        c0 >= 0, c1 >= 0

for every hypothesis (i, j) with i in ``EXPONENTS`` and j in ``LOG_POWERS`` (i = j = 0 is the
constant model t = c0). ``c0`` is the fixed cost (dispatch, optimiser, the head, kernel launches);
the term in ``x`` is the *leading term* a complexity claim is about.

* **Fit**: weighted least squares with weights 1/ȳ(x)² (ȳ the mean at that x), i.e. relative
  errors, so a series spanning decades is fitted evenly; c0 and c1 constrained to be >= 0.
* **Choice**: leave-one-out cross-validation over the distinct x values (all cells of one x are
  left out together and predicted from the others); the hypothesis with the smallest summed
  relative squared prediction error wins — except that a simpler hypothesis within 25 %
  (``PARSIMONY``) of the smallest error is preferred: the constant model first, then the fewest
  log factors (log2(x)^j with the smallest j), then the smallest error. Over a short range
  x^(2/3)·log2(x)^2 and x are hard to tell apart; without this rule noise picks the ornate one.
* **Uncertainty**: a residual bootstrap (``N_BOOT_MODEL`` resamples): relative residuals of the
  chosen fit, inflated by sqrt(n/(n-p)), are resampled onto the fitted values and the choice is
  made again. The share of resamples that pick each hypothesis, and the 2.5–97.5 % range of the
  picked leading exponent, are reported.
* **Where the leading term takes over**: x* with c1·f(x*) = c0 (the fixed cost is the larger part
  below it); "from the smallest x" when c0 <= c1·f(x_min).

Verdicts (``scaling_verdict``), with claimed exponent k and tolerance τ:

* growth claims (k > 0): a pick is *admissible* when its leading term lies, asymptotically,
  within the band x^(k−τ) … x^(k+τ) (``admissible``): k−τ <= i < k with any log power (such a
  term is o(x^k)), i = k with a log power the claim allows (none for O(x): x·log x is not O(x);
  ``log_powers`` of the claim otherwise), k < i < k+τ with any, i = k+τ without logs. **Supported** when >= ``DECIDE_SHARE`` of the resamples pick admissible
  models; **contradicted** when >= ``DECIDE_SHARE`` pick non-constant models that are not; when
  the constant model is picked in most resamples the growth is not visible above the fixed cost
  and noise in the measured range: inconclusive (extend x); otherwise inconclusive (the choice is
  unstable).
* flat claims (k = 0: "memory is flat in T"): with G the factor by which the chosen model grows
  over the measured range, ŷ(x_max)/ŷ(x_min), and the bound (x_max/x_min)^τ (the growth a
  log–log slope of τ would give): **supported** when the 97.5 % quantile of G over the resamples
  is within the bound (leading exponent 0, or the growing term negligible against c0 over the
  range); **contradicted** when the 2.5 % quantile of G exceeds it and >= ``DECIDE_SHARE`` of the
  resamples pick a leading exponent > 0; otherwise inconclusive.

A series needs >= 3 distinct x values spanning a factor >= 2 (``MIN_LEVELS``); fewer decide
nothing.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

EXPONENTS = (0.0, 1 / 4, 1 / 3, 1 / 2, 2 / 3, 3 / 4, 1.0, 5 / 4, 4 / 3, 3 / 2, 2.0, 3.0)
LOG_POWERS = (0, 1, 2)
HYPOTHESES = tuple((i, j) for i in EXPONENTS for j in LOG_POWERS)  # (0, 0): the constant model
N_BOOT_MODEL = 400
DECIDE_SHARE = 0.9
MIN_LEVELS = 3
MIN_SPAN = 2.0
PARSIMONY = 0.25   # a hypothesis with fewer terms or log factors wins within 25 % of the best error
_CONST = np.array([h == (0, 0) for h in HYPOTHESES])
_J = np.array([h[1] for h in HYPOTHESES], float)

SUPPORTED, CONTRADICTED, INCONCLUSIVE = "supported", "contradicted", "inconclusive"


def _frac(v: float) -> str:
    for num, den in ((1, 4), (1, 3), (1, 2), (2, 3), (3, 4), (5, 4), (4, 3), (3, 2)):
        if abs(v - num / den) < 1e-9:
            return f"{num}/{den}"
    return f"{v:g}"


def term_text(i: float, j: int, x: str = "x") -> str:
    """'x', 'x^1/2', 'x·log2(x)^2', 'log2(x)', '1'."""
    if i == 0 and j == 0:
        return "1"
    parts = []
    if i:
        parts.append(x if i == 1 else f"{x}^{_frac(i)}")
    if j:
        parts.append(f"log2({x})" + (f"^{j}" if j > 1 else ""))
    return "·".join(parts)


def _features(x: np.ndarray) -> np.ndarray:
    """(H, n): x^i · log2(x)^j for every hypothesis (1 for the constant model)."""
    lx = np.log2(x)
    return np.stack([np.power(x, i) * np.power(lx, j) for i, j in HYPOTHESES])


def _fit(F: np.ndarray, y: np.ndarray, w: np.ndarray):
    """Constrained WLS of y ≈ c0 + c1·F for every hypothesis and resample at once.

    F (H, n); y (B, n); w (B, n) weights (0 = left out). Returns c0, c1 (B, H). The constant
    hypothesis (a row of ones in F) gets c1 = 0."""
    Sw = w.sum(1)[:, None]                                   # (B, 1)
    Sy = (w * y).sum(1)[:, None]
    Sf = w @ F.T                                             # (B, H)
    Sff = w @ (F * F).T
    Sfy = (w * y) @ F.T
    det = Sw * Sff - Sf * Sf
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = np.where(np.abs(det) > 1e-12 * np.maximum(Sw * Sff, 1e-300), (Sw * Sfy - Sf * Sy) / det, 0.0)
        c0 = (Sy - c1 * Sf) / Sw
        c1_only = np.where(Sff > 0, Sfy / Sff, 0.0)          # c0 = 0
    c0_only = np.broadcast_to(Sy / Sw, c1.shape)             # c1 = 0

    def cost(a, b):
        r = y[:, None, :] - a[..., None] - b[..., None] * F[None]
        return (w[:, None, :] * r * r).sum(-1)

    inside = (c0 >= 0) & (c1 >= 0)
    cand = [(np.where(inside, c0, np.nan), np.where(inside, c1, np.nan)),
            (np.zeros_like(c1), np.where(c1_only >= 0, c1_only, np.nan)),
            (c0_only, np.zeros_like(c1))]
    best_c0, best_c1, best_cost = None, None, None
    for a, b in cand:
        cst = cost(np.nan_to_num(a), np.nan_to_num(b))
        cst = np.where(np.isnan(a) | np.isnan(b), np.inf, cst)
        if best_cost is None:
            best_c0, best_c1, best_cost = np.nan_to_num(a), np.nan_to_num(b), cst
        else:
            take = cst < best_cost
            best_c0 = np.where(take, np.nan_to_num(a), best_c0)
            best_c1 = np.where(take, np.nan_to_num(b), best_c1)
            best_cost = np.where(take, cst, best_cost)
    const = np.array([i == 0 and j == 0 for i, j in HYPOTHESES])
    best_c0 = np.where(const[None], c0_only, best_c0)
    best_c1 = np.where(const[None], 0.0, best_c1)
    return best_c0, best_c1


def _choose(F, y, wbase, level, n_levels):
    """LOO-CV choice for each resample: (chosen hypothesis index (B,), cv error (B, H))."""
    B = y.shape[0]
    err = np.zeros((B, len(HYPOTHESES)))
    for lv in range(n_levels):
        out = level == lv
        w = np.where(out[None], 0.0, wbase)
        c0, c1 = _fit(F, y, w)
        pred = c0[..., None] + c1[..., None] * F[None]                     # (B, H, n)
        r = (y[:, None, :] - pred) * np.sqrt(wbase)[:, None, :]
        err += (r[..., out] ** 2).sum(-1)
    # parsimony: among the hypotheses within PARSIMONY of the smallest error, the constant model
    # first, then the fewest log factors, then the smallest error
    best = np.maximum(err.min(1, keepdims=True), 1e-300)
    near = err <= best * (1.0 + PARSIMONY) + 1e-300
    score = np.where(near, 10.0 * (~_CONST)[None] + 2.0 * _J[None] + err / best, np.inf)
    return np.argmin(score, axis=1), err


@dataclass
class ScalingFit:
    i: float                       # leading exponent of the chosen model
    j: int                         # log power
    c0: float                      # fixed cost
    c1: float                      # leading coefficient
    cv_error: float                # relative LOO error of the chosen model
    n: int                         # cells
    levels: int                    # distinct x values
    x_min: float
    x_max: float
    picks: dict = field(default_factory=dict)     # (i, j) -> share of bootstrap resamples
    exp_lo: float = math.nan       # 2.5 % quantile of the picked leading exponent
    exp_hi: float = math.nan
    growth: np.ndarray | None = None   # ŷ(x_max)/ŷ(x_min) per resample
    enough: bool = True
    reason: str = ""

    @property
    def constant(self) -> bool:
        return (self.i, self.j) == (0, 0) or self.c1 == 0

    def predict(self, x):
        x = np.asarray(x, float)
        return self.c0 + self.c1 * np.power(x, self.i) * np.power(np.log2(x), self.j)

    def formula(self, x: str = "x") -> str:
        if self.constant:
            return f"{self.c0:.3g}"
        return f"{self.c0:.3g} + {self.c1:.3g}·{term_text(self.i, self.j, x)}"

    @property
    def crossover(self) -> float | None:
        """x beyond which the leading term is the larger part (x_min when it is from the start;
        None for the constant model or c0 = 0)."""
        if self.constant:
            return None
        if self.c0 <= 0:
            return 0.0
        f = lambda v: self.c1 * v ** self.i * math.log2(v) ** self.j - self.c0  # noqa: E731
        lo, hi = max(self.x_min / 1e6, 1.0 + 1e-9), self.x_max * 1e9
        if f(hi) < 0:
            return math.inf
        if f(lo) >= 0:
            return lo
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            if f(mid) >= 0:
                hi = mid
            else:
                lo = mid
        return hi

    @property
    def fixed_share_at_min(self) -> float:
        y = float(self.predict(self.x_min))
        return self.c0 / y if y > 0 else math.nan

    def picks_text(self, x: str = "x", top: int = 3) -> str:
        items = sorted(self.picks.items(), key=lambda kv: -kv[1])[:top]
        return ", ".join(f"{term_text(i, j, x)} {share:.0%}" for (i, j), share in items)


def fit_scaling(x, y, n_boot: int = N_BOOT_MODEL, seed: int = 0) -> ScalingFit | None:
    """The chosen model of one series, with its bootstrap picks; None without 2 distinct x."""
    x = np.asarray(x, float)
    y = np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return None
    uniq, level = np.unique(np.round(np.log(x), 9), return_inverse=True)
    L = len(uniq)
    if L < 2:
        return None
    span = float(x.max() / x.min())
    F = _features(x)
    ybar = np.array([y[level == k].mean() for k in range(L)])[level]
    wbase = 1.0 / ybar ** 2
    enough, reason = True, ""
    if L < MIN_LEVELS:
        enough, reason = False, f"only {L} x values (need >= {MIN_LEVELS})"
    elif span < MIN_SPAN - 1e-9:
        enough, reason = False, f"x spans only {span:.2g}x (need >= {MIN_SPAN:g}x)"
    if L >= 3:
        h, err = _choose(F, y[None], wbase[None], level, L)
        h = int(h[0])
        cv = float(err[0, h])
    else:   # no cross-validation with 2 x values: the best-fitting model, reported only
        c0, c1 = _fit(F, y[None], wbase[None])
        res = y[None, None] - c0[..., None] - c1[..., None] * F[None]
        h = int(np.argmin((wbase * res[0] ** 2).sum(-1)))
        cv = math.nan
    c0, c1 = _fit(F, y[None], wbase[None])
    c0, c1 = float(c0[0, h]), float(c1[0, h])
    i, j = HYPOTHESES[h]
    out = ScalingFit(i, j, c0, c1, cv, len(x), L, float(x.min()), float(x.max()), enough=enough, reason=reason)
    if L < 3 or n_boot <= 0:
        return out
    # residual bootstrap of the choice
    fitted = out.predict(x)
    p = 1 if out.constant else 2
    rel = (y - fitted) / fitted * math.sqrt(len(x) / max(1, len(x) - p))
    rng = np.random.default_rng(seed)
    yb = fitted[None] * (1.0 + rel[rng.integers(0, len(x), size=(n_boot, len(x)))])
    yb = np.maximum(yb, 1e-12 * fitted.min())
    wb = 1.0 / np.stack([np.bincount(level, weights=r, minlength=L) / np.bincount(level, minlength=L)
                         for r in yb])[:, level] ** 2
    hb, _ = _choose(F, yb, wb, level, L)
    c0b, c1b = _fit(F, yb, wb)
    rows = np.arange(n_boot)
    c0h, c1h = c0b[rows, hb], c1b[rows, hb]
    ib = np.array([HYPOTHESES[k][0] for k in hb])
    jb = np.array([HYPOTHESES[k][1] for k in hb])
    lead = np.where((c1h > 0), ib, 0.0)
    out.exp_lo, out.exp_hi = (float(v) for v in np.quantile(lead, [0.025, 0.975]))
    xs = np.array([x.min(), x.max()])

    def at(v):
        return c0h + c1h * np.power(v, ib) * np.power(np.log2(v), jb)
    out.growth = at(xs[1]) / np.maximum(at(xs[0]), 1e-300)
    keys = [(HYPOTHESES[k] if c1h[n] > 0 else (0.0, 0)) for n, k in enumerate(hb)]
    for k in keys:
        out.picks[k] = out.picks.get(k, 0) + 1 / n_boot
    out.picks = {k: float(v) for k, v in out.picks.items()}
    return out


def admissible(i: float, j: int, expected: float, tol: float, log_powers=(0,)) -> bool:
    """Whether x^i·log2(x)^j lies, asymptotically, within x^(expected−tol) … x^(expected+tol),
    log factors at the claimed exponent itself only when the claim allows them."""
    eps = 1e-9
    if (i, j) == (0, 0):
        return False
    if abs(i - expected) < eps:
        return j in log_powers
    if expected - tol - eps <= i < expected - eps:
        return True
    if expected + eps < i < expected + tol - eps:
        return True
    return abs(i - (expected + tol)) < eps and j == 0


def scaling_verdict(fit: ScalingFit | None, expected: float, tol: float,
                    log_powers: tuple[int, ...] = (0,)) -> tuple[str, str]:
    """Verdict and a one-line reason (rules in the module docstring)."""
    if fit is None:
        return INCONCLUSIVE, "fewer than 2 distinct x values"
    if not fit.enough:
        return INCONCLUSIVE, fit.reason
    if not fit.picks or fit.growth is None:
        return INCONCLUSIVE, "no bootstrap resamples (n_boot = 0)"
    need = DECIDE_SHARE - 1e-9   # shares are sums of 1/n_boot
    if expected == 0:
        bound = (fit.x_max / fit.x_min) ** tol
        g_lo, g_hi = (float(v) for v in np.quantile(fit.growth, [0.025, 0.975]))
        grows = sum(s for (i, j), s in fit.picks.items() if (i, j) != (0, 0))
        rng = f"grows ×{g_lo:.2f}–×{g_hi:.2f} over the range (bound ×{bound:.2f})"
        if g_hi <= bound:
            return SUPPORTED, rng
        if g_lo > bound and grows >= need:
            return CONTRADICTED, rng
        return INCONCLUSIVE, rng + ("" if g_lo > bound else ": too noisy to place")
    adm = sum(s for (i, j), s in fit.picks.items() if admissible(i, j, expected, tol, log_powers))
    const = fit.picks.get((0.0, 0), 0.0)
    other = 1.0 - adm - const
    allowed = term_text(expected, 0) + ("" if log_powers == (0,) else " (with log factors)")
    if adm >= need:
        return SUPPORTED, f"leading term {allowed} in {adm:.0%} of resamples"
    if other >= need:
        side = "steeper" if (fit.i, fit.j) > (expected, max(log_powers)) else "shallower"
        return CONTRADICTED, f"leading term {side} than {allowed} in {other:.0%} of resamples"
    if const >= 0.5:
        return INCONCLUSIVE, (f"no growth above the fixed cost and noise in {const:.0%} of resamples: "
                              "extend the range of x")
    return INCONCLUSIVE, f"model choice unstable ({allowed} in {adm:.0%} of resamples)"
