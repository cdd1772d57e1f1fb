"""`qssm sbatch SWEEP --profile P -o DIR`: write sbatch job-array scripts and their manifests.

For users who submit with plain ``sbatch`` (or want to read and edit the job first). Cells that
are not done yet are grouped by the resources they need (world size, CPU/GPU; one array has one
shape); each group gets ``DIR/<name>.sbatch`` and the manifest of its cells ``DIR/<name>.cells.json``
beside it (``<name>`` = the sweep file's stem, plus ``-w<W>`` when there are several groups).
Array task *i* runs ``qssm run-cell MANIFEST i`` on every rank under ``srun``; ranks learn who
they are from SLURM (``--launcher sbatch``) or from MPI (``--launcher mpi``:
``srun --mpi=<profile mpi>``). A cell saves checkpoints while it runs; SLURM's warning before
the time limit (``--signal=USR2@S``) makes it checkpoint and stop with exit status 75, and the
script requeues the array task, which resumes. Logs go to ``DIR/logs/``.

Exit status 0 (also when nothing is left to run), 2 for bad input.
"""
from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from . import store

LAUNCHERS = ("sbatch", "mpi")


def add_arguments(p) -> None:
    p.add_argument("sweep", metavar="SWEEP", help="sweep file (YAML), or the name of a shipped sweep")
    p.add_argument("--profile", default="local", metavar="P",
                   help="site profile: a name in slurm/profiles/ or a YAML file (default: local)")
    from .profiles import add_set_argument
    add_set_argument(p)
    p.add_argument("-o", "--output", metavar="DIR", required=True, help="folder for the scripts and manifests")
    p.add_argument("--results", metavar="DIR", default=None,
                   help="results folder the jobs write to (default: results/<sweep file name>)")
    p.add_argument("--launcher", default="sbatch", metavar="NAME",
                   help="how ranks start: sbatch (srun tasks) or mpi (mpi4py under srun --mpi=...) "
                        "(default: sbatch)")
    p.add_argument("--retry-failed", action="store_true", help="also include cells whose earlier attempts failed")
    p.add_argument("--all", action="store_true", help="include every cell of the sweep, also the ones done")
    p.add_argument("--checkpoint-every-s", type=float, default=300.0, metavar="S",
                   help="seconds between checkpoints of a running cell (default: 300)")
    p.add_argument("--signal-delay-s", type=int, default=90, metavar="S",
                   help="SLURM's warning before the time limit, in seconds (default: 90)")
    p.add_argument("--max-requeues", type=int, default=3, metavar="N",
                   help="requeues of a cell after time limits (default: 3)")


def fmt_time(minutes: int) -> str:
    """sbatch --time value: 30 -> '00:30:00', 1500 -> '1-01:00:00'."""
    d, rest = divmod(int(minutes), 1440)
    h, m = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:00"


def _q(value) -> str:
    return shlex.quote(str(value))


def render_script(*, job_name: str, profile, shape, n_cells: int, script: Path, manifest: Path,
                  results_dir: Path, log_dir: Path, python: str, pythonpath: list, launcher: str = "sbatch",
                  sweep: str = "", checkpoint_every_s: float = 300.0, signal_delay_s: int = 90,
                  max_requeues: int = 3, throttle: int | None = None) -> str:
    """The text of one array script (pure: everything it depends on is an argument)."""
    from .executors.slurm import sbatch_options
    opts = sbatch_options(profile, shape)
    if "time" in opts:
        opts["time"] = fmt_time(opts["time"])
    what = (f"{n_cells} cell{'s' if n_cells != 1 else ''} with world_size={shape.world_size} on {shape.device}"
            + (f", {shape.nodes} nodes x {shape.tasks_per_node} ranks" if shape.nodes > 1 else ""))
    k = max(1, shape.cells_per_task)
    n_tasks = -(-n_cells // k)
    runs = ("array task i runs cell i of the manifest" if k == 1 else
            f"array task i runs cells {k}i..{k}i+{k - 1} of the manifest side by side, one per GPU (packed)")
    qssm = f"{python} -m bench.cli"
    lines = [
        "#!/bin/bash",
        f"# qssm-bench job array: {what}; {runs}.",
        f"# Sweep {sweep or '(cells)'}, site profile {profile.name!r}. Written by `qssm sbatch`; edit freely.",
        "#",
        f"#   submit:    sbatch {script}",
        (f"#   one cell:  sbatch --array=INDEX {script}" if k == 1 else
         f"#   one task:  sbatch --array=INDEX {script}   (cells {k}*INDEX..{k}*INDEX+{k - 1})"),
        f"#   follow:    squeue -u \"$USER\"; sacct -j JOBID; {qssm} status {results_dir}",
        "#",
        "# A cell already done is skipped, so submitting the whole array again runs only what is left.",
        "#",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --array=0-{n_tasks - 1}%{throttle or profile.max_concurrent}",
    ]
    lines += [f"#SBATCH --{key}={value}" for key, value in opts.items()]
    lines += [
        f"#SBATCH --output={log_dir}/%x-%A_%a.out",
        "#SBATCH --open-mode=append",
        "#SBATCH --requeue",
        f"#SBATCH --signal=USR2@{signal_delay_s}",
        "",
        "set -u",
    ]
    if profile.setup:
        lines += ["", "# --- site setup (profile 'setup')"] + list(profile.setup)
    if pythonpath:
        lines += ["", "# --- qssm-bench is used from its checkout (not installed in the interpreter below)"]
        lines += list(pythonpath)
    from .profiles import provenance_setup
    lines += ["", "# --- recorded in every row's environment (qssm.env)"] + provenance_setup(profile)
    if k > 1:   # packed: one single-rank step per GPU, side by side
        srun = ["srun", "--exact", "--ntasks=1", "--gpus=1", f"--cpus-per-task={profile.cpus_per_task}"]
    else:
        srun = ["srun", f"--ntasks={shape.world_size}", f"--ntasks-per-node={shape.tasks_per_node}",
                f"--cpus-per-task={profile.cpus_per_task}"]
    if launcher == "mpi":
        srun.append(f"--mpi={profile.mpi}")
    # every rank exits 75 when it stops at a checkpoint; a site default of killing the step at
    # the first non-zero exit would turn the slower ranks' 75 into "Terminated"
    srun.append("--kill-on-bad-exit=0")
    lines += [
        "",
        "# --- the cell",
        f"QSSM=({_q(python)} -m bench.cli)",
        f"MANIFEST={_q(manifest)}",
        f"MAX_REQUEUES={max_requeues}",
        "# a running cell saves a checkpoint this often (seconds), to resume after a requeue",
        f"export QSSM_CHECKPOINT_EVERY_S=\"${{QSSM_CHECKPOINT_EVERY_S:-{checkpoint_every_s:g}}}\"",
        "",
        f"# one rank per task; run-cell learns rank and world size from {'MPI' if launcher == 'mpi' else 'SLURM'}",
        "# SLURM's SIGTERM on pre-emption reaches this script too: keep it alive (srun passes the",
        "# signal on to the ranks, which checkpoint at their next step and exit 75)",
        "trap 'echo \"[qssm] SIGTERM: the cell checkpoints at its next step\" >&2' TERM",
    ]
    if k == 1:
        lines += [
            " ".join(srun) + " \\",
            f"    \"${{QSSM[@]}}\" run-cell \"$MANIFEST\" \"$SLURM_ARRAY_TASK_ID\" --launcher {launcher} &",
            "SRUN_PID=$!",
            "while :; do",
            "    wait \"$SRUN_PID\"; status=$?",
            "    kill -0 \"$SRUN_PID\" 2>/dev/null || break   # wait was only interrupted by the trap",
            "done",
            "# a wait cut short by the trap just as srun ended: ask once more for its real status",
            "if [ \"$status\" -gt 128 ]; then wait \"$SRUN_PID\" 2>/dev/null; s=$?; [ \"$s\" -eq 127 ] || status=$s; fi",
        ]
    else:
        lines += [
            f"PIDS=(); N_CELLS={n_cells}",
            f"for j in $(seq 0 {k - 1}); do",
            f"    i=$(( SLURM_ARRAY_TASK_ID * {k} + j ))",
            "    [ \"$i\" -lt \"$N_CELLS\" ] || break",
            "    " + " ".join(srun) + f" \"${{QSSM[@]}}\" run-cell \"$MANIFEST\" \"$i\" --launcher {launcher} &",
            "    PIDS+=($!)",
            "done",
            "# the task's status: 75 when any cell stopped at a checkpoint (requeue: the cells already done",
            "# are skipped on the rerun), else the first failure, else 0",
            "status=0",
            "for pid in \"${PIDS[@]}\"; do",
            "    while :; do",
            "        wait \"$pid\"; s=$?",
            "        kill -0 \"$pid\" 2>/dev/null || break",
            "    done",
            "    if [ \"$s\" -gt 128 ]; then wait \"$pid\" 2>/dev/null; t=$?; [ \"$t\" -eq 127 ] || s=$t; fi",
            "    if [ \"$s\" -eq 75 ]; then status=75; elif [ \"$s\" -ne 0 ] && [ \"$status\" -eq 0 ]; then status=$s; fi",
            "done",
        ]
    lines += [
        "",
        "# 75: the cell checkpointed after SLURM's warning (time limit or pre-emption) and stopped;",
        "# requeue it: the rerun resumes from the checkpoint and its row counts the requeue.",
        "# Only while the job still runs (a time-limit warning): after scancel or a pre-emption SLURM is",
        "# already ending it (COMPLETING); a cancelled job stays cancelled, a pre-empted one is requeued",
        "# by SLURM where the site's PreemptMode says so, and its checkpoint stays for a resubmission.",
        "state=$(scontrol show job \"$SLURM_JOB_ID\" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -n1 | cut -d= -f2)",
        "if [ \"$status\" -eq 75 ] && [ \"${SLURM_RESTART_COUNT:-0}\" -lt \"$MAX_REQUEUES\" ] && [ \"$state\" = RUNNING ]; then",
        "    scontrol requeue \"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}\"",
        "fi",
        "exit \"$status\"",
        "",
    ]
    return "\n".join(lines)


def run(args) -> int:
    from .cmd_sweep import plan
    from .errors import UserError
    from .executors.base import write_manifest
    from .executors.slurm import group_cells, pythonpath_setup, shape_tag
    from .profiles import load_profile
    from .sweep import load_sweep

    if args.launcher not in LAUNCHERS:
        raise UserError(f"--launcher {args.launcher!r} is not allowed; choose one of {', '.join(LAUNCHERS)}")
    for name in ("max_requeues", "signal_delay_s"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')}={getattr(args, name)} is not allowed; need >= 0")
    if args.checkpoint_every_s <= 0:
        raise UserError(f"--checkpoint-every-s={args.checkpoint_every_s:g} is not allowed; need > 0")
    sweep = load_sweep(args.sweep)
    profile = load_profile(args.profile, args.profile_set)
    groups = group_cells(sweep.cells, profile)          # UserError before anything is written
    for w in sweep.warnings:
        print(f"qssm: warning: {w}", file=sys.stderr)
    stem = Path(sweep.source).stem
    results = Path(args.results) if args.results else Path("results") / stem
    results_dir = store.prepare_results_dir(results).resolve()
    out = Path(args.output).expanduser()
    try:
        (out / "logs").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"-o {out}: cannot write there ({exc.strerror or exc})") from None
    out = out.resolve()
    if args.all:
        keep = {c.cell_id for c in sweep.cells}
        n_done = 0
    else:
        done, failed, to_run = plan(sweep.cells, results_dir, args.retry_failed)
        keep = {c.cell_id for c in to_run}
        n_done = len(done) + len(failed)
    python = profile.python or os.path.abspath(sys.executable)
    from .executors.slurm_resources import packs, throttles
    kept = {s: [c for c in g if c.cell_id in keep] for s, g in groups.items()}
    shares = throttles({s: packs(g, s) for s, g in kept.items() if g}, profile.max_concurrent)
    written = []
    for shape, cells in groups.items():
        cells = [c for c in cells if c.cell_id in keep]
        if not cells:
            continue
        name = stem if len(groups) == 1 else f"{stem}-{shape_tag(shape)}"
        script, manifest = out / f"{name}.sbatch", out / f"{name}.cells.json"
        write_manifest(manifest, cells, results_dir, sweep=sweep.source)
        text = render_script(job_name=f"qssm-{name}", profile=profile, shape=shape, n_cells=len(cells),
                             script=script, manifest=manifest, results_dir=results_dir, log_dir=out / "logs",
                             python=python, pythonpath=pythonpath_setup(), launcher=args.launcher,
                             sweep=sweep.source, checkpoint_every_s=args.checkpoint_every_s,
                             signal_delay_s=args.signal_delay_s, max_requeues=args.max_requeues,
                             throttle=shares[shape])
        tmp = script.with_name(f".{script.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.chmod(0o755)
        os.replace(tmp, script)
        written.append((script, manifest, cells, shape))
    left = f" ({n_done} done or failed before, not included)" if n_done else ""
    if not written:
        print(f"{sweep.source}: nothing to run: all {len(sweep.cells)} cells are done in {results_dir}{left}")
        return 0
    n = sum(len(c) for _, _, c, _ in written)
    print(f"{sweep.source}: {n} cells in {len(written)} array script(s) -> results {results_dir}{left}")
    for script, manifest, cells, shape in written:
        print(f"  {script}  ({len(cells)} cells, world_size={shape.world_size}"
              + (f" over {shape.nodes} nodes" if shape.nodes > 1 else "") + f", {shape.device}; "
              f"manifest {manifest.name})")
    print("submit with: " + "; ".join(f"sbatch {s}" for s, _, _, _ in written))
    return 0
