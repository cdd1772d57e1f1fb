"""Precision as a cell setting and divergence located (bench.stability, bench.measure)."""
from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from bench import store
from bench.cell import cell_from_mapping
from bench.errors import UserError
from bench.executors.launchers import RankEnv
from bench.stability import ActivationTracker, Precision, block_modules, grad_norm, locate_divergence
from bench.train import run_cell
from qssm import MODEL_NAMES

TINY = dict(seq_len=8, batch_size=8, steps=4, warmup_steps=1, feature_dim=4, output_dim=3, d_model=8,
            d_state=4, n_layers=1, hidden_dim=8, n_qubits=2, qlcu_layers=1, chunk_size=4, eval_samples=16,
            num_threads=1, lr=0.01)


def run(tmp_path, **kw):
    c = cell_from_mapping({"model": "classical_mamba", **TINY, **kw})
    out = run_cell(c, tmp_path, RankEnv.single("inline"))
    df = store.read_results(tmp_path).df
    return out, df[df.cell_id == c.cell_id].iloc[-1]


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
@pytest.mark.parametrize("model", MODEL_NAMES)
def test_mixed_precision_cells_train_on_cpu(tmp_path, model, precision):
    out, row = run(tmp_path, model=model, precision=precision)
    assert out.status == "ok", row["error"]
    assert row["precision"] == precision and row["dtype"] == "float32"
    assert math.isfinite(row["final_loss"])


def test_precision_fields_normalise_and_refuse_conflicts():
    base = {"model": "classical_mamba", **TINY}
    assert cell_from_mapping({**base, "dtype": "float64"}).precision == "fp64"
    assert cell_from_mapping({**base, "precision": "fp64"}).dtype == "float64"
    plain, fp32 = cell_from_mapping(base), cell_from_mapping({**base, "precision": "fp32"})
    assert plain.cell_id == fp32.cell_id  # older cells keep their ids
    assert cell_from_mapping({**base, "precision": "bf16-mixed"}).cell_id != plain.cell_id
    assert cell_from_mapping({**base, "track_activations": 5}).cell_id != plain.cell_id
    with pytest.raises(UserError, match="precision='fp8' is not allowed; choose one of fp32, fp64, bf16-mixed"):
        cell_from_mapping({**base, "precision": "fp8"})
    with pytest.raises(UserError, match="dtype=float64 is not allowed with precision=bf16-mixed"):
        cell_from_mapping({**base, "precision": "bf16-mixed", "dtype": "float64"})


def test_a_device_without_autocast_for_the_dtype_is_refused(monkeypatch):
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: False)
    with pytest.raises(ValueError, match="precision=bf16-mixed: torch .* has no autocast on cpu"):
        Precision("bf16-mixed", torch.device("cpu"))


# ------------------------------------------------------------------ a planted instability

STATE = {"step": 0}
GROWTH = 60  # the residual stream grows 2^60-fold per step: finite at step 2 (2^120), inf at 3


class Amplifier(nn.Module):
    def forward(self, h):
        return h * (2.0 ** (GROWTH * STATE["step"]))


class Toy(nn.Module):
    def __init__(self, D, O):
        super().__init__()
        self.embed = nn.Linear(D, 8)
        self.blocks = nn.ModuleList([Amplifier(), nn.Linear(8, 8)])
        self.head = nn.Linear(8, O)

    def forward(self, x):  # (B, T, D)
        h = self.embed(x).mean(1)
        for block in self.blocks:
            h = h + block(h)  # a residual stream with no normalisation
        return self.head(h)


def test_planted_instability_is_located(tmp_path, monkeypatch):
    import qssm
    import bench.tasks as tasks

    real_make_task = tasks.make_task

    def make_task(cell):
        task = real_make_task(cell)
        real = task.train_batch

        def train_batch(step, batch):
            STATE["step"] = step
            return real(step, batch)
        task.train_batch = train_batch
        return task

    monkeypatch.setattr(tasks, "make_task", make_task)
    monkeypatch.setattr(qssm, "build_model", lambda name, **kw: Toy(kw["feature_dim"], kw["output_dim"]))
    out, row = run(tmp_path, steps=8, warmup_steps=1, track_activations=1)
    assert out.status == "nan"
    assert row["diverged_step"] == 3 and row["steps_run"] == 4
    assert row["diverged_module"] == "blocks.0" and row["diverged_phase"] == "forward"
    assert "first non-finite: blocks.0 (forward)" in row["error"]
    rms = json.loads(row["activation_rms_max"])
    assert math.isinf(rms["blocks.0"]) and rms["blocks.0:in"] < 1e3  # the stream entering it was small
    curve = json.loads(row["activation_curve"])
    assert [s for s, _ in curve] == [0, 1, 2, 3]  # the failing step was tracked too
    grow = [v["blocks.1:in"] for _, v in curve]  # the residual stream after the amplifier
    assert grow[1] / grow[0] > 2.0 ** 50 and grow[2] / grow[1] > 2.0 ** 50 and math.isinf(grow[3])


def test_replay_finds_a_backward_only_blowup():
    class Clamp(nn.Module):  # finite forward, infinite gradient (d/dx sqrt(x) at x = 0)
        def forward(self, h):
            return torch.sqrt(h * 0.0)

    model = nn.Sequential(nn.Linear(3, 4), Clamp(), nn.Linear(4, 2))
    x, y = torch.randn(5, 3), torch.zeros(5, dtype=torch.long)
    where = locate_divergence(model, x, y, Precision("fp32", torch.device("cpu")), nn.functional.cross_entropy)
    assert where["module"] == "1" and where["phase"] == "backward"
    assert all(p.grad is None for p in model.parameters())


def test_grad_norm_does_not_overflow_where_float32_would():
    p = nn.Parameter(torch.zeros(4))
    p.grad = torch.full((4,), 1e30)
    assert math.isfinite(float(grad_norm([p]))) and float(grad_norm([p])) == pytest.approx(2e30, rel=1e-6)
    assert not math.isfinite(float(torch.linalg.vector_norm(p.grad)))


def test_block_modules_and_tracker_every_k():
    model = Toy(3, 2)
    assert [n for n, _ in block_modules(model)] == ["embed", "blocks.0", "blocks.1", "head"]
    tr = ActivationTracker(model, every=2)
    STATE["step"] = 0
    for step in range(5):
        with tr.step(step):
            model(torch.randn(2, 4, 3))
        tr.flush()
    tr.close()
    assert [s for s, _ in json.loads(tr.curve_json())] == [0, 2, 4]
    assert set(json.loads(tr.maxima_json())) == {"embed", "blocks.0", "blocks.0:in", "blocks.1", "blocks.1:in", "head"}
