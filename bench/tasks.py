"""Sequence-classification tasks: three synthetic ones generated from a seed, and the user's data.

Every task yields ``x (B, T, D)`` float32 and ``y (B,)`` int64 class labels in ``[0, O)``.
Batches are a pure function of ``(seed, stream, index)``: the global batch of a step is the same
whatever the world size, and each rank takes its contiguous slice of it.

Synthetic tasks (need D >= 2 features and O >= 2 classes; every value carries N(0, 0.1²) noise):

- ``marked_recall``: every timestep shows one of O class prototypes (fixed random vectors in
  features 1..D-1, drawn from the seed); feature 0 flags one random timestep. The label is the
  class shown at the flagged step. Longer T = more distractor tokens to ignore.
- ``selective_copy``: every timestep shows one of m token prototypes (m*m <= O, m largest);
  feature 0 flags two distinct timesteps. The label is m * (token at the earlier flag) + (token at
  the later flag): both tokens and their order must be kept until the end. Chance 1/m²
  (1/9 at O = 10). Needs T >= 2, O >= 4.
- ``adding``: feature 0 shows a digit in 0..m-1 at every timestep (m = (O + 1) // 2, 5 at O = 10),
  feature 1 flags two distinct timesteps; features 2.. carry noise only. The label is the sum of
  the two flagged digits (0..2m-2). Both digits must be kept, and added, until the end. Chance
  (always answering the commonest sum, m - 1) is 1/m. Needs T >= 2, O >= 3. (Revision 2: the
  first version binned a sum of two uniform values into O quantiles, which no model here learned.)
- ``order``: feature 0 flags token A at one timestep, feature 1 token B at another; features 2..
  show one of 4 distractor prototypes at every step. The label is 0 if A comes before B, else 1
  (classes 2..O-1 unused; chance 1/2). Needs T >= 2. (Revision 2: the first version's N(0, 1)
  distractors on every other feature drowned the two flags.)

Tasks whose definition changed carry a revision (``TASK_REVISIONS``) in their cells' ids, so rows
of the old definition are never taken for the new one.

User data (task ``file:PATH``): ``.npz`` (keys ``x``, ``y``) or ``.pt`` (a dict with ``x``, ``y``
or a tuple ``(x, y)``), ``x`` of shape ``(N, D, T)`` (the document's layout), finite numbers, ``y``
of shape ``(N,)`` integer labels >= 0. A fixed split (independent of the cell seed, so every cell
scores the same samples) holds out ``min(eval_samples, N // 5)`` samples (at least 1); training
batches draw from the rest with replacement, seeded by the cell seed and the step.
"""
from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from .errors import UserError

SYNTHETIC_TASKS = ("marked_recall", "selective_copy", "adding", "order")
TASK_REVISIONS = {"adding": 2, "order": 2}   # hashed into cell ids (see bench.cell.Cell.identity)
ORDER_DISTRACTORS = 4
NOISE = 0.1
EVAL_BLOCK = 32  # the held-out set is generated and scored in blocks of this many samples
# stream ids for seed derivation
_TRAIN, _EVAL, _PROTO, _SPLIT = 1, 2, 3, 4


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


# ---------------------------------------------------------------------------------------------
# synthetic generators: (rng, n, T, D, O, seed) -> x (n, T, D) float32, y (n,) int64
# ---------------------------------------------------------------------------------------------
def _noisy(x, rng):
    x += NOISE * rng.standard_normal(x.shape).astype(np.float32)
    return x


def _marked_recall(rng, n, T, D, O, seed):
    protos = _rng(seed, _PROTO).standard_normal((O, D - 1)).astype(np.float32)  # (O, D-1)
    classes = rng.integers(O, size=(n, T))  # token class at every step
    marked = rng.integers(T, size=n)
    x = np.zeros((n, T, D), np.float32)
    x[:, :, 1:] = protos[classes]
    x[np.arange(n), marked, 0] = 1.0
    y = classes[np.arange(n), marked]
    return _noisy(x, rng), y


def _two_positions(rng, n, T):
    p1 = rng.integers(T, size=n)
    p2 = (p1 + 1 + rng.integers(T - 1, size=n)) % T  # distinct from p1, uniform over the others
    return p1, p2


def _adding_digits(O: int) -> int:
    """Digits of adding: 0..m-1 with m = (O + 1) // 2, so the sums 0..2m-2 fit in O classes."""
    return (O + 1) // 2


def _adding(rng, n, T, D, O, seed):
    m = _adding_digits(O)
    digits = rng.integers(m, size=(n, T))
    x = np.zeros((n, T, D), np.float32)
    x[:, :, 0] = digits
    p1, p2 = _two_positions(rng, n, T)
    rows = np.arange(n)
    x[rows, p1, 1] = 1.0
    x[rows, p2, 1] = 1.0
    y = digits[rows, p1] + digits[rows, p2]
    return _noisy(x, rng), y


def _selective_copy(rng, n, T, D, O, seed):
    m = _copy_vocab(O)
    protos = _rng(seed, _PROTO, 2).standard_normal((m, D - 1)).astype(np.float32)  # (m, D-1)
    classes = rng.integers(m, size=(n, T))
    p1, p2 = _two_positions(rng, n, T)
    first, second = np.minimum(p1, p2), np.maximum(p1, p2)
    x = np.zeros((n, T, D), np.float32)
    x[:, :, 1:] = protos[classes]
    rows = np.arange(n)
    x[rows, first, 0] = 1.0
    x[rows, second, 0] = 1.0
    y = m * classes[rows, first] + classes[rows, second]
    return _noisy(x, rng), y


def _copy_vocab(O: int) -> int:
    """Token classes of selective_copy: the largest m with m * m <= O (labels m*c1 + c2)."""
    return int(np.floor(np.sqrt(O) + 1e-9))


def _order(rng, n, T, D, O, seed):
    x = np.zeros((n, T, D), np.float32)
    if D > 2:
        protos = _rng(seed, _PROTO, 4).standard_normal((ORDER_DISTRACTORS, D - 2)).astype(np.float32)
        x[:, :, 2:] = protos[rng.integers(ORDER_DISTRACTORS, size=(n, T))]
    p1, p2 = _two_positions(rng, n, T)
    rows = np.arange(n)
    x[rows, p1, 0] = 1.0
    x[rows, p2, 1] = 1.0
    y = (p1 > p2).astype(np.int64)
    return _noisy(x, rng), y


_GENERATORS = {"marked_recall": _marked_recall, "selective_copy": _selective_copy, "adding": _adding,
               "order": _order}


def generate(task: str, rng: np.random.Generator, n: int, seq_len: int, feature_dim: int,
             output_dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    x, y = _GENERATORS[task](rng, n, seq_len, feature_dim, output_dim, seed)
    return x, y.astype(np.int64)


# ---------------------------------------------------------------------------------------------
# the task object used by training
# ---------------------------------------------------------------------------------------------
class Task:
    """Batches for one cell. ``train_batch(step, B)`` is the global batch of that step;
    ``eval_blocks()`` lists the held-out set as blocks (a rank scores blocks r, r+W, ...)."""

    def __init__(self, task: str, seq_len: int, feature_dim: int, output_dim: int, seed: int,
                 eval_samples: int):
        self.task, self.T, self.D, self.O, self.seed = task, seq_len, feature_dim, output_dim, seed
        self.eval_samples = eval_samples
        self._data = None
        if task.startswith("file:"):
            x, y = load_user_data(task[len("file:"):])
            self._data = (np.ascontiguousarray(x.transpose(0, 2, 1)), y)  # (N, T, D)
            n = len(y)
            perm = _rng(0, _SPLIT).permutation(n)
            n_eval = max(1, min(eval_samples, n // 5))
            self._eval_idx, self._train_idx = perm[:n_eval], perm[n_eval:]
            if len(self._train_idx) == 0:
                self._train_idx = perm
            self.eval_samples = n_eval

    def train_batch(self, step: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        rng = _rng(self.seed, _TRAIN, step)
        if self._data is not None:
            idx = self._train_idx[rng.integers(len(self._train_idx), size=batch_size)]
            return self._data[0][idx], self._data[1][idx]
        return generate(self.task, rng, batch_size, self.T, self.D, self.O, self.seed)

    def n_eval_blocks(self) -> int:
        return -(-self.eval_samples // EVAL_BLOCK)

    def eval_block(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        n = min(EVAL_BLOCK, self.eval_samples - k * EVAL_BLOCK)
        if self._data is not None:
            idx = self._eval_idx[k * EVAL_BLOCK: k * EVAL_BLOCK + n]
            return self._data[0][idx], self._data[1][idx]
        return generate(self.task, _rng(self.seed, _EVAL, k), n, self.T, self.D, self.O, self.seed)


def make_task(cell) -> Task:
    return Task(cell.task, cell.seq_len, cell.feature_dim, cell.output_dim, cell.seed, cell.eval_samples)


# ---------------------------------------------------------------------------------------------
# validation (called when a cell is built, before anything runs)
# ---------------------------------------------------------------------------------------------
def check_task(task: str, seq_len: int, feature_dim: int, output_dim: int) -> None:
    if task.startswith("file:"):
        info = inspect_file_task(task)
        for name, value in (("seq_len", seq_len), ("feature_dim", feature_dim)):
            if value != info[name]:
                raise UserError(f"{name}={value} does not match task {task}: its x has shape "
                                f"(N={info['n']}, D={info['feature_dim']}, T={info['seq_len']})")
        if output_dim < info["output_dim"]:
            raise UserError(f"output_dim={output_dim} is too small for task {task}: its labels go up to "
                            f"{info['output_dim'] - 1}; need output_dim >= {info['output_dim']}")
        return
    if task not in SYNTHETIC_TASKS:
        raise UserError(f"task={task!r} is not allowed; choose one of {', '.join(SYNTHETIC_TASKS)} "
                        "or file:PATH (an .npz or .pt file with x (N, D, T) and y (N,))")
    if feature_dim < 2:
        raise UserError(f"feature_dim={feature_dim} is not allowed for task {task}; need >= 2 "
                        "(one feature marks positions, the others carry the content)")
    if output_dim < 2:
        raise UserError(f"output_dim={output_dim} is not allowed for task {task}; need >= 2 classes")
    if task == "selective_copy" and output_dim < 4:
        raise UserError(f"output_dim={output_dim} is not allowed for task selective_copy; need >= 4 (two "
                        "tokens of m >= 2 kinds give m*m labels)")
    if task == "adding" and output_dim < 3:
        raise UserError(f"output_dim={output_dim} is not allowed for task adding; need >= 3 (digits "
                        "0..m-1 with m = (O+1)//2 >= 2 give sums 0..2m-2)")
    if task in ("adding", "order", "selective_copy") and seq_len < 2:
        raise UserError(f"seq_len={seq_len} is not allowed for task {task}; need >= 2 (two marked timesteps)")


def _file_path(task: str) -> Path:
    raw = task[len("file:"):].strip()
    if not raw:
        raise UserError("task='file:' is not allowed; give a path: file:PATH (.npz or .pt)")
    return Path(os.path.expanduser(raw))


def resolve_file_task(task: str) -> str:
    """``file:PATH`` with PATH made absolute (cells may run in another working directory)."""
    path = _file_path(task)
    inspect_file_task(f"file:{path}")
    return f"file:{path.resolve()}"


def _stat_key(path: Path):
    try:
        st = path.stat()
    except OSError as exc:
        raise UserError(f"task=file:{path}: cannot read the data file ({exc.strerror or exc})") from None
    return str(path.resolve()), st.st_size, st.st_mtime_ns


def inspect_file_task(task: str) -> dict:
    """Shape facts of a data file: n, seq_len, feature_dim, output_dim (= max label + 1, >= 2)."""
    path = _file_path(task)
    return dict(_inspect(*_stat_key(path)))


@functools.lru_cache(maxsize=64)
def _inspect(path: str, size: int, mtime: int) -> tuple:
    x, y = load_user_data(path)
    n, d, t = x.shape
    return (("n", n), ("feature_dim", d), ("seq_len", t), ("output_dim", max(2, int(y.max()) + 1)))


def file_digest(path: str) -> str:
    return _digest(*_stat_key(Path(path)))


@functools.lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_user_data(path) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate ``x (N, D, T)`` float32 and ``y (N,)`` int64 from an .npz or .pt file."""
    path = Path(path)
    where = f"task=file:{path}"
    suffix = path.suffix.lower()
    if suffix not in (".npz", ".pt", ".pth"):
        raise UserError(f"{where}: unsupported file type {suffix or '(none)'!r}; use .npz or .pt")
    if not path.is_file():
        raise UserError(f"{where}: no such file")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                keys = set(npz.files)
                missing = {"x", "y"} - keys
                if missing:
                    raise UserError(f"{where}: missing array {sorted(missing)[0]!r}; the file holds "
                                    f"{sorted(keys) or 'no arrays'} (need x (N, D, T) and y (N,))")
                x, y = npz["x"], npz["y"]
        else:
            import torch
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                missing = {"x", "y"} - set(obj)
                if missing:
                    raise UserError(f"{where}: missing key {sorted(missing)[0]!r}; the dict holds "
                                    f"{sorted(map(str, obj)) or 'nothing'} (need x (N, D, T) and y (N,))")
                x, y = obj["x"], obj["y"]
            elif isinstance(obj, (tuple, list)) and len(obj) == 2:
                x, y = obj
            else:
                raise UserError(f"{where}: expected a dict with 'x' and 'y' or a tuple (x, y); "
                                f"got {type(obj).__name__}")
            x = x.numpy() if hasattr(x, "numpy") else np.asarray(x)
            y = y.numpy() if hasattr(y, "numpy") else np.asarray(y)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise UserError(f"{where}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "fiu" or x.dtype == np.bool_:
        raise UserError(f"{where}: x must hold real numbers; got dtype {x.dtype}")
    if x.ndim != 3:
        raise UserError(f"{where}: x must have shape (N, D, T); got shape {x.shape}")
    if y.ndim != 1:
        raise UserError(f"{where}: y must have shape (N,); got shape {y.shape}")
    if len(y) != len(x):
        raise UserError(f"{where}: x has {len(x)} samples but y has {len(y)}")
    if len(x) < 2:
        raise UserError(f"{where}: need at least 2 samples (training and held-out); got {len(x)}")
    if min(x.shape[1:]) < 1:
        raise UserError(f"{where}: x has an empty axis: shape {x.shape}")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise UserError(f"{where}: x contains NaN or infinite values")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.all(y == np.round(y)):
            raise UserError(f"{where}: y must hold integer class labels; got non-integer values")
    elif y.dtype.kind not in "iu":
        raise UserError(f"{where}: y must hold integer class labels; got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0:
        raise UserError(f"{where}: y must hold labels >= 0; got {int(y.min())}")
    return x, y
