"""Cells that survive SLURM time limits and pre-emption: checkpoint, stop, requeue, resume.

The pieces (the checkpoints themselves are ``bench.checkpoints.Checkpointer``):

- every rank of a cell run by SLURM saves model, optimiser, RNG state and step to
  ``DIR/.checkpoints/<cell_id>/`` every ``checkpoint_every_s`` seconds (default
  ``DEFAULT_CHECKPOINT_EVERY_S``), at step boundaries, all ranks together;
- SLURM sends ``SIGUSR2`` to every rank ``signal_delay_s`` before the time limit (``--signal``;
  submitit's ``job._interrupt()`` does the same by hand). On pre-emption it sends ``SIGTERM``
  (then ``SIGKILL`` after the partition's ``GraceTime``), or ``SIGUSR2`` where the site sets
  ``preempt_send_user_signal``. The handler installed here takes both: it calls
  ``bench.checkpoints.request_stop()``, and at the next step boundary every rank saves a
  checkpoint and leaves with ``Preempted`` (exit status 75), writing no row — within the grace
  time when a step (and a checkpoint) is shorter than it;
- the job is requeued — by submitit (``CellJob.checkpoint`` returns a ``DelayedSubmission``,
  ``submitit.helpers.Checkpointable``) or by the sbatch script ``qssm sbatch`` writes
  (``scontrol requeue`` when ``srun`` exits 75);
- when it runs again the attempt gets the same number (it left no row), resumes from the
  checkpoint and records ``requeues`` = ``$SLURM_RESTART_COUNT``.
"""
from __future__ import annotations

import os
import signal
import threading
import time

try:
    from submitit.helpers import Checkpointable, DelayedSubmission
except ImportError:  # pragma: no cover - submitit is a core dependency
    Checkpointable, DelayedSubmission = object, None

DEFAULT_CHECKPOINT_EVERY_S = 300.0   # periodic checkpoints of cells run by SLURM
STOP_SIGNAL = signal.SIGUSR2          # what SLURM sends before the time limit (sbatch --signal)
STOP_SIGNALS = (signal.SIGUSR2, signal.SIGTERM)  # ... and SIGTERM on pre-emption (GraceTime, then KILL)
STOP_WAIT_S = 60.0                    # how long rank 0 waits for the checkpoint before requeueing anyway
KILL_WAIT_S = 120.0                   # how long a stopped rank waits for SLURM to end the job


def install_stop_handler(sigs=STOP_SIGNALS, chain: bool = True) -> None:
    """On each of ``sigs``: ask the running cell to checkpoint and stop
    (``bench.checkpoints.request_stop``); then call the handler installed before (submitit's,
    which requeues the job on SIGUSR2 and only logs SIGTERM), if any."""
    from .train import request_stop

    for sig in ((sigs,) if isinstance(sigs, int) else sigs):
        previous = signal.getsignal(sig)

        def handler(signum, frame, previous=previous):
            request_stop()
            if chain and callable(previous):
                previous(signum, frame)

        signal.signal(sig, handler)


def job_ending() -> bool:
    """Whether SLURM is already ending this job (not RUNNING: COMPLETING after a plain scancel,
    which sends SIGTERM too, or after a pre-emption). Such a job is not requeued by us: a cancelled
    job stays cancelled; a pre-empted one SLURM requeues itself where PreemptMode says so."""
    import subprocess
    job = os.environ.get("SLURM_JOB_ID")
    if not job:
        return False
    try:
        out = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    import re
    m = re.search(r"JobState=([A-Z_]+)", out)
    return bool(m) and m.group(1) != "RUNNING"


def _restart_count() -> int:
    try:
        return int(os.environ.get("SLURM_RESTART_COUNT") or 0)
    except ValueError:
        return 0


class CellJob(Checkpointable):
    """What one SLURM array task runs, on each of its ``world_size`` tasks (ranks): one cell.

    Requeue-able (``submitit.helpers.Checkpointable``): on SIGUSR2 submitit calls
    ``checkpoint()`` on rank 0, which asks the cell to checkpoint and stop, waits for it (at most
    ``stop_wait_s``), and hands submitit this same callable to run again; the rerun resumes from
    the checkpoint. The cell itself runs in a worker thread so that the main thread can take the
    signal while a step runs. Returns ``{cell_id, attempt, status, error, rank, requeues}``.

    Packed (``cell`` a list of one-rank cells, profile ``pack: true``): the job has one SLURM task
    per GPU, and task p runs cell p alone (world size 1, ``cuda:SLURM_LOCALID``).
    """

    def __init__(self, cell, results_dir: str, checkpoint_every_s: float | None = DEFAULT_CHECKPOINT_EVERY_S,
                 stop_wait_s: float = STOP_WAIT_S):
        self.cell = [dict(c) for c in cell] if isinstance(cell, (list, tuple)) else dict(cell)
        self.results_dir = str(results_dir)
        self.checkpoint_every_s = checkpoint_every_s
        self.stop_wait_s = stop_wait_s
        self._thread = None
        self._box: dict = {}

    # submitit pickles the callable again when it requeues it: leave the run-time state out
    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_thread", "_box")}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._thread, self._box = None, {}

    def __call__(self) -> dict:
        from .cell import cell_from_mapping
        from .executors.launchers import RankEnv
        from .train import Preempted, run_cell
        launcher = "submitit"
        mine = self.cell
        if isinstance(mine, list):   # packed: this task's own cell, alone on its GPU
            task = int(os.environ.get("SLURM_PROCID", "0") or 0)
            if task >= len(mine):
                return {"cell_id": None, "status": "idle", "rank": task}
            mine = mine[task]
            local = int(os.environ.get("SLURM_LOCALID", str(task)) or task)
            launcher = RankEnv(0, 1, local, 1, "submitit", cpus=int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or None)
        cell = cell_from_mapping({k: v for k, v in mine.items() if k != "cell_id"})
        requeues = _restart_count()
        install_stop_handler()
        box = self._box = {}

        def work():
            try:
                box["out"] = run_cell(cell, self.results_dir, launcher, requeues=requeues,
                                      checkpoint_every_s=self.checkpoint_every_s)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                box["exc"] = exc

        self._thread = threading.Thread(target=work, name="qssm-cell", daemon=True)
        self._thread.start()
        while self._thread.is_alive():
            self._thread.join(0.5)   # short waits: the main thread takes SLURM's signals
        rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")) or 0)
        exc = box.get("exc")
        if isinstance(exc, Preempted):
            if job_ending():       # scancel / pre-emption: stopped at a checkpoint, not requeued by us
                raise exc
            if rank == 0:
                # stopped at another rank's request: take the requeue path as if signalled here
                os.kill(os.getpid(), STOP_SIGNAL)
            deadline = time.monotonic() + KILL_WAIT_S
            while time.monotonic() < deadline:   # SLURM requeues the job and kills this rank
                time.sleep(0.5)
            raise exc
        if exc is not None:
            raise exc
        out = box["out"]
        return {"cell_id": out.cell_id, "attempt": out.attempt, "status": out.status, "error": out.error,
                "skipped_reason": out.skipped_reason, "rank": rank, "requeues": requeues}

    def checkpoint(self, *args, **kwargs):
        """Called by submitit (rank 0, in its SIGUSR2 handler): stop the cell at a checkpoint and
        return the submission to requeue. If the cell finishes meanwhile, the requeued run finds
        its row and returns at once. A signal that comes before the cell started (SLURM may warn up to
        a minute early, e.g. while the job still imports torch) just requeues it: nothing to stop,
        and importing here could meet modules the interrupted main thread has half imported."""
        t = self._thread
        if t is not None:
            from .checkpoints import request_stop   # fully imported: the cell runs
            request_stop()
            t.join(self.stop_wait_s)
        return DelayedSubmission(self, *args, **kwargs)

