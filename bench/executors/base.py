"""The executor interface: how a list of cells gets run somewhere and recorded in a results folder.

An executor has two calls, so that batch systems can return early (``--no-wait``):

- ``submit(cells, results_dir, retry_failed=...) -> Submission``: hand the cells over (write a
  manifest; a batch executor submits a job array here). Cells must be validated ``Cell`` objects;
  the caller has already dropped those that are done.
- ``wait(submission, on_event) -> {cell_id: status}``: block until every submitted cell has a
  result (or was skipped), calling ``on_event(CellEvent)`` as cells start, progress and finish.
  The inline and local executors do the work inside ``wait``.

Whatever runs a cell calls ``bench.train.run_cell(cell, results_dir, launcher=...)`` once per
rank; that function writes the cell's row. Executors never write ok rows themselves; a supervisor
writes a failure row only when its ranks died without writing one (killed, segfault, time limit).

Before running a cell, an executor ``claim``s it: it takes the cell's lock in the results folder
(so two sweeps sharing a folder never run the same cell at once) and re-checks the folder under
the lock: a cell that got an ``ok`` row meanwhile, or a failure row when ``retry_failed`` is off,
is skipped.

Manifest (``write_manifest`` / ``read_manifest``): the cells handed to ``qssm run-cell MANIFEST
INDEX``, JSON::

    {"format": "qssm-manifest", "version": 1, "schema_version": 1,
     "results_dir": "/abs/results", "created": "2026-...Z", "sweep": "/abs/sweep.yaml" | null,
     "cells": [{"cell_id": "3f2a...", "model": "...", "task": "...", ...every cell field...}, ...]}

A bare JSON list of cell objects is accepted too (then ``--results`` is required). Each entry's
``cell_id`` (optional) is checked against the id recomputed from its fields.
"""
from __future__ import annotations

import abc
import contextlib
import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

from .. import schema, store
from ..cell import Cell, cell_from_row
from ..errors import UserError


@dataclass
class CellEvent:
    kind: str                   # started | progress | finished | skipped
    cell: Cell
    attempt: int | None = None
    phase: str = ""             # progress: build | train | infer | eval
    step: int = 0               # progress: i of n within the phase
    steps: int = 0
    status: str | None = None   # finished: ok/failed/oom/timeout/nan; skipped: done/busy/failed-before
    error: str = ""
    wall_s: float | None = None
    row: dict | None = None     # finished: the result row, when readable


@dataclass
class Submission:
    executor: str
    cells: list
    results_dir: Path
    retry_failed: bool = False
    manifest: Path | None = None
    handle: Any = None          # executor-specific (e.g. SLURM job ids)


OnEvent = Callable[[CellEvent], None]


class Executor(abc.ABC):
    name: ClassVar[str] = "base"

    @classmethod
    def add_arguments(cls, parser) -> None:
        """Executor-specific flags for `qssm sweep` (e.g. --profile). Default: none."""

    @classmethod
    def from_args(cls, args) -> "Executor":
        return cls()

    @classmethod
    def check_cells(cls, cells: Sequence[Cell]) -> None:
        """Raise UserError for cells this executor cannot run at all (called before anything is
        written). Default: accept all."""

    def submit(self, cells: Sequence[Cell], results_dir, *, retry_failed: bool = False,
               sweep: str | None = None) -> Submission:
        results_dir = Path(results_dir)
        manifest = results_dir / store.MANIFESTS / (
            f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{self.name}.json")
        write_manifest(manifest, cells, results_dir, sweep=sweep)
        return Submission(self.name, list(cells), results_dir, retry_failed, manifest)

    @abc.abstractmethod
    def wait(self, submission: Submission, on_event: OnEvent | None = None) -> dict[str, str]:
        ...

    def run(self, cells: Sequence[Cell], results_dir, *, retry_failed: bool = False,
            on_event: OnEvent | None = None) -> dict[str, str]:
        return self.wait(self.submit(cells, results_dir, retry_failed=retry_failed), on_event)


def split_cells_here(cells: Sequence[Cell], executor: str) -> tuple[list, list]:
    """(runnable, left_out) for executors that run cells on this machine: CUDA cells that need
    more GPUs than it has are left out, each with the reason; anything else this machine cannot
    run at all (no CUDA, a missing PennyLane plugin) is a UserError, as in check_cells_here."""
    spanning = [(c, f"spans nodes={c.nodes}: a multi-node cell runs only under SLURM (--executor slurm "
                    "or qssm sbatch)") for c in cells if c.nodes > 1]
    if spanning:
        if len(spanning) == len(cells):
            raise UserError(f"every cell spans several nodes (e.g. {spanning[0][0].label()}); --executor {executor} "
                            "runs on this machine only: use --executor slurm or qssm sbatch")
        cells = [c for c in cells if c.nodes == 1]
    try:
        check_cells_here(cells, executor)
        return list(cells), spanning
    except _TooFewGpus as exc:
        n = exc.n_gpus
    runnable = [c for c in cells if c.device != "cuda" or c.world_size <= n]
    left = spanning + [(c, f"needs {c.world_size} GPUs (world_size={c.world_size}); this machine has {n}")
                       for c in cells if c.device == "cuda" and c.world_size > n]
    if not runnable:
        raise UserError(f"every cell needs more GPUs than this machine has ({n}); e.g. {left[-1][0].label()}: "
                        f"{left[-1][1]}")
    check_cells_here(runnable, executor)
    return runnable, left


class _TooFewGpus(UserError):
    def __init__(self, msg: str, n_gpus: int):
        super().__init__(msg)
        self.n_gpus = n_gpus


def check_cells_here(cells: Sequence[Cell], executor: str) -> None:
    """For executors that run cells on this machine: CUDA cells need CUDA and a GPU per rank;
    PennyLane cells need their device's plugin (lightning.gpu: CUDA too)."""
    for qml_device, n_qubits, label in sorted({(c.qml_device, c.n_qubits, c.label()) for c in cells
                                               if c.quantum_backend == "pennylane" and c.qml_device}):
        from qssm.quantum.pennylane_backend import make_device
        try:
            make_device(qml_device, n_qubits)
        except (ImportError, RuntimeError) as exc:
            raise UserError(f"qml_device={qml_device} ({label}) cannot run here with --executor {executor}: "
                            f"{exc}") from None
    cuda = [c for c in cells if c.device == "cuda"]
    if not cuda:
        return
    import torch
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise UserError(f"device=cuda ({cuda[0].label()}): CUDA is not available on this machine, where "
                        f"--executor {executor} runs its cells")
    big = max(cuda, key=lambda c: c.world_size)
    if big.world_size > n:
        raise _TooFewGpus(f"world_size={big.world_size} with device=cuda ({big.label()}) needs one GPU per rank; "
                          f"this machine has {n}", n)


class MachineExecutor(Executor):
    """Base of the executors that run cells on this machine (inline, local): they refuse, before
    anything is written, the cells this machine cannot run (check_cells_here)."""

    @classmethod
    def check_cells(cls, cells: Sequence[Cell]) -> None:
        check_cells_here(cells, cls.name)

    @classmethod
    def split_cells(cls, cells: Sequence[Cell]) -> tuple[list, list]:
        return split_cells_here(cells, cls.name)


# ---------------------------------------------------------------------------------------------
# claiming a cell
# ---------------------------------------------------------------------------------------------
@dataclass
class Claim:
    attempt: int | None = None
    skip: str | None = None     # done | busy | failed-before


@contextlib.contextmanager
def claim(cell: Cell, results_dir, *, retry_failed: bool = False):
    """Hold the cell's lock and decide: run it as attempt N, or skip it (see module doc)."""
    cid = cell.cell_id
    try:
        lock = store.cell_lock(results_dir, cid)
        lock.__enter__()
    except store.LockBusy:
        yield Claim(skip="busy")
        return
    try:
        state = store.cell_states(results_dir, [cid]).get(cid)
        if state is not None and state.ok:
            yield Claim(skip="done")
        elif state is not None and state.has_row and not retry_failed:
            yield Claim(skip="failed-before")
        else:
            yield Claim(attempt=store.next_attempt(results_dir, cid))
    finally:
        lock.__exit__(None, None, None)


def read_row(path) -> dict | None:
    if path is None:
        return None
    try:
        import pyarrow.parquet as pq
        return pq.read_table(path).to_pylist()[0]
    except Exception:  # noqa: BLE001
        return None


def attempt_row(results_dir, cell_id: str, attempt: int) -> dict | None:
    path = store.row_path(results_dir, cell_id, attempt)
    return read_row(path) if path.exists() else None


# ---------------------------------------------------------------------------------------------
# manifests
# ---------------------------------------------------------------------------------------------
MANIFEST_FORMAT = "qssm-manifest"
MANIFEST_VERSION = 1


def write_manifest(path, cells: Sequence[Cell], results_dir, *, sweep: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "schema_version": schema.SCHEMA_VERSION,
        "results_dir": str(Path(results_dir).resolve()),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "sweep": str(Path(sweep).resolve()) if sweep else None,
        "cells": [{"cell_id": c.cell_id, **c.to_dict()} for c in cells],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


@dataclass
class Manifest:
    path: Path
    results_dir: Path | None
    cells: list = field(default_factory=list)


def read_manifest(path) -> Manifest:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as exc:
        raise UserError(f"manifest {path}: cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UserError(f"manifest {path}: not valid JSON ({exc})") from None
    if isinstance(doc, list):
        entries, results = doc, None
    elif isinstance(doc, dict) and doc.get("format") == MANIFEST_FORMAT:
        if doc.get("version") != MANIFEST_VERSION:
            raise UserError(f"manifest {path}: version {doc.get('version')!r} is not supported "
                            f"(this qssm-bench reads version {MANIFEST_VERSION})")
        entries, results = doc.get("cells"), doc.get("results_dir")
    else:
        raise UserError(f"manifest {path}: expected a qssm manifest object or a JSON list of cells")
    if not isinstance(entries, list):
        raise UserError(f"manifest {path}: 'cells' must be a list")
    cells = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise UserError(f"manifest {path}: cells[{i}] must be an object of cell fields")
        fields_ = {k: v for k, v in entry.items() if k != "cell_id"}
        from ..cell import cell_from_mapping
        cell = cell_from_mapping(fields_, where=f"manifest {path}: cells[{i}]: ")
        if "cell_id" in entry and entry["cell_id"] != cell.cell_id:
            raise UserError(f"manifest {path}: cells[{i}]: cell_id {entry['cell_id']!r} does not match its "
                            f"fields (they hash to {cell.cell_id!r}); was the manifest edited or the data "
                            "file changed?")
        cells.append(cell)
    return Manifest(path, Path(results) if results else None, cells)


__all__ = ["Executor", "Submission", "CellEvent", "Claim", "claim", "write_manifest", "read_manifest",
           "Manifest", "read_row", "attempt_row", "cell_from_row"]
