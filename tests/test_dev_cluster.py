"""The development SLURM cluster (slurm/dev-cluster) answers and runs a batch job to completion.

Needs `slurm/dev-cluster up`. Skipped only when sbatch is absent and QSSM_REQUIRE_CLUSTER is unset.
"""
from __future__ import annotations

import subprocess

import pytest

from cluster_util import DEV_CLUSTER, cluster_env, run_slurm, wait_for_job  # noqa: F401 (fixture)

pytestmark = pytest.mark.cluster


def test_dev_cluster_status_reports_all_daemons_up(cluster_env):
    out = subprocess.run([str(DEV_CLUSTER), "status"], env=cluster_env, capture_output=True,
                         text=True, timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    lines = [line.split() for line in out.stdout.splitlines() if line.strip()]
    for daemon in ("munged", "mariadbd", "slurmdbd", "slurmctld"):
        assert any(words[:2] == [daemon, "up"] for words in lines), out.stdout
    # one slurmd per node, each up, and the node table lists the same nodes
    slurmds = {w[0].split("@", 1)[1] for w in lines if w[0].startswith("slurmd@") and w[1] == "up"}
    nodes = set(run_slurm(["sinfo", "-h", "-N", "-o", "%N"], cluster_env).stdout.split())
    assert slurmds == nodes and nodes, out.stdout
    table = {w[0] for w in lines if w[0] in nodes and len(w) >= 3}
    assert table == nodes, out.stdout


def test_each_node_has_its_own_hostname_and_address(cluster_env):
    """A task on every node sees that node's hostname; with several nodes each has its own
    address (a namespace of its own), and the node names resolve everywhere."""
    nodes = sorted(set(run_slurm(["sinfo", "-h", "-N", "-o", "%N"], cluster_env).stdout.split()))
    n = len(nodes)
    out = run_slurm(["srun", f"-N{n}", f"-n{n}", "-t", "1", "bash", "-c",
                     'echo "$(hostname -s) $SLURMD_NODENAME $(getent hosts "$(hostname -s)" | cut -d" " -f1)"'],
                    cluster_env, timeout=90).stdout.split("\n")
    seen = sorted(line.split() for line in out if line.strip())
    assert [s[1] for s in seen] == nodes, seen
    if n > 1:
        assert all(s[0] == s[1] for s in seen), seen            # hostname == node name
        assert len({s[2] for s in seen}) == n, seen              # one address per node


def test_up_refuses_a_bad_node_count(cluster_env):
    out = subprocess.run([str(DEV_CLUSTER), "up", "--nodes", "0"], env=cluster_env, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2 and "--nodes '0' is not allowed; need an integer in 1..64" in out.stderr, out.stderr


def test_sinfo_and_sacct_answer(cluster_env):
    parts = run_slurm(["sinfo", "-h", "-o", "%P %a"], cluster_env).stdout.split()
    assert "debug*" in parts and "up" in parts, parts
    # the node is usable (idle, or busy with other tests' jobs), not down/drained/invalid
    for state in run_slurm(["sinfo", "-h", "-N", "-o", "%T"], cluster_env).stdout.split():
        assert state.rstrip("+") in {"idle", "mixed", "allocated", "completing"}, state
    run_slurm(["sacct", "-n", "-X", "-S", "now-1hours"], cluster_env)


def test_sbatch_wrap_job_completes_in_accounting(cluster_env, tmp_path):
    out = run_slurm(["sbatch", "--parsable", "-J", "qssm-test-wrap", "-t", "2", "-n", "1",
                     "-o", str(tmp_path / "%j.out"), "--wrap", 'echo "ok $SLURM_JOB_ID"'],
                    cluster_env)
    job_id = out.stdout.strip().split(";")[0]
    assert job_id.isdigit(), out.stdout
    assert wait_for_job(job_id, cluster_env, timeout=120) == "COMPLETED"
    assert (tmp_path / f"{job_id}.out").read_text().strip() == f"ok {job_id}"
    exit_code = run_slurm(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "ExitCode"],
                          cluster_env).stdout.split()
    assert exit_code == ["0:0"], exit_code


def test_srun_pmix_starts_two_ranks(cluster_env):
    out = run_slurm(["srun", "--mpi=pmix", "-n", "2", "-t", "1", "bash", "-c",
                     'echo "$SLURM_PROCID/$SLURM_NTASKS"'], cluster_env, timeout=90)
    assert sorted(out.stdout.split()) == ["0/2", "1/2"], out.stdout + out.stderr
