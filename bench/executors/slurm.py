"""The SLURM executor: the cells of a sweep as submitit job arrays, one array task per cell.

``qssm sweep FILE --executor slurm [--profile P] [--no-wait]``

- Cells are grouped by the resources they need (one array has one resource shape): a cell of
  ``world_size`` W and ``nodes`` N runs as one array task of W SLURM tasks (ranks), W/N on each of
  N nodes; CUDA cells take one GPU per rank. Partition,
  account, QOS, constraint, CPUs per rank, memory, time limit, setup lines and the cap on
  concurrently running tasks (``max_concurrent``) come from the site profile
  (``slurm/profiles/P.yaml``, ``bench.profiles``).
- Each task runs ``bench.requeue.CellJob``: ``run_cell(cell, DIR, "submitit")`` on every rank, with
  checkpoints every ``--checkpoint-every-s`` seconds; on SLURM's time-limit warning or a
  pre-emption it checkpoints, is requeued, and resumes (``bench.requeue``).
- While waiting, progress comes from the results folder (``.progress/``, rows) and job states
  from ``sacct`` (one call for all jobs every ``poll_s``). A job that ends without writing a
  row — cancelled, killed at its time limit, out of memory, failed outside the cell, requeued
  too often — gets a failure row written here, naming the ``sacct`` state. One failing task
  never touches its siblings.
- ``--no-wait`` returns after submitting. The job ids are recorded in
  ``DIR/.slurm/<stamp>/jobs.json`` (``qssm status DIR`` shows their states); a later ``qssm
  sweep`` with this executor adopts still-queued or running jobs of earlier submissions instead
  of submitting their cells again, and records the ones that ended without a row.

submitit's own files (pickles, per-task logs ``<job>_<task>_log.out/err``) are in
``DIR/.slurm/<stamp>/`` (or ``--slurm-folder``).

This module is the executor (submit, adopt, wait); the pieces are ``slurm_resources`` (array
shapes, sbatch options), ``slurm_records`` (``jobs.json``, ``qssm status``) and ``slurm_lost``
(rows for jobs that ended without one). Their public names are importable from here as before.
"""
from __future__ import annotations

import datetime as _dt
import os
import shutil
import sys
import time
from pathlib import Path

from .. import store
from ..errors import UserError
from .base import CellEvent, Executor, Submission, attempt_row
from .sacct import TERMINAL, JobInfo, compact_ids, sacct_info
from .slurm_lost import job_outcome, record_lost
from .slurm_records import (RECORD, SlurmHandle, Tracked, _write_json, format_status, load_records,
                            slurm_root, status_summary)
from .slurm_resources import (Shape, group_cells, mem_option, packs, pythonpath_setup, sbatch_options, shape_of,
                              shape_tag, throttles)

PREEMPTED_GRACE_S = 60.0    # PREEMPTED is final only when the site does not requeue: wait this long
ROW_GRACE_S = 5.0           # a job that just ended may still be writing its row (shared file systems)


# ---------------------------------------------------------------------------------------------
# the executor
# ---------------------------------------------------------------------------------------------
class SlurmExecutor(Executor):
    """Cells as submitit job arrays on a SLURM cluster (see the module doc)."""
    name = "slurm"

    def __init__(self, profile: str = "local", *, no_wait: bool = False, slurm_folder=None,
                 checkpoint_every_s: float | None = None, poll_s: float = 2.0, signal_delay_s: int = 90,
                 max_requeues: int = 3, stream=None, profile_set=()):
        from ..profiles import load_profile
        from ..requeue import DEFAULT_CHECKPOINT_EVERY_S
        self.profile = load_profile(profile, profile_set) if isinstance(profile, str) else profile
        self.no_wait = no_wait
        self.slurm_folder = Path(slurm_folder) if slurm_folder else None
        self.checkpoint_every_s = DEFAULT_CHECKPOINT_EVERY_S if checkpoint_every_s is None else checkpoint_every_s
        self.poll_s = poll_s
        self.signal_delay_s = signal_delay_s
        self.max_requeues = max_requeues
        self.stream = stream or sys.stderr

    @classmethod
    def add_arguments(cls, parser) -> None:
        g = parser.add_argument_group("--executor slurm")
        g.add_argument("--profile", default="local", metavar="P",
                       help="site profile: a name in slurm/profiles/ or a YAML file (default: local)")
        from ..profiles import add_set_argument
        add_set_argument(g)
        g.add_argument("--no-wait", action="store_true",
                       help="submit the job arrays and return (follow with `qssm status DIR`)")
        g.add_argument("--slurm-folder", metavar="DIR", default=None,
                       help="submitit's folder for job pickles and logs (default: RESULTS/.slurm/<time>)")
        g.add_argument("--checkpoint-every-s", type=float, metavar="S", default=None,
                       help="seconds between checkpoints of a running cell, for requeue after a time "
                            "limit or pre-emption (default: 300)")
        g.add_argument("--signal-delay-s", type=int, metavar="S", default=90,
                       help="SLURM warns a job this long before its time limit (sbatch --signal); the "
                            "cell then checkpoints and is requeued (default: 90)")
        g.add_argument("--max-requeues", type=int, metavar="N", default=3,
                       help="requeues after time limits before a cell is recorded as timeout (default: 3)")

    @classmethod
    def from_args(cls, args) -> "SlurmExecutor":
        return cls(getattr(args, "profile", "local"), no_wait=getattr(args, "no_wait", False),
                   slurm_folder=getattr(args, "slurm_folder", None),
                   checkpoint_every_s=getattr(args, "checkpoint_every_s", None),
                   signal_delay_s=getattr(args, "signal_delay_s", 90),
                   max_requeues=getattr(args, "max_requeues", 3),
                   profile_set=getattr(args, "profile_set", ()) or ())

    def describe_plan(self, cells) -> list[str]:
        """What a submission would ask for: one line per job array (the profile's checks run)."""
        groups = group_cells(cells, self.profile)   # the same UserErrors as a submission
        p = self.profile
        over = f" (--set {', '.join(f'{k}={v}' for k, v in p.overrides)})" if p.overrides else ""
        shares = throttles({s: packs(g, s) for s, g in groups.items()}, p.max_concurrent)
        lines = [f"would submit {len(groups)} job array(s) with profile {p.name!r}{over}, at most "
                 f"{p.max_concurrent} tasks at once in all:"]
        for shape, group in groups.items():
            opts = sbatch_options(p, shape)
            res = ", ".join(f"{k}={v}" for k, v in opts.items() if k not in ("nodes", "ntasks-per-node"))
            packed = (f" ({shape.cells_per_task} one-GPU cells side by side per task)"
                      if shape.cells_per_task > 1 else "")
            lines.append(f"  {len(packs(group, shape))} task(s) for {len(group)} cell(s){packed}, {shares[shape]} at "
                         f"once: {shape.nodes} node(s) x {shape.tasks_per_node} rank(s), {shape.device}; {res}")
        return lines

    @classmethod
    def check_cells(cls, cells) -> None:
        for tool in ("sbatch", "srun", "sacct"):
            if shutil.which(tool) is None:
                exc = UserError(f"--executor slurm needs SLURM's {tool} on PATH (on a development machine: "
                                "slurm/dev-cluster up; source /tmp/qssm-slurm/env.sh)")
                exc.tool_missing = True
                raise exc

    # -- submit ---------------------------------------------------------------------------------
    def _executor(self, folder: Path, shape: Shape, job_name: str, throttle: int | None = None):
        try:
            import submitit
        except ImportError as exc:  # pragma: no cover
            raise UserError("--executor slurm needs submitit: pip install submitit") from exc
        from ..profiles import provenance_setup
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.max_requeues,
                                    python=self.profile.python)   # None: the interpreter running qssm
        opts = sbatch_options(self.profile, shape)
        params = {"job_name": job_name, "signal_delay_s": self.signal_delay_s,
                  "array_parallelism": throttle or self.profile.max_concurrent,
                  "setup": list(self.profile.setup) + pythonpath_setup() + provenance_setup(self.profile),
                  # a rank that dies (killed, segfault) takes its peers with it instead of leaving
                  # them in a collective until the process-group timeout
                  # -- except packed cells, which are independent of one another
                  "srun_args": [f"--kill-on-bad-exit={0 if shape.cells_per_task > 1 else 1}"]}
        known = {"nodes", "ntasks-per-node", "cpus-per-task", "gpus-per-node", "mem", "mem-per-gpu",
                 "mem-per-cpu", "time", "partition", "account", "qos", "constraint"}
        extra = {"requeue": True}
        for key, value in opts.items():
            if key in known:
                params[key.replace("-", "_")] = value
            else:
                extra[key] = value
        params["additional_parameters"] = extra
        ex.update_parameters(**params)
        return ex

    def submit(self, cells, results_dir, *, retry_failed: bool = False, sweep: str | None = None) -> Submission:
        from ..requeue import CellJob
        self.check_cells(cells)
        results_dir = Path(results_dir).resolve()
        groups = group_cells(cells, self.profile)   # UserError before anything is submitted
        adopted = self._adopt(results_dir, cells)
        sub = super().submit(cells, results_dir, retry_failed=retry_failed, sweep=sweep)
        stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        folder = (self.slurm_folder or slurm_root(results_dir) / stamp).resolve()
        folder.mkdir(parents=True, exist_ok=True)
        states = store.cell_states(results_dir, [c.cell_id for c in cells])
        tracked: list[Tracked] = list(adopted.values())
        name = f"qssm-{results_dir.name}"
        refused = None
        left = {s: [c for c in g if c.cell_id not in adopted] for s, g in groups.items()}
        shares = throttles({s: packs(g, s) for s, g in left.items() if g}, self.profile.max_concurrent)
        for shape, group in left.items():
            if not group:
                continue
            ex = self._executor(folder, shape, name + (f"-{shape_tag(shape)}" if len(groups) > 1 else ""),
                                shares[shape])
            try:
                with ex.batch():
                    batches = packs(group, shape)
                    subs = [ex.submit(CellJob([c.to_dict() for c in b] if shape.cells_per_task > 1 else b[0].to_dict(),
                                              str(results_dir), self.checkpoint_every_s)) for b in batches]
                jobs = [job for b, job in zip(batches, subs) for _ in b]   # a packed job serves its cells
            except Exception as exc:  # noqa: BLE001 - sbatch said no: keep what was submitted, then stop
                text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
                refused = (f"sbatch refused the array of {len(group)} cells with world_size={shape.world_size} "
                           f"on {shape.nodes} node(s), {shape.device} (profile {self.profile.name!r}): {text[:500]}")
                break
            for c, job in zip(group, jobs):
                st = states.get(c.cell_id)
                tracked.append(Tracked(c, str(job.job_id), st.max_attempt if st else 0, job, str(folder)))
        record = slurm_root(results_dir) / stamp / RECORD
        _write_json(record, {
            "format": "qssm-slurm-jobs", "version": 1,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "profile": self.profile.name, "manifest": str(sub.manifest), "folder": str(folder),
            "results_dir": str(results_dir), "sweep": str(Path(sweep).resolve()) if sweep else None,
            "jobs": [{"job_id": t.job_id, "cell_id": t.cell.cell_id, "cell": t.cell.to_dict(), "label": t.cell.label(),
                      "world_size": t.cell.world_size, "baseline_attempt": t.baseline, "folder": t.folder,
                      "adopted": t.job is None} for t in tracked],
        })
        sub.handle = SlurmHandle(tracked, folder, record, self.profile.name, detached=self.no_wait)
        if refused:
            if tracked:
                refused += (f"; already submitted and left running: job "
                            f"{', '.join(compact_ids([t.job_id for t in tracked]))} (`scancel` to stop them)")
            raise UserError(refused)
        return sub

    def _adopt(self, results_dir: Path, cells) -> dict:
        """Jobs of earlier submissions for these cells that are still queued or running (they are
        followed, not submitted again); jobs that ended without a row are recorded first."""
        wanted = {c.cell_id: c for c in cells}
        earlier = [(rec, j) for rec in load_records(results_dir) for j in rec.get("jobs", [])
                   if j.get("cell_id") in wanted]
        if not earlier:
            return {}
        info = sacct_info([j["job_id"] for _, j in earlier])
        if info is None:
            return {}
        out: dict = {}
        for rec, j in earlier:
            ji = info.get(j["job_id"])
            if ji is None or not ji.state:
                continue
            cell = wanted[j["cell_id"]]
            if ji.state in TERMINAL:
                if ji.state != "PREEMPTED":
                    record_lost(results_dir, Tracked(cell, j["job_id"], int(j.get("baseline_attempt", 0)),
                                                     folder=j.get("folder", "")), ji, self.profile.time_min)
                continue
            out[cell.cell_id] = Tracked(cell, j["job_id"], int(j.get("baseline_attempt", 0)), None,
                                        j.get("folder", ""))
        return out

    # -- wait -------------------------------------------------------------------------------------
    def wait(self, submission: Submission, on_event=None) -> dict[str, str]:
        handle: SlurmHandle = submission.handle
        emit = on_event or (lambda ev: None)
        ids = ", ".join(compact_ids([t.job_id for t in handle.jobs]))
        if handle.detached:
            print(f"qssm: submitted {len(handle.jobs)} cells to SLURM (profile {handle.profile}): job {ids}; "
                  f"follow with `qssm status {submission.results_dir}`; cancel with `scancel <job id>`",
                  file=self.stream)
            return {}
        print(f"qssm: {len(handle.jobs)} cells in SLURM (profile {handle.profile}): job {ids}; logs in "
              f"{handle.folder}", file=self.stream)
        results_dir = submission.results_dir
        out: dict[str, str] = {}
        last_sacct = float("-inf")
        info: dict = {}
        try:
            while True:
                pending = [t for t in handle.jobs if not t.done]
                if not pending:
                    break
                now = time.monotonic()
                if now - last_sacct >= self.poll_s:
                    got = sacct_info([t.job_id for t in pending])
                    if got is not None:
                        info = got
                    last_sacct = now
                states = store.cell_states(results_dir, [t.cell.cell_id for t in pending])
                for t in pending:
                    self._poll_one(t, results_dir, states.get(t.cell.cell_id), info.get(t.job_id), emit, out)
                if any(not t.done for t in handle.jobs):
                    time.sleep(min(1.0, self.poll_s))
        except KeyboardInterrupt:
            live = [t.job_id for t in handle.jobs if not t.done]
            if live:
                print(f"\nqssm: stopped waiting; the SLURM jobs go on: {', '.join(compact_ids(live))} "
                      f"(`qssm status {results_dir}` to follow, `scancel <job id>` to stop them)",
                      file=self.stream)
            raise
        return out

    def _poll_one(self, t: Tracked, results_dir: Path, state, ji: JobInfo | None, emit, out) -> None:
        cid = t.cell.cell_id
        new_row = None
        if state is not None and state.max_attempt > t.baseline:
            readable = [(a, s) for a, s in state.attempts if a > t.baseline and s is not None]
            if readable:
                new_row = max(readable)
        if new_row is not None:
            attempt, status = new_row
            if not t.started:
                emit(CellEvent("started", t.cell, attempt=attempt))
            row = attempt_row(results_dir, cid, attempt)
            t.done, t.status = True, status
            out[cid] = status
            emit(CellEvent("finished", t.cell, attempt=attempt, status=status,
                           error=(row or {}).get("error") or "", wall_s=(row or {}).get("wall_time_s"), row=row))
            return
        prog = store.read_progress(results_dir, cid)
        if prog and int(prog.get("attempt") or 0) > t.baseline:
            if not t.started:
                t.started = True
                emit(CellEvent("started", t.cell, attempt=prog.get("attempt")))
            key = (prog.get("phase"), prog.get("step"))
            if key != t.last_progress:
                t.last_progress = key
                emit(CellEvent("progress", t.cell, attempt=prog.get("attempt"), phase=str(prog.get("phase", "")),
                               step=int(prog.get("step") or 0), steps=int(prog.get("steps") or 0)))
        elif ji is not None and ji.state == "RUNNING" and not t.started:
            t.started = True
            emit(CellEvent("started", t.cell))
        if ji is None or ji.state not in TERMINAL:
            t.terminal_since = None
            return
        now = time.monotonic()
        if t.terminal_since is None:
            t.terminal_since = now
        grace = PREEMPTED_GRACE_S if ji.state == "PREEMPTED" else ROW_GRACE_S
        if now - t.terminal_since < grace:
            return
        outcome = job_outcome(t)
        if outcome and outcome.get("cell_id") not in (None, cid):
            outcome = None      # a packed job: task 0's outcome is another cell's
        if outcome and outcome.get("status") == "skipped":
            # the cell was done (or running elsewhere) when the job started: no row of its own
            t.done, t.status = True, "skipped"
            out[cid] = "skipped"
            emit(CellEvent("skipped", t.cell, status=outcome.get("skipped_reason") or "done"))
            return
        status, attempt, error = record_lost(results_dir, t, ji, self.profile.time_min)
        if status is None:      # the lock is held: someone is writing; look again next time
            return
        row = attempt_row(results_dir, cid, attempt) if attempt else None
        t.done, t.status = True, status
        out[cid] = status
        emit(CellEvent("finished", t.cell, attempt=attempt, status=status, error=error, row=row))


__all__ = ["SlurmExecutor", "Shape", "shape_of", "group_cells", "sbatch_options",
           "load_records", "status_summary", "format_status", "pythonpath_setup", "mem_option"]
