"""The SLURM executor: the cells of a sweep as submitit job arrays, one array task per cell.

``qssm sweep FILE --executor slurm [--profile P] [--no-wait]``

- Cells are grouped by the resources they need (one array has one resource shape): a cell of
  ``world_size`` W runs as one array task of W SLURM tasks (ranks) — on one node for CPU cells;
  CUDA cells take one GPU per rank, spread over ``ceil(W / gpus_per_node)`` nodes. Partition,
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
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .. import store
from ..errors import UserError
from .base import CellEvent, Executor, Submission, attempt_row
from .sacct import TERMINAL, JobInfo, compact_ids, elapsed_s, sacct_info, started_at

SLURM_DIR = ".slurm"
RECORD = "jobs.json"
PREEMPTED_GRACE_S = 60.0    # PREEMPTED is final only when the site does not requeue: wait this long
ROW_GRACE_S = 5.0           # a job that just ended may still be writing its row (shared file systems)


# ---------------------------------------------------------------------------------------------
# resources: one shape per array
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Shape:
    """What one array task of a group asks for."""
    nodes: int
    tasks_per_node: int       # ranks per node
    gpus_per_node: int        # 0 for CPU cells
    world_size: int
    device: str


def shape_of(cell, profile) -> Shape:
    """The resources of one cell under a profile (UserError when the profile cannot run it)."""
    w = cell.world_size
    if cell.device != "cuda":
        return Shape(1, w, 0, w, cell.device)
    gpn = profile.gpus_per_node
    if gpn < 1:
        raise UserError(f"device=cuda ({cell.label()}): profile {profile.name!r} has gpus_per_node=0; "
                        "choose a GPU profile (e.g. --profile gpu-generic) or set device: cpu")
    if w <= gpn:
        return Shape(1, w, w, w, "cuda")
    if w % gpn:
        raise UserError(f"world_size={w} with device=cuda ({cell.label()}) does not fill whole nodes of "
                        f"{gpn} GPUs (profile {profile.name!r}); use a multiple of {gpn}")
    return Shape(w // gpn, gpn, gpn, w, "cuda")


def group_cells(cells, profile) -> dict:
    """{Shape: [cells]} in the order the shapes first appear."""
    groups: dict = {}
    for c in cells:
        groups.setdefault(shape_of(c, profile), []).append(c)
    return groups


def sbatch_options(profile, shape: Shape) -> dict:
    """The sbatch options (long names, no dashes) of one array's tasks, in a fixed order."""
    opts: dict = {"nodes": shape.nodes, "ntasks-per-node": shape.tasks_per_node,
                  "cpus-per-task": profile.cpus_per_task}
    if shape.gpus_per_node:
        opts["gpus-per-node"] = shape.gpus_per_node
    if profile.mem_gb is not None:
        opts["mem"] = mem_option(profile.mem_gb)
    opts["time"] = profile.time_min
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(profile, key):
            opts[key] = getattr(profile, key)
    for key, value in profile.extra_sbatch.items():
        opts[str(key).lstrip("-")] = value
    return opts


def mem_option(mem_gb: float) -> str:
    return f"{int(mem_gb)}G" if float(mem_gb) == int(mem_gb) else f"{int(round(mem_gb * 1024))}M"


def pythonpath_setup() -> list[str]:
    """Setup lines that make ``bench`` importable in a job when it is used from a checkout rather
    than installed (PYTHONPATH); nothing when qssm-bench is installed in the interpreter."""
    from importlib import metadata
    root = Path(__file__).resolve().parents[2]
    try:
        dist = metadata.distribution("qssm-bench")
        if dist is not None:
            return []
    except metadata.PackageNotFoundError:
        pass
    return [f'export PYTHONPATH="{root}${{PYTHONPATH:+:$PYTHONPATH}}"']


# ---------------------------------------------------------------------------------------------
# what was submitted: DIR/.slurm/<stamp>/jobs.json
# ---------------------------------------------------------------------------------------------
def slurm_root(results_dir) -> Path:
    return Path(results_dir) / SLURM_DIR


def load_records(results_dir) -> list[dict]:
    out = []
    root = slurm_root(results_dir)
    if not root.is_dir():
        return out
    for path in sorted(root.glob(f"*/{RECORD}")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        doc["_path"] = str(path)
        out.append(doc)
    return out


def _write_json(path: Path, doc) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)


@dataclass
class Tracked:
    cell: object
    job_id: str
    baseline: int               # the cell's highest attempt number before this submission
    job: object = None          # submitit SlurmJob (None for jobs adopted from an earlier driver)
    folder: str = ""            # submitit folder of the job
    started: bool = False
    done: bool = False
    status: str | None = None
    terminal_since: float | None = None
    last_progress: tuple | None = None


@dataclass
class SlurmHandle:
    jobs: list = field(default_factory=list)      # [Tracked]
    folder: Path | None = None
    record: Path | None = None
    profile: str = ""
    detached: bool = False                         # --no-wait: the caller does not wait


# ---------------------------------------------------------------------------------------------
# the executor
# ---------------------------------------------------------------------------------------------
class SlurmExecutor(Executor):
    """Cells as submitit job arrays on a SLURM cluster (see the module doc)."""
    name = "slurm"

    def __init__(self, profile: str = "local", *, no_wait: bool = False, slurm_folder=None,
                 checkpoint_every_s: float | None = None, poll_s: float = 2.0, signal_delay_s: int = 90,
                 max_requeues: int = 3, stream=None):
        from ..profiles import load_profile
        from ..requeue import DEFAULT_CHECKPOINT_EVERY_S
        self.profile = load_profile(profile) if isinstance(profile, str) else profile
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
                   max_requeues=getattr(args, "max_requeues", 3))

    @classmethod
    def check_cells(cls, cells) -> None:
        for tool in ("sbatch", "srun", "sacct"):
            if shutil.which(tool) is None:
                raise UserError(f"--executor slurm needs SLURM's {tool} on PATH (on a development machine: "
                                "slurm/dev-cluster up; source /tmp/qssm-slurm/env.sh)")

    # -- submit ---------------------------------------------------------------------------------
    def _executor(self, folder: Path, shape: Shape, job_name: str):
        try:
            import submitit
        except ImportError as exc:  # pragma: no cover
            raise UserError("--executor slurm needs submitit: pip install submitit") from exc
        ex = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.max_requeues)
        opts = sbatch_options(self.profile, shape)
        params = {"job_name": job_name, "signal_delay_s": self.signal_delay_s,
                  "array_parallelism": self.profile.max_concurrent,
                  "setup": list(self.profile.setup) + pythonpath_setup(),
                  # a rank that dies (killed, segfault) takes its peers with it instead of leaving
                  # them in a collective until the process-group timeout
                  "srun_args": ["--kill-on-bad-exit=1"]}
        known = {"nodes", "ntasks-per-node", "cpus-per-task", "gpus-per-node", "mem", "time", "partition",
                 "account", "qos", "constraint"}
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
        for shape, group in groups.items():
            group = [c for c in group if c.cell_id not in adopted]
            if not group:
                continue
            ex = self._executor(folder, shape, name + (f"-w{shape.world_size}" if len(groups) > 1 else ""))
            try:
                with ex.batch():
                    jobs = [ex.submit(CellJob(c.to_dict(), str(results_dir), self.checkpoint_every_s))
                            for c in group]
            except Exception as exc:  # noqa: BLE001 - sbatch said no: keep what was submitted, then stop
                text = " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
                refused = (f"sbatch refused the array of {len(group)} cells with world_size={shape.world_size} "
                           f"on {shape.device} (profile {self.profile.name!r}): {text[:500]}")
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
                    self._record_lost(results_dir, Tracked(cell, j["job_id"], int(j.get("baseline_attempt", 0)),
                                                           folder=j.get("folder", "")), ji)
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
        outcome = self._job_outcome(t)
        if outcome and outcome.get("status") == "skipped":
            # the cell was done (or running elsewhere) when the job started: no row of its own
            t.done, t.status = True, "skipped"
            out[cid] = "skipped"
            emit(CellEvent("skipped", t.cell, status=outcome.get("skipped_reason") or "done"))
            return
        status, attempt, error = self._record_lost(results_dir, t, ji)
        if status is None:      # the lock is held: someone is writing; look again next time
            return
        row = attempt_row(results_dir, cid, attempt) if attempt else None
        t.done, t.status = True, status
        out[cid] = status
        emit(CellEvent("finished", t.cell, attempt=attempt, status=status, error=error, row=row))

    @staticmethod
    def _result(t: Tracked):
        """(kind, value) that rank 0 of the job left in submitit's result pickle, or None:
        ("success", {cell_id, status, ...}) or ("error", traceback text)."""
        if not t.folder:
            return None
        try:
            from submitit.core.utils import JobPaths
            path = JobPaths(t.folder, job_id=t.job_id, task_id=0).result_pickle
            if not path.exists():
                return None
            return _load_pickle(path)
        except Exception:  # noqa: BLE001 - unreadable: as if absent
            return None

    def _job_outcome(self, t: Tracked) -> dict | None:
        """Rank 0's return value (a dict) if the job left one."""
        got = self._result(t)
        return got[1] if got and got[0] == "success" and isinstance(got[1], dict) else None

    def _job_error(self, t: Tracked) -> str:
        """submitit's account of a job that failed outside the cell (its last line), if any."""
        got = self._result(t)
        if not got or got[0] != "error":
            return ""
        lines = [ln.strip() for ln in str(got[1]).splitlines() if ln.strip()]
        reason = next((ln for ln in reversed(lines) if "not requeued because" in ln.lower()), None)
        return reason or (lines[-1] if lines else "")

    def _record_lost(self, results_dir: Path, t: Tracked, ji: JobInfo):
        """Write the failure row of a job that ended without one. Returns (status, attempt, error);
        (None, None, '') when the cell's lock is held (try again later)."""
        from ..train import Checkpointer, make_row
        cid = t.cell.cell_id
        state = ji.state
        where = f"job {t.job_id}"
        if ji.requeues:
            where += f", requeued {ji.requeues} time{'s' if ji.requeues != 1 else ''}"
        if state == "CANCELLED":
            status, error = "failed", f"cancelled by SLURM (sacct state {ji.detail or state}; {where})"
        elif state == "TIMEOUT":
            status, error = "timeout", (f"SLURM time limit of {self.profile.time_min} min reached "
                                        f"(sacct state TIMEOUT; {where})")
        elif state == "OUT_OF_MEMORY":
            status, error = "oom", f"killed by SLURM for exceeding its memory (sacct state OUT_OF_MEMORY; {where})"
        elif state == "PREEMPTED":
            status, error = "failed", f"pre-empted by SLURM and not requeued (sacct state PREEMPTED; {where})"
        else:
            why = self._job_error(t)
            if "timed-out" in why or "timed out" in why:
                status = "timeout"
                error = (f"SLURM time limit of {self.profile.time_min} min reached too often ({why}; "
                         f"sacct state {state}; {where})")
            else:
                status = "failed"
                error = (f"the SLURM job ended without a result (sacct state {state}, exit code "
                         f"{ji.exit_code or '?'}; {where})" + (f": {why}" if why else ""))
            log = self._log_tail(t)
            if log and status == "failed":
                error += f"; log: {log}"
        try:
            with store.cell_lock(results_dir, cid):
                st = store.cell_states(results_dir, [cid]).get(cid)
                if st is not None and st.max_attempt > t.baseline:
                    attempt = st.max_attempt
                    row = attempt_row(results_dir, cid, attempt) or {}
                    return row.get("status", "failed"), attempt, row.get("error", "")
                attempt = store.next_attempt(results_dir, cid)
                row = make_row(t.cell, attempt, status, error, "submitit", started_at(ji), elapsed_s(ji), {},
                               requeues=ji.requeues)
                store.write_row(results_dir, row, store.environment(
                    "submitit", None, world_size=t.cell.world_size, written_by="slurm-executor",
                    slurm_job_id=t.job_id, slurm_array_job_id=t.job_id.split("_")[0] if "_" in t.job_id else None,
                    slurm_array_task_id=t.job_id.split("_")[1] if "_" in t.job_id else None,
                    sacct_state=ji.detail or state))
                store.clear_progress(results_dir, cid)
                Checkpointer.clear(results_dir, cid)
        except store.LockBusy:
            return None, None, ""
        return status, attempt, error

    def _log_tail(self, t: Tracked, n: int = 3) -> str:
        if not t.folder:
            return ""
        for name in (f"{t.job_id}_0_log.err", f"{t.job_id}_0_log.out"):
            p = Path(t.folder) / name
            try:
                lines = [ln.strip() for ln in p.read_text(errors="replace").splitlines() if ln.strip()]
            except OSError:
                continue
            keep = [ln for ln in lines if "submitit" not in ln.lower()][-n:]
            if keep:
                return " | ".join(keep)[-600:]
        return ""


def _load_pickle(path):
    import cloudpickle
    with open(path, "rb") as fh:
        return cloudpickle.load(fh)


# ---------------------------------------------------------------------------------------------
# qssm status
# ---------------------------------------------------------------------------------------------
def status_summary(results_dir) -> dict | None:
    """SLURM jobs recorded in a results folder and their states now (None when there are none):
    {"submissions", "jobs", "by_state": {state: n}, "live": [job ids], "lost": [{job_id, cell_id,
    label, state}] (ended without a row), "sacct": ok?}."""
    records = load_records(results_dir)
    if not records:
        return None
    jobs = [j for rec in records for j in rec.get("jobs", [])]
    latest: dict = {}
    for j in jobs:              # the latest submission of each cell counts
        latest[j["cell_id"]] = j
    info = sacct_info([j["job_id"] for j in latest.values()])
    states = store.cell_states(results_dir, list(latest))
    by_state: dict = {}
    live, lost = [], []
    for cid, j in latest.items():
        ji = (info or {}).get(j["job_id"])
        s = ji.state if ji is not None and ji.state else "UNKNOWN"
        by_state[s] = by_state.get(s, 0) + 1
        st = states.get(cid)
        has_row = st is not None and st.max_attempt > int(j.get("baseline_attempt", 0))
        if s not in TERMINAL and s != "UNKNOWN":
            live.append(j["job_id"])
        elif s in TERMINAL and not has_row:
            lost.append({"job_id": j["job_id"], "cell_id": cid, "label": j.get("label", ""), "state": s})
    return {"submissions": len(records), "jobs": len(latest), "by_state": by_state,
            "live": compact_ids(live), "lost": lost, "sacct": info is not None,
            "job_ids": compact_ids([j["job_id"] for j in latest.values()])}


def format_status(summary: dict) -> list[str]:
    lines = [f"SLURM: {summary['jobs']} cells in {summary['submissions']} submission(s), job "
             f"{', '.join(summary['job_ids'])}: "
             + (", ".join(f"{n} {s.lower()}" for s, n in sorted(summary["by_state"].items()))
                if summary["sacct"] else "sacct unavailable")]
    if summary["live"]:
        lines.append(f"  queued or running: {', '.join(summary['live'])}")
    for lost in summary["lost"][:20]:
        lines.append(f"  ended without a row: {lost['job_id']} ({lost['state'].lower()}) {lost['cell_id']}  "
                     f"{lost['label']} — `qssm sweep ... --executor slurm` records it and submits it again")
    return lines


__all__ = ["SlurmExecutor", "Shape", "shape_of", "group_cells", "sbatch_options",
           "load_records", "status_summary", "format_status", "pythonpath_setup", "mem_option"]
