"""Reading a results folder, `qssm analyze` end to end, and the report's atomic writing."""
from __future__ import annotations

import argparse
import shutil

import pandas as pd
import pyarrow.parquet as pq
import pytest

from analysis import cli
from analysis import report as R
from analysis.claims import CLAIMS
from analysis.errors import AnalysisError
from analysis.fabricate import fake_row, planted_rows, write_results
from analysis.io import load_results
from bench import schema


def _args(results, out=None, **kw):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    argv = [str(results)] + (["--out", str(out)] if out else []) + ["--bootstrap", "200"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([] if v is True else [str(v)])
    return p.parse_args(argv)


@pytest.fixture()
def folder(tmp_path):
    rows = planted_rows(seeds=(0,), seq_lens=(32, 64, 128), qubits=(2, 4, 6), chunks=(8, 16, 32))
    rows += planted_rows(models=("classical_mamba",), world_size=2, qubits=(), chunks=())
    rows.append(fake_row("quantum_hydra_ssm", seq_len=512, status="oom", error="CUDA out of memory\ntrace"))
    rows.append(fake_row("quantum_mamba_gated", seq_len=512, status="timeout", error="over budget"))
    d = tmp_path / "results"
    write_results(d, rows)
    return d


# ------------------------------------------------------------------------------------ reading
def test_load_merges_and_keeps_every_status(folder):
    res = load_results(folder)
    assert res.schema_version == schema.SCHEMA_VERSION
    assert len(res.rows) == res.n_files and not res.problems
    assert set(res.rows["status"]) == {"ok", "oom", "timeout"}
    assert len(res.ok) == len(res.rows) - 2
    assert str(res.rows["seq_len"].dtype) == "Int64" and str(res.rows["model"].dtype) == "string"


def test_mixed_schema_versions_are_refused(folder):
    write_results(folder, [fake_row("classical_mamba", seq_len=7)], version=schema.SCHEMA_VERSION + 1)
    with pytest.raises(AnalysisError, match="mixes result schema versions"):
        load_results(folder)


def test_other_schema_version_is_refused(tmp_path):
    write_results(tmp_path, [fake_row("classical_mamba")], version=schema.SCHEMA_VERSION + 1)
    with pytest.raises(AnalysisError, match="schema version"):
        load_results(tmp_path)


def test_corrupt_and_foreign_files_are_reported_not_fatal(folder):
    (folder / "torn.parquet").write_bytes(b"PAR1 not really")
    pd.DataFrame({"a": [1]}).to_parquet(folder / "foreign.parquet")
    res = load_results(folder)
    assert len(res.problems) == 2
    assert any("torn.parquet" in p for p in res.problems)
    assert any("foreign.parquet" in p and "schema_version" in p for p in res.problems)


def test_hidden_and_underscore_paths_are_skipped(folder):
    (folder / ".tmp").mkdir()
    (folder / ".tmp" / "partial.parquet").write_bytes(b"half")
    (folder / "_report").mkdir()
    (folder / "_report" / "x.parquet").write_bytes(b"junk")
    res = load_results(folder)
    assert not res.problems


@pytest.mark.parametrize("make", ["missing", "empty", "all_corrupt"])
def test_unusable_folders(tmp_path, make):
    d = tmp_path / "r"
    if make != "missing":
        d.mkdir()
    if make == "all_corrupt":
        (d / "a.parquet").write_bytes(b"x")
    with pytest.raises(AnalysisError):
        load_results(d)


def test_reads_harness_style_files_with_nulls(tmp_path):
    # int columns that hold nulls come back from pyarrow as floats; they are coerced back
    row = fake_row("classical_mamba", step_time_median_s=0.1)
    from analysis.fabricate import to_table
    table = to_table([row])
    pq.write_table(table, tmp_path / "abcdef012345.a001.parquet")
    res = load_results(tmp_path)
    assert pd.isna(res.rows.loc[0, "n_qubits"]) and res.rows.loc[0, "d_model"] == 128


# ----------------------------------------------------------------------------------- the CLI
def test_analyze_writes_report_csv_and_plots(folder, capsys):
    assert cli.run(_args(folder)) == 0
    out = folder / "_report"
    names = {p.name for p in out.iterdir()}
    assert {"report.md", "claims.csv", "time_vs_T.png", "mem_vs_T.png", "time_vs_qubits.png",
            "time_vs_chunk.png", "world_size.png", "accuracy_vs_T.png", "params.png"} <= names
    text = (out / "report.md").read_text()
    for c in CLAIMS:
        assert f"`{c.id}`" in text
    for section in ("## Claims", "## How verdicts are decided", "## Plots", "## Claims lacking data",
                    "## Runs that did not finish ok", "## Environment", "## Not checked"):
        assert section in text
    assert "CUDA out of memory" in text and "| oom | 1 |" in text
    assert "![time_vs_T.png](time_vs_T.png)" in text
    assert "cpu/float32 · scan=chunked · quantum=torch" in text
    csv = pd.read_csv(out / "claims.csv")
    assert set(csv["claim_id"]) == {c.id for c in CLAIMS}
    assert set(csv["claim_verdict"]) <= {"supported", "contradicted", "inconclusive"}
    assert {"implementation", "device", "scan", "quantum_backend", "estimate", "ci_lo", "ci_hi",
            "cells_to_add"} <= set(csv.columns)
    printed = capsys.readouterr().out
    assert "report:" in printed and "verdicts:" in printed
    # the results folder still reads with pandas, report inside
    assert len(pd.read_parquet(folder)) == len(load_results(folder).rows)


def test_analyze_out_and_rerun_replaces_stale_plots(folder, tmp_path):
    out = tmp_path / "deep" / "rep"
    assert cli.run(_args(folder, out)) == 0
    (out / "mine.txt").write_text("keep me")
    assert (out / "world_size.png").exists()
    assert cli.run(_args(folder, out, no_plots=True)) == 0
    assert not (out / "world_size.png").exists()           # stale plot of ours removed
    assert (out / "mine.txt").read_text() == "keep me"      # nothing else touched
    assert "No plot could be drawn" in (out / "report.md").read_text() or "![" not in (out / "report.md").read_text()


def test_failure_leaves_previous_report_untouched(folder, tmp_path, monkeypatch):
    out = tmp_path / "rep"
    assert cli.run(_args(folder, out, no_plots=True)) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a, **k):
        raise RuntimeError("disk on fire")
    monkeypatch.setattr(R, "render", boom)
    with pytest.raises(RuntimeError):
        cli.run(_args(folder, out))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rep.tmp")]


def test_user_errors(tmp_path, folder):
    with pytest.raises(AnalysisError, match="does not exist"):
        cli.run(_args(tmp_path / "nope"))
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(AnalysisError, match="not a folder"):
        cli.run(_args(folder, f))
    with pytest.raises(AnalysisError, match="bootstrap"):
        cli.run(_bad_boot(folder))
    assert issubclass(AnalysisError, ValueError)


def _bad_boot(folder):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    return p.parse_args([str(folder), "--bootstrap", "5"])


def test_python_m_analysis_prints_one_line_errors(tmp_path, capsys):
    assert cli.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analysis: error:") and err.count("\n") == 1


def test_qssm_dispatches_analyze(folder, tmp_path):
    bench_cli = pytest.importorskip("bench.cli")
    try:
        rc = bench_cli.main(["analyze", str(folder), "--out", str(tmp_path / "o"), "--no-plots",
                             "--bootstrap", "200"])
    except ModuleNotFoundError as exc:  # a dependency of the dispatcher missing in this checkout
        pytest.skip(str(exc))
    assert rc == 0 and (tmp_path / "o" / "report.md").exists()


def test_only_ok_rows_folder_with_no_ok_rows(tmp_path):
    write_results(tmp_path / "r", [fake_row("classical_mamba", status="failed", error="x")])
    assert cli.run(_args(tmp_path / "r")) == 0
    text = (tmp_path / "r" / "_report" / "report.md").read_text()
    assert "0 supported" in text and "| failed | 1 |" in text


def test_default_out_is_inside_results_and_ignored_by_readers(folder):
    assert R.default_out(folder) == folder / "_report"
    shutil.rmtree(folder / "_report", ignore_errors=True)


def test_rows_with_nulls_in_model_task_or_metrics_do_not_break_anything(tmp_path):
    rows = planted_rows(models=("classical_mamba", "classical_hydra"), qubits=(), chunks=())
    odd = fake_row("classical_mamba", seq_len=96)
    odd.update(model=None, task=None, step_time_median_s=None)
    rows.append(odd)
    rows.append(fake_row("classical_hydra", seq_len=48, task=None, peak_mem_train_bytes=0.0))
    write_results(tmp_path / "r", rows)
    assert cli.run(_args(tmp_path / "r")) == 0
    assert "(unknown)" in set(load_results(tmp_path / "r").rows["model"])


def test_report_notes_mixed_code_versions(tmp_path):
    from analysis.fabricate import ENV
    rows = planted_rows(models=("classical_mamba",), qubits=(), chunks=())
    write_results(tmp_path / "r", rows[:2], env={**ENV, "git_sha": "a" * 40})
    write_results(tmp_path / "r", rows[2:], env={**ENV, "git_sha": "b" * 40, "git_dirty": True})
    assert cli.run(_args(tmp_path / "r", no_plots=True)) == 0
    text = (tmp_path / "r" / "_report" / "report.md").read_text()
    assert "2 different git commits" in text and "uncommitted changes" in text


def test_out_inside_results_must_not_break_read_parquet(folder):
    with pytest.raises(AnalysisError, match="must start with '_'"):
        cli.run(_args(folder, out=folder / "report"))
    assert not (folder / "report").exists()
    assert cli.run(_args(folder, out=folder / "_mine", no_plots=True)) == 0
    assert len(pd.read_parquet(folder)) > 0
