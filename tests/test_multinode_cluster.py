"""Cells that span nodes, on a live SLURM of two or more nodes (`slurm/dev-cluster up --nodes 2`).

Every launcher rendezvouses across nodes and gives the 2-node x 1-rank cell the loss curve of the
1-node x 2-rank cell; a rank killed on the second node is one failure row naming that host; a real
time limit and an `scontrol requeue` of a 2-node cell checkpoint, requeue and resume.

Skipped only when `sbatch` is absent and QSSM_REQUIRE_CLUSTER is unset; with QSSM_REQUIRE_CLUSTER
set (CI) a cluster of fewer than two nodes fails these tests instead of skipping them.
"""
from __future__ import annotations

import json
import sys
import time

import pytest

from bench import store
from bench.executors.base import write_manifest
from cluster_util import cluster_required, run_slurm, wait_for_job
from test_slurm_cluster import (TINY_MODEL_YAML, _mpi_ready, _slow_sbatch_task, cell, qssm, reference_curve,  # noqa: F401
                                slurm_env)

pytestmark = pytest.mark.cluster
DONE = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL"})


@pytest.fixture
def nodes(slurm_env):
    """The cluster's node names (at least two, or skip / fail)."""
    names = sorted(set(run_slurm(["sinfo", "-h", "-N", "-o", "%N"], slurm_env).stdout.split()))
    if len(names) < 2:
        msg = f"the cluster has {len(names)} node(s); multi-node tests need 2: slurm/dev-cluster up --nodes 2"
        if cluster_required():
            pytest.fail(msg)
        pytest.skip(msg)
    return names


def _sweep_file(tmp_path, name: str, body: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(TINY_MODEL_YAML + "seq_len: 8\nwarmup_steps: 1\nbatch_size: 4\neval_samples: 32\n" + body)
    return path


def _rows(res):
    got = store.read_results(res)
    return got, got.df


def _check_two_node_row(row, nodes):
    hosts = row["hostnames"].split(",")
    assert row["status"] == "ok", row["error"]
    assert len(hosts) == 2 and len(set(hosts)) == 2 and set(hosts) <= set(nodes), hosts


# ---------------------------------------------------------------------------------------------
def test_submitit_sweep_mixes_one_and_two_node_cells(slurm_env, nodes, tmp_path):
    """One sweep through --executor slurm (submitit): a 1-rank cell, the 1-node x 2-rank cell and
    the 2-node x 1-rank cell (three arrays of three shapes). The 2-node cell's ranks ran on two
    hosts, and its loss curve is the 1-node cell's (same data, same ranks) and the local run's."""
    sweep = _sweep_file(tmp_path, "mix", "steps: 4\nzip:\n  world_size: [1, 2, 2]\n  nodes: [1, 1, 2]\n")
    res = tmp_path / "res"
    t0 = time.monotonic()
    r = qssm("sweep", sweep, "--executor", "slurm", "--results", res, "--set", "network_interface=eth0",
             env=slurm_env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    got, df = _rows(res)
    assert len(df) == 3 and set(df["status"]) == {"ok"}, df[["status", "error"]]
    one = df[(df["world_size"] == 2) & (df["nodes"] == 1)].iloc[0]
    two = df[df["nodes"] == 2].iloc[0]
    _check_two_node_row(two, nodes)
    assert len(set(one["hostnames"].split(","))) == 1
    assert json.loads(two["loss_curve"]) == pytest.approx(json.loads(one["loss_curve"]), abs=1e-6)
    assert json.loads(two["loss_curve"]) == pytest.approx(reference_curve(cell(world_size=2), tmp_path), abs=1e-6)
    assert all(got.env[f]["network_interface"] == "eth0" for f in df["file"])
    arrays = {j["job_id"].split("_")[0] for rec in (res / ".slurm").glob("*/jobs.json")
              for j in json.loads(rec.read_text())["jobs"]}
    assert len(arrays) == 3   # one job array per shape: 1x1, 1x2, 2x1
    print(f"\n[timing] submitit sweep with 1- and 2-node cells: {time.monotonic() - t0:.1f} s")


@pytest.mark.parametrize("launcher", ["sbatch", "mpi"])
def test_sbatch_scripts_run_two_node_cells(slurm_env, nodes, tmp_path, launcher):
    """`qssm sbatch` writes one script per shape (w2 and w2-n2); plain sbatch runs them; ranks
    rendezvous across nodes through SLURM's variables (sbatch) or MPI (srun --mpi=pmix)."""
    if launcher == "mpi":
        _mpi_ready()
    sweep = _sweep_file(tmp_path, "sb", "steps: 4\nworld_size: 2\ngrid:\n  nodes: [1, 2]\n")
    res, jobs = tmp_path / "res", tmp_path / "jobs"
    qssm("sbatch", sweep, "-o", jobs, "--results", res, "--launcher", launcher, env=slurm_env, check=True)
    scripts = sorted(jobs.glob("*.sbatch"))
    assert [p.name for p in scripts] == ["sb-w2-n2.sbatch", "sb-w2.sbatch"]
    text = (jobs / "sb-w2-n2.sbatch").read_text()
    assert "#SBATCH --nodes=2" in text and "#SBATCH --ntasks-per-node=1" in text
    ids = [run_slurm(["sbatch", "--parsable", str(p)], slurm_env).stdout.strip().split(";")[0] for p in scripts]
    for j in ids:
        assert wait_for_job(f"{j}_0", slurm_env, timeout=180, states=DONE) == "COMPLETED"
    _, df = _rows(res)
    assert len(df) == 2 and set(df["launcher"]) == {launcher}
    two, one = df[df["nodes"] == 2].iloc[0], df[df["nodes"] == 1].iloc[0]
    _check_two_node_row(two, nodes)
    assert json.loads(two["loss_curve"]) == pytest.approx(json.loads(one["loss_curve"]), abs=1e-6)


@pytest.mark.mpi
def test_mpirun_with_a_host_file_spans_two_nodes(slurm_env, nodes, tmp_path):
    """mpirun inside a 2-node allocation, ranks placed by a host file (one slot per node)."""
    _mpi_ready()
    c = cell(world_size=2, nodes=2)
    man = write_manifest(tmp_path / "cells.json", [c], tmp_path / "res")
    hostfile = tmp_path / "hosts"
    hostfile.write_text("".join(f"{n} slots=1\n" for n in nodes[:2]))
    cmd = (f"mpirun --hostfile {hostfile} -n 2 {sys.executable} -m bench.cli run-cell {man} 0 --launcher mpi")
    job = run_slurm(["sbatch", "--parsable", "-N", "2", "--ntasks-per-node=1", "-t", "3", "-J", "qssm-mpirun-hosts",
                     "-o", str(tmp_path / "job.out"), "--wrap", cmd], slurm_env).stdout.strip().split(";")[0]
    assert wait_for_job(job, slurm_env, timeout=180, states=DONE) == "COMPLETED", (tmp_path / "job.out").read_text()
    _, df = _rows(tmp_path / "res")
    row = df.iloc[0]
    _check_two_node_row(row, nodes)
    assert row["launcher"] == "mpi"
    assert json.loads(row["loss_curve"]) == pytest.approx(reference_curve(cell(world_size=2), tmp_path), abs=1e-6)


def test_a_killed_rank_is_one_failure_row_naming_its_host(slurm_env, nodes, tmp_path):
    """Rank 1 of the 2-node cell is SIGKILLed at step 2 (on the second node): that cell gets one
    failure row naming rank 1 and its host, the 1-node cell beside it completes, and a rerun with
    --retry-failed completes the killed one."""
    sweep = _sweep_file(tmp_path, "kill", "steps: 6\nworld_size: 2\ngrid:\n  nodes: [1, 2]\n")
    res = tmp_path / "res"
    r = qssm("sweep", sweep, "--executor", "slurm", "--results", res,
             env={**slurm_env, "QSSM_FAULT": "kill@2,rank=1,nodes=2"}, timeout=300)
    assert "1 ok, 1 failed" in r.stdout + r.stderr, r.stdout + r.stderr
    _, df = _rows(res)
    bad, good = df[df["nodes"] == 2].iloc[0], df[df["nodes"] == 1].iloc[0]
    assert good["status"] == "ok" and bad["status"] == "failed" and len(df) == 2
    # the row comes from the surviving rank (hostnames recorded) or, when srun stopped it first, from
    # the driver reading srun's report; either way it names rank 1's node
    hosts = bad["hostnames"].split(",") if isinstance(bad["hostnames"], str) else None
    if hosts:
        assert len(set(hosts)) == 2 and f"rank 1 on {hosts[1]}" in bad["error"], bad["error"]
    else:
        assert any(f"rank 1 on {n}" in bad["error"] for n in nodes), bad["error"]
    r = qssm("sweep", sweep, "--executor", "slurm", "--results", res, "--retry-failed", env=slurm_env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    _, df = _rows(res)
    latest = df.sort_values("attempt").groupby("cell_id").tail(1)
    assert set(latest["status"]) == {"ok"} and len(df) == 3


def test_a_real_time_limit_requeues_and_resumes_a_two_node_cell(slurm_env, nodes, tmp_path, monkeypatch):
    """A 2-node cell in a job with a 2-minute limit and SLURM's warning 30 s before it (SLURM
    sends it up to 60 s early: 30..90 s into the job): the first run is slow (1 s a step for 100
    steps, so it cannot finish before the warning), gets the warning from SLURM itself,
    checkpoints, is requeued and resumes (the rerun does not sleep); one ok row with requeues >= 1
    and the loss curve of an uninterrupted run."""
    from bench.executors.slurm import SlurmExecutor
    from bench.profiles import load_profile
    c = cell(world_size=2, nodes=2, steps=110)
    monkeypatch.setenv("QSSM_FAULT", ";".join(f"sleep@{i},seconds=1,restart=0" for i in range(1, 101)))
    res = store.prepare_results_dir(tmp_path / "res")
    ex = SlurmExecutor(load_profile("local", ["time_min=2"]), signal_delay_s=30, checkpoint_every_s=600)
    t0 = time.monotonic()
    sub = ex.submit([c], res)
    out = ex.wait(sub)
    took = time.monotonic() - t0
    assert out == {c.cell_id: "ok"}
    got, df = _rows(res)
    row = df.iloc[0]
    assert len(df) == 1 and row["requeues"] >= 1 and row["steps_run"] == 110
    _check_two_node_row(row, nodes)
    assert got.env[row["file"]]["resumed_from_step"] >= 1
    monkeypatch.delenv("QSSM_FAULT")
    assert json.loads(row["loss_curve"]) == pytest.approx(reference_curve(c.replace(nodes=1), tmp_path), abs=1e-6)
    job = sub.handle.jobs[0].job_id
    hist = run_slurm(["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", job], slurm_env).stdout.split()
    assert hist[0] == "REQUEUED" and hist[-1] == "COMPLETED", hist
    print(f"\n[timing] 2-node cell through a real 2-minute limit, requeued {row['requeues']}x: {took:.1f} s")


def test_scontrol_requeue_of_a_running_two_node_cell_resumes(slurm_env, nodes, tmp_path):
    """`scontrol requeue` of a running 2-node array task: the rerun resumes from a checkpoint and
    the row (ok, requeues >= 1) ran on two hosts."""
    job, res = _slow_sbatch_task(slurm_env, tmp_path, "rq", 24, 8, "--checkpoint-every-s", "1",
                                 body="world_size: 2\nnodes: 2\n", fault_opts=",restart=0")
    run_slurm(["scontrol", "requeue", f"{job}_0"], slurm_env)
    assert wait_for_job(f"{job}_0", slurm_env, timeout=240, states=DONE) == "COMPLETED"
    got, df = _rows(res)
    row = df.iloc[0]
    assert len(df) == 1 and row["requeues"] >= 1 and row["steps_run"] == 24
    _check_two_node_row(row, nodes)
    assert got.env[row["file"]].get("resumed_from_step", 0) >= 1
    hist = run_slurm(["sacct", "-n", "-X", "-D", "-P", "-o", "JobID,State", "-j", job], slurm_env).stdout.split()
    assert f"{job}_0|REQUEUED" in hist
