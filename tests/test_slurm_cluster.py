"""SLURM and MPI for real: the dev cluster of `slurm/dev-cluster` (or any SLURM with accounting).

Skipped only when `sbatch` is not on PATH and QSSM_REQUIRE_CLUSTER is unset (tests/cluster_util).
Every cell is tiny (classical_mamba, d_model 8, T=8); slow cells are made slow with QSSM_FAULT
sleeps, which the jobs inherit from the submitting environment. sacct is compared with the rows.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import store
from bench.cell import cell_from_mapping
from bench.executors.base import write_manifest
from bench.executors.launchers import RankEnv
from cluster_util import require_cluster, run_slurm, sacct_state, wait_for_job

REPO = Path(__file__).resolve().parent.parent
TINY = dict(model="classical_mamba", d_model=8, d_state=4, n_layers=1, feature_dim=4, output_dim=2,
            seq_len=8, steps=4, warmup_steps=1, batch_size=4, eval_samples=32)
pytestmark = pytest.mark.cluster


def cell(**kw):
    return cell_from_mapping({**TINY, **kw})


def slow(first: int, last: int, seconds: float = 0.3) -> str:
    """QSSM_FAULT that sleeps at every step in [first, last]."""
    return ";".join(f"sleep@{i},seconds={seconds}" for i in range(first, last + 1))


@pytest.fixture
def slurm_env(monkeypatch):
    """The cluster's environment in os.environ (the executor calls sbatch/sacct itself; jobs
    inherit it, PYTHONPATH included, so they import this checkout)."""
    env = require_cluster()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("PYTHONPATH", str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""))
    monkeypatch.delenv("QSSM_FAULT", raising=False)
    return dict(os.environ)


def qssm(*args, env, timeout=300, check=False):
    r = subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], capture_output=True, text=True,
                       env=env, timeout=timeout)
    if check:
        assert r.returncode == 0, f"qssm {args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r


# the sweep files below start with TINY's model (the keys up to output_dim)
TINY_MODEL_YAML = "".join(f"{k}: {TINY[k]}\n" for k in
                          ("model", "d_model", "d_state", "n_layers", "feature_dim", "output_dim"))


def reference_curve(c, tmp_path):
    """The loss curve of the same cell run here, uninterrupted."""
    from bench.train import run_cell
    ref = tmp_path / "reference"
    run_cell(c, ref, RankEnv.single("inline"))
    return json.loads(store.read_results(ref).df.iloc[0]["loss_curve"])


# ---------------------------------------------------------------------------------------------
def test_sweep_as_job_arrays_failing_task_leaves_siblings_alone(slurm_env, tmp_path):
    """`qssm sweep --executor slurm`: an array of 3 one-rank cells (one fails) and a 2-rank DDP
    cell in a second array; rows match sacct, the DDP cell matches a local run."""
    sweep = tmp_path / "arr.yaml"
    sweep.write_text(TINY_MODEL_YAML + "steps: 4\nwarmup_steps: 1\nbatch_size: 4\neval_samples: 32\n"
                     "zip:\n  seq_len: [6, 8, 10, 8]\n  world_size: [1, 1, 1, 2]\n")
    env = {**slurm_env, "QSSM_FAULT": "raise@2,seq_len=10"}
    res = tmp_path / "res"
    t0 = time.monotonic()
    r = qssm("sweep", sweep, "--executor", "slurm", "--profile", "local", "--results", res, env=env)
    took = time.monotonic() - t0
    assert r.returncode == 1, r.stdout + r.stderr          # one cell failed
    got = store.read_results(res)
    df = got.df.set_index("seq_len")
    assert len(df) == 4 and sorted(df["status"]) == ["failed", "ok", "ok", "ok"]
    assert "InjectedFault" in df.loc[10, "error"] and df.loc[10, "steps_run"] == 2
    assert set(df["launcher"]) == {"submitit"} and set(df["requeues"]) == {0}
    # rows against accounting: every array task COMPLETED (the failure is a row, not a job failure)
    env_of = {got.df.loc[i, "cell_id"]: got.env[got.df.loc[i, "file"]] for i in got.df.index}
    # (a group of one cell is a plain job: submitit submits arrays of two or more)
    ids = {f"{e['slurm_array_job_id']}_{e['slurm_array_task_id']}" if e["slurm_array_job_id"] else e["slurm_job_id"]
           for e in env_of.values()}
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 2       # two submissions
    # (the sweep returns once the rows are written; the jobs may still be exiting)
    states = {i: wait_for_job(i, slurm_env, timeout=60) for i in ids}
    assert set(states.values()) == {"COMPLETED"}, states
    ddp = got.df[got.df["world_size"] == 2].iloc[0]
    assert ddp["status"] == "ok" and env_of[ddp["cell_id"]]["world_size"] == 2
    expected = reference_curve(cell(world_size=2), tmp_path)
    assert json.loads(ddp["loss_curve"]) == pytest.approx(expected, abs=1e-6)
    print(f"\n[timing] 4 cells in 2 arrays: {took:.1f} s")


def test_cancelled_cell_gets_a_row_and_its_sibling_runs_on(slurm_env, tmp_path, monkeypatch):
    from bench.executors.slurm import SlurmExecutor
    monkeypatch.setenv("QSSM_FAULT", "sleep@1,seconds=120,seq_len=8")
    cells = [cell(seq_len=8), cell(seq_len=6)]
    res = store.prepare_results_dir(tmp_path / "res")
    ex = SlurmExecutor("local")
    sub = ex.submit(cells, res)
    slow_job = sub.handle.jobs[0].job_id
    deadline = time.monotonic() + 120
    while (store.read_progress(res, cells[0].cell_id) or {}).get("phase") != "train":
        assert time.monotonic() < deadline, "the slow cell never started"
        time.sleep(0.5)
    run_slurm(["scancel", slow_job], slurm_env)
    t0 = time.monotonic()
    events = []
    out = ex.wait(sub, events.append)
    took = time.monotonic() - t0
    assert out == {cells[0].cell_id: "failed", cells[1].cell_id: "ok"}
    row = store.read_results(res).df.set_index("cell_id").loc[cells[0].cell_id]
    assert row["error"].startswith("cancelled by SLURM (sacct state CANCELLED") and slow_job in row["error"]
    assert sacct_state(slow_job, slurm_env) == "CANCELLED"
    assert not (res / ".checkpoints" / cells[0].cell_id).exists()
    assert took < 60, f"the cancellation took {took:.0f} s to be recorded"
    fin = [e for e in events if e.kind == "finished" and e.cell == cells[0]]
    assert fin and fin[0].status == "failed"
    print(f"\n[timing] cancellation recorded {took:.1f} s after scancel")


def test_interrupted_cell_is_requeued_and_resumes(slurm_env, tmp_path, monkeypatch):
    """A 2-rank cell pre-empted at step >= 5 (submitit's job._interrupt(timeout=True): SIGUSR2 as
    before a time limit) checkpoints, is requeued and resumes; its loss curve is the uninterrupted
    one and the row counts the requeue."""
    from bench.executors.slurm import SlurmExecutor
    c = cell(world_size=2, steps=24)
    monkeypatch.setenv("QSSM_FAULT", slow(1, 23))
    res = store.prepare_results_dir(tmp_path / "res")
    ex = SlurmExecutor("local")
    sub = ex.submit([c], res)
    job = sub.handle.jobs[0].job
    deadline = time.monotonic() + 120
    while (store.read_progress(res, c.cell_id) or {}).get("step", 0) < 5:
        assert time.monotonic() < deadline, "the cell never reached step 5"
        time.sleep(0.2)
    job._interrupt(timeout=True)
    t0 = time.monotonic()
    out = ex.wait(sub)
    took = time.monotonic() - t0
    assert out == {c.cell_id: "ok"}
    got = store.read_results(res)
    row = got.df.iloc[0]
    assert row["requeues"] == 1 and row["steps_run"] == 24 and row["attempt"] == 1
    meta = got.env[row["file"]]
    assert 5 <= meta["resumed_from_step"] < 24
    monkeypatch.delenv("QSSM_FAULT")
    assert json.loads(row["loss_curve"]) == pytest.approx(reference_curve(c, tmp_path), abs=1e-6)
    out = run_slurm(["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", job.job_id], slurm_env).stdout.split()
    assert out[0] == "REQUEUED" and out[-1] == "COMPLETED", out
    print(f"\n[timing] requeued and resumed from step {meta['resumed_from_step']}: {took:.1f} s after the signal")


def test_no_wait_then_status_then_a_second_sweep_adopts_the_jobs(slurm_env, tmp_path):
    sweep = tmp_path / "nw.yaml"
    sweep.write_text(TINY_MODEL_YAML + "seq_len: 8\nsteps: 4\nwarmup_steps: 1\nbatch_size: 4\neval_samples: 32\n"
                     "grid:\n  seed: [0, 1]\n")
    env = {**slurm_env, "QSSM_FAULT": "sleep@1,seconds=4"}
    res = tmp_path / "res"
    r = qssm("sweep", sweep, "--executor", "slurm", "--results", res, "--no-wait", env=env)
    assert r.returncode == 0 and "follow with `qssm status" in r.stderr, r.stderr
    st = json.loads(qssm("status", res, "--json", env=env, check=True).stdout)
    assert st["slurm"]["jobs"] == 2 and st["slurm"]["sacct"]
    r = qssm("sweep", sweep, "--executor", "slurm", "--results", res, env=env)   # waits; adopts
    assert r.returncode == 0, r.stdout + r.stderr
    records = [json.loads(p.read_text()) for p in sorted((res / ".slurm").glob("*/jobs.json"))]
    first = {j["job_id"] for j in records[0]["jobs"]}
    later = [j for rec in records[1:] for j in rec["jobs"]]
    assert all(j["adopted"] and j["job_id"] in first for j in later)   # nothing submitted twice
    df = store.read_results(res).df
    assert len(df) == 2 and set(df["status"]) == {"ok"}
    r = qssm("status", res, env=env, check=True)
    assert "SLURM: 2 cells" in r.stdout and "2 completed" in r.stdout


@pytest.mark.parametrize("signal_args", [["--signal=USR2"], ["--signal=TERM"]],
                         ids=["usr2-time-limit", "term-to-the-ranks"])
def test_sbatch_script_end_to_end_with_plain_sbatch_and_a_requeue(slurm_env, tmp_path, signal_args):
    """`qssm sbatch` writes the array script; plain `sbatch` runs it. Cell 0 is slow and gets
    SLURM's warning signal (USR2, as before a time limit) or SIGTERM delivered to its ranks (what a
    pre-emption sends them): it checkpoints, exits 75, the script requeues the array task, and it
    resumes. sacct and the rows agree."""
    sweep = tmp_path / "sb.yaml"
    sweep.write_text(TINY_MODEL_YAML + "steps: 20\nwarmup_steps: 1\nbatch_size: 4\neval_samples: 32\n"
                     "world_size: 2\ngrid:\n  seq_len: [8, 6]\n")
    res, jobs = tmp_path / "res", tmp_path / "jobs"
    qssm("sbatch", sweep, "--profile", "local", "-o", jobs, "--results", res, env=slurm_env, check=True)
    script = jobs / "sb.sbatch"
    env = {**slurm_env, "QSSM_FAULT": ";".join(f"sleep@{i},seconds=0.3,seq_len=8" for i in range(1, 20))}
    t0 = time.monotonic()
    job = run_slurm(["sbatch", "--parsable", str(script)], env).stdout.strip().split(";")[0]
    from bench.executors.base import read_manifest
    c0 = read_manifest(jobs / "sb.cells.json").cells[0]
    assert c0.seq_len == 8
    deadline = time.monotonic() + 120
    while (store.read_progress(res, c0.cell_id) or {}).get("step", 0) < 5:
        assert time.monotonic() < deadline, "cell 0 never reached step 5"
        time.sleep(0.2)
    run_slurm(["scancel", *signal_args, f"{job}_0"], slurm_env)
    for i in (0, 1):
        assert wait_for_job(f"{job}_{i}", slurm_env, timeout=180, states=frozenset({"COMPLETED", "FAILED",
                            "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"})) == "COMPLETED"
    took = time.monotonic() - t0
    got = store.read_results(res)
    df = got.df.set_index("seq_len")
    assert set(df["status"]) == {"ok"} and set(df["launcher"]) == {"sbatch"} and len(df) == 2
    assert df.loc[8, "requeues"] == 1 and df.loc[6, "requeues"] == 0
    assert got.env[df.loc[8, "file"]]["resumed_from_step"] >= 5
    hist = run_slurm(["sacct", "-n", "-X", "-D", "-P", "-o", "JobID,State", "-j", job], slurm_env).stdout.split()
    assert f"{job}_0|REQUEUED" in hist and f"{job}_0|COMPLETED" in hist and f"{job}_1|COMPLETED" in hist
    # each row names its array task
    tasks = {got.env[f]["slurm_array_task_id"] for f in df["file"]}
    assert tasks == {"0", "1"}
    log = (jobs / "logs").glob(f"qssm-sb-{job}_0.out")
    assert any("exit code 75" in p.read_text() for p in log)
    print(f"\n[timing] sbatch array of 2 two-rank cells, one requeued: {took:.1f} s")


def _slow_sbatch_task(slurm_env, tmp_path, name: str, steps: int, reach: int, *sbatch_args, body: str = "",
                      fault_opts: str = ""):
    """`qssm sbatch` one tiny cell made slow (0.3 s a step), submit it with plain sbatch and wait
    until it reaches step `reach`; returns (array job id, results folder). ``body``: more sweep
    lines (e.g. world_size and nodes); ``fault_opts``: more QSSM_FAULT options (e.g. ",restart=0")."""
    sweep = tmp_path / f"{name}.yaml"
    sweep.write_text(TINY_MODEL_YAML + f"steps: {steps}\nwarmup_steps: 1\nbatch_size: 4\neval_samples: 32\nseq_len: 8\n"
                     + body)
    res, jobs = tmp_path / "res", tmp_path / "jobs"
    qssm("sbatch", sweep, "--profile", "local", "-o", jobs, "--results", res, *sbatch_args, env=slurm_env, check=True)
    env = {**slurm_env, "QSSM_FAULT": ";".join(f"sleep@{i},seconds=0.3{fault_opts}" for i in range(1, steps))}
    job = run_slurm(["sbatch", "--parsable", str(jobs / f"{name}.sbatch")], env).stdout.strip().split(";")[0]
    from bench.executors.base import read_manifest
    c0 = read_manifest(jobs / f"{name}.cells.json").cells[0]
    deadline = time.monotonic() + 120
    while (store.read_progress(res, c0.cell_id) or {}).get("step", 0) < reach:
        assert time.monotonic() < deadline, f"the cell never reached step {reach}"
        time.sleep(0.2)
    return job, res


def test_a_plain_scancel_of_an_sbatch_task_is_not_requeued(slurm_env, tmp_path):
    """scancel sends SIGTERM: the cell checkpoints and exits 75 as on a pre-emption, but the script
    sees the job cancelled and does not requeue it."""
    job, res = _slow_sbatch_task(slurm_env, tmp_path, "sc", 30, 3)
    run_slurm(["scancel", f"{job}_0"], slurm_env)
    assert wait_for_job(f"{job}_0", slurm_env, timeout=120, states=frozenset({"COMPLETED", "FAILED", "CANCELLED",
                        "TIMEOUT", "NODE_FAIL"})) == "CANCELLED"
    time.sleep(3)
    hist = run_slurm(["sacct", "-n", "-X", "-D", "-P", "-o", "JobID,State", "-j", job], slurm_env).stdout.split()
    assert not any("REQUEUED" in h or "PENDING" in h or "RUNNING" in h for h in hist), hist
    assert not list(res.glob("*.parquet"))


def test_scontrol_requeue_of_a_running_sbatch_task_resumes(slurm_env, tmp_path):
    """`scontrol requeue` (what an operator or a REQUEUE pre-emption does) of a running array task:
    SLURM signals and requeues it; the rerun resumes from a checkpoint (the one the SIGTERM made,
    or the last periodic one) and ends with one ok row that counts the requeue."""
    job, res = _slow_sbatch_task(slurm_env, tmp_path, "rq", 24, 8, "--checkpoint-every-s", "1")
    run_slurm(["scontrol", "requeue", f"{job}_0"], slurm_env)
    deadline = time.monotonic() + 240
    while not list(res.glob("*.parquet")):
        assert time.monotonic() < deadline, "no row after the requeue"
        time.sleep(0.5)
    got = store.read_results(res)
    row = got.df.iloc[0]
    assert row["status"] == "ok" and row["requeues"] >= 1 and row["steps_run"] == 24
    assert got.env[row["file"]].get("resumed_from_step", 0) >= 1
    hist = run_slurm(["sacct", "-n", "-X", "-D", "-P", "-o", "JobID,State", "-j", job], slurm_env).stdout.split()
    assert f"{job}_0|REQUEUED" in hist


# ---------------------------------------------------------------------------------------------
# MPI
# ---------------------------------------------------------------------------------------------
def _mpi_ready():
    env = require_cluster()
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        if os.environ.get("QSSM_REQUIRE_CLUSTER", "").strip() not in ("", "0"):
            pytest.fail("QSSM_REQUIRE_CLUSTER is set but mpi4py is not installed (pip install 'qssm-bench[mpi]')")
        pytest.skip("mpi4py is not installed")
    return env


@pytest.mark.mpi
def test_mpirun_run_cell_launcher_mpi(tmp_path):
    env = _mpi_ready()
    if shutil.which("mpirun", path=env.get("PATH")) is None:
        pytest.fail("mpirun is not on PATH (apt-get install openmpi-bin)")
    env = {**env, "PYTHONPATH": str(REPO), "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}
    c = cell(world_size=2)
    man = write_manifest(tmp_path / "cells.json", [c], tmp_path / "res")
    t0 = time.monotonic()
    r = subprocess.run(["mpirun", "-n", "2", "--oversubscribe", sys.executable, "-m", "bench.cli", "run-cell",
                        str(man), "0", "--launcher", "mpi"], capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    got = store.read_results(tmp_path / "res")
    row = got.df.iloc[0]
    assert row["status"] == "ok" and row["launcher"] == "mpi" and got.env[row["file"]]["world_size"] == 2
    assert json.loads(row["loss_curve"]) == pytest.approx(reference_curve(c, tmp_path), abs=1e-6)
    print(f"\n[timing] mpirun -n 2 run-cell: {time.monotonic() - t0:.1f} s")


@pytest.mark.mpi
def test_srun_mpi_pmix_run_cell_launcher_mpi(tmp_path):
    env = _mpi_ready()
    env = {**env, "PYTHONPATH": str(REPO)}
    c = cell(world_size=2, seed=3)
    man = write_manifest(tmp_path / "cells.json", [c], tmp_path / "res")
    t0 = time.monotonic()
    r = subprocess.run(["srun", "--mpi=pmix", "-n", "2", "--cpus-per-task=1", sys.executable, "-m", "bench.cli",
                        "run-cell", str(man), "0", "--launcher", "mpi"], capture_output=True, text=True, env=env,
                       timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    got = store.read_results(tmp_path / "res")
    row = got.df.iloc[0]
    meta = got.env[row["file"]]
    assert row["status"] == "ok" and row["launcher"] == "mpi" and meta["world_size"] == 2 and meta["slurm_job_id"]
    print(f"\n[timing] srun --mpi=pmix -n 2 run-cell: {time.monotonic() - t0:.1f} s")


def test_a_refused_submission_is_one_line(slurm_env, tmp_path):
    sweep = tmp_path / "gpu.yaml"
    sweep.write_text("model: classical_mamba\nd_model: 8\nfeature_dim: 4\noutput_dim: 2\nseq_len: 8\nsteps: 3\nwarmup_steps: 1\n")
    r = qssm("sweep", sweep, "--executor", "slurm", "--profile", "gpu-generic", "--results", tmp_path / "res",
             env=slurm_env)     # the dev cluster has no partition `gpu`
    assert r.returncode == 2, r.stdout + r.stderr
    assert "qssm: error: sbatch refused the array of 1 cells" in r.stderr and "Traceback" not in r.stderr
    assert not list((tmp_path / "res").glob("*.parquet"))
