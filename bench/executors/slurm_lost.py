"""SLURM jobs that ended without writing a row (cancelled, killed at the time limit, out of
memory, failed outside the cell, requeued too often): what the job left behind (submitit's result
pickle, the tail of its log) and the failure row written for it, naming the ``sacct`` state.
"""
from __future__ import annotations

import re
from pathlib import Path

from .. import store
from .base import attempt_row
from .sacct import JobInfo, elapsed_s, started_at
from .slurm_records import Tracked


def job_result(t: Tracked):
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


def job_outcome(t: Tracked) -> dict | None:
    """Rank 0's return value (a dict) if the job left one."""
    got = job_result(t)
    return got[1] if got and got[0] == "success" and isinstance(got[1], dict) else None


def job_error(t: Tracked) -> str:
    """submitit's account of a job that failed outside the cell (its last line), if any."""
    got = job_result(t)
    if not got or got[0] != "error":
        return ""
    lines = [ln.strip() for ln in str(got[1]).splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if "not requeued because" in ln.lower()), None)
    return reason or (lines[-1] if lines else "")


def record_lost(results_dir: Path, t: Tracked, ji: JobInfo, time_min):
    """Write the failure row of a job that ended without one (``time_min``: the profile's time
    limit, for the error text). Returns (status, attempt, error); (None, None, '') when the
    cell's lock is held (try again later)."""
    from ..train import Checkpointer, make_row
    cid = t.cell.cell_id
    state = ji.state
    where = f"job {t.job_id}"
    if ji.requeues:
        where += f", requeued {ji.requeues} time{'s' if ji.requeues != 1 else ''}"
    if state == "CANCELLED":
        status, error = "failed", f"cancelled by SLURM (sacct state {ji.detail or state}; {where})"
    elif state == "TIMEOUT":
        status, error = "timeout", (f"SLURM time limit of {time_min} min reached "
                                    f"(sacct state TIMEOUT; {where})")
    elif state == "OUT_OF_MEMORY":
        status, error = "oom", f"killed by SLURM for exceeding its memory (sacct state OUT_OF_MEMORY; {where})"
    elif state == "PREEMPTED":
        status, error = "failed", f"pre-empted by SLURM and not requeued (sacct state PREEMPTED; {where})"
    else:
        why = job_error(t)
        if "timed-out" in why or "timed out" in why:
            status = "timeout"
            error = (f"SLURM time limit of {time_min} min reached too often ({why}; "
                     f"sacct state {state}; {where})")
        else:
            status = "failed"
            error = (f"the SLURM job ended without a result (sacct state {state}, exit code "
                     f"{ji.exit_code or '?'}; {where})" + (f": {why}" if why else ""))
        lost = lost_ranks(t)
        if lost and status == "failed":
            error = f"{lost}; " + error
        log = log_tail(t)
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


_SRUN_TASK_ERROR = re.compile(r"srun: error: (\S+): tasks? ([0-9][0-9,\-]*): (.+)")


def lost_ranks(t: Tracked) -> str:
    """What srun said about the job's ranks that ended badly ("srun: error: node2: task 1: Killed"),
    as 'rank 1 on node2: Killed'; '' when the log says nothing of the kind."""
    if not t.folder:
        return ""
    seen: list[str] = []
    for name in (f"{t.job_id}_0_log.err", f"{t.job_id}_0_log.out"):
        try:
            text = (Path(t.folder) / name).read_text(errors="replace")
        except OSError:
            continue
        for host, tasks, what in _SRUN_TASK_ERROR.findall(text):
            item = f"rank{'s' if ',' in tasks or '-' in tasks else ''} {tasks} on {host}: {what.strip()}"
            if item not in seen:
                seen.append(item)
    # a task killed first ("Killed") is the cause; the ones srun then stopped ("Terminated") follow it
    seen.sort(key=lambda item: item.endswith("Terminated"))
    return "; ".join(seen[:4])


def log_tail(t: Tracked, n: int = 3) -> str:
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
