"""What the SLURM executor submitted: ``DIR/.slurm/<stamp>/jobs.json`` (one record per
submission: the job id, cell, and attempt baseline of every cell), the jobs a driver follows
(``Tracked``, ``SlurmHandle``), and ``qssm status``'s account of them (``status_summary``,
``format_status``).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .. import store
from .sacct import TERMINAL, compact_ids, sacct_info

SLURM_DIR = ".slurm"
RECORD = "jobs.json"


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
