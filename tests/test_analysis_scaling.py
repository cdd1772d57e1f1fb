"""Scaling models (analysis.scaling): planted laws come back as planted — pure power laws, affine
laws with large fixed costs, x·log x, a quadratic hidden under a constant at small x, pure noise —
directly and through a results folder and the claims registry."""
from __future__ import annotations

import math

import numpy as np
import pytest

from analysis import scaling as SC
from analysis import stats as S
from analysis.checks import evaluate
from analysis.fabricate import fake_row, write_results
from analysis.io import load_results

T = np.array([32, 64, 128, 256, 512, 1024], float)


def _series(y, noise=0.01, reps=2, seed=0):
    rng = np.random.default_rng(seed)
    x = np.repeat(T, reps)
    return x, np.repeat(y, reps) * (1 + noise * rng.standard_normal(len(x)))


@pytest.mark.parametrize("law, y, term", [
    ("T", 1e-5 * T, (1.0, 0)),
    ("T^2", 1e-8 * T ** 2, (2.0, 0)),
    ("T^1/2", 1e-4 * T ** 0.5, (0.5, 0)),
    ("T^3/2", 1e-6 * T ** 1.5, (1.5, 0)),
    ("q2q-like T^3", 1e-9 * T ** 3, (3.0, 0)),
    ("T log T", 1e-6 * T * np.log2(T), (1.0, 1)),
    ("log T", 1e-3 * np.log2(T), (0.0, 1)),
])
def test_pure_laws_are_recovered(law, y, term):
    fit = SC.fit_scaling(*_series(y), n_boot=200)
    assert (fit.i, fit.j) == term, (law, fit.formula("T"), fit.picks_text("T"))
    assert fit.picks.get(term, 0) >= 0.9
    assert fit.c0 <= 0.02 * y.min()


@pytest.mark.parametrize("fixed_over_growing", [3.0, 10.0, 30.0])
def test_affine_laws_keep_their_fixed_cost_apart(fixed_over_growing):
    """t = c0 + c1·T with c0 = k × the growing part at the smallest T: linear, with c0 recovered,
    where a log–log slope reads it as much shallower than 1."""
    c1 = 1e-5
    c0 = fixed_over_growing * c1 * T[0]
    x, y = _series(c0 + c1 * T, noise=0.003)
    fit = SC.fit_scaling(x, y, n_boot=200)
    assert (fit.i, fit.j) == (1.0, 0)
    assert fit.c0 == pytest.approx(c0, rel=0.1) and fit.c1 == pytest.approx(c1, rel=0.1)
    assert fit.crossover == pytest.approx(c0 / c1, rel=0.15)   # the leading term takes over there
    assert SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL)[0] == S.SUPPORTED
    slope = S.loglog_fit(x, y, n_boot=200)
    assert slope.slope < 0.8          # what a pure power law would have concluded


def test_x_log_x_is_linear_only_when_the_claim_allows_logs():
    fit = SC.fit_scaling(*_series(3 * 1e-6 * T[0] * 5 + 1e-6 * T * np.log2(T)), n_boot=200)  # c0 = 3x
    assert (fit.i, fit.j) == (1.0, 1)
    assert SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL)[0] == S.CONTRADICTED
    assert "steeper" in SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL)[1]
    assert SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL, log_powers=(0, 1))[0] == S.SUPPORTED


def test_quadratic_hidden_under_a_constant_is_found_at_large_x():
    x = np.array([16, 32, 64, 128, 256, 512, 1024, 2048], float)
    y = 1.0 + (x / 512.0) ** 2          # the constant is 99.9 % of t at x=16, 20 % at x=2048
    rng = np.random.default_rng(3)
    fit = SC.fit_scaling(np.repeat(x, 2), np.repeat(y, 2) * (1 + 0.01 * rng.standard_normal(16)), n_boot=200)
    assert (fit.i, fit.j) == (2.0, 0)
    assert fit.c0 == pytest.approx(1.0, rel=0.05)
    assert fit.crossover == pytest.approx(512, rel=0.15)
    assert SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL)[0] == S.CONTRADICTED
    # restricted to the small-x end, the quadratic is invisible: the flat claim holds there
    small = SC.fit_scaling(np.repeat(x[:4], 2), np.repeat(y[:4], 2), n_boot=200)
    assert small.constant or small.c1 * 128 ** small.i < 0.1


def test_pure_noise_is_inconclusive_either_way():
    rng = np.random.default_rng(5)
    x = np.repeat(T, 3)
    y = 1e-2 * np.exp(rng.normal(0, 0.8, len(x)))
    fit = SC.fit_scaling(x, y, n_boot=300)
    assert SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL)[0] == S.INCONCLUSIVE
    assert SC.scaling_verdict(fit, 0.0, S.FLAT_TOL)[0] == S.INCONCLUSIVE


def test_flat_claims():
    flat = SC.fit_scaling(*_series(np.full_like(T, 5e6), noise=0.01), n_boot=200)
    assert SC.scaling_verdict(flat, 0.0, S.FLAT_TOL)[0] == S.SUPPORTED
    # a small linear term under a big constant: grows ×1.05 over 32x, within (32)^0.15 = ×1.68
    small = SC.fit_scaling(*_series(5e6 + 250.0 * T, noise=0.002), n_boot=200)
    assert SC.scaling_verdict(small, 0.0, S.FLAT_TOL)[0] == S.SUPPORTED
    grows = SC.fit_scaling(*_series(1e6 + 1e4 * T, noise=0.01), n_boot=200)
    assert SC.scaling_verdict(grows, 0.0, S.FLAT_TOL)[0] == S.CONTRADICTED


def test_too_few_levels_decide_nothing():
    fit = SC.fit_scaling([32, 32, 64, 64], [1.0, 1.0, 2.0, 2.0])
    assert not fit.enough and SC.scaling_verdict(fit, 1.0, 0.25)[0] == S.INCONCLUSIVE
    assert SC.fit_scaling([32, 32], [1.0, 1.1]) is None


def test_crossover_and_text():
    fit = SC.ScalingFit(1.0, 0, c0=2.0, c1=0.5, cv_error=0.0, n=4, levels=4, x_min=2.0, x_max=64.0)
    assert fit.crossover == pytest.approx(4.0, rel=1e-6)
    assert fit.formula("T") == "2 + 0.5·T"
    assert SC.term_text(0.5, 2, "T") == "T^1/2·log2(T)^2" and SC.term_text(0, 0) == "1"
    assert math.isclose(fit.fixed_share_at_min, 2.0 / 3.0)


# ------------------------------------------------------------------ through a results folder

def _verdict(tmp_path, rows, claim_id, subject):
    write_results(tmp_path, rows)
    res = [r for r in evaluate(load_results(tmp_path).ok, n_boot=300) if r.claim.id == claim_id]
    assert len(res) == 1
    return res[0].subject_verdicts[subject], res[0]


def test_affine_step_times_in_a_folder_support_linear_in_T(tmp_path):
    """The measured case that motivated the scaling models: t = c0 + c1·T with c0 = 3× the
    growing part at the smallest T was called 'contradicted (slope 0.56)' by a pure power law."""
    rng = np.random.default_rng(11)
    c1, seqs = 2e-6, (32, 64, 128, 256, 512, 1024)
    rows = [fake_row("classical_mamba", seq_len=t, repeat=r, step_time_median_s=(3 * c1 * 32 + c1 * t)
                     * (1 + 0.01 * rng.standard_normal()), infer_time_median_s=(c1 * 32 + 0.3 * c1 * t))
            for t in seqs for r in (0, 1)]
    v, res = _verdict(tmp_path, rows, "time.linear_T.train", "CMamba")
    assert v == S.SUPPORTED, res.evidence
    (check,) = [c for c in res.checks if c.subject == "CMamba"]
    assert check.n_cells == 12                     # repeats are replicates of one series
    assert "fixed cost" in check.detail and "log–log slope" in check.detail


def test_quadratic_step_times_in_a_folder_contradict_linear_in_T(tmp_path):
    rows = [fake_row("classical_hydra", seq_len=t, seed=s, step_time_median_s=0.05 + 1e-7 * t * t)
            for t in (64, 128, 256, 512, 1024, 2048, 4096) for s in (0, 1)]
    v, res = _verdict(tmp_path, rows, "time.linear_T.train", "CHydra")
    assert v == S.CONTRADICTED, res.evidence


def test_circuit_share_decides_dominated_by(tmp_path):
    rows = []
    for q, share in ((2, 0.3), (4, 0.7), (6, 0.9)):
        for r in (0, 1, 2):
            rows.append(fake_row("quantum_mamba_gated", n_qubits=q, repeat=r, circuit_probe_steps=4,
                                 circuit_share=share + 0.01 * r, step_time_median_s=0.01))
            rows.append(fake_row("quantum_hydra_gated", n_qubits=q, repeat=r, circuit_probe_steps=4,
                                 circuit_share=0.8 + 0.01 * r, step_time_median_s=0.01))
    write_results(tmp_path, rows)
    (res,) = [r for r in evaluate(load_results(tmp_path).ok, n_boot=200) if r.claim.id == "time.circuit_dominated"]
    # QMambaGated's circuits are a third of the step at q=2: not dominated everywhere
    assert res.subject_verdicts["QMambaGated"] == S.CONTRADICTED
    assert res.subject_verdicts["QHydraGated"] == S.SUPPORTED
    assert res.subject_verdicts["QMambaSSM"] == S.INCONCLUSIVE       # no cells
    assert "circuit_probe_steps" in res.subject_evidence["QMambaSSM"]


def test_admissible_terms_lie_within_the_band_asymptotically():
    adm = SC.admissible
    assert adm(1.0, 0, 1.0, 0.25) and adm(0.75, 0, 1.0, 0.25) and adm(1.25, 0, 1.0, 0.25)
    assert adm(0.75, 1, 1.0, 0.25) and adm(0.75, 2, 1.0, 0.25)        # o(T), above T^(3/4)
    assert not adm(1.0, 1, 1.0, 0.25)                                 # T log T is not O(T)
    assert adm(1.0, 1, 1.0, 0.25, log_powers=(0, 1))
    assert not adm(1.25, 1, 1.0, 0.25) and not adm(2 / 3, 0, 1.0, 0.25) and not adm(1.5, 0, 1.0, 0.25)
    assert not adm(0.0, 0, 1.0, 0.25) and not adm(0.0, 2, 1.0, 0.25)


def test_verdict_edges_exact_share_log_growth_and_no_resamples():
    fit = SC.ScalingFit(1.0, 0, c0=0.0, c1=1.0, cv_error=0.0, n=6, levels=6, x_min=32.0, x_max=1024.0)
    fit.picks = {(1.0, 0): 360 / 400, (2.0, 0): 40 / 400}      # exactly 90 %, summed as the code does
    fit.growth = np.full(400, 32.0)
    assert SC.scaling_verdict(fit, 1.0, S.SLOPE_TOL)[0] == S.SUPPORTED
    # a flat claim against pure log growth (y = 1 + log2 x grows x1.75 > bound x1.37 over 8x)
    x = np.repeat(np.array([8, 16, 32, 64], float), 2)
    logfit = SC.fit_scaling(x, 1 + np.log2(x), n_boot=200)
    assert SC.scaling_verdict(logfit, 0.0, S.FLAT_TOL)[0] == S.CONTRADICTED
    bare = SC.fit_scaling(*_series(1e-5 * T), n_boot=0)
    assert SC.scaling_verdict(bare, 1.0, S.SLOPE_TOL)[0] == S.INCONCLUSIVE


def test_accuracy_replicates_are_seeds_not_repeats(tmp_path):
    from analysis.checks import _one_repeat
    import pandas as pd
    rows = pd.DataFrame([fake_row("classical_mamba", seed=0, repeat=r, accuracy=0.5) for r in (2, 0, 1)]
                        + [fake_row("classical_mamba", seed=1, accuracy=0.6)])
    kept = _one_repeat(rows)
    assert sorted(kept["seed"]) == [0, 1] and list(kept[kept["seed"] == 0]["repeat"]) == [0]
