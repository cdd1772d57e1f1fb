"""Cells: coercion, validation (one clear message naming field and value), normalisation, ids."""
import pytest

from bench import schema
from bench.cell import CELL_FIELDS, DEFAULTS, Cell, cell_from_mapping, cell_from_row
from bench.errors import UserError

TINY = dict(seq_len=8, batch_size=4, steps=3, warmup_steps=1, feature_dim=4, output_dim=2, d_model=8,
            d_state=4, n_layers=1, hidden_dim=8, n_qubits=2, qlcu_layers=1, eval_samples=16)


def test_fields_are_the_schema_cell_columns():
    assert list(CELL_FIELDS) == schema.CELL_FIELD_NAMES


def test_unused_model_settings_are_normalised_away():
    c = cell_from_mapping({"model": "classical_mamba", "chunk_size": 8, "n_qubits": 6, **{k: v for k, v in TINY.items() if k != "n_qubits"}})
    assert c.chunk_size is None and c.n_qubits is None and c.hidden_dim is None and c.quantum_backend is None
    assert c.d_model == 8 and c.scan == "chunked"
    g = cell_from_mapping({"model": "quantum_mamba_gated", **TINY})
    assert g.d_model is None and g.scan is None and g.chunk_size == 8 and g.qml_device is None
    p = cell_from_mapping({"model": "quantum_mamba_gated", "quantum_backend": "pennylane", **TINY})
    assert p.qml_device == "default.qubit"


def test_same_cell_written_two_ways_has_one_id():
    base = cell_from_mapping({"model": "classical_mamba", **TINY, "lr": 0.001})
    assert cell_from_mapping({"model": "classical_mamba", **TINY, "lr": "1e-3", "chunk_size": 3}).cell_id == base.cell_id
    # text from the command line
    text = {k: str(v) for k, v in {"model": "classical_mamba", **TINY}.items()}
    assert cell_from_mapping(text, from_text=True).cell_id == base.cell_id
    # a chunk longer than the sequence is the whole sequence
    g1 = cell_from_mapping({"model": "quantum_mamba_gated", **TINY, "chunk_size": 8})
    g2 = cell_from_mapping({"model": "quantum_mamba_gated", **TINY, "chunk_size": 64})
    assert g1.cell_id == g2.cell_id and g2.chunk_size == 8
    # the time budget limits a run; it does not change what is measured
    assert cell_from_mapping({"model": "classical_mamba", **TINY, "time_budget_s": 9}).cell_id == base.cell_id
    # anything that changes the result changes the id
    for change in ({"seed": 1}, {"seq_len": 9}, {"world_size": 2}, {"lr": 0.002}, {"num_threads": 1}):
        assert cell_from_mapping({"model": "classical_mamba", **TINY, "lr": 0.001, **change}).cell_id != base.cell_id


def test_cell_id_is_pinned():
    """Delete nothing here casually: a changed id makes every results folder look unfinished."""
    c = Cell(model="classical_mamba", task="adding", seq_len=16, batch_size=8, world_size=2, device="cpu",
             dtype="float32", steps=10, warmup_steps=2, lr=0.001, seed=3, eval_samples=64, num_threads=1,
             time_budget_s=None, n_qubits=None, qlcu_layers=None, feature_dim=4, d_model=16, d_state=4,
             n_layers=1, output_dim=3, dropout=0.0, hidden_dim=None, chunk_size=None, quantum_steps=None,
             quantum_backend=None, qml_device=None, scan="chunked")
    assert c.cell_id == PINNED_ID
    assert len(c.cell_id) == 12 and int(c.cell_id, 16) >= 0
    # 'adding' was redefined (revision 2, bench.tasks.TASK_REVISIONS): only the revision tag in the
    # identity moved its id; the hash of the same fields without the tag is the id first published
    from bench.cell import _cell_id_cached
    ident = c.identity()
    assert ident["task"] == "adding@2"
    assert _cell_id_cached(tuple(sorted({**ident, "task": "adding"}.items()))) == PINNED_ID_REV1


PINNED_ID, PINNED_ID_REV1 = "167d99ff8929", "20dcc700a95a"


def test_round_trip_through_a_row():
    c = cell_from_mapping({"model": "quantum_hydra_ssm", **TINY, "time_budget_s": 30})
    row = {**c.to_dict(), "cell_id": c.cell_id, "status": "ok", "accuracy": 0.5}
    assert cell_from_row(row) == c
    row["time_budget_s"] = float("nan")  # what pandas gives for null
    assert cell_from_row(row).time_budget_s is None


def test_defaults_are_usable():
    c = cell_from_mapping({"model": "classical_hydra"})
    assert c.seq_len == DEFAULTS["seq_len"] and c.model_kwargs()["layout"] == "BTD"
    assert c.model_kwargs()["n_timesteps"] == c.seq_len


@pytest.mark.parametrize("raw, words", [
    ({"model": "classical_mamba", "seqlen": 8}, ["seqlen", "seq_len"]),
    ({"model": "classical_mambo"}, ["model", "classical_mambo", "classical_mamba"]),
    ({}, ["model"]),
    ({"model": "classical_mamba", "seq_len": 0}, ["seq_len=0", ">= 1"]),
    ({"model": "classical_mamba", "seq_len": 2.5}, ["seq_len=2.5", "integer"]),
    ({"model": "classical_mamba", "seq_len": True}, ["seq_len=True", "integer"]),
    ({"model": "classical_mamba", "seq_len": "8"}, ["seq_len='8'", "integer"]),
    ({"model": "classical_mamba", "lr": "fast"}, ["lr='fast'", "number"]),
    ({"model": "classical_mamba", "lr": 0}, ["lr=0", "> 0"]),
    ({"model": "classical_mamba", "lr": float("nan")}, ["lr=", "finite"]),
    ({"model": "classical_mamba", "dropout": 1.0}, ["dropout=1.0", "[0, 1)"]),
    ({"model": "classical_mamba", "device": "tpu"}, ["device='tpu'", "cpu, cuda"]),
    ({"model": "classical_mamba", "dtype": "bfloat16"}, ["dtype='bfloat16'", "float32"]),
    ({"model": "classical_mamba", "batch_size": 5, "world_size": 2}, ["batch_size=5", "world_size=2"]),
    ({"model": "classical_mamba", "steps": 3, "warmup_steps": 3}, ["warmup_steps=3", "steps=3"]),
    ({"model": "classical_mamba", "time_budget_s": -1}, ["time_budget_s=-1", "> 0"]),
    ({"model": "classical_mamba", "task": "copying"}, ["task='copying'", "marked_recall"]),
    ({"model": "classical_mamba", "task": "adding", "seq_len": 1}, ["seq_len=1", "adding"]),
    ({"model": "classical_mamba", "task": "adding", "output_dim": 2}, ["output_dim=2", "adding", ">= 3"]),
    ({"model": "classical_mamba", "feature_dim": 1}, ["feature_dim=1"]),
    ({"model": "classical_mamba", "scan": "fast"}, ["scan='fast'", "chunked"]),
    ({"model": "quantum_mamba_gated", "n_qubits": 1}, ["n_qubits=1", ">= 2"]),
    ({"model": "quantum_mamba_gated", "quantum_backend": "qiskit"}, ["quantum_backend='qiskit'"]),
    ({"model": "quantum_mamba_gated", "n_qubits": None}, ["n_qubits=None"]),
    ({"model": "classical_hydra", "d_model": 1}, ["d_model=1"]),
    ({"model": "quantum_hydra_ssm", "d_model": 4}, ["d_model=4", ">= 8"]),
])
def test_bad_values_name_the_field(raw, words):
    with pytest.raises(ValueError) as info:
        cell_from_mapping(raw)
    msg = str(info.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg, (w, msg)


def test_label_is_short_and_informative():
    c = cell_from_mapping({"model": "quantum_mamba_gated", **TINY, "world_size": 2})
    assert c.label() == "quantum_mamba_gated T=8 q=2 C=8 W=2"
    with pytest.raises(UserError):
        cell_from_mapping({"model": "quantum_mamba_gated", "world_size": 0})


def test_nodes_splits_the_ranks_evenly_and_enters_the_id_only_above_one():
    base = cell_from_mapping({"model": "classical_mamba", **TINY, "world_size": 2})
    assert base.nodes == 1 and "nodes" not in base.identity()
    same = cell_from_mapping({"model": "classical_mamba", **TINY, "world_size": 2, "nodes": 1})
    assert same.cell_id == base.cell_id                       # older cells keep their ids
    two = base.replace(nodes=2)
    assert two.cell_id != base.cell_id and two.identity()["nodes"] == 2 and "nodes=2" in two.label()
    with pytest.raises(UserError, match="nodes=2 is not allowed with world_size=3; .*multiple of nodes"):
        cell_from_mapping({"model": "classical_mamba", **TINY, "batch_size": 3, "world_size": 3, "nodes": 2})
    with pytest.raises(UserError, match="nodes"):
        cell_from_mapping({"model": "classical_mamba", **TINY, "nodes": 0})
