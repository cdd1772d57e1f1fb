"""One training cell in a process group.

``run_cell(cell, results_dir, launcher=...)`` is what every launcher calls, once per rank: it
learns rank and world size from the launcher (``bench.executors.launchers``), joins the process
group (gloo on CPU, nccl on CUDA), agrees on the attempt number (rank 0 holds the cell's lock),
trains, and writes exactly one result row for the attempt — ``ok`` from rank 0, or a failure row
(``oom`` / ``nan`` / ``timeout`` / ``failed``) from whichever rank failed first.

``train(cell, env)`` is the measurement itself, in this order:

1. seed everything from ``cell.seed``; build the model (``layout="BTD"``), cast to ``dtype``;
2. memory of one no-grad forward (``peak_mem_infer_bytes``);
3. wrap in DDP when ``world_size > 1``; AdamW(lr), gradient clipping at 1.0;
4. ``steps`` optimiser steps on the rank's shard of each global batch; the first ``warmup_steps``
   are untimed (on CPU they run under the allocator profiler for ``peak_mem_train_bytes``; the
   first one also counts ``saved_bytes_per_step``); every step all-reduces the loss and two flags
   (non-finite loss or gradient norm; time budget spent) so that all ranks stop together;
5. step times: clock read after ``cuda.synchronize``; the time of a step is the max over ranks;
6. inference time: median of 5 no-grad forwards of one rank batch (max over ranks);
7. held-out accuracy on ``eval_samples`` samples (blocks shared out over the ranks).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import signal
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from . import store
from .cell import Cell
from .executors.launchers import RankEnv, detect, threads_for

N_INFER_REPS = 5
PG_TIMEOUT_S = float(os.environ.get("QSSM_PG_TIMEOUT_S", "300"))


class NanLoss(RuntimeError):
    """The training loss or the gradient norm became NaN or infinite."""


class CellTimeout(RuntimeError):
    """The cell's time budget was spent."""


class InjectedFault(RuntimeError):
    """Raised by QSSM_FAULT (tests)."""


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


@dataclass
class Outcome:
    cell_id: str
    attempt: int | None
    status: str                 # ok, failed, oom, timeout, nan; or 'skipped' (not run)
    error: str = ""
    path: Path | None = None    # the row written by this process (None if another wrote it)
    skipped_reason: str = ""    # 'done' (an ok row exists) or 'busy' (running elsewhere)


# ---------------------------------------------------------------------------------------------
# failure classification
# ---------------------------------------------------------------------------------------------
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator",
             "std::bad_alloc")


PEER_FAILED = "peer-failed"
_PEER_TEXT = ("connection closed by peer", "connection reset by peer", "remote worker crashing",
              "broken pipe", "socket closed")


def is_peer_failure(exc: BaseException) -> bool:
    """Did this rank fail only because another rank went away?"""
    import torch.distributed as dist
    if isinstance(exc, tuple(t for t in (getattr(dist, "DistNetworkError", None),) if t)):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _PEER_TEXT)


def classify(exc: BaseException) -> tuple[str, str]:
    """(status, one-paragraph error text) for an exception raised while a cell ran."""
    import torch
    text = f"{type(exc).__name__}: {exc}".strip()
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        frame = tb[-1]
        text += f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    text = text[:4000]
    if isinstance(exc, NanLoss):
        return "nan", text
    if isinstance(exc, CellTimeout):
        return "timeout", text
    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return "oom", text
    if isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _OOM_TEXT):
        return "oom", text
    return "failed", text


# ---------------------------------------------------------------------------------------------
# fault injection for tests: QSSM_FAULT="kind@step[,rank=R][,model=M][,seconds=S]; ..."
# kinds: raise, nan, oom (a real failed allocation), sleep, kill (SIGKILL this rank), exit
# ---------------------------------------------------------------------------------------------
def _faults(cell: Cell, rank: int):
    spec = os.environ.get("QSSM_FAULT", "").strip()
    out = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        head, *opts = part.split(",")
        kind, _, step = head.partition("@")
        o = dict(x.split("=", 1) for x in opts if "=" in x)
        if "rank" in o and int(o["rank"]) != rank:
            continue
        if "model" in o and o["model"] != cell.model:
            continue
        if "seq_len" in o and int(o["seq_len"]) != cell.seq_len:
            continue
        out.append((kind.strip(), int(step or 0), float(o.get("seconds", 0))))
    return out


def _fire(faults, step: int, loss):
    import torch
    for kind, at, seconds in faults:
        if at != step:
            continue
        if kind == "raise":
            raise InjectedFault(f"injected fault at step {step}")
        if kind == "nan":
            loss = loss * float("nan")
        elif kind == "oom":
            torch.empty(1 << 62, dtype=torch.uint8)  # a real failed allocation
        elif kind == "sleep":
            time.sleep(seconds)
        elif kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "exit":
            os._exit(3)
    return loss


# ---------------------------------------------------------------------------------------------
# the measurement
# ---------------------------------------------------------------------------------------------
def _dist():
    import torch.distributed as dist
    return dist


def train(cell: Cell, env: RankEnv, *, deadline: float | None = None, on_step=None,
          partial: dict | None = None, checkpoint: Checkpointer | None = None) -> dict:
    """Train one cell on this rank (process group already initialised when world_size > 1).
    Returns the metric columns (rank-reduced). ``partial`` is filled as values become known, so a
    failure row can keep them. With ``checkpoint``, resume from and save checkpoints."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from qssm import build_model, count_parameters

    from .metrics import CpuTensorMemory, SavedTensorBytes, device_name, peak_rss_bytes, sync, time_stats
    from .tasks import make_task

    m = partial if partial is not None else {}
    world, rank = env.world_size, env.rank
    dist = _dist() if world > 1 else None
    if cell.device == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError(f"device=cuda but CUDA is not available on {socket.gethostname()}")
        device = torch.device("cuda", env.local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    dtype = getattr(torch, cell.dtype)
    m["device_name"] = device_name(device)
    m["mem_source"] = "cuda" if device.type == "cuda" else "cpu-tensors"
    local_b = cell.batch_size // world
    faults = _faults(cell, rank)

    def allreduce(values, op="sum"):
        t = torch.tensor(values, dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
        if dist is not None:
            dist.all_reduce(t, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return t.tolist()

    def shard(xy):
        x, y = xy
        lo, hi = rank * local_b, (rank + 1) * local_b
        return (torch.from_numpy(np.ascontiguousarray(x[lo:hi])).to(device, dtype),
                torch.from_numpy(np.ascontiguousarray(y[lo:hi])).to(device))

    task = make_task(cell)
    x0, _ = shard(task.train_batch(0, cell.batch_size))
    profiling = device.type == "cpu"
    mem = CpuTensorMemory() if profiling else contextlib.nullcontext()
    phase = mem.phase if profiling else (lambda name: contextlib.nullcontext())
    saved = None
    losses, step_times = [], []
    m["steps_run"] = 0

    def step_fn(model, opt, params, x, y, step):
        logits = model(x)  # x: (b, T, D) -> (b, O)
        loss = F.cross_entropy(logits.float(), y)
        loss = _fire(faults, step, loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss.detach(), gnorm

    with mem:
        with phase("build"):
            torch.manual_seed(cell.seed)
            model = build_model(cell.model, **cell.model_kwargs()).to(device)
            _cast(model, dtype)
        m["n_params"] = count_parameters(model)
        # --- inference memory: one no-grad forward
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        model.eval()
        with phase("infer"), torch.no_grad():
            model(x0)
        if device.type == "cuda":
            m["peak_mem_infer_bytes"] = float(torch.cuda.max_memory_allocated(device))
        model.train()
        # dropout streams differ per rank; identical for the same (seed, rank)
        torch.manual_seed(int(np.random.SeedSequence([cell.seed, 7, rank]).generate_state(1)[0]))
        if dist is not None:
            from torch.nn.parallel import DistributedDataParallel as DDP
            ddp = DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                      static_graph=True)  # copes with the unused parameters some models hold
        else:
            ddp = model
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cell.lr)
        start = 0
        state = checkpoint.load() if checkpoint is not None else None
        ok = allreduce([1.0 if state is not None else 0.0])[0] == world  # all ranks or none
        if state is not None and ok:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            torch.set_rng_state(state["rng_cpu"])
            if device.type == "cuda" and state.get("rng_cuda") is not None:
                torch.cuda.set_rng_state(state["rng_cuda"], device)
            losses.extend(state["losses"])
            step_times.extend(state["step_times"])
            saved = state.get("saved")
            m.update(state.get("metrics", {}))
            start = state["step"]
            m["_resumed_from_step"] = start  # underscore: goes to the file metadata, not a column
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)

        def save_checkpoint(done_steps):
            checkpoint.save({
                "step": done_steps, "model": model.state_dict(), "optimizer": opt.state_dict(),
                "rng_cpu": torch.get_rng_state(),
                "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                "losses": list(losses), "step_times": list(step_times), "saved": saved,
                "metrics": {k: v for k, v in m.items() if k.startswith(("peak_mem", "n_params"))},
            }, barrier=(dist.barrier if dist is not None else (lambda: None)))

        def run_step(step):
            x, y = shard(task.train_batch(step, cell.batch_size))
            sync(device)
            t0 = time.perf_counter()
            loss, gnorm = step_fn(ddp, opt, params, x, y, step)
            sync(device)
            dt = time.perf_counter() - t0
            bad = 0.0 if (math.isfinite(loss.item()) and math.isfinite(float(gnorm))) else 1.0
            late = 1.0 if (deadline is not None and time.monotonic() > deadline) else 0.0
            want = 1.0 if (checkpoint is not None and checkpoint.want()) else 0.0
            stop = 1.0 if _STOP_REQUESTED else 0.0
            total, n_bad, n_late, n_want, n_stop = allreduce([loss.item() if not bad else 0.0, bad, late, want,
                                                              stop])
            m["steps_run"] = step + 1
            if n_bad:
                raise NanLoss(f"training loss or gradient norm is not finite at step {step} "
                              f"(loss {loss.item()!r} on rank {rank})")
            losses.append(total / world)
            step_times.append(dt)
            m["final_loss"] = losses[-1]
            if on_step is not None:
                on_step("train", step + 1, cell.steps)
            if (n_want or n_stop) and step + 1 < cell.steps:
                save_checkpoint(step + 1)
                if n_stop:
                    raise Preempted(PREEMPTED_EXIT)
            if n_late:
                raise CellTimeout(f"time budget of {cell.time_budget_s:g} s spent after step {step + 1} "
                                  f"of {cell.steps}")

        with phase("train"):
            for step in range(start, cell.warmup_steps):
                if step == 0:
                    with SavedTensorBytes(params) as sv:
                        run_step(step)
                    saved = sv.bytes
                else:
                    run_step(step)
    if profiling:
        m["peak_mem_infer_bytes"] = mem.peak("infer")
        if start < cell.warmup_steps:  # else: as measured before the checkpoint
            m["peak_mem_train_bytes"] = mem.peak("train")
    for step in range(max(start, cell.warmup_steps), cell.steps):  # timed: no hooks, no profiler
        run_step(step)
    m["loss_curve"] = json.dumps([round(v, 7) for v in losses])
    if device.type == "cuda":
        m["peak_mem_train_bytes"] = float(torch.cuda.max_memory_allocated(device))
    m["saved_bytes_per_step"] = float(saved) if saved is not None else None

    # step time of a step = slowest rank
    timed = step_times[cell.warmup_steps:]
    if dist is not None:
        timed = allreduce(timed, "max") if timed else []
    m.update(time_stats(timed))
    if timed:
        m["samples_per_s"] = cell.batch_size * len(timed) / sum(timed)
        m["timesteps_per_s"] = m["samples_per_s"] * cell.seq_len

    # inference time
    if on_step is not None:
        on_step("infer", 0, N_INFER_REPS)
    model.eval()
    infer = []
    with torch.no_grad():
        model(x0)
        for _ in range(N_INFER_REPS):
            sync(device)
            t0 = time.perf_counter()
            model(x0)
            sync(device)
            infer.append(time.perf_counter() - t0)
    if dist is not None:
        infer = allreduce(infer, "max")
    m["infer_time_median_s"] = float(sorted(infer)[len(infer) // 2])

    # held-out accuracy
    if on_step is not None:
        on_step("eval", 0, task.n_eval_blocks())
    correct = total = 0
    with torch.no_grad():
        for k in range(rank, task.n_eval_blocks(), world):
            xb, yb = task.eval_block(k)
            pred = model(torch.from_numpy(xb).to(device, dtype)).argmax(-1).cpu()
            correct += int((pred == torch.from_numpy(yb)).sum())
            total += len(yb)
    correct, total = allreduce([correct, total])
    m["accuracy"] = correct / total if total else None

    mems = [m.get("peak_mem_train_bytes") or -1.0, m.get("peak_mem_infer_bytes") or -1.0, peak_rss_bytes()]
    if dist is not None:
        mems = allreduce(mems, "max")
    m["peak_mem_train_bytes"] = mems[0] if mems[0] >= 0 else None
    m["peak_mem_infer_bytes"] = mems[1] if mems[1] >= 0 else None
    m["peak_rss_bytes"] = mems[2]
    return m


def _cast(model, dtype) -> None:
    """Cast floating parameters/buffers to dtype and complex ones to the matching complex dtype
    (Module.to(float64) would drop imaginary parts)."""
    import torch
    if dtype == torch.float32:
        return
    cdtype = {torch.float64: torch.complex128, torch.float16: torch.complex32}.get(dtype, torch.complex64)

    def fn(t):
        if t.is_complex():
            return t.to(cdtype)
        if t.is_floating_point():
            return t.to(dtype)
        return t
    model._apply(fn)


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
            print(f"qssm: cell {cid} attempt {attempt} rank {env.rank}: {status}: {text}", file=sys.stderr)
            if env.launcher != "inline" or os.environ.get("QSSM_DEBUG"):
                traceback.print_exc()  # into the rank's log; inline runs keep the terminal to one line
            if (env.launcher == "local" and is_peer_failure(exc)) or _STOP_REQUESTED:
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


def _destroy_group():
    dist = _dist()
    with contextlib.suppress(Exception):
        if dist.is_initialized():
            dist.destroy_process_group()
