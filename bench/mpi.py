"""MPI launcher support: rank and world size from mpi4py's COMM_WORLD, rendezvous over MPI.

Ranks are started by `mpirun -n N` (locally) or `srun --mpi=pmix -n N` (SLURM). Rank 0 picks a
free TCP port on its host and broadcasts host:port over MPI; every rank then exports the
torchrun-style variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), so the torch
process group (gloo on CPU, nccl on CUDA) initialises from the environment as for any launcher.
"""
from __future__ import annotations

import os
import socket

from .errors import UserError


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise UserError("launcher=mpi needs mpi4py and an MPI library: pip install 'qssm-bench[mpi]' "
                        "(and OpenMPI, e.g. apt-get install openmpi-bin libopenmpi-dev)") from exc
    return MPI


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def export_mpi_env() -> tuple[int, int]:
    """Set the torchrun-style environment from MPI; returns (rank, world_size)."""
    MPI = _import_mpi()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    host = socket.gethostname()
    addr = None
    if rank == 0:
        try:
            ip = socket.gethostbyname(host)
        except OSError:
            ip = "127.0.0.1"
        addr = (ip, _free_port())
    addr = comm.bcast(addr, root=0)
    # local rank: position among the ranks on the same host
    hosts = comm.allgather(host)
    local_rank = hosts[:rank].count(host)
    os.environ.update({
        "RANK": str(rank), "WORLD_SIZE": str(size), "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(hosts.count(host)), "MASTER_ADDR": addr[0], "MASTER_PORT": str(addr[1]),
    })
    return rank, size
