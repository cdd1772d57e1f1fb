"""`qssm train --model NAME [--FIELD VALUE ...]`: run one cell from flags (flags = cell field
names; unset fields take their defaults). Always runs a new attempt, even if the folder already
holds one. Exit status 0 when the cell is ok, 1 when it failed, 2 for bad input."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from . import store
from .cell import DEFAULTS_HELP, CELL_FIELDS, DEFAULTS



def add_arguments(p) -> None:
    g = p.add_argument_group("cell fields (defaults in brackets)")
    for name in CELL_FIELDS:
        flags = [f"--{name}"] + ([f"--{name.replace('_', '-')}"] if "_" in name else [])
        default = DEFAULTS_HELP.get(name, DEFAULTS.get(name, "required"))
        g.add_argument(*flags, dest=f"cell_{name}", metavar="V", default=None, help=f"[{default}]")
    p.add_argument("--results", metavar="DIR", default="results/train", help="results folder [results/train]")
    p.add_argument("--executor", choices=("inline", "local"), default="inline",
                   help="inline: in this process (world_size > 1 spawns ranks); local: fresh processes [inline]")
    p.add_argument("--launcher", default=None, metavar="NAME",
                   help="run as one rank of a process group started by a launcher: mpi (mpirun / srun "
                        "--mpi=pmix), torchrun, sbatch (srun), auto; every rank runs this command and "
                        "rank 0 reports [none: --executor decides]")
    p.add_argument("--json", action="store_true", help="print the result row as JSON")


def run(args) -> int:
    from .cell import DEFAULTS_HELP, cell_from_mapping
    from .executors.base import CellEvent, attempt_row
    from .progress import Progress

    raw = {name: getattr(args, f"cell_{name}") for name in CELL_FIELDS if getattr(args, f"cell_{name}") is not None}
    cell = cell_from_mapping(raw, from_text=True)
    if args.launcher is not None:
        return _run_as_rank(cell, args)
    from .executors.base import check_cells_here
    check_cells_here([cell], args.executor)
    results_dir = store.prepare_results_dir(Path(args.results))
    progress = Progress(1)
    progress(CellEvent("started", cell))

    def on_step(phase, i, n):
        progress(CellEvent("progress", cell, phase=phase, step=i, steps=n))

    import time
    t0 = time.monotonic()
    try:
        if args.executor == "inline":
            from .executors.launchers import RankEnv
            from .train import run_cell
            out = run_cell(cell, results_dir, RankEnv.single("inline"), on_step=on_step, force=True)
            status, attempt = out.status, out.attempt
        else:
            from .executors.local import supervise
            with store.cell_lock(results_dir, cell.cell_id):
                attempt = store.next_attempt(results_dir, cell.cell_id)
                status = supervise(cell, results_dir, attempt, on_step=on_step)
    except store.LockBusy:
        progress.close()
        print(f"qssm: cell {cell.cell_id} is running in another process; try again later", file=sys.stderr)
        return 1
    row = attempt_row(results_dir, cell.cell_id, attempt) if attempt else None
    progress(CellEvent("finished", cell, attempt=attempt, status=status, wall_s=time.monotonic() - t0,
                       row=row, error=(row or {}).get("error", "")))
    progress.close()
    if args.json and row is not None:
        print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}))
    elif row is not None:
        path = store.row_path(results_dir, cell.cell_id, attempt)
        print(f"{status}: {path}")
    return 0 if status == "ok" else 1


def _run_as_rank(cell, args) -> int:
    """`qssm train --launcher L`: this process is one rank; rank 0 numbers the attempt, writes
    and prints the row; the other ranks print nothing."""
    from .executors.base import attempt_row
    from .executors.launchers import LAUNCHERS, detect
    from .errors import UserError
    from .train import run_cell
    if args.launcher not in LAUNCHERS:
        raise UserError(f"--launcher {args.launcher!r} is not allowed; choose one of {', '.join(LAUNCHERS)}")
    env = detect(args.launcher)
    results_dir = store.prepare_results_dir(Path(args.results))
    out = run_cell(cell, results_dir, env, force=True)
    if env.rank != 0:
        return 0 if out.status == "ok" else 1
    if out.status == "skipped":
        print(f"qssm: cell {cell.cell_id} is running in another process; try again later", file=sys.stderr)
        return 1
    row = attempt_row(results_dir, cell.cell_id, out.attempt) if out.attempt else None
    if args.json and row is not None:
        print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}))
    elif row is not None:
        print(f"{out.status}: {store.row_path(results_dir, cell.cell_id, out.attempt)}")
    return 0 if out.status == "ok" else 1
