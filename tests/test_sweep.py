"""Sweep files: grid, zip, per-model blocks, exclude rules, de-duplication, and bad input."""
import textwrap

import pytest
import yaml

from bench.errors import UserError
from bench.sweep import load_sweep, parse_sweep

BASE = dict(steps=3, warmup_steps=1, batch_size=4, feature_dim=4, output_dim=2, d_model=8, d_state=4,
            n_layers=1, hidden_dim=8, n_qubits=2, qlcu_layers=1, eval_samples=16)


def sweep(**doc):
    used = set(doc.get("grid", {}))
    for z in (doc.get("zip") if isinstance(doc.get("zip"), list) else [doc.get("zip", {})]):
        used |= set(z)
    return parse_sweep({**{k: v for k, v in BASE.items() if k not in used}, **doc}, source="t.yaml")


def test_grid_is_a_cartesian_product_in_file_order():
    s = sweep(model="classical_mamba", grid={"seq_len": [8, 16, 32], "seed": [0, 1]})
    assert [(c.seq_len, c.seed) for c in s.cells] == [(8, 0), (8, 1), (16, 0), (16, 1), (32, 0), (32, 1)]
    assert len({c.cell_id for c in s.cells}) == 6 and s.n_points == 6


def test_zip_goes_in_lockstep_and_multiplies_with_the_grid():
    s = sweep(model="classical_mamba", grid={"seed": [0, 1]}, zip={"d_model": [8, 16], "batch_size": [4, 8]})
    assert [(c.seed, c.d_model, c.batch_size) for c in s.cells] == [
        (0, 8, 4), (0, 16, 8), (1, 8, 4), (1, 16, 8)]
    two = sweep(model="classical_mamba", zip=[{"d_model": [8, 16]}, {"seq_len": [4, 6, 8]}])
    assert len(two.cells) == 6


def test_models_list_all_and_per_model_blocks():
    s = sweep(model="all", grid={"seq_len": [8, 16]}, chunk_size=4,
              models={"quantum_mamba_gated": {"grid": {"chunk_size": [2, 4]}, "hidden_dim": 16},
                      "classical_mamba": {"seq_len": 32}})
    by = {}
    for c in s.cells:
        by.setdefault(c.model, []).append(c)
    assert len(by) == 6
    assert sorted((c.seq_len, c.chunk_size) for c in by["quantum_mamba_gated"]) == [(8, 2), (8, 4), (16, 2), (16, 4)]
    assert {c.hidden_dim for c in by["quantum_mamba_gated"]} == {16}
    assert {c.chunk_size for c in by["quantum_hydra_gated"]} == {4}
    assert [c.seq_len for c in by["classical_mamba"]] == [32]   # the block replaced the grid axis
    assert len(by["classical_hydra"]) == 2


def test_fields_a_model_ignores_do_not_multiply_its_cells():
    s = sweep(model=["classical_mamba", "quantum_mamba_gated"], grid={"chunk_size": [2, 4, 8], "n_qubits": [2, 3]})
    counts = {}
    for c in s.cells:
        counts[c.model] = counts.get(c.model, 0) + 1
    assert counts == {"classical_mamba": 1, "quantum_mamba_gated": 6}
    assert s.n_duplicates == 5 and s.n_points == 12


def test_models_may_come_from_blocks_and_zip():
    s = sweep(models={"classical_mamba": {}, "classical_hydra": {"seq_len": 4}})
    assert [c.model for c in s.cells] == ["classical_mamba", "classical_hydra"]
    z = sweep(zip={"model": ["classical_mamba", "classical_hydra", "classical_mamba"], "seq_len": [4, 5, 6]})
    assert [(c.model, c.seq_len) for c in z.cells] == [("classical_mamba", 4), ("classical_mamba", 6), ("classical_hydra", 5)]


def test_exclude_rules():
    s = sweep(model=["classical_mamba", "quantum_mamba_gated"], grid={"seq_len": [4, 8], "chunk_size": [4, 16]},
              exclude=[{"model": "classical_mamba", "seq_len": 8},
                       {"chunk_size": 16, "seq_len": [4]},       # as written: 16, though clamped to 4
                       {"n_qubits": None}])                       # classical models read null
    got = sorted((c.model, c.seq_len, c.chunk_size) for c in s.cells)
    assert got == [("quantum_mamba_gated", 4, 4), ("quantum_mamba_gated", 8, 4), ("quantum_mamba_gated", 8, 8)]
    assert s.warnings == []
    w = sweep(model="classical_mamba", exclude=[{"seq_len": 999}])
    assert w.warnings == ["t.yaml: exclude[0] matches no cell"]
    blk = sweep(model=["classical_mamba", "classical_hydra"], grid={"seq_len": [4, 8]},
                models={"classical_hydra": {"exclude": [{"seq_len": 8}]}})
    assert len(blk.cells) == 3


def test_load_from_file_and_shipped_name(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({**BASE, "model": "classical_mamba", "lr": "1e-3"}))
    s = load_sweep(p)
    assert len(s.cells) == 1 and s.cells[0].lr == 0.001
    smoke = load_sweep("smoke")
    models = {c.model for c in smoke.cells}
    assert len(models) == 6
    assert {c.seq_len for c in smoke.cells} == {8, 16} and {c.world_size for c in smoke.cells} == {1, 2}
    assert {c.n_qubits for c in smoke.cells} - {None} == {2, 4}
    assert {c.chunk_size for c in smoke.cells} - {None} == {4, 8}


BAD = [
    ("", "empty"),
    ("- 1\n- 2\n", "expected a mapping"),
    ("model: classical_mamba\nseq_len: [8\n", "invalid YAML at line"),
    ("model: classical_mamba\nseqlen: 8\n", "unknown cell field 'seqlen' (did you mean 'seq_len'?)"),
    ("model: classical_mamba\ngrid: {seqlen: [8]}\n", "unknown cell field 'seqlen'"),
    ("model: classical_mamba\ngrid: {seq_len: []}\n", "grid.seq_len: the list is empty"),
    ("model: classical_mamba\ngrid: {}\n", "grid: expected a non-empty mapping"),
    ("model: classical_mamba\ngrid: {seq_len: 8}\n", "grid.seq_len: expected a list"),
    ("model: classical_mamba\ngrid: [8]\n", "grid: expected a non-empty mapping"),
    ("model: classical_mamba\nseq_len: [8, 16]\n", "put lists under grid: or zip:"),
    ("model: classical_mamba\ngrid: {seq_len: [8, zero]}\n", "grid.seq_len[1]: seq_len='zero'"),
    ("model: classical_mamba\ngrid: {seq_len: [8, -1]}\n", "seq_len=-1"),
    ("model: classical_mamba\nlr: -0.1\n", "lr=-0.1"),
    ("model: classical_mamba\nsteps: 2.5\n", "steps=2.5"),
    ("model: classical_mamba\ndropout: yes\n", "dropout=True"),
    ("model: classical_mambo\n", "did you mean 'classical_mamba'"),
    ("model: [classical_mamba, nope]\n", "model[1]: model='nope'"),
    ("seq_len: 8\n", "no model given"),
    ("model: classical_mamba\nmodels: {nope: {}}\n", "models: model='nope'"),
    ("model: classical_mamba\nmodels: {classical_hydra: {}}\n", "classical_hydra is not among this sweep's models"),
    ("model: classical_mamba\nmodels: {classical_mamba: {model: x}}\n", "model cannot be set inside"),
    ("model: classical_mamba\nmodels: {classical_mamba: {grid: {seqlen: [1]}}}\n", "models.classical_mamba: grid: unknown cell field"),
    ("model: classical_mamba\nmodels: {classical_mamba: 3}\n", "models.classical_mamba: expected a mapping"),
    ("model: classical_mamba\nzip: {seq_len: [8, 16], seed: [1]}\n", "seq_len has 2, seed has 1"),
    ("model: classical_mamba\nzip: []\n", "zip: expected"),
    ("model: classical_mamba\nseq_len: 8\ngrid: {seq_len: [8]}\n", "seq_len is set twice"),
    ("model: classical_mamba\nexclude: {seq_len: 8}\n", "exclude: expected a list"),
    ("model: classical_mamba\nexclude: [{seqln: 8}]\n", "exclude[0]: unknown cell field 'seqln'"),
    ("model: classical_mamba\nexclude: [{model: classical_mamba}]\n", "all 1 combinations are excluded"),
    ("model: classical_mamba\nbatch_size: 3\nworld_size: 2\n", "batch_size=3"),
    ("model: quantum_mamba_gated\nn_qubits: 1\n", "n_qubits=1"),
    ("model: classical_mamba\ntask: nope\n", "task='nope'"),
    ("model: classical_mamba\ngrid: {model: [classical_hydra]}\n", "model is set twice"),
    ("model: classical_mamba\ndescription: [1]\n", "description: expected text"),
    ("model: classical_mamba\n3: 4\n", "keys must be field names"),
]


@pytest.mark.parametrize("text, words", BAD)
def test_bad_sweep_files_fail_with_one_line(tmp_path, text, words):
    p = tmp_path / "bad.yaml"
    p.write_text(textwrap.dedent(text))
    with pytest.raises(UserError) as info:
        load_sweep(p)
    msg = str(info.value)
    assert words in msg, msg
    assert "\n" not in msg
    assert str(p) in msg or "grid" not in text  # the file is named


def test_duplicate_yaml_keys_and_relative_data_files(tmp_path):
    p = tmp_path / "dup.yaml"
    p.write_text("model: classical_mamba\nseq_len: 8\nseq_len: 16\n")
    with pytest.raises(UserError, match="line 3.*'seq_len' is given twice"):
        load_sweep(p)
    import numpy as np
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "d.npz", x=np.ones((10, 3, 5), np.float32), y=np.arange(10) % 2)
    s = tmp_path / "sub" / "s.yaml"
    s.parent.mkdir()
    s.write_text("model: classical_mamba\nbatch_size: 2\ngrid: {task: ['file:../data/d.npz']}\n")
    (c,) = load_sweep(s).cells
    assert c.task == f"file:{(tmp_path / 'data' / 'd.npz').resolve()}" and (c.seq_len, c.feature_dim) == (5, 3)


def test_shipped_nodes_sweep_spans_one_and_two_nodes():
    s = load_sweep("nodes")
    shapes = sorted({(c.world_size, c.nodes) for c in s.cells})
    assert shapes == [(1, 1), (2, 1), (2, 2), (4, 1), (4, 2)]
    assert {c.model for c in s.cells} == {"classical_mamba", "quantum_hydra_ssm"}
