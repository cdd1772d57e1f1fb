"""`qssm run-cell MANIFEST [INDEX]`: run cell INDEX (0-based; default $SLURM_ARRAY_TASK_ID) of a
manifest, once per rank (under srun, torchrun, mpirun, submitit — or alone, which spawns the
ranks here). Skips a cell that already has an ok row unless --force. Exit status 0 when the cell
is ok (or was already done), 1 when it failed, 2 for bad input, 75 when SLURM's warning signal (USR2, or SIGTERM on pre-emption)
stopped it at a checkpoint (no row; run it again to resume)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from . import store
from .errors import UserError



def add_arguments(p) -> None:
    from .executors.launchers import LAUNCHERS
    p.add_argument("manifest", metavar="MANIFEST", help="manifest JSON written next to a sweep")
    p.add_argument("index", metavar="INDEX", nargs="?", default=None,
                   help="0-based cell index (default: $SLURM_ARRAY_TASK_ID)")
    p.add_argument("--results", metavar="DIR", default=None, help="results folder (default: the manifest's)")
    p.add_argument("--launcher", default="auto", metavar="NAME",
                   help=f"how ranks learn their identity: {', '.join(LAUNCHERS)} (default: auto)")
    p.add_argument("--force", action="store_true", help="run even if the cell already has an ok row")


def run(args) -> int:
    from .executors.base import read_manifest
    from .executors.launchers import LAUNCHERS
    from .train import run_cell

    if args.launcher not in LAUNCHERS:
        raise UserError(f"--launcher {args.launcher!r} is not allowed; choose one of {', '.join(LAUNCHERS)}")
    manifest = read_manifest(args.manifest)
    raw_index = args.index if args.index is not None else os.environ.get("SLURM_ARRAY_TASK_ID")
    if raw_index is None:
        raise UserError("INDEX is not given and $SLURM_ARRAY_TASK_ID is not set")
    try:
        index = int(raw_index)
    except ValueError:
        raise UserError(f"INDEX={raw_index!r} is not allowed; need an integer 0..{len(manifest.cells) - 1}") from None
    if not 0 <= index < len(manifest.cells):
        raise UserError(f"INDEX={index} is not allowed; the manifest has {len(manifest.cells)} cells "
                        f"(0..{len(manifest.cells) - 1})")
    results = Path(args.results) if args.results else manifest.results_dir
    if results is None:
        raise UserError("--results DIR is required: the manifest does not name a results folder")
    results_dir = store.prepare_results_dir(results)
    cell = manifest.cells[index]
    requeues = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)
    if os.environ.get("SLURM_JOB_ID"):
        # SLURM's warning before the time limit (sbatch --signal=USR2@S) or a pre-emption (SIGTERM,
        # or USR2 with preempt_send_user_signal): checkpoint at the next step and exit 75 without a
        # row; the sbatch script requeues (after a pre-emption SLURM may already have)
        from .requeue import install_stop_handler
        install_stop_handler()
    out = run_cell(cell, results_dir, args.launcher, force=args.force, requeues=requeues)
    if out.status == "skipped":
        print(f"cell {index} {cell.cell_id} ({cell.label()}): skipped ({out.skipped_reason})")
        return 0 if out.skipped_reason in ("done", "busy") else 1
    if out.path is not None or out.status != "ok":
        print(f"cell {index} {cell.cell_id} ({cell.label()}): {out.status}"
              + (f": {out.error[:300]}" if out.error else ""), file=sys.stdout if out.status == "ok" else sys.stderr)
    return 0 if out.status == "ok" else 1
