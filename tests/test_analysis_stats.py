"""analysis.stats: slopes, ratios, pairwise order and the verdict rules, on known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import stats as S

T = np.array([32, 64, 128, 256, 512], float)


@pytest.mark.parametrize("k", [0.0, 1.0, 2.0, -1.0])
def test_exact_power_law_has_exact_slope_and_zero_width_ci(k):
    fit = S.loglog_fit(T, 3e-3 * T ** k, n_boot=300)
    assert fit.enough and fit.levels == 5 and fit.n == 5
    assert fit.slope == pytest.approx(k, abs=1e-9)
    assert fit.ci_lo == pytest.approx(k, abs=1e-9) and fit.ci_hi == pytest.approx(k, abs=1e-9)


def test_linear_claim_supported_by_T_and_contradicted_by_T_squared():
    v1, _ = S.slope_verdict(S.loglog_fit(T, 1e-3 * T, n_boot=300), 1.0, S.SLOPE_TOL)
    v2, why = S.slope_verdict(S.loglog_fit(T, 1e-6 * T ** 2, n_boot=300), 1.0, S.SLOPE_TOL)
    assert (v1, v2) == (S.SUPPORTED, S.CONTRADICTED)
    assert "steeper" in why


def test_flat_claim_both_ways():
    flat = S.loglog_fit(T, np.full(len(T), 5e6), n_boot=300)
    linear = S.loglog_fit(T, 1e4 * T, n_boot=300)
    assert S.slope_verdict(flat, 0.0, S.FLAT_TOL)[0] == S.SUPPORTED
    assert S.slope_verdict(linear, 0.0, S.FLAT_TOL)[0] == S.CONTRADICTED
    # and the linear claim on the same data, the other way round
    assert S.slope_verdict(flat, 1.0, S.SLOPE_TOL)[0] == S.CONTRADICTED
    assert S.slope_verdict(linear, 1.0, S.SLOPE_TOL)[0] == S.SUPPORTED


def test_overhead_dominated_range_is_a_shallower_contradiction_with_a_hint():
    fit = S.loglog_fit(T, 1.0 + 1e-5 * T, n_boot=300)  # fixed cost dwarfs the linear term
    v, why = S.slope_verdict(fit, 1.0, S.SLOPE_TOL)
    assert v == S.CONTRADICTED and "shallower" in why and "fixed costs" in why


def test_noisy_series_is_inconclusive():
    rng = np.random.default_rng(3)
    x = np.repeat(T[:4], 3)
    y = 1e-3 * x * np.exp(rng.normal(0, 1.0, len(x)))
    fit = S.loglog_fit(x, y, n_boot=500)
    assert fit.ci_hi - fit.ci_lo > 2 * S.SLOPE_TOL
    assert S.slope_verdict(fit, 1.0, S.SLOPE_TOL)[0] == S.INCONCLUSIVE


def test_mild_noise_with_replicates_still_decides():
    rng = np.random.default_rng(4)
    x = np.repeat(T, 3)
    y = 1e-3 * x * np.exp(rng.normal(0, 0.03, len(x)))
    assert S.slope_verdict(S.loglog_fit(x, y, n_boot=500), 1.0, S.SLOPE_TOL)[0] == S.SUPPORTED


def test_too_wide_ci_never_contradicts():
    # a CI entirely outside the band but wider than 3 band widths decides nothing
    assert S.band_verdict(2.0, 5.0, 0.75, 1.25) == S.INCONCLUSIVE
    assert S.band_verdict(2.0, 2.5, 0.75, 1.25) == S.CONTRADICTED
    assert S.band_verdict(0.8, 1.2, 0.75, 1.25) == S.SUPPORTED
    assert S.band_verdict(0.7, 1.2, 0.75, 1.25) == S.INCONCLUSIVE


def test_too_few_levels():
    assert S.loglog_fit([64, 64], [1.0, 1.1]) is None  # one x value: no slope at all
    two = S.loglog_fit([32, 64], [1.0, 2.0])
    assert not two.enough and S.slope_verdict(two, 1.0, 0.25)[0] == S.INCONCLUSIVE
    narrow = S.loglog_fit([100, 110, 120], [1.0, 1.1, 1.2])
    assert not narrow.enough and "spans" in narrow.reason
    reps = S.loglog_fit([32, 32, 64, 64], [1.0, 1.0, 2.0, 2.0], n_boot=200)
    assert reps.enough and S.slope_verdict(reps, 1.0, 0.25)[0] == S.SUPPORTED


def test_nonpositive_and_missing_values_are_dropped():
    fit = S.loglog_fit([32, 64, 128, 256, 512], [1.0, 2.0, 4.0, math.nan, 0.0], n_boot=200)
    assert fit.n == 3 and fit.slope == pytest.approx(1.0)


def test_t_quantiles():
    assert S.t975(1) == pytest.approx(12.706)
    assert S.t975(10) == pytest.approx(2.228)
    assert S.t975(1000) == pytest.approx(1.96, abs=0.01)
    assert S.t975(0) == math.inf
    vals = [S.t975(d) for d in range(1, 200)]
    assert all(a >= b for a, b in zip(vals, vals[1:]))


def test_ratio_both_ways_and_noise():
    two = S.ratio_fit([([2.0], [1.0]), ([4.0], [2.0]), ([8.0], [4.0])])
    assert two.ratio == pytest.approx(2.0) and two.ci_lo == pytest.approx(2.0)
    assert S.ratio_verdict(two, 2.0)[0] == S.SUPPORTED
    one = S.ratio_fit([([1.0], [1.0]), ([2.0], [2.0])])
    assert S.ratio_verdict(one, 2.0)[0] == S.CONTRADICTED
    rng = np.random.default_rng(0)
    noisy = S.ratio_fit([(2 * np.exp(rng.normal(0, 1, 3)), np.exp(rng.normal(0, 1, 3))) for _ in range(4)])
    assert S.ratio_verdict(noisy, 2.0)[0] == S.INCONCLUSIVE
    assert S.ratio_fit([([0.0], [1.0])]) is None
    assert S.ratio_verdict(None, 2.0)[0] == S.INCONCLUSIVE


def test_compare_below():
    assert S.compare_below([1.0], [2.0])[0] == S.HOLDS
    assert S.compare_below([2.0], [1.0])[0] == S.VIOLATED
    assert S.compare_below([1.0], [1.03]) == (S.UNCLEAR, "tie")
    # replicates: intervals overlap -> unclear; tight replicates -> decided
    assert S.compare_below([1.0, 3.0, 0.5], [2.0, 1.2, 4.0])[0] == S.UNCLEAR
    assert S.compare_below([1.0, 1.01, 0.99], [2.0, 2.02, 1.98])[0] == S.HOLDS
    # a single cell's step spread: overlapping fastest..p90 ranges -> unclear
    assert S.compare_below([1.0], [1.2], a_range=(0.8, 1.5), b_range=(1.0, 1.6))[0] == S.UNCLEAR
    assert S.compare_below([1.0], [2.0], a_range=(0.9, 1.1), b_range=(1.9, 2.1))[0] == S.HOLDS
    assert S.compare_below([0.9], [0.6, 0.61], min_reps=2)[0] == S.UNCLEAR
    assert S.compare_below([0.6, 0.61], [0.9, 0.91], tie_rel=0, tie_abs=0.02, min_reps=2)[0] == S.HOLDS


def test_combining():
    assert S.combine_series([S.SUPPORTED, S.INCONCLUSIVE]) == S.SUPPORTED
    assert S.combine_series([S.SUPPORTED, S.CONTRADICTED]) == S.CONTRADICTED
    assert S.combine_series([S.INCONCLUSIVE]) == S.INCONCLUSIVE
    assert S.combine_subjects([S.SUPPORTED, S.SUPPORTED]) == S.SUPPORTED
    assert S.combine_subjects([S.SUPPORTED, S.INCONCLUSIVE]) == S.INCONCLUSIVE
    assert S.combine_subjects([S.INCONCLUSIVE, S.CONTRADICTED]) == S.CONTRADICTED
    assert S.combine_subjects([]) == S.INCONCLUSIVE


def test_rules_text_is_the_docstring():
    assert "Scaling claims" in S.RULES and "Extra-P" in S.RULES and "Share claims" in S.RULES
    assert "Order claims" in S.RULES and "Combining" in S.RULES
