"""Checkpoints of a running cell, and the requests to take one or to stop.

``request_checkpoint()`` and ``request_stop()`` only set flags (safe in a signal handler: a batch
system's pre-emption warning, ``bench.requeue``); the training loop (``bench.measure.train``) reads
them at its next step boundary, all ranks together. ``Checkpointer`` writes and reads the
checkpoints of one attempt under ``DIR/.checkpoints/<cell_id>/``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

_CHECKPOINT_REQUESTED = False


def request_checkpoint() -> None:
    """Ask the running cell to checkpoint at its next step boundary (signal-handler safe: e.g. a
    batch system's pre-emption warning). Has effect only where checkpoints are kept."""
    global _CHECKPOINT_REQUESTED
    _CHECKPOINT_REQUESTED = True


_STOP_REQUESTED = False
PREEMPTED_EXIT = 75     # exit status of a rank stopped by request_stop() (EX_TEMPFAIL: run it again)


class Preempted(SystemExit):
    """Raised on every rank right after the checkpoint that ``request_stop()`` asked for: the batch
    system is about to stop the job. Like Ctrl-C, no row is written; the next run of the cell gets
    the same attempt number and resumes from the checkpoint."""


def request_stop() -> None:
    """Checkpoint at the next step boundary, then stop every rank with ``Preempted`` (no row);
    failures seen meanwhile (a peer that already left) write no row either. Signal-handler safe
    (``bench.requeue`` calls it on SLURM's time-limit / pre-emption signal)."""
    global _STOP_REQUESTED, _CHECKPOINT_REQUESTED
    _STOP_REQUESTED = _CHECKPOINT_REQUESTED = True


def stop_requested() -> bool:
    """Has ``request_stop()`` been called in this process?"""
    return _STOP_REQUESTED


class Checkpointer:
    """Checkpoints of one attempt: ``DIR/.checkpoints/<cell_id>/rank<R>.pt`` (model, optimiser,
    RNG, losses, step times, metrics so far) and ``meta.json`` ({attempt, step, world_size}),
    written at step boundaries every ``every_s`` seconds (None: only when requested). A later run
    of the same attempt number — the next attempt of a cell whose run died without a row gets
    that number again — resumes from it, and its loss curve continues exactly."""

    def __init__(self, results_dir, cell_id: str, rank: int, world_size: int, attempt: int,
                 every_s: float | None):
        self.dir = Path(results_dir) / ".checkpoints" / cell_id
        self.rank, self.world_size, self.attempt, self.every_s = rank, world_size, attempt, every_s
        self.last = time.monotonic()

    def want(self) -> bool:
        return _CHECKPOINT_REQUESTED or (self.every_s is not None and time.monotonic() - self.last >= self.every_s)

    def _meta(self):
        try:
            return json.loads((self.dir / "meta.json").read_text())
        except (OSError, ValueError):
            return None

    def load(self):
        """This rank's state if a complete checkpoint of this attempt exists, else None."""
        import torch
        meta = self._meta()
        if not meta or meta.get("attempt") != self.attempt or meta.get("world_size") != self.world_size:
            return None
        try:
            state = torch.load(self.dir / f"rank{self.rank}.pt", map_location="cpu", weights_only=False)
        except Exception:  # noqa: BLE001 - unreadable: start afresh
            return None
        return state if state.get("step") == meta.get("step") else None

    def save(self, state: dict, barrier) -> None:
        import torch
        global _CHECKPOINT_REQUESTED
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / f"rank{self.rank}.pt"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        barrier()  # every rank's file is complete before the step is declared
        if self.rank == 0:
            meta = self.dir / "meta.json"
            tmp = meta.with_name(f".meta.json.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"attempt": self.attempt, "step": state["step"],
                                       "world_size": self.world_size}))
            os.replace(tmp, meta)
        self.last = time.monotonic()
        _CHECKPOINT_REQUESTED = False

    @staticmethod
    def clear(results_dir, cell_id: str) -> None:
        import shutil
        shutil.rmtree(Path(results_dir) / ".checkpoints" / cell_id, ignore_errors=True)
