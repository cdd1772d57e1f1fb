"""`qssm analyze A B`: two machines' folders side by side, each verdict per machine."""
from __future__ import annotations

from analysis import cli
from analysis.fabricate import planted_rows, write_results


def test_two_machines_side_by_side(tmp_path, capsys):
    fast, slow = tmp_path / "h100", tmp_path / "a100"
    from analysis.fabricate import TIME_SCALE
    write_results(fast, planted_rows(seeds=(0, 1)))
    write_results(slow, planted_rows(seeds=(0, 1), time_scale={m: 2 * v for m, v in TIME_SCALE.items()},
                                     time_T=2.0))     # the second machine: quadratic in T
    out = tmp_path / "cmp"
    assert cli.main([str(fast), str(slow), "--out", str(out), "--bootstrap", "200"]) == 0
    text = (out / "report.md").read_text()
    assert "| claim | implementation | h100 | a100 |" in text
    row = next(l for l in text.splitlines() if l.startswith("| `time.linear_T.train` |"))
    assert row.count("✓ supported") == 1 and row.count("✗ contradicted") == 1   # per machine
    assert (out / "h100" / "report.md").is_file() and (out / "a100" / "report.md").is_file()
    assert (out / "machines_time_vs_T.png").is_file()
    # at T=32 the second machine is planted twice as slow (scale 2, (T/32)^2 = 1)
    line = next(l for l in text.splitlines() if l.startswith("| CMamba | 32 |"))
    assert line.rstrip(" |").endswith("2.00×")
    printed = capsys.readouterr().out
    assert "h100:" in printed and "a100:" in printed


def test_compare_refuses_a_report_folder_inside_results(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        write_results(d, planted_rows(models=("classical_mamba",)))
    assert cli.main([str(a), str(b), "--out", str(a / "cmp"), "--bootstrap", "200"]) == 2
