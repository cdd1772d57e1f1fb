"""Ranks within a node vs across nodes (analysis.ranks, plots.plot_world_size, the report's
"Scaling over ranks" table): efficiencies against the one 1-rank baseline, the across ÷ within
ratio, and rows counted by the hosts that ran them."""
from __future__ import annotations

import argparse
import math
import tempfile

import pandas as pd
import pytest

from analysis import catalog as C
from analysis import cli
from analysis import plots as P
from analysis import ranks as RK
from analysis.checks import prepare
from analysis.fabricate import fake_row, write_results
from analysis.io import load_results

M = "classical_mamba"


def _rows():
    """1 rank: 90 and 110 samples/s (median 100); 2 ranks on one node: 180 (efficiency 0.9);
    2 ranks on 2 nodes: 150 (0.75, 150/180 = 0.833 of within); 4 ranks on one node: 360 (0.9);
    a 4-rank row that says nodes=1 but whose hosts are two: 280, counted across nodes (0.7,
    280/360 = 0.778). Another T is its own series (1 rank 50, 2 ranks within 50: 0.5)."""
    return [
        fake_row(M, world_size=1, seed=0, samples_per_s=90.0, hostnames="n1"),
        fake_row(M, world_size=1, seed=1, samples_per_s=110.0),                 # hostnames null
        fake_row(M, world_size=2, nodes=1, samples_per_s=180.0, hostnames="n1,n1"),
        fake_row(M, world_size=2, nodes=2, samples_per_s=150.0, hostnames="n1,n2"),
        fake_row(M, world_size=4, nodes=1, samples_per_s=360.0, hostnames="n1,n1,n1,n1"),
        fake_row(M, world_size=4, nodes=1, seed=1, samples_per_s=280.0, hostnames="n1,n1,n2,n2"),
        fake_row(M, world_size=1, seq_len=200, samples_per_s=50.0),
        fake_row(M, world_size=2, seq_len=200, samples_per_s=50.0),
    ]


def _ok(rows):
    """The ok rows of a results folder holding these rows, read back as the analysis reads them."""
    with tempfile.TemporaryDirectory() as d:
        write_results(d, rows)
        return load_results(d).ok


@pytest.fixture()
def folder(tmp_path):
    d = tmp_path / "results"
    write_results(d, _rows())
    return d


def _point(pts, ws, nodes, seq_len=100):
    series = {100: 0, 200: 1}[seq_len]
    sel = pts[(pts["world_size"] == ws) & (pts["nodes"] == nodes) & (pts["series"] == series)]
    assert len(sel) == 1, pts
    return sel.iloc[0]


def test_nodes_is_a_run_shape_field():
    for m in C.MODEL_NAMES:
        assert "nodes" in C.relevant_fields(m) and "world_size" in C.relevant_fields(m)
    assert set(C.RUN_SHAPE) == {"world_size", "nodes"} and "nodes" in C.RUN_FIELDS
    assert fake_row(M)["nodes"] == 1 and fake_row(M)["hostnames"] is None


def test_node_counts_follow_the_hosts():
    nc = RK.node_counts(pd.DataFrame(_rows()))   # in the rows' order
    assert nc["nodes"].tolist() == [1, 1, 1, 2, 1, 2, 1, 1]
    assert nc["hosts_disagree"].tolist() == [False] * 5 + [True] + [False] * 2
    assert nc["shape"].tolist()[2:6] == ["1×2", "2×1", "1×4", "2×2"]
    odd = RK.node_counts(prepare(_ok([fake_row(M, world_size=3, nodes=2, hostnames="a,a,b")])))
    assert odd["shape"].tolist() == ["2+1"] and not odd["hosts_disagree"].iloc[0]


def test_efficiency_and_cost_of_crossing_nodes(folder):
    pts = RK.scaling_points(load_results(folder).ok)
    assert set(pts["series"]) == {0, 1}            # split by T, never by nodes
    assert _point(pts, 1, 1)["samples_per_s"] == pytest.approx(100.0)
    w2 = _point(pts, 2, 1)
    assert w2["efficiency"] == pytest.approx(0.9) and w2["placement"] == RK.WITHIN
    assert math.isnan(w2["across_within"])
    a2 = _point(pts, 2, 2)
    assert a2["efficiency"] == pytest.approx(0.75) and a2["placement"] == RK.ACROSS
    assert a2["across_within"] == pytest.approx(150 / 180) and a2["shape"] == "2×1"
    # the row that said nodes=1 but ran on two hosts is an across-node point, not pooled within
    w4, a4 = _point(pts, 4, 1), _point(pts, 4, 2)
    assert w4["samples_per_s"] == pytest.approx(360.0) and w4["cells"] == 1
    assert a4["samples_per_s"] == pytest.approx(280.0) and a4["hosts_disagree"] == 1
    assert a4["efficiency"] == pytest.approx(0.7) and a4["across_within"] == pytest.approx(280 / 360)
    assert a4["shape"] == "2×2"
    assert _point(pts, 2, 1, seq_len=200)["efficiency"] == pytest.approx(0.5)


def test_report_table_and_plot(folder):
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.run(p.parse_args([str(folder), "--bootstrap", "200"])) == 0
    out = folder / "_report"
    assert (out / "world_size.png").stat().st_size > 1000
    text = (out / "report.md").read_text()
    assert "## Scaling over ranks" in text
    table = text.split("## Scaling over ranks")[1].split("\n## ")[0]
    lines = [ln for ln in table.splitlines() if ln.startswith("| CMamba")]
    assert len(lines) == 5                          # world size > 1 only
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    by = {(c[1], c[2], c[4]): c for c in cells}
    row = by[("seq_len=100", "2", "2×1")]
    assert row[3] == "across nodes" and row[6] == "150" and row[7] == "0.75" and row[8] == "0.83"
    row = by[("seq_len=100", "2", "1×2")]
    assert row[3] == "within a node" and row[7] == "0.90" and row[8] == "—"
    row = by[("seq_len=100", "4", "2×2")]
    assert row[7] == "0.70" and row[8] == "0.78"
    assert by[("seq_len=200", "2", "1×2")][7] == "0.50"
    assert "1 row(s) name another number of hosts" in table
    assert "Scaling over ranks" not in _report_text_single_rank(folder.parent)


def _report_text_single_rank(tmp):
    d = tmp / "single"
    write_results(d, [fake_row(M, samples_per_s=10.0, seq_len=T) for T in (32, 64)])
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    assert cli.run(p.parse_args([str(d), "--bootstrap", "200", "--no-plots"])) == 0
    return (d / "_report" / "report.md").read_text()


def test_plot_draws_within_solid_and_across_dashed_hollow(folder, tmp_path, monkeypatch):
    figs = []
    real_save = P._save
    monkeypatch.setattr(P, "_save", lambda fig, out, name: (figs.append(fig), real_save(fig, out, name))[1])
    made = P.plot_world_size(prepare(load_results(folder).ok), tmp_path)
    assert [n for n, _ in made] == ["world_size.png"] and (tmp_path / "world_size.png").is_file()
    assert "across nodes" in made[0][1] and "1 rank on 1 node" in made[0][1]
    eff_ax = figs[0].axes[1]
    drawn = [ln for ln in eff_ax.get_lines() if len(ln.get_xdata())]
    solid = [ln for ln in drawn if ln.get_linestyle() == "-" and ln.get_markerfacecolor() != "none"]
    dashed = [ln for ln in drawn if ln.get_linestyle() == "--"]
    assert sorted(tuple(ln.get_xdata()) for ln in solid) == [(1, 2), (1, 2, 4)]
    assert len(dashed) == 1 and list(dashed[0].get_xdata()) == [2, 4]
    assert dashed[0].get_markerfacecolor() == "none"
    assert list(dashed[0].get_ydata()) == pytest.approx([0.75, 0.7])
    labels = {t.get_text() for t in eff_ax.texts}
    assert {"2×1", "2×2"} <= labels
    legend = {t.get_text() for t in eff_ax.get_legend().get_texts()}
    assert RK.WITHIN in legend and any(t.startswith(RK.ACROSS) for t in legend)


def test_nothing_to_plot_and_old_rows(tmp_path):
    rows = [fake_row(M, samples_per_s=10.0, seq_len=T) for T in (32, 64)]
    assert P.plot_world_size(prepare(_ok(rows)), tmp_path) == []
    assert RK.section(_ok(rows)) == []
    # schema 3 rows: no nodes, no hostnames; read as one node
    old = [fake_row(M, world_size=w, nodes=None, samples_per_s=s) for w, s in ((1, 10.0), (2, 16.0))]
    d = tmp_path / "v3"
    write_results(d, old, version=3)
    ok = load_results(d).ok
    assert ok["nodes"].tolist() == [1, 1]
    pts = RK.scaling_points(ok)
    assert pts["placement"].tolist() == [RK.WITHIN, RK.WITHIN]
    assert pts["efficiency"].tolist() == pytest.approx([1.0, 0.8])
