"""The report's training-stability section from planted rows: divergence rates with Wilson
intervals, where runs diverged, the largest stable learning rate, the activation plot, and a
version-1 folder read with its precision taken from dtype."""
from __future__ import annotations

import json

import pytest

from analysis.fabricate import fake_row, write_results
from analysis.io import load_results
from analysis.report import write_report
from analysis.stability import divergence_table, largest_stable_lr, wilson


def _runs():
    rows = []
    # classical_mamba never diverges; quantum_hydra_ssm diverges at lr 3e-3 in 2 of 3 seeds, always at 1e-2
    for model, bad in (("classical_mamba", {}), ("quantum_hydra_ssm", {3e-3: 2, 1e-2: 3})):
        for lr in (1e-3, 3e-3, 1e-2):
            for seed in range(3):
                diverged = seed < bad.get(lr, 0)
                curve = [[s, {"blocks.0": 1.0 * 4 ** s, "norm": 1.0}] for s in range(0, 40 if not diverged else 20, 10)]
                rows.append(fake_row(model, lr=lr, seed=seed, status="nan" if diverged else "ok",
                                     error="nan" if diverged else "", track_activations=10,
                                     diverged_step=17 + seed if diverged else None,
                                     diverged_module="norm" if diverged else None,
                                     diverged_phase="forward" if diverged else None,
                                     activation_curve=json.dumps(curve), accuracy=0.5))
    return rows


def test_wilson_interval():
    lo, hi = wilson(0, 3)
    assert lo == pytest.approx(0.0, abs=1e-12) and hi == pytest.approx(0.5615, abs=1e-3)
    lo, hi = wilson(3, 3)
    assert hi == 1.0 and lo == pytest.approx(0.4385, abs=1e-3)


def test_rates_modules_and_largest_stable_lr(tmp_path):
    write_results(tmp_path, _runs())
    rows = load_results(tmp_path).rows
    table = divergence_table(rows)
    q = table[(table.model == "quantum_hydra_ssm")].set_index("lr")
    assert q.loc[3e-3, "diverged"] == 2 and q.loc[3e-3, "runs"] == 3 and q.loc[1e-3, "diverged"] == 0
    assert q.loc[1e-2, "diverged_steps"] == "17,18,19" and q.loc[1e-2, "modules"] == "norm (3)"
    lrs = largest_stable_lr(table).set_index("model")
    assert lrs.loc["quantum_hydra_ssm", "largest_stable_lr"] == 1e-3
    assert lrs.loc["quantum_hydra_ssm", "first_diverging_lr"] == 3e-3
    assert lrs.loc["classical_mamba", "largest_stable_lr"] == 1e-2


def test_report_has_the_section_and_the_plot(tmp_path):
    write_results(tmp_path / "r", _runs())
    out = write_report(load_results(tmp_path / "r"), tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Training stability" in text and "largest stable lr" in text
    assert "| quantum_hydra_ssm | fp32 | 0.003 | – | 3 | 2 |" in text
    assert (tmp_path / "rep" / "stability_activations.png").is_file()
    assert any(p.name == "stability_activations.png" for p in out["files"])


def test_version_1_folders_are_read_with_precision_from_dtype(tmp_path):
    rows = [fake_row("classical_mamba", dtype="float64"), fake_row("classical_mamba", seed=1)]
    for r in rows:
        del r["precision"], r["track_activations"], r["diverged_step"]
    write_results(tmp_path, rows, version=1)
    res = load_results(tmp_path)
    assert sorted(res.rows["precision"]) == ["fp32", "fp64"]
    assert list(res.rows["track_activations"]) == [0, 0]


def test_time_to_accuracy_ordering_and_curves(tmp_path):
    from analysis.learning import time_to_accuracy

    rows = []
    for model, times in (("classical_mamba", [10.0, 12.0, 14.0]), ("classical_hydra", [5.0, 6.0, None]),
                         ("quantum_mamba_gated", [30.0, 20.0, 25.0])):
        for seed, t in enumerate(times):
            curve = [[50, 0.3, 2.0], [100, 0.96 if t else 0.5, 4.0]]
            rows.append(fake_row(model, seed=seed, seq_len=32, eval_every=50, target_accuracy=0.95,
                                 steps_to_target=100 if t else None, time_to_target_s=t,
                                 eval_curve=json.dumps(curve)))
    write_results(tmp_path / "r", rows)
    table = time_to_accuracy(load_results(tmp_path / "r").rows)
    # every seed of classical_mamba reached it, faster than quantum_mamba_gated; hydra missed once: last
    assert list(table["model"]) == ["classical_mamba", "quantum_mamba_gated", "classical_hydra"]
    assert table.iloc[0]["median_time_s"] == 12.0 and table.iloc[2]["reached"] == 2
    write_report(load_results(tmp_path / "r"), tmp_path / "rep")
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "## Time to accuracy" in text and "| marked_recall | 32 | 0.95 | 1 | classical_mamba | 3/3 |" in text
    assert (tmp_path / "rep" / "accuracy_vs_step.png").is_file()
