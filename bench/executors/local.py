"""The local executor: every cell in fresh child processes on this machine, one per rank.

Rank processes are forked from a *fork server* that has already imported torch and the models
(``multiprocessing`` "forkserver" with preload): a rank starts in tens of milliseconds instead of
seconds, from a clean single-threaded parent. Each rank redirects its output to
``DIR/.logs/<cell_id>.a<NNN>.rank<R>.log`` and asks the kernel to kill it if its parent dies
and watches a pipe whose write end only the driver holds, so killing the driver — even with
SIGKILL — leaves no orphan ranks.

Ranks of a multi-rank cell meet through a ``file://`` store in a private temp folder (no ports).
The supervisor (the driver, or ``qssm run-cell`` outside a batch system):

- relays progress from ``DIR/.progress/<cell_id>.json``;
- when one rank fails, gives the others a few seconds to notice and write their rows, then
  stops them;
- at ``time_budget_s`` + grace, kills the ranks (the ranks themselves stop at the first step
  boundary after the budget; the kill catches a step that never ends);
- if the ranks died without writing a row, writes one: ``timeout`` (killed for time), ``oom``
  (a rank was SIGKILLed, which on Linux is most likely the kernel's out-of-memory killer) or
  ``failed`` (exit code / signal and the tail of the rank's log).
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from .. import store
from ..cell import Cell
from .base import CellEvent, MachineExecutor, Submission, attempt_row, claim

FAIL_GRACE_S = 10.0     # after one rank fails, how long the others get before being stopped
PEER_EXIT = 4           # exit status of a rank that failed only because another rank went away
PRELOAD = ["bench.train", "bench.tasks", "bench.metrics", "qssm", "torch.distributed",
           "torch.nn.parallel", "pyarrow.parquet"]

_ctx = None


def _context():
    global _ctx
    if _ctx is None:
        _ctx = mp.get_context("forkserver")
        _ctx.set_forkserver_preload(PRELOAD)
    return _ctx


@contextlib.contextmanager
def _main_hidden():
    """Start children without re-importing the driver's __main__ in them (multiprocessing would
    run the main script again as __mp_main__; ours is a CLI, a test runner, or stdin). The rank
    target lives in this importable module, so the children do not need it."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.pop("__spec__", None)
            main.__dict__.update(saved)


def _time_grace(budget: float) -> float:
    return max(10.0, 0.25 * budget)


# ---------------------------------------------------------------------------------------------
# the rank process
# ---------------------------------------------------------------------------------------------
def _die_with_driver(lifeline) -> None:
    """Never outlive the driver: a thread waits on a pipe whose only write end the driver holds
    (EOF = the driver is gone, however it died) and then kills this rank. Also give up our copy
    of the fork server's keep-alive fd (so the server exits with the driver) and ask for SIGKILL
    when the fork server goes."""
    import threading
    with contextlib.suppress(Exception):
        from multiprocessing import forkserver
        os.close(forkserver._forkserver._forkserver_alive_fd)
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch():
        try:
            while True:
                lifeline.recv()
        except (EOFError, OSError):
            pass
        os.kill(os.getpid(), signal.SIGKILL)
    threading.Thread(target=watch, name="qssm-lifeline", daemon=True).start()


def _rank_main(cell_dict, results_dir, rank, world, init_method, attempt, log_path, launcher, force,
               environ, cwd, lifeline):
    _die_with_driver(lifeline)
    os.environ.clear()
    os.environ.update(environ)
    with contextlib.suppress(OSError):
        os.chdir(cwd)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from ..cell import cell_from_row
    from ..train import run_cell
    from .launchers import RankEnv
    try:
        cell = cell_from_row(cell_dict, check_model=False)  # validated by the driver
        env = RankEnv(rank, world, rank, world, launcher, init_method if world > 1 else None)
        out = run_cell(cell, results_dir, env, attempt=attempt, force=force)
    except KeyboardInterrupt:
        os._exit(130)
    sys.stdout.flush()
    sys.stderr.flush()
    from ..train import PEER_FAILED
    os._exit(0 if out.status in ("ok", "skipped") else PEER_EXIT if out.status == PEER_FAILED else 1)


# ---------------------------------------------------------------------------------------------
# supervision
# ---------------------------------------------------------------------------------------------
def _log_tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    keep = [ln for ln in text if not ln.startswith("USDT:")][-lines:]
    return " | ".join(ln.strip() for ln in keep)[-1500:]


def _signame(code: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(-code).name
    return f"signal {-code}"


def supervise(cell: Cell, results_dir, attempt: int, *, on_step=None, launcher: str = "local",
              force: bool = False) -> str:
    """Run the ranks of one attempt in child processes; return the attempt's status."""
    results_dir = Path(results_dir)
    cid, world = cell.cell_id, cell.world_size
    logs = results_dir / store.LOGS
    logs.mkdir(parents=True, exist_ok=True)
    rdzv = Path(tempfile.mkdtemp(prefix="qssm-rdzv-"))
    init_method = f"file://{rdzv / 'store'}"
    ctx = _context()
    log_paths = [logs / f"{cid}.a{attempt:03d}.rank{r}.log" for r in range(world)]
    procs = []
    environ = dict(os.environ)
    environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    t0 = time.monotonic()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    hard_deadline = t0 + cell.time_budget_s + _time_grace(cell.time_budget_s) if cell.time_budget_s else None
    killed_for_time = False
    first_fail = None
    last_progress = None
    lifeline_r, lifeline_w = ctx.Pipe(duplex=False)  # we hold the only write end
    try:
        for r in range(world):
            p = ctx.Process(target=_rank_main, name=f"qssm-rank{r}",
                            args=(cell.to_dict(), str(results_dir), r, world, init_method, attempt,
                                  str(log_paths[r]), launcher, force, environ, os.getcwd(), lifeline_r))
            with _main_hidden():
                p.start()
            procs.append(p)
        while True:
            alive = [p for p in procs if p.exitcode is None]
            if not alive:
                break
            mp.connection.wait([p.sentinel for p in alive], timeout=0.25)
            now = time.monotonic()
            if on_step is not None:
                info = store.read_progress(results_dir, cid)
                if info and info.get("attempt") == attempt:
                    key = (info.get("phase"), info.get("step"))
                    if key != last_progress:
                        last_progress = key
                        on_step(info.get("phase", ""), int(info.get("step", 0)), int(info.get("steps", 0)))
            if first_fail is None and any(p.exitcode not in (None, 0) for p in procs):
                first_fail = now
            if first_fail is not None and now - first_fail > FAIL_GRACE_S:
                _stop(procs)
            if hard_deadline is not None and now > hard_deadline and not killed_for_time:
                killed_for_time = True
                _stop(procs, sig=signal.SIGKILL)
    except BaseException:
        _stop(procs, sig=signal.SIGKILL)
        raise
    finally:
        shutil.rmtree(rdzv, ignore_errors=True)
        lifeline_r.close()
        lifeline_w.close()
    row = attempt_row(results_dir, cid, attempt)
    if row is not None:
        store.clear_progress(results_dir, cid)
        return row["status"]
    # the ranks left no row: write one from here
    codes = [p.exitcode for p in procs]
    progress = store.read_progress(results_dir, cid) or {}
    where = (f" (last progress: {progress.get('phase')} {progress.get('step')}/{progress.get('steps')})"
             if progress.get("attempt") == attempt else "")
    if killed_for_time:
        status = "timeout"
        error = (f"time budget of {cell.time_budget_s:g} s spent; the ranks were killed after "
                 f"{time.monotonic() - t0:.0f} s{where}")
    else:
        bad = ([(r, c) for r, c in enumerate(codes) if c not in (0, None, PEER_EXIT)]
               or [(r, c) for r, c in enumerate(codes) if c not in (0, None)] or [(0, codes[0])])
        r, c = bad[0]
        if c == PEER_EXIT:
            status = "failed"
            error = f"the ranks lost contact with each other (rank {r}: connection to a peer closed){where}"
        elif c is not None and c < 0 and -c == signal.SIGKILL:
            status = "oom"
            error = (f"rank {r} was killed by SIGKILL, most likely by the kernel's out-of-memory killer{where}")
        else:
            status = "failed"
            how = f"was killed by {_signame(c)}" if c is not None and c < 0 else f"exited with code {c}"
            error = f"rank {r} {how} without writing a result{where}"
        tail = _log_tail(log_paths[r])
        if tail:
            error += f"; log {log_paths[r].name}: {tail}"
    from ..train import Checkpointer, make_row
    row = make_row(cell, attempt, status, error, launcher, started_at, time.monotonic() - t0, {})
    written = store.write_row(results_dir, row, store.environment(launcher, None, world_size=world,
                                                                    written_by="supervisor"))
    store.clear_progress(results_dir, cid)
    Checkpointer.clear(results_dir, cid)
    if written is None:  # a rank's row landed meanwhile
        late = attempt_row(results_dir, cid, attempt)
        return late["status"] if late else status
    return status


def _stop(procs, sig=signal.SIGTERM, wait_s: float = 3.0) -> None:
    for p in procs:
        if p.exitcode is None and p.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, sig)
    deadline = time.monotonic() + wait_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.exitcode is None and p.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            p.join(1.0)


def run_ranks_locally(cell: Cell, results_dir, *, attempt=None, on_step=None, force=False,
                      launcher: str = "local"):
    """``run_cell`` for a multi-rank cell started from a single process: spawn the ranks here."""
    from ..train import Outcome
    results_dir = Path(results_dir)
    if attempt is not None:
        status = supervise(cell, results_dir, attempt, on_step=on_step, launcher=launcher, force=force)
        return Outcome(cell.cell_id, attempt, status, path=store.row_path(results_dir, cell.cell_id, attempt))
    try:
        with store.cell_lock(results_dir, cell.cell_id):
            state = store.cell_states(results_dir, [cell.cell_id]).get(cell.cell_id)
            if state is not None and state.ok and not force:
                return Outcome(cell.cell_id, None, "skipped", skipped_reason="done")
            attempt = store.next_attempt(results_dir, cell.cell_id)
            status = supervise(cell, results_dir, attempt, on_step=on_step, launcher=launcher, force=force)
    except store.LockBusy:
        return Outcome(cell.cell_id, None, "skipped", skipped_reason="busy")
    row = attempt_row(results_dir, cell.cell_id, attempt) or {}
    return Outcome(cell.cell_id, attempt, status, row.get("error", "") or "",
                   store.row_path(results_dir, cell.cell_id, attempt))


# ---------------------------------------------------------------------------------------------
# the executor
# ---------------------------------------------------------------------------------------------
def run_claimed(sub: Submission, on_event, run_one) -> dict[str, str]:
    """Shared loop of the inline and local executors: claim each cell, run it, report events."""
    out: dict[str, str] = {}
    emit = on_event or (lambda ev: None)
    queue = collections.deque(sub.cells)
    waiting: set[str] = set()
    while queue:
        cell = queue.popleft()
        with claim(cell, sub.results_dir, retry_failed=sub.retry_failed) as c:
            if c.skip == "busy":
                # another sweep is running this cell right now: come back to it when the others
                # are done (its row will then be there, or its lock free again)
                queue.append(cell)
                if cell.cell_id not in waiting:
                    waiting.add(cell.cell_id)
                    emit(CellEvent("progress", cell, phase="running elsewhere, waiting"))
                if all(q.cell_id in waiting for q in queue):
                    time.sleep(0.5)
                continue
            if c.skip:
                out[cell.cell_id] = "skipped"
                emit(CellEvent("skipped", cell, status=c.skip))
                continue
            emit(CellEvent("started", cell, attempt=c.attempt))
            t0 = time.monotonic()

            def on_step(phase, i, n, _cell=cell, _a=c.attempt):
                emit(CellEvent("progress", _cell, attempt=_a, phase=phase, step=i, steps=n))

            status = run_one(cell, c.attempt, on_step)
            row = attempt_row(sub.results_dir, cell.cell_id, c.attempt)
            out[cell.cell_id] = status
            emit(CellEvent("finished", cell, attempt=c.attempt, status=status,
                           error=(row or {}).get("error") or "", wall_s=time.monotonic() - t0, row=row))
    return out


class LocalExecutor(MachineExecutor):
    """Cells one after another, each in fresh rank processes on this machine."""
    name = "local"

    def wait(self, submission: Submission, on_event=None) -> dict[str, str]:
        def run_one(cell, attempt, on_step):
            return supervise(cell, submission.results_dir, attempt, on_step=on_step, launcher="local")
        return run_claimed(submission, on_event, run_one)
