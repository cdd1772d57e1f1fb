"""Stop-and-requeue without a cluster: request_stop() checkpoints and leaves without a row, `qssm
run-cell` in a SLURM job exits 75 on SIGUSR2 and the rerun resumes (what the sbatch script does),
and the submitit callable survives its own re-pickling."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cloudpickle
import pytest

from bench import checkpoints, store, train
from bench.cell import cell_from_mapping
from bench.executors.base import write_manifest
from bench.executors.launchers import RankEnv

REPO = Path(__file__).resolve().parent.parent
TINY = dict(model="classical_mamba", d_model=8, d_state=4, n_layers=1, feature_dim=4, output_dim=2,
            seq_len=8, steps=8, warmup_steps=2, batch_size=4, eval_samples=32, dropout=0.2)


@pytest.fixture
def clean_flags(monkeypatch):
    monkeypatch.setattr(checkpoints, "_STOP_REQUESTED", False)
    monkeypatch.setattr(checkpoints, "_CHECKPOINT_REQUESTED", False)


def curve(results_dir):
    return json.loads(store.read_results(results_dir).df.iloc[0]["loss_curve"])


def test_request_stop_checkpoints_then_leaves_without_a_row(tmp_path, clean_flags):
    c = cell_from_mapping(TINY)
    res = tmp_path / "res"

    def on_step(phase, i, n):
        if phase == "train" and i == 1:       # during warm-up: the memory profiler is running
            train.request_stop()
    with pytest.raises(train.Preempted) as info:
        train.run_cell(c, res, RankEnv.single("inline"), on_step=on_step)
    assert info.value.code == train.PREEMPTED_EXIT == 75
    assert not list(res.glob("*.parquet"))
    meta = json.loads((res / ".checkpoints" / c.cell_id / "meta.json").read_text())
    assert meta == {"attempt": 1, "step": 2, "world_size": 1}
    checkpoints._STOP_REQUESTED = False       # a new process, as after a requeue
    out = train.run_cell(c, res, RankEnv.single("inline"), requeues=1)
    assert out.status == "ok" and out.attempt == 1
    got = store.read_results(res)
    assert got.df.iloc[0]["requeues"] == 1 and got.env[got.df.iloc[0]["file"]]["resumed_from_step"] == 2
    ref = tmp_path / "ref"
    train.run_cell(c, ref, RankEnv.single("inline"))
    assert curve(res) == curve(ref)


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGTERM], ids=["usr2-time-limit", "term-preemption"])
def test_run_cell_in_a_slurm_job_exits_75_on_usr2_and_the_rerun_resumes(tmp_path, sig):
    c = cell_from_mapping({**TINY, "steps": 30})
    res = tmp_path / "res"
    man = write_manifest(tmp_path / "cells.json", [c], res)
    env = {**os.environ, "PYTHONPATH": str(REPO), "SLURM_JOB_ID": "4242",
           "QSSM_FAULT": ";".join(f"sleep@{i},seconds=0.2" for i in range(1, 30))}
    for k in ("SLURM_STEP_ID", "SLURM_PROCID", "SLURM_RESTART_COUNT", "SUBMITIT_EXECUTOR", "RANK"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "bench.cli", "run-cell", str(man), "0"]
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (store.read_progress(res, c.cell_id) or {}).get("step", 0) < 4:
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.1)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 75, err
    assert not list(res.glob("*.parquet"))
    step = json.loads((res / ".checkpoints" / c.cell_id / "meta.json").read_text())["step"]
    assert 4 <= step < 30
    env.pop("QSSM_FAULT")
    r = subprocess.run(cmd, env={**env, "SLURM_RESTART_COUNT": "1"}, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = store.read_results(res)
    row = got.df.iloc[0]
    assert row["status"] == "ok" and row["requeues"] == 1 and row["attempt"] == 1 and row["steps_run"] == 30
    assert got.env[row["file"]]["resumed_from_step"] == step
    assert not (res / ".checkpoints" / c.cell_id).exists()


def test_cell_job_pickles_without_its_thread_and_requeues_itself(tmp_path, clean_flags):
    from submitit.helpers import Checkpointable, DelayedSubmission

    from bench.requeue import CellJob
    c = cell_from_mapping(TINY)
    job = CellJob(c.to_dict(), str(tmp_path), checkpoint_every_s=60)
    assert isinstance(job, Checkpointable)
    job._box["x"] = 1
    again = cloudpickle.loads(cloudpickle.dumps(job))
    assert again._thread is None and again._box == {} and again.cell == c.to_dict()
    delayed = job.checkpoint()                # no cell started yet (SLURM's early warning): requeue only
    assert isinstance(delayed, DelayedSubmission) and delayed.function is job
    assert not checkpoints.stop_requested()   # nothing to stop, nothing imported in the handler
    import threading
    job._thread = threading.Thread(target=lambda: None)
    job._thread.start()
    assert isinstance(job.checkpoint(), DelayedSubmission)
    assert checkpoints.stop_requested()       # a started cell is asked to stop at a checkpoint
