"""`qssm sweep FILE`: expand a sweep file into cells, skip the ones already done, run the rest.

Exit status: 0 when every cell of the sweep has an ok row, 1 when some failed (now or before),
2 for bad input (nothing is written then), 130 when interrupted.
"""
from __future__ import annotations

import signal
import sys
from pathlib import Path

from . import store



def add_arguments(p) -> None:
    from .executors import add_executor_arguments, available
    p.add_argument("sweep", metavar="FILE", help="sweep file (YAML), or the name of a shipped sweep (e.g. smoke)")
    p.add_argument("--results", metavar="DIR", default=None,
                   help="results folder (default: results/<sweep file name>)")
    p.add_argument("--executor", default="local", metavar="NAME",
                   help=f"where cells run: {', '.join(available())} (default: local)")
    p.add_argument("--dry-run", action="store_true", help="list the cells and what would run; write nothing "
                   "(cells the executor cannot run are refused as in a real run)")
    p.add_argument("--retry-failed", action="store_true",
                   help="also rerun cells whose earlier attempts failed (oom/nan/timeout/failed)")
    add_executor_arguments(p)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def plan(cells, results_dir: Path, retry_failed: bool):
    """Split cells into (done, failed_before, to_run) by the rows already in the folder."""
    states = store.cell_states(results_dir, [c.cell_id for c in cells]) if results_dir.is_dir() else {}
    done, failed, to_run = [], [], []
    for c in cells:
        st = states.get(c.cell_id)
        if st is not None and st.ok:
            done.append(c)
        elif st is not None and st.has_row and not retry_failed:
            failed.append(c)
        else:
            to_run.append(c)
    return done, failed, to_run


def run(args) -> int:
    from .executors import executor_class
    from .progress import Progress, fmt_duration
    from .sweep import load_sweep

    sweep = load_sweep(args.sweep)
    executor_cls = executor_class(args.executor)
    # --dry-run too: it refuses what the real run refuses, and leaves out what it would leave out
    split = getattr(executor_cls, "split_cells", None)
    if split is not None:
        cells, left_out = split(sweep.cells)
    else:
        from .errors import UserError
        try:
            executor_cls.check_cells(sweep.cells)
        except UserError as exc:
            if not (args.dry_run and getattr(exc, "tool_missing", False)):
                raise
            print(f"qssm: warning: {exc} (a real run stops here)", file=sys.stderr)
        cells, left_out = list(sweep.cells), []
    executor = executor_cls.from_args(args)  # loads and checks the profile (and its --set) now
    results = Path(args.results) if args.results else Path("results") / Path(sweep.source).stem
    results_dir = store.prepare_results_dir(results, create=not args.dry_run)
    for w in sweep.warnings:
        print(f"qssm: warning: {w}", file=sys.stderr)
    for c, why in left_out[:10]:
        print(f"qssm: leaving out {c.cell_id} ({c.label()}): {why}", file=sys.stderr)
    if len(left_out) > 10:
        print(f"qssm: ... and {len(left_out) - 10} more cells left out", file=sys.stderr)
    done, failed, to_run = plan(cells, results_dir, args.retry_failed)
    extra = []
    if sweep.n_duplicates:
        extra.append(f"{sweep.n_duplicates} duplicates merged")
    if sweep.n_excluded:
        extra.append(f"{sweep.n_excluded} excluded")
    if left_out:
        spanning = sum(c.nodes > 1 for c, _ in left_out)
        why = [w for n, w in ((spanning, "multi-node (SLURM only)"),
                              (len(left_out) - spanning, "more GPUs than this machine has")) if n]
        extra.append(f"{len(left_out)} left out: {' or '.join(why)}")
    print(f"{sweep.source}: {len(sweep.cells)} cells ({sweep.n_points} combinations"
          + (", " + ", ".join(extra) if extra else "") + f"): {len(done)} done, "
          + (f"{len(failed)} failed before (skipped; --retry-failed to rerun), " if failed else "")
          + f"{len(to_run)} to run -> {results_dir} [executor {executor_cls.name}]")
    if args.dry_run:
        state = {c.cell_id: "done" for c in done}
        state.update({c.cell_id: "failed-before" for c in failed})
        from .cell import distinct_labels
        describe = getattr(executor, "describe_plan", None)
        arrays = describe(to_run) if describe is not None and to_run else []   # its checks first
        for c, label in zip(cells, distinct_labels(cells)):
            print(f"  {c.cell_id}  {state.get(c.cell_id, 'to-run'):<13} {label}")
        for line in arrays:
            print(line)
        return 0
    if to_run:
        store.clean_stale_tmp(results_dir)
        progress = Progress(len(to_run))
        old = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            sub = executor.submit(to_run, results_dir, retry_failed=args.retry_failed, sweep=sweep.source)
            executor.wait(sub, progress)
        finally:
            progress.close()
            signal.signal(signal.SIGTERM, old)
        if getattr(sub.handle, "detached", False):   # a batch executor's --no-wait: the jobs go on
            return 0
        elapsed = fmt_duration(__import__("time").monotonic() - progress.t0)
    else:
        elapsed = "0s"
    states = store.cell_states(results_dir, [c.cell_id for c in cells])
    counts: dict[str, int] = {}
    not_ok = []
    for c in cells:
        st = states.get(c.cell_id)
        key = "ok" if st is not None and st.ok else (st.last_status if st is not None and st.last_status else "not run")
        counts[key] = counts.get(key, 0) + 1
        if key != "ok":
            not_ok.append((c, key))
    order = ["ok", "failed", "oom", "timeout", "nan", "not run"]
    summary = ", ".join(f"{counts[k]} {k}" for k in order if counts.get(k))
    left = f", {len(left_out)} left out" if left_out else ""
    print(f"{sweep.source}: {summary} ({len(cells)} cells{left}; this run took {elapsed}) -> {results_dir}")
    if not_ok:
        for c, key in not_ok[:20]:
            print(f"  {key:<8} {c.cell_id}  {c.label()}")
        if len(not_ok) > 20:
            print(f"  ... and {len(not_ok) - 20} more (qssm status {results_dir})")
        return 1
    return 0
