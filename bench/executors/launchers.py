"""Where a rank learns who it is: rank, world size, local rank and how to rendezvous.

``detect(launcher)`` reads, in this order for ``launcher="auto"``:

- submitit (``SUBMITIT_EXECUTOR`` set): ``submitit.helpers.TorchDistributedEnvironment``;
- torchrun style (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``; also what
  ``bench.mpi.export_mpi_env`` exports for ``--launcher mpi``);
- ``mpirun`` (OpenMPI sets ``OMPI_COMM_WORLD_SIZE``): as ``--launcher mpi``, rank and world
  size from mpi4py's ``COMM_WORLD`` (``bench.mpi.export_mpi_env``);
- a SLURM job step (``srun``: ``SLURM_STEP_ID``, ``SLURM_PROCID``, ``SLURM_NTASKS``); the
  rendezvous is the first node of the step on a port derived from the job id;
- otherwise one process (``inline``), which ``run_cell`` turns into a local process group of
  ``world_size`` spawned ranks when the cell needs more than one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

LAUNCHERS = ("auto", "inline", "local", "torchrun", "submitit", "sbatch", "mpi")


@dataclass(frozen=True)
class RankEnv:
    rank: int                  # global rank
    world_size: int            # ranks in the process group
    local_rank: int            # rank on this node (picks cuda:LOCAL_RANK)
    local_world_size: int      # ranks on this node (share its cores)
    launcher: str              # inline, local, torchrun, submitit, sbatch or mpi
    init_method: str | None = None   # torch.distributed init_method (None when world_size == 1)
    cpus: int | None = None    # CPUs given to this rank by the launcher (None: share the node's)

    @classmethod
    def single(cls, launcher: str = "inline") -> "RankEnv":
        return cls(0, 1, 0, 1, launcher)


def _int(name: str, default=None):
    v = os.environ.get(name)
    try:
        return int(v) if v not in (None, "") else default
    except ValueError:
        return default


def first_host(nodelist: str) -> str:
    """First host of a SLURM hostlist: 'gpu[07-09,12],cpu1' -> 'gpu07'."""
    m = re.match(r"^([^\[,]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        return nodelist
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    return prefix + re.split(r"[-,]", ranges)[0]


def _slurm_cpus():
    return _int("SLURM_CPUS_PER_TASK")


def _from_torchrun_env(launcher: str) -> RankEnv:
    world = _int("WORLD_SIZE", 1)
    return RankEnv(rank=_int("RANK", 0), world_size=world, local_rank=_int("LOCAL_RANK", 0),
                   local_world_size=_int("LOCAL_WORLD_SIZE", world), launcher=launcher,
                   init_method="env://" if world > 1 else None, cpus=_slurm_cpus())


def _from_submitit() -> RankEnv:
    try:
        import submitit.helpers
    except ImportError as exc:  # pragma: no cover - submitit is a core dependency
        raise RuntimeError("launcher=submitit needs submitit: pip install submitit") from exc
    env = submitit.helpers.TorchDistributedEnvironment()
    env.export(set_cuda_visible_devices=False)
    return RankEnv(rank=env.rank, world_size=env.world_size, local_rank=env.local_rank,
                   local_world_size=env.local_world_size, launcher="submitit",
                   init_method="env://" if env.world_size > 1 else None, cpus=_slurm_cpus())


def tasks_per_node(spec: str | None, node_index: int = 0) -> int | None:
    """SLURM's tasks-per-node list ('2(x2),1' = 2 on each of two nodes, then 1) for one node."""
    if not spec:
        return None
    counts = []
    for part in spec.split(","):
        m = re.fullmatch(r"\s*(\d+)(?:\(x(\d+)\))?\s*", part)
        if not m:
            return None
        counts += [int(m.group(1))] * int(m.group(2) or 1)
    return counts[node_index] if 0 <= node_index < len(counts) else None


def _from_slurm_step() -> RankEnv:
    world = _int("SLURM_NTASKS", 1)
    nodelist = os.environ.get("SLURM_STEP_NODELIST") or os.environ.get("SLURM_JOB_NODELIST") or "localhost"
    port = 20000 + (_int("SLURM_JOB_ID", 0) * 7 + _int("SLURM_STEP_ID", 0)) % 20000
    node = _int("SLURM_NODEID", 0)
    local_world = (tasks_per_node(os.environ.get("SLURM_STEP_TASKS_PER_NODE"), node)
                   or tasks_per_node(os.environ.get("SLURM_TASKS_PER_NODE"), node)
                   or _int("SLURM_NTASKS_PER_NODE") or world)
    return RankEnv(rank=_int("SLURM_PROCID", 0), world_size=world, local_rank=_int("SLURM_LOCALID", 0),
                   local_world_size=local_world, launcher="sbatch",
                   init_method=f"tcp://{first_host(nodelist)}:{port}" if world > 1 else None, cpus=_slurm_cpus())


def detect(launcher: str = "auto") -> RankEnv:
    if launcher not in LAUNCHERS:
        from ..errors import UserError
        raise UserError(f"--launcher {launcher!r} is not allowed; choose one of {', '.join(LAUNCHERS)}")
    if launcher == "mpi" or (launcher == "auto" and os.environ.get("OMPI_COMM_WORLD_SIZE")
                             and "RANK" not in os.environ):
        from ..mpi import export_mpi_env
        export_mpi_env()
        return _from_torchrun_env("mpi")
    if launcher == "submitit" or (launcher == "auto" and os.environ.get("SUBMITIT_EXECUTOR")):
        return _from_submitit()
    if launcher == "torchrun" or (launcher == "auto" and "RANK" in os.environ and "WORLD_SIZE" in os.environ
                                  and "MASTER_ADDR" in os.environ):
        return _from_torchrun_env("torchrun")
    if launcher == "sbatch" or (launcher == "auto" and "SLURM_STEP_ID" in os.environ
                                and "SLURM_PROCID" in os.environ):
        return _from_slurm_step()
    return RankEnv.single("local" if launcher == "local" else "inline")


def threads_for(env: RankEnv, requested: int = 0) -> int:
    """Intra-op threads for one rank: the cell's num_threads if > 0; else $QSSM_NUM_THREADS, else
    the launcher's CPUs per task, else this process's usable cores divided among the ranks on the
    node (at least 1)."""
    if requested and requested > 0:
        return requested
    forced = _int("QSSM_NUM_THREADS")
    if forced and forced > 0:
        return forced
    if env.cpus:
        return max(1, env.cpus)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, env.local_world_size))
