"""One training cell in a process group.

``run_cell(cell, results_dir, launcher=...)`` is what every launcher calls, once per rank: it
learns rank and world size from the launcher (``bench.executors.launchers``), joins the process
group (gloo on CPU, nccl on CUDA), agrees on the attempt number (rank 0 holds the cell's lock),
trains, and writes exactly one result row for the attempt — ``ok`` from rank 0, or a failure row
(``oom`` / ``nan`` / ``timeout`` / ``failed``) from whichever rank failed first.

The pieces it uses: ``bench.measure.train`` (the measurement itself), ``bench.checkpoints``
(checkpoints, ``request_checkpoint`` / ``request_stop``) and ``bench.failures`` (failure
classification, injected faults); their public names are importable from here as before.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import store
from .cell import Cell
from .checkpoints import (PREEMPTED_EXIT, Checkpointer, Preempted, request_checkpoint, request_stop,
                          stop_requested)
from .executors.launchers import RankEnv, detect, threads_for
from .failures import PEER_FAILED, CellTimeout, InjectedFault, NanLoss, classify, is_peer_failure
from .measure import N_INFER_REPS, _dist, train

PG_TIMEOUT_S = float(os.environ.get("QSSM_PG_TIMEOUT_S", "300"))


@dataclass
class Outcome:
    cell_id: str
    attempt: int | None
    status: str                 # ok, failed, oom, timeout, nan; or 'skipped' (not run)
    error: str = ""
    path: Path | None = None    # the row written by this process (None if another wrote it)
    skipped_reason: str = ""    # 'done' (an ok row exists) or 'busy' (running elsewhere)


# ---------------------------------------------------------------------------------------------
# one attempt on one rank
# ---------------------------------------------------------------------------------------------
def _utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def make_row(cell: Cell, attempt: int, status: str, error: str, launcher: str, started_at: str,
             wall_time_s: float, metrics: dict, requeues: int = 0) -> dict:
    row = cell.to_dict()
    row.update({k: v for k, v in metrics.items() if not k.startswith("_")})
    row.update(cell_id=cell.cell_id, status=status, error=error or "", attempt=attempt, requeues=requeues,
               launcher=launcher, started_at=started_at, wall_time_s=wall_time_s)
    row.setdefault("steps_run", 0)
    return row


def _init_group(env: RankEnv, cell: Cell):
    import torch
    dist = _dist()
    backend = "nccl" if cell.device == "cuda" and torch.cuda.is_available() else "gloo"
    if backend == "nccl":   # before the first collective (the hosts, the attempt): one GPU per rank
        torch.cuda.set_device(env.local_rank % max(1, torch.cuda.device_count()))
    dist.init_process_group(backend, init_method=env.init_method, rank=env.rank, world_size=env.world_size,
                            timeout=_dt.timedelta(seconds=PG_TIMEOUT_S))
    return dist


def run_cell(cell: Cell, results_dir, launcher="auto", *, attempt: int | None = None, on_step=None,
             force: bool = False, requeues: int = 0, checkpoint_every_s: float | None = None) -> Outcome:
    """Run one attempt of ``cell`` on this rank and record it in ``results_dir``.

    ``launcher``: a launcher name (``auto``, ``inline``, ``local``, ``torchrun``, ``submitit``,
    ``sbatch``, ``mpi``) or a ready ``RankEnv``. A single process asked to run a cell with
    ``world_size > 1`` spawns the ranks on this machine (``bench.executors.local``).
    ``attempt``: given by a supervisor that already holds the cell's lock; when None, rank 0 takes
    the lock, skips the cell if it already has an ``ok`` row (unless ``force``), and numbers the
    attempt. ``on_step(phase, i, n)`` is called on rank 0 as the cell progresses.
    ``checkpoint_every_s`` (default ``$QSSM_CHECKPOINT_EVERY_S``, else none): keep checkpoints of
    the attempt (see ``Checkpointer``); a checkpoint of the same attempt number is always resumed.
    ``requeues`` is recorded in the row.
    """
    if checkpoint_every_s is None and os.environ.get("QSSM_CHECKPOINT_EVERY_S"):
        checkpoint_every_s = float(os.environ["QSSM_CHECKPOINT_EVERY_S"])
    env = launcher if isinstance(launcher, RankEnv) else detect(launcher)
    results_dir = Path(results_dir)
    if env.world_size == 1 and cell.world_size > 1:
        from .executors.local import run_ranks_locally
        return run_ranks_locally(cell, results_dir, attempt=attempt, on_step=on_step, force=force,
                                 launcher="local" if env.launcher in ("inline", "local") else env.launcher)
    import torch

    started_at, t_start = _utcnow(), time.monotonic()
    deadline = t_start + cell.time_budget_s if cell.time_budget_s else None
    threads = threads_for(env, cell.num_threads)
    torch.set_num_threads(threads)
    from .metrics import reset_peak_rss
    reset_peak_rss()
    metrics: dict = {"threads_per_rank": threads}
    cid = cell.cell_id

    def finish(status, error, attempt_no, write: bool):
        row = make_row(cell, attempt_no, status, error, env.launcher, started_at,
                       time.monotonic() - t_start, metrics, requeues)
        gpu = metrics.get("device_name") if cell.device == "cuda" else None
        path = store.write_row(results_dir, row, store.environment(
            env.launcher, gpu, world_size=env.world_size, rank=env.rank, threads_per_rank=threads,
            resumed_from_step=metrics.get("_resumed_from_step"))) if write else None
        return Outcome(cid, attempt_no, status, error, path)

    if env.world_size != cell.world_size:
        msg = (f"the launcher started {env.world_size} ranks but the cell has world_size={cell.world_size}")
        if env.rank == 0:
            return finish("failed", msg, attempt or store.next_attempt(results_dir, cid), True)
        return Outcome(cid, attempt, "failed", msg)

    with contextlib.ExitStack() as stack:
        dist = None
        if env.world_size > 1:
            try:
                dist = _init_group(env, cell)
            except Exception as exc:  # noqa: BLE001 - rendezvous failed: a failure row (rank 0)
                status, text = classify(exc)
                if env.rank == 0:
                    return finish(status, "process group: " + text, attempt or store.next_attempt(results_dir, cid), True)
                return Outcome(cid, attempt, status, text)
            stack.callback(_destroy_group)
        hosts = _gather_hosts(dist, env.world_size)
        metrics["hostnames"] = ",".join(hosts)
        if len(set(hosts)) != cell.nodes:
            msg = (f"the cell has nodes={cell.nodes} but its {env.world_size} rank(s) ran on {len(set(hosts))} "
                   f"host(s) ({', '.join(dict.fromkeys(hosts))}); launch it with --nodes={cell.nodes}")
            if env.rank == 0:
                return finish("failed", msg, attempt or store.next_attempt(results_dir, cid), True)
            return Outcome(cid, attempt, "failed", msg)
        if attempt is None:
            decision = [None, None]
            if env.rank == 0:
                try:
                    stack.enter_context(store.cell_lock(results_dir, cid))
                    state = store.cell_states(results_dir, [cid]).get(cid)
                    if state is not None and state.ok and not force:
                        decision = ["done", None]
                    else:
                        decision = [None, store.next_attempt(results_dir, cid)]
                except store.LockBusy:
                    decision = ["busy", None]
            if dist is not None:
                dist.broadcast_object_list(decision, src=0)
            if decision[0] is not None:
                return Outcome(cid, None, "skipped", skipped_reason=decision[0])
            attempt = decision[1]

        last, last_phase = [0.0], [""]

        def progress(phase, i, n):
            now = time.monotonic()
            if env.rank == 0 and (now - last[0] > 0.2 or i == n or phase != last_phase[0]):
                last_phase[0] = phase
                last[0] = now
                store.write_progress(results_dir, cid, {
                    "cell_id": cid, "attempt": attempt, "phase": phase, "step": i, "steps": n,
                    "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()})
            if on_step is not None and env.rank == 0:
                on_step(phase, i, n)

        progress("build", 0, cell.steps)
        ckpt = Checkpointer(results_dir, cid, env.rank, env.world_size, attempt, checkpoint_every_s)
        try:
            train(cell, env, deadline=deadline, on_step=progress, partial=metrics, checkpoint=ckpt)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - failures are data
            status, text = classify(exc)
            if dist is not None and is_peer_failure(exc):
                text = name_lost_peers(text, hosts, env.rank) + text
            print(f"qssm: cell {cid} attempt {attempt} rank {env.rank}: {status}: {text}", file=sys.stderr)
            if env.launcher != "inline" or os.environ.get("QSSM_DEBUG"):
                traceback.print_exc()  # into the rank's log; inline runs keep the terminal to one line
            if (env.launcher == "local" and is_peer_failure(exc)) or stop_requested():
                # (or the job is being stopped for a requeue: the attempt runs again, no row now)
                # a peer died; our supervisor knows why (exit status) and writes that row instead
                return Outcome(cid, attempt, PEER_FAILED, text)
            out = finish(status, text, attempt, True)
            if env.rank == 0:
                store.clear_progress(results_dir, cid)
                Checkpointer.clear(results_dir, cid)
            return out
        if env.rank == 0:
            out = finish("ok", "", attempt, True)
            store.clear_progress(results_dir, cid)
            Checkpointer.clear(results_dir, cid)
            return out
        return Outcome(cid, attempt, "ok")


def _gather_hosts(dist, world_size: int) -> list[str]:
    """Every rank's host name, in rank order (one all-gather at the start of the cell)."""
    host = socket.gethostname()
    if dist is None:
        return [host]
    hosts = [None] * world_size
    dist.all_gather_object(hosts, host)
    return [str(h) for h in hosts]


def name_lost_peers(text: str, hosts: list[str], rank: int) -> str:
    """'rank 1 on node2 went away: ' when the error names a peer's address (gloo: "Connection closed
    by peer [10.0.0.3]:1234") that is one of the other ranks' hosts; '' when none can be told."""
    import re
    addrs = set(re.findall(r"(\d{1,3}(?:\.\d{1,3}){3})", text))
    if not addrs:
        return ""
    me = hosts[rank] if 0 <= rank < len(hosts) else None
    named = []
    for host in dict.fromkeys(h for h in hosts if h != me):
        try:
            ip = socket.gethostbyname(host)
        except OSError:
            continue
        if ip in addrs:
            ranks = [str(r) for r, h in enumerate(hosts) if h == host]
            named.append(f"rank{'s' if len(ranks) > 1 else ''} {','.join(ranks)} on {host}")
    return f"{'; '.join(named)} went away: " if named else ""


def _destroy_group():
    dist = _dist()
    with contextlib.suppress(Exception):
        if dist.is_initialized():
            dist.destroy_process_group()


__all__ = ["run_cell", "Outcome", "make_row", "train", "N_INFER_REPS", "PG_TIMEOUT_S",
           "request_checkpoint", "request_stop", "Preempted", "PREEMPTED_EXIT", "Checkpointer",
           "NanLoss", "CellTimeout", "InjectedFault", "PEER_FAILED", "classify", "is_peer_failure"]
