"""A cell: one point of a sweep — every setting that can change its result, and nothing else.

Cell fields are the columns of ``bench.schema.CELL_COLUMNS``; model settings keep the models' own
keyword names (``seq_len`` is the models' ``n_timesteps``). Building a ``Cell`` coerces, validates
and *normalises* it:

- a model setting the model does not use (``MODEL_FIELDS``) becomes ``None`` — ClassicalMamba has
  no ``chunk_size``, so ``chunk_size: [8, 16]`` gives it one cell, not two;
- ``qml_device`` is ``None`` unless ``quantum_backend == "pennylane"``;
- ``chunk_size`` and ``quantum_steps`` are clamped to ``seq_len`` (a chunk longer than the sequence
  is the whole sequence; the circuits never see more than T steps);
- a data file task ``file:PATH`` gets an absolute path, and unset ``seq_len`` / ``feature_dim`` /
  ``output_dim`` come from the file.

``cell_id`` is a short hash of exactly the normalised fields (with a data file's content digest in
place of its path), so the same cell written two ways has one id. ``time_budget_s`` limits an
attempt but does not change what it measures, so it is not part of the id.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import hashlib
import json
import math
from dataclasses import dataclass, fields
from typing import Any, Mapping

from . import schema
from .errors import UserError

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")
PRECISIONS = ("fp32", "fp64", "bf16-mixed", "fp16-mixed")
# steps when unset: 100, or a budget of 3000 when the cell stops at a target accuracy
STEPS_DEFAULT, STEPS_BUDGET_DEFAULT = 100, 3000
DEFAULTS_HELP = {"steps": f"{STEPS_DEFAULT}; {STEPS_BUDGET_DEFAULT} with target_accuracy",
                 "precision": "fp32 (fp64 with dtype float64)"}  # bench.stability says what each runs
# Fields added after cell ids were first published: hashed into cell_id only away from these
# values (so every older cell keeps its id; fp32/fp64 are already in dtype).
_ID_QUIET = {"precision": ("fp32", "fp64"), "track_activations": (0,), "lr_schedule": ("constant",),
             "eval_every": (0,), "target_accuracy": (None,), "repeat": (0,), "circuit_probe_steps": (0,), "nodes": (1,)}
# Fields that limit an attempt but do not change its measurements: not hashed into cell_id.
RUN_LIMIT_FIELDS = ("time_budget_s",)
# Cell fields that are model settings (passed to qssm.build_model under the same name).
MODEL_SETTING_FIELDS = ("n_qubits", "qlcu_layers", "feature_dim", "d_model", "d_state", "n_layers",
                        "output_dim", "dropout", "hidden_dim", "chunk_size", "quantum_steps",
                        "quantum_backend", "qml_device", "scan")
# Cell fields that a data file can supply when the user leaves them unset.
FILE_RESOLVED_FIELDS = ("seq_len", "feature_dim", "output_dim")
_ID_VERSION = "qssm-cell-1"
_SKIP_MODEL_CHECK = False  # set while rebuilding cells that were validated before (rank processes)


def _model_defaults() -> dict:
    from qssm import ModelConfig
    defaults = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    out = {k: defaults[k] for k in MODEL_SETTING_FIELDS}
    out["scan"] = "chunked"  # the harness measures the fast path unless told otherwise
    return out


_MD = _model_defaults()


@dataclass(frozen=True)
class Cell:
    # --- run settings ---
    model: str                                  # registry name (qssm.MODEL_NAMES)
    task: str = "marked_recall"                 # marked_recall | selective_copy | adding | order | file:PATH
    seq_len: int = 32                           # T, timesteps per sample (models' n_timesteps)
    batch_size: int = 32                        # B, global batch (split evenly over the ranks)
    world_size: int = 1                         # DDP ranks
    nodes: int = 1                              # nodes the ranks span (world_size a multiple; SLURM only when > 1)
    device: str = "cpu"                         # cpu | cuda (rank r uses cuda:LOCAL_RANK)
    dtype: str = "float32"                      # float32 | float64 (parameters and inputs)
    precision: str | None = None                # fp32 | fp64 | bf16-mixed | fp16-mixed (None: from dtype)
    steps: int | None = None                    # optimiser steps, warm-up included (None: see STEPS_DEFAULT)
    warmup_steps: int = 5                       # leading steps excluded from timing
    lr: float = 1e-3                            # AdamW learning rate (peak of the schedule)
    lr_schedule: str = "constant"               # constant | cosine (bench.protocol)
    eval_every: int = 0                         # held-out accuracy every k steps (0: at the end only)
    target_accuracy: float | None = None        # stop when a periodic evaluation reaches it
    seed: int = 0                               # data, initialisation and dropout
    eval_samples: int = 512                     # held-out samples scored for accuracy
    num_threads: int = 0                        # torch threads per rank; 0 = auto (cores / ranks)
    time_budget_s: float | None = None          # wall-time limit of an attempt (None: none)
    track_activations: int = 0                  # per-block activation RMS every k steps (0: off)
    repeat: int = 0                             # replicate index (same seed): a separate cell, a replicate in analysis
    circuit_probe_steps: int = 0                # quantum models: pairs of passes measuring circuit_share (0: off)
    # --- model settings (None where the model does not use them) ---
    n_qubits: int | None = _MD["n_qubits"]              # q
    qlcu_layers: int | None = _MD["qlcu_layers"]        # l
    feature_dim: int = _MD["feature_dim"]               # D
    d_model: int | None = _MD["d_model"]                # d
    d_state: int | None = _MD["d_state"]                # N
    n_layers: int | None = _MD["n_layers"]              # L
    output_dim: int = _MD["output_dim"]                 # O
    dropout: float = _MD["dropout"]                     # dropout probability
    hidden_dim: int | None = _MD["hidden_dim"]          # H
    chunk_size: int | None = _MD["chunk_size"]          # C
    quantum_steps: int | None = _MD["quantum_steps"]    # timesteps given to the circuits
    quantum_backend: str | None = _MD["quantum_backend"]  # torch | pennylane
    qml_device: str | None = _MD["qml_device"]          # PennyLane device
    scan: str | None = _MD["scan"]                      # chunked | reference

    def __post_init__(self):
        for f in fields(self):
            object.__setattr__(self, f.name, coerce(f.name, getattr(self, f.name)))
        _validate_run_settings(self)
        for name, value in _normalised_model_settings(self).items():
            object.__setattr__(self, name, value)
        if is_file_task(self.task):
            from .tasks import resolve_file_task
            object.__setattr__(self, "task", resolve_file_task(self.task))
        from .tasks import check_task
        check_task(self.task, self.seq_len, self.feature_dim, self.output_dim)
        if not _SKIP_MODEL_CHECK:
            _check_model_config(self.model, tuple(sorted(self.model_kwargs().items())))

    # ----- views -----
    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in schema.CELL_FIELD_NAMES}

    def model_kwargs(self) -> dict:
        """Keyword arguments for ``qssm.build_model`` (input layout is always explicit: BTD)."""
        kw = {k: getattr(self, k) for k in MODEL_SETTING_FIELDS if getattr(self, k) is not None}
        kw["n_timesteps"] = self.seq_len
        kw["layout"] = "BTD"
        return kw

    @property
    def cell_id(self) -> str:
        return _cell_id(self)

    def identity(self) -> dict:
        """The exact values hashed into ``cell_id``."""
        ident = {k: getattr(self, k) for k in schema.CELL_FIELD_NAMES if k not in RUN_LIMIT_FIELDS}
        for k, quiet in _ID_QUIET.items():
            if ident[k] in quiet:
                del ident[k]
        if is_file_task(self.task):
            from .tasks import file_digest
            ident["task"] = "file-sha256:" + file_digest(self.task[len("file:"):])
        else:
            from .tasks import TASK_REVISIONS
            if self.task in TASK_REVISIONS:
                ident["task"] = f"{self.task}@{TASK_REVISIONS[self.task]}"
        return ident

    def label(self) -> str:
        """Short human description for progress lines."""
        parts = [self.model, f"T={self.seq_len}"]
        if self.n_qubits is not None:
            parts.append(f"q={self.n_qubits}")
        if self.chunk_size is not None:
            parts.append(f"C={self.chunk_size}")
        parts.append(f"W={self.world_size}")
        if self.nodes > 1:
            parts.append(f"nodes={self.nodes}")
        if self.task != "marked_recall":
            parts.append(self.task if not is_file_task(self.task) else "file")
        if self.lr != DEFAULTS["lr"]:
            parts.append(f"lr={self.lr:g}")
        if self.seed:
            parts.append(f"seed={self.seed}")
        if self.precision not in ("fp32", "fp64"):
            parts.append(self.precision)
        elif self.dtype != "float32":
            parts.append(self.dtype)
        if self.track_activations:
            parts.append(f"act/{self.track_activations}")
        if self.repeat:
            parts.append(f"rep={self.repeat}")
        if self.device != "cpu":
            parts.append(self.device)
        return " ".join(parts)

    def replace(self, **changes) -> "Cell":
        return dataclasses.replace(self, **changes)


def distinct_labels(cells) -> list[str]:
    """``Cell.label()`` of each cell, with the fields that tell apart cells sharing a label added
    (so that a listing never shows two different cells the same way)."""
    labels = [c.label() for c in cells]
    by_label: dict = {}
    for i, lab in enumerate(labels):
        by_label.setdefault(lab, []).append(i)
    for lab, idx in by_label.items():
        if len(idx) < 2:
            continue
        differ = [f for f in CELL_FIELDS
                  if len({repr(getattr(cells[i], f)) for i in idx}) > 1]
        for i in idx:
            labels[i] = lab + " " + " ".join(f"{f}={getattr(cells[i], f)}" for f in differ)
    return labels


CELL_FIELDS = tuple(f.name for f in fields(Cell))
assert set(CELL_FIELDS) == set(schema.CELL_FIELD_NAMES), "bench.schema.CELL_COLUMNS and Cell disagree"
DEFAULTS = {f.name: f.default for f in fields(Cell) if f.default is not dataclasses.MISSING}

_INT = {"seq_len": 1, "batch_size": 1, "world_size": 1, "nodes": 1, "steps": 1, "warmup_steps": 0, "seed": 0,
        "eval_samples": 1, "num_threads": 0, "track_activations": 0, "eval_every": 0, "repeat": 0, "circuit_probe_steps": 0, "n_qubits": 1, "qlcu_layers": 1, "feature_dim": 1, "d_model": 1,
        "d_state": 1, "n_layers": 1, "output_dim": 1, "hidden_dim": 1, "chunk_size": 1, "quantum_steps": 1}
_INT_MAX = 2 ** 63 - 1
_FLOAT = ("lr", "dropout", "time_budget_s", "target_accuracy")
_STR = ("model", "task", "device", "dtype", "precision", "lr_schedule", "quantum_backend", "qml_device", "scan")
_NULLABLE = set(MODEL_SETTING_FIELDS) - {"feature_dim", "output_dim", "dropout"} | {"time_budget_s", "precision", "target_accuracy", "steps"}


def is_file_task(task: str) -> bool:
    return isinstance(task, str) and task.startswith("file:")


def _bad(name, value, need) -> UserError:
    return UserError(f"{name}={value!r} is not allowed; {need}")


def coerce(name: str, value: Any, *, from_text: bool = False) -> Any:
    """Type-check (and for text from the command line, parse) one field's value.

    YAML gives typed values: an int field refuses 2.5, True and "2"; a float field accepts ints and
    numeric strings ("1e-3", which YAML 1.1 reads as a string). ``from_text`` parses CLI strings;
    "none"/"null" unset a nullable field.
    """
    if name not in _INT and name not in _FLOAT and name not in _STR:
        raise unknown_field(name)
    if value is None or (from_text and isinstance(value, str) and value.lower() in ("none", "null")):
        if name in _NULLABLE:
            return None
        raise _bad(name, value, "a value is required")
    if name in _INT:
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _bad(name, value, f"need an integer >= {_INT[name]}") from None
        if isinstance(value, float) and value.is_integer() and from_text:
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise _bad(name, value, f"need an integer >= {_INT[name]}")
        if not _INT[name] <= value <= _INT_MAX:
            raise _bad(name, value, f"need an integer >= {_INT[name]}")
        return int(value)
    if name in _FLOAT:
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise _bad(name, value, "need a number") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _bad(name, value, "need a number")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise _bad(name, value, "need a finite number")
        if name == "lr" and not value > 0:
            raise _bad(name, value, "need a number > 0")
        if name == "dropout" and not 0.0 <= value < 1.0:
            raise _bad(name, value, "need a number in [0, 1)")
        if name == "target_accuracy" and not 0.0 < value <= 1.0:
            raise _bad(name, value, "need a held-out accuracy in (0, 1] (or null to train for steps)")
        if name == "time_budget_s" and not value > 0:
            raise _bad(name, value, "need a number of seconds > 0 (or null for no limit)")
        return value
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, value, "need a non-empty string")
    return value.strip()


def unknown_field(name: str, where: str = "") -> UserError:
    near = difflib.get_close_matches(str(name), CELL_FIELDS, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return UserError(f"{where}unknown cell field {name!r}{hint}; cell fields are: {', '.join(CELL_FIELDS)}")


def _validate_run_settings(c: Cell) -> None:
    from qssm import MODEL_NAMES
    if c.model not in MODEL_NAMES:
        near = difflib.get_close_matches(c.model, MODEL_NAMES, n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UserError(f"model={c.model!r} is not a known model{hint}; choose one of {', '.join(MODEL_NAMES)}")
    if c.device not in DEVICES:
        raise _bad("device", c.device, f"choose one of {', '.join(DEVICES)}")
    if c.dtype not in DTYPES:
        raise _bad("dtype", c.dtype, f"choose one of {', '.join(DTYPES)}")
    precision = c.precision if c.precision is not None else ("fp64" if c.dtype == "float64" else "fp32")
    if precision not in PRECISIONS:
        raise _bad("precision", precision, f"choose one of {', '.join(PRECISIONS)}")
    if precision != "fp64" and c.dtype == "float64":
        raise UserError(f"dtype=float64 is not allowed with precision={precision}; precision decides the "
                        "parameters' dtype: use precision fp64 (or leave dtype unset)")
    object.__setattr__(c, "precision", precision)
    object.__setattr__(c, "dtype", "float64" if precision == "fp64" else "float32")
    from .protocol import LR_SCHEDULES
    if c.lr_schedule not in LR_SCHEDULES:
        raise _bad("lr_schedule", c.lr_schedule, f"choose one of {', '.join(LR_SCHEDULES)}")
    if c.target_accuracy is not None and c.eval_every < 1:
        raise UserError(f"target_accuracy={c.target_accuracy:g} needs eval_every >= 1 (the held-out accuracy is "
                        "checked every eval_every steps); got eval_every=0")
    if c.world_size > 4096:
        raise _bad("world_size", c.world_size, "need an integer in 1..4096")
    if c.world_size % c.nodes:
        raise UserError(f"nodes={c.nodes} is not allowed with world_size={c.world_size}; the ranks are split "
                        "evenly over the nodes, so world_size must be a multiple of nodes")
    if c.batch_size % c.world_size:
        raise UserError(f"batch_size={c.batch_size} is not allowed with world_size={c.world_size}; the global "
                        "batch is split evenly over the ranks, so batch_size must be a multiple of world_size")
    if c.steps is None:
        object.__setattr__(c, "steps", STEPS_BUDGET_DEFAULT if c.target_accuracy is not None else STEPS_DEFAULT)
    if c.warmup_steps >= c.steps:
        raise UserError(f"warmup_steps={c.warmup_steps} is not allowed with steps={c.steps}; need "
                        "warmup_steps < steps (at least one timed step)")
    if c.eval_samples > 10_000_000:
        raise _bad("eval_samples", c.eval_samples, "need an integer in 1..10000000")


def _normalised_model_settings(c: Cell) -> dict:
    from qssm import MODEL_FIELDS
    used = set(MODEL_FIELDS[c.model])
    out = {}
    for name in MODEL_SETTING_FIELDS:
        value = getattr(c, name)
        if name not in used:
            value = None
        elif value is None and name != "qml_device":
            raise UserError(f"{name}=None is not allowed for model {c.model}; it needs a value")
        out[name] = value
    if out["quantum_backend"] != "pennylane":
        out["qml_device"] = None
    elif out["qml_device"] is None:
        out["qml_device"] = _MD["qml_device"]
    if out["chunk_size"] is not None:
        out["chunk_size"] = min(out["chunk_size"], c.seq_len)
    if out["quantum_steps"] is not None:
        out["quantum_steps"] = min(out["quantum_steps"], c.seq_len)
    if "n_qubits" not in used:      # no circuits to probe: the same cell as without the probe
        out["circuit_probe_steps"] = 0
    return out


@functools.lru_cache(maxsize=4096)
def _check_model_config(model: str, kwargs: tuple) -> None:
    """Let the model itself judge its settings: build it on the meta device (no memory, ~ms)."""
    import torch
    from qssm import build_model
    from qssm.config import ConfigError
    kw = dict(kwargs)
    kw["n_timesteps"] = kw.get("n_timesteps", 1)
    try:
        with torch.device("meta"):
            build_model(model, **kw)
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise UserError(f"model {model} rejects these settings: {exc}") from None
    except Exception:  # noqa: BLE001 - anything else surfaces when the cell runs (as a failure row)
        pass


def _canonical(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return value


@functools.lru_cache(maxsize=65536)
def _cell_id_cached(items: tuple) -> str:
    payload = json.dumps([_ID_VERSION, [[k, _canonical(v)] for k, v in items]], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _cell_id(c: Cell) -> str:
    return _cell_id_cached(tuple(sorted(c.identity().items())))


def cell_from_mapping(raw: Mapping[str, Any], *, from_text: bool = False, where: str = "") -> Cell:
    """Build a cell from a mapping of field -> value (sweep entries, CLI flags, manifests).

    Missing fields take their defaults; for a ``file:`` task, missing ``seq_len`` / ``feature_dim``
    / ``output_dim`` come from the data file. Unknown keys are an error naming the key.
    """
    values = {}
    for key, value in raw.items():
        if key not in CELL_FIELDS:
            raise unknown_field(key, where)
        try:
            values[key] = coerce(key, value, from_text=from_text)
        except UserError as exc:
            raise UserError(f"{where}{exc}") from None
    if "model" not in values:
        from qssm import MODEL_NAMES
        raise UserError(f"{where}model is not set; choose one of {', '.join(MODEL_NAMES)}")
    task = values.get("task", DEFAULTS["task"])
    if is_file_task(task):
        from .tasks import inspect_file_task
        info = inspect_file_task(task)
        for key in FILE_RESOLVED_FIELDS:
            values.setdefault(key, info[key])
    try:
        return Cell(**values)
    except UserError as exc:
        raise UserError(f"{where}{exc}") from None
    except ValueError as exc:  # qssm.ConfigError
        raise UserError(f"{where}{exc}") from None


def cell_from_row(row: Mapping[str, Any], *, check_model: bool = True) -> Cell:
    """Rebuild a cell from a result row or a manifest entry (extra keys ignored, NaN -> None).
    ``check_model=False`` skips building the model on the meta device (seconds in a fresh
    process) for cells validated before."""
    values = {}
    for key in CELL_FIELDS:
        if key not in row:
            continue
        v = row[key]
        if v is not None and not isinstance(v, str):
            try:
                if math.isnan(v):
                    v = None
            except TypeError:
                pass
        if hasattr(v, "item"):
            v = v.item()
        values[key] = v
    global _SKIP_MODEL_CHECK
    saved, _SKIP_MODEL_CHECK = _SKIP_MODEL_CHECK, not check_model
    try:
        return Cell(**values)
    finally:
        _SKIP_MODEL_CHECK = saved
