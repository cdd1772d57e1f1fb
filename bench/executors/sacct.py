"""sacct: job and array-task states from SLURM accounting, and sacct's time/id formats."""
from __future__ import annotations

import datetime as _dt
import subprocess
from dataclasses import dataclass

SACCT_TIMEOUT_S = 20.0
# states after which a job (array task) never runs again
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                      "BOOT_FAIL", "DEADLINE", "REVOKED", "PREEMPTED"})


@dataclass
class JobInfo:
    state: str = ""             # e.g. RUNNING, COMPLETED, CANCELLED ("" = sacct does not know it yet)
    detail: str = ""            # the raw State column ("CANCELLED by 0")
    start: str = ""
    elapsed: str = ""
    exit_code: str = ""
    requeues: int = 0           # earlier instances of the job (sacct --duplicates)


def expand_job_id(raw: str) -> list[str]:
    """'12_[3-5,7%2]' -> ['12_3', '12_4', '12_5', '12_7']; '12_3' -> ['12_3']; '12' -> ['12']."""
    if "_[" not in raw:
        return [raw]
    main, rest = raw.split("_[", 1)
    rest = rest.rstrip("]").split("%")[0]
    out = []
    for part in filter(None, rest.split(",")):
        lo, _, hi = part.partition("-")
        out.extend(f"{main}_{i}" for i in range(int(lo), int(hi or lo) + 1))
    return out


def sacct_info(job_ids, timeout: float = SACCT_TIMEOUT_S) -> dict[str, JobInfo] | None:
    """State of each job id (array tasks as 'A_i') from accounting; None when sacct fails."""
    mains = sorted({str(j).split("_")[0] for j in job_ids})
    if not mains:
        return {}
    cmd = ["sacct", "-n", "-X", "-D", "-P", "-o", "JobID,State,Start,Elapsed,ExitCode", "-j", ",".join(mains)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    info: dict[str, JobInfo] = {}
    for line in out.stdout.splitlines():
        parts = line.split("|")
        if len(parts) < 5 or not parts[0] or "." in parts[0]:
            continue
        raw_id, state, start, elapsed, code = parts[:5]
        for jid in expand_job_id(raw_id.strip()):
            prev = info.get(jid)
            info[jid] = JobInfo(state=(state.split() or [""])[0], detail=state.strip(), start=start,
                                elapsed=elapsed, exit_code=code,
                                requeues=(prev.requeues + 1) if prev is not None else 0)
    return info


def started_at(ji: JobInfo) -> str:
    """sacct's Start (local time, no zone) as UTC ISO-8601; now when the job never started."""
    try:
        local = _dt.datetime.fromisoformat(ji.start)
        return local.astimezone(_dt.timezone.utc).isoformat(timespec="seconds")
    except (TypeError, ValueError):
        return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def elapsed_s(ji: JobInfo) -> float:
    """sacct Elapsed '[D-]HH:MM:SS' in seconds (0 when unknown)."""
    text = ji.elapsed or ""
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d) if d.isdigit() else 0
    try:
        parts = [int(x) for x in text.split(":")]
    except ValueError:
        return 0.0
    while len(parts) < 3:
        parts.insert(0, 0)
    h, m, s = parts[-3:]
    return float(days * 86400 + h * 3600 + m * 60 + s)


def compact_ids(job_ids) -> list[str]:
    """['5_0', '5_1', '5_2', '5_4', '6'] -> ['5_[0-2,4]', '6']."""
    arrays: dict = {}
    plain = []
    for j in job_ids:
        main, _, index = str(j).partition("_")
        if index.isdigit():
            arrays.setdefault(main, set()).add(int(index))
        else:
            plain.append(str(j))
    out = []
    for main, indices in arrays.items():
        idx = sorted(indices)
        if len(idx) == 1:
            out.append(f"{main}_{idx[0]}")
            continue
        ranges, lo = [], idx[0]
        for i, cur in enumerate(idx):
            last = i + 1 == len(idx) or idx[i + 1] != cur + 1
            if last:
                ranges.append(str(lo) if lo == cur else f"{lo}-{cur}")
                if i + 1 < len(idx):
                    lo = idx[i + 1]
        out.append(f"{main}_[{','.join(ranges)}]")
    return out + plain
