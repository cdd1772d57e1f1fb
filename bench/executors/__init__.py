"""Executors: where and how the cells of a sweep run.

``inline`` (in the driver process), ``local`` (fresh processes per cell on this machine); a batch
executor (``slurm``) plugs in as ``bench/executors/slurm.py`` defining a subclass of
``Executor`` named in ``EXECUTORS``. See ``base`` for the interface and the manifest format.
"""
from __future__ import annotations

import importlib
import importlib.util

from .base import CellEvent, Claim, Executor, Submission, claim, read_manifest, write_manifest
from .launchers import RankEnv, detect

# name -> "module:Class"; modules that are not installed are not offered
EXECUTORS = {
    "inline": "bench.executors.inline:InlineExecutor",
    "local": "bench.executors.local:LocalExecutor",
    "slurm": "bench.executors.slurm:SlurmExecutor",
}


def available() -> list[str]:
    out = []
    for name, target in EXECUTORS.items():
        mod = target.split(":")[0]
        try:
            if importlib.util.find_spec(mod) is not None:
                out.append(name)
        except ModuleNotFoundError:
            continue
    return out


def executor_class(name: str) -> type[Executor]:
    from ..errors import UserError
    if name not in available():
        raise UserError(f"--executor {name!r} is not available; choose one of {', '.join(available())}")
    mod, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(mod), cls)


def add_executor_arguments(parser) -> None:
    """Add every available executor's own flags (Executor.add_arguments) to a parser."""
    for name in available():
        executor_class(name).add_arguments(parser)


def run_cell(cell, results_dir, launcher="auto", **kwargs):
    """See bench.train.run_cell (re-exported here: what a launcher calls per rank)."""
    from ..train import run_cell as _run_cell
    return _run_cell(cell, results_dir, launcher, **kwargs)


__all__ = ["Executor", "Submission", "CellEvent", "Claim", "claim", "read_manifest", "write_manifest",
           "RankEnv", "detect", "EXECUTORS", "available", "executor_class", "add_executor_arguments",
           "run_cell"]
