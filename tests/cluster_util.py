"""Helpers for tests that need a running SLURM cluster (the dev cluster of `slurm/dev-cluster`).

The skip rule (DESIGN.md): a cluster test is skipped only when `sbatch` is not on PATH AND
`QSSM_REQUIRE_CLUSTER` is unset (or empty / "0"). CI sets `QSSM_REQUIRE_CLUSTER=1`: there the
tests run, and fail when the cluster is not up.

Usage in a test module::

    from cluster_util import require_cluster, run_slurm, wait_for_job

    @pytest.mark.cluster
    def test_something(tmp_path):
        env = require_cluster()            # os.environ + SLURM_CONF, PATH... from env.sh
        job_id = run_slurm(["sbatch", "--parsable", "--wrap", "true"], env).stdout.split(";")[0]
        assert wait_for_job(job_id, env) == "COMPLETED"

or as a fixture: ``from cluster_util import cluster_env`` and take ``cluster_env`` as an argument.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEV_CLUSTER = REPO / "slurm" / "dev-cluster"
DEFAULT_SLURM_DIR = "/tmp/qssm-slurm"

# sacct states after which a job never runs again (a requeued job passes through REQUEUED).
TERMINAL_STATES = frozenset({
    "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
    "PREEMPTED", "BOOT_FAIL", "DEADLINE",
})


def cluster_required() -> bool:
    """True when QSSM_REQUIRE_CLUSTER asks for cluster tests to run (CI)."""
    return os.environ.get("QSSM_REQUIRE_CLUSTER", "").strip() not in ("", "0")


def slurm_dir() -> Path:
    """The dev cluster's scratch folder ($QSSM_SLURM_DIR, default /tmp/qssm-slurm)."""
    return Path(os.environ.get("QSSM_SLURM_DIR") or DEFAULT_SLURM_DIR)


def env_file() -> Path:
    """The file `slurm/dev-cluster up` writes for shells to source."""
    return slurm_dir() / "env.sh"


def cluster_env_from_file(path: Path) -> dict[str, str]:
    """os.environ plus what sourcing `path` (a bash file of exports) sets."""
    out = subprocess.run(
        ["bash", "-c", 'set -a; source "$1" >/dev/null; env -0', "bash", str(path)],
        capture_output=True, timeout=30, env=dict(os.environ),
    )
    if out.returncode != 0:
        raise RuntimeError(f"sourcing {path} failed: {out.stderr.decode(errors='replace')}")
    env = {}
    for item in out.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode()] = v.decode(errors="replace")
    # bash adds a few variables of its own; they do no harm but keep the dict tidy.
    for k in ("_", "SHLVL", "PWD", "OLDPWD"):
        if k in env and k not in os.environ:
            del env[k]
    return env


def require_cluster() -> dict[str, str]:
    """Return the environment for SLURM commands, or skip the test.

    The environment is os.environ with the dev cluster's env.sh applied when that file exists
    (so SLURM_CONF points at the dev cluster); on a real site without env.sh it is os.environ.
    Skips when `sbatch` is not on PATH and QSSM_REQUIRE_CLUSTER is unset; when it is set, a
    missing `sbatch` fails the test instead.
    """
    path = env_file()
    env = cluster_env_from_file(path) if path.is_file() else dict(os.environ)
    if shutil.which("sbatch", path=env.get("PATH")) is None:
        if not cluster_required():
            pytest.skip("no SLURM (sbatch not on PATH); run slurm/dev-cluster up, "
                        "or set QSSM_REQUIRE_CLUSTER=1 to make this a failure")
        pytest.fail("QSSM_REQUIRE_CLUSTER is set but sbatch is not on PATH; run slurm/dev-cluster up")
    if not path.is_file() and cluster_required() and "SLURM_CONF" not in env:
        pytest.fail(f"QSSM_REQUIRE_CLUSTER is set but {path} does not exist; run slurm/dev-cluster up")
    return env


@pytest.fixture
def cluster_env() -> dict[str, str]:
    """Fixture form of require_cluster()."""
    return require_cluster()


def run_slurm(args: list[str], env: dict[str, str], timeout: float = 30,
              check: bool = True) -> subprocess.CompletedProcess:
    """Run a SLURM client command with a timeout; on failure raise with its output."""
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {out.returncode}\n"
                             f"stdout: {out.stdout}\nstderr: {out.stderr}")
    return out


def sacct_state(job_id: str, env: dict[str, str]) -> str:
    """The job's state in accounting ('' while sacct does not know it yet)."""
    out = run_slurm(["sacct", "-n", "-X", "-P", "-j", str(job_id), "-o", "State"], env,
                    timeout=15, check=False)
    if out.returncode != 0:
        return ""
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    # "CANCELLED by 0" -> "CANCELLED"
    return lines[-1].split()[0] if lines else ""


def wait_for_job(job_id: str, env: dict[str, str], timeout: float = 120,
                 states: frozenset[str] = TERMINAL_STATES) -> str:
    """Poll sacct until the job reaches one of `states`; return it (fail after `timeout` s).

    sacct may lag a few seconds behind the job, so polling it (not squeue) is the reliable way
    to see the final state.
    """
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = sacct_state(job_id, env)
        if state in states:
            return state
        time.sleep(0.5)
    pytest.fail(f"job {job_id} not in {sorted(states)} after {timeout} s (last sacct state: {state!r})")
