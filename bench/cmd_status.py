"""`qssm status DIR [--sweep FILE]`: summarise a results folder — cells by status and model,
cells running now, unreadable files, and (with --sweep) what of a sweep is done and left."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

from . import store
from .errors import UserError

STATUS_ORDER = ("ok", "failed", "oom", "timeout", "nan")



def add_arguments(p) -> None:
    p.add_argument("results", metavar="DIR", help="results folder")
    p.add_argument("--sweep", metavar="FILE", default=None, help="also report which cells of this sweep are left")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def _label(r) -> str:
    parts = [str(r["model"]), f"T={r['seq_len']}"]
    for key, short in (("n_qubits", "q"), ("chunk_size", "C")):
        v = r.get(key)
        if v is not None and not (isinstance(v, float) and math.isnan(v)) and str(v) != "<NA>":
            parts.append(f"{short}={v}")
    parts.append(f"W={r['world_size']}")
    return " ".join(parts)


def _running(results_dir: Path) -> list[dict]:
    out = []
    pdir = results_dir / store.PROGRESS
    if not pdir.is_dir():
        return out
    for p in sorted(pdir.glob("*.json")):
        cid = p.stem
        info = store.read_progress(results_dir, cid)
        if info and store.lock_is_held(results_dir, cid):
            out.append(info)
    return out


def _slurm(results_dir: Path):
    """SLURM jobs submitted into this folder (``--executor slurm``) and their states, or None."""
    if not (results_dir / ".slurm").is_dir():
        return None
    from .executors.slurm import status_summary
    return status_summary(results_dir)


def summarise(results_dir: Path) -> dict:
    res = store.read_results(results_dir)
    df = res.df
    latest = {}
    if len(df):
        df = df.sort_values(["cell_id", "attempt"])
        for cid, g in df.groupby("cell_id", sort=False):
            rows = g.to_dict("records")
            ok_rows = [r for r in rows if r["status"] == "ok"]
            latest[cid] = ok_rows[-1] if ok_rows else rows[-1]
    by_status: dict[str, int] = {}
    by_model: dict[str, dict] = {}
    for r in latest.values():
        s = str(r["status"])
        by_status[s] = by_status.get(s, 0) + 1
        m = by_model.setdefault(str(r["model"]), {"cells": 0, **{k: 0 for k in STATUS_ORDER}})
        m["cells"] += 1
        m[s] = m.get(s, 0) + 1
    failures = [{"cell_id": cid, "cell": _label(r), "status": str(r["status"]), "error": str(r["error"] or "")}
                for cid, r in latest.items() if r["status"] != "ok"]
    tmp = results_dir / store.TMP
    return {
        "results": str(results_dir), "schema_version": res.schema_version, "rows": int(len(df)),
        "cells": len(latest), "by_status": by_status, "by_model": by_model, "failures": failures,
        "running": _running(results_dir), "problems": res.problems,
        "temp_files": sum(1 for _ in tmp.iterdir()) if tmp.is_dir() else 0,
        "slurm": _slurm(results_dir),
        "latest": latest,
    }


def run(args) -> int:
    results_dir = Path(args.results)
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results folder")
    s = summarise(results_dir)
    sweep_part = None
    if args.sweep:
        from .sweep import load_sweep
        sweep = load_sweep(args.sweep)
        states = store.cell_states(results_dir, [c.cell_id for c in sweep.cells])
        running = {i["cell_id"] for i in s["running"]}
        ok = [c for c in sweep.cells if c.cell_id in states and states[c.cell_id].ok]
        bad = [c for c in sweep.cells if c.cell_id in states and not states[c.cell_id].ok and states[c.cell_id].has_row]
        run_now = [c for c in sweep.cells if c.cell_id in running and c not in ok]
        left = [c for c in sweep.cells if c not in ok and c not in bad and c not in run_now]
        sweep_part = {"sweep": sweep.source, "cells": len(sweep.cells), "ok": len(ok), "failed": len(bad),
                      "running": len(run_now), "left": len(left), "left_cells": [c.label() for c in left[:50]]}
    if args.json:
        out = {k: v for k, v in s.items() if k != "latest"}
        out["sweep"] = sweep_part
        print(json.dumps(out, indent=1, default=str))
        return 0
    counts = ", ".join(f"{s['by_status'][k]} {k}" for k in STATUS_ORDER if s["by_status"].get(k)) or "none"
    if s["rows"]:
        print(f"{s['results']}: {s['cells']} cells, {s['rows']} rows (schema v{s['schema_version']}): {counts}")
    else:
        print(f"{s['results']}: no result rows yet")
    if s["by_model"]:
        print(f"  {'model':<22} {'cells':>5} " + " ".join(f"{k:>7}" for k in STATUS_ORDER))
        for model, m in sorted(s["by_model"].items()):
            print(f"  {model:<22} {m['cells']:>5} " + " ".join(f"{m.get(k, 0):>7}" for k in STATUS_ORDER))
    if s["running"]:
        print(f"running now ({len(s['running'])}):")
        for i in s["running"]:
            age = time.time() - float(i.get("time", time.time()))
            print(f"  {i['cell_id']} attempt {i.get('attempt')}: {i.get('phase')} {i.get('step')}/{i.get('steps')} "
                  f"on {i.get('host')} pid {i.get('pid')} ({age:.0f}s ago)")
    if s["failures"]:
        print(f"not ok ({len(s['failures'])}):")
        for f in s["failures"][:30]:
            print(f"  {f['status']:<8} {f['cell_id']}  {f['cell']}  {f['error'][:160]}")
        if len(s["failures"]) > 30:
            print(f"  ... and {len(s['failures']) - 30} more (--json for all)")
    if s["problems"]:
        print(f"unreadable files ({len(s['problems'])}):")
        for p in s["problems"]:
            print(f"  {p}")
    if s["temp_files"]:
        print(f"{s['temp_files']} temporary file(s) in {store.TMP}/ (writes in progress or left by killed writers)")
    if s.get("slurm"):
        from .executors.slurm import format_status
        for line in format_status(s["slurm"]):
            print(line)
    if sweep_part:
        print(f"sweep {sweep_part['sweep']}: {sweep_part['ok']}/{sweep_part['cells']} ok, {sweep_part['failed']} "
              f"failed, {sweep_part['running']} running, {sweep_part['left']} left")
    return 0
