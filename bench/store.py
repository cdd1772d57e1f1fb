"""The results store: one parquet file per cell attempt in a results folder.

Layout of a results folder ``DIR``::

    DIR/<cell_id>.a<NNN>.parquet   one row: attempt NNN of a cell (the only files pandas reads)
    DIR/.tmp/                      files being written (renamed into place when complete)
    DIR/.locks/<cell_id>.lock      flock held while an attempt of the cell runs
    DIR/.progress/<cell_id>.json   live progress of a running attempt
    DIR/.logs/                     per-rank logs of cells run in child processes
    DIR/.manifests/                cell lists handed to executors (``qssm run-cell``)

Names starting with ``.`` are ignored by ``pandas.read_parquet(DIR)`` (pyarrow skips them), so the
folder always reads as complete rows. A row is written to ``.tmp/``, fsynced, and hard-linked to
its final name: the link fails if the attempt already has a row, so each attempt has exactly one
row whoever writes it (a failing rank and its supervisor may both try), and no reader ever sees a
partial file. Every file has the same arrow schema (``bench.schema.COLUMNS``) and carries
``qssm.schema_version`` and ``qssm.env`` (JSON) in its metadata.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import errno
import fcntl
import functools
import json
import os
import platform
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from . import schema
from .errors import UserError

ROW_RE = re.compile(r"^(?P<cell_id>[0-9a-f]{12})\.a(?P<attempt>\d{3,})\.parquet$")
TMP, LOCKS, PROGRESS, LOGS, MANIFESTS = ".tmp", ".locks", ".progress", ".logs", ".manifests"

_ARROW = {"string": pa.string(), "int64": pa.int64(), "Int64": pa.int64(), "float64": pa.float64()}
ARROW_SCHEMA = pa.schema([pa.field(name, _ARROW[dtype]) for name, dtype, _ in schema.COLUMNS])


# ---------------------------------------------------------------------------------------------
# folder
# ---------------------------------------------------------------------------------------------
def prepare_results_dir(path, *, create: bool = True) -> Path:
    """Check that ``path`` is (or can be made) a writable results folder; raise UserError if not.
    With ``create=False`` nothing is created (dry runs)."""
    if not str(path).strip():
        raise UserError("--results: the folder name is empty")
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"--results {path}: exists and is not a folder")
    if not create:
        parent = path if path.exists() else next((p for p in path.parents if p.exists()), Path("."))
        if not os.access(parent, os.W_OK | os.X_OK):
            raise UserError(f"--results {path}: not writable ({parent} is read-only for this user)")
        return path.resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
        for sub in (TMP, LOCKS, PROGRESS, LOGS, MANIFESTS):
            (path / sub).mkdir(exist_ok=True)
        probe = path / TMP / f"probe.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"--results {path}: cannot write there ({exc.strerror or exc})") from None
    return path.resolve()


def row_path(results_dir, cell_id: str, attempt: int) -> Path:
    return Path(results_dir) / f"{cell_id}.a{attempt:03d}.parquet"


# ---------------------------------------------------------------------------------------------
# environment metadata
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _git() -> tuple:
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return sha, (bool(dirty.stdout.strip()) if dirty.returncode == 0 else None)
    except (OSError, subprocess.SubprocessError):
        return None, None


def _version(dist: str):
    from importlib import metadata
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def _static_env() -> dict:
    from .metrics import cpu_model
    sha, dirty = _git()
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "pennylane": _version("pennylane"),
        "numpy": _version("numpy"),
        "qssm_bench": _version("qssm-bench"),
        "git_sha": sha,
        "git_dirty": dirty,
    }


def _native_kernels() -> str:
    """Whether this process ran qssm's compiled CPU kernels (qssm.native), without building them."""
    from qssm.native import loaded_status
    return loaded_status()


def _gpu_kernels(gpu_name) -> str:
    """Which kernels CUDA tensors got in this process: Triton (with the conv's measured picks) or
    the torch twins, and why. Only asked where a GPU ran (importing Triton costs a second)."""
    if not gpu_name:
        return "n/a (no GPU)"
    from qssm import triton_support
    from qssm.ssm.triton_conv import choices

    picks = choices()
    return triton_support.status() + (f"; conv picks {picks}" if picks else "")


def environment(launcher: str | None = None, gpu_name: str | None = None, **extra) -> dict:
    env = dict(_static_env())
    env.update({
        "gpu_name": gpu_name,
        "cuda": _cuda_version(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_job_id": os.environ.get("SLURM_ARRAY_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
        "slurm_cluster": os.environ.get("SLURM_CLUSTER_NAME"),
        "slurm_partition": os.environ.get("SLURM_JOB_PARTITION"),
        "slurm_qos": os.environ.get("SLURM_JOB_QOS"),
        "profile": os.environ.get("QSSM_PROFILE"),
        "profile_overrides": os.environ.get("QSSM_PROFILE_OVERRIDES"),
        "network_interface": os.environ.get("GLOO_SOCKET_IFNAME") or os.environ.get("NCCL_SOCKET_IFNAME"),
        "launcher": launcher,
        "argv": " ".join(sys.argv[:3]),
        "native_kernels": _native_kernels(),
        "gpu_kernels": _gpu_kernels(gpu_name),
        **(_gpu_stack() if gpu_name else {}),
    })
    env.update(extra)
    if extra.get("written_by"):  # a supervisor's row: what its ranks ran is not known here
        env["native_kernels"] = f"unknown (row written by the {extra['written_by']})"
        env["gpu_kernels"] = env["native_kernels"] if gpu_name else "n/a (no GPU)"
    return env


@functools.lru_cache(maxsize=1)
def _gpu_stack() -> dict:
    """Driver, cuDNN and NCCL versions and this node's GPUs (only asked where a GPU ran)."""
    import subprocess

    torch = sys.modules.get("torch")
    out = {"gpu_count": None, "gpu_models": None, "cudnn": None, "nccl": None, "nvidia_driver": None}
    try:
        out["gpu_count"] = torch.cuda.device_count()
        out["gpu_models"] = ", ".join(torch.cuda.get_device_name(i) for i in range(out["gpu_count"]))
        out["cudnn"] = torch.backends.cudnn.version()
        v = torch.cuda.nccl.version()
        out["nccl"] = ".".join(map(str, v)) if isinstance(v, tuple) else v
    except Exception:  # noqa: BLE001 - provenance is best effort
        pass
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=10)
        out["nvidia_driver"] = r.stdout.split("\n")[0].strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def _cuda_version():
    torch = sys.modules.get("torch")
    return getattr(getattr(torch, "version", None), "cuda", None) if torch else None


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
def _clean_value(name: str, value):
    if value is None:
        return None
    kind = schema.DTYPES[name]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if kind == "string":
        return str(value)
    if kind in ("int64", "Int64"):
        return int(value)
    return float(value)


def make_table(row: dict, env: dict | None = None) -> pa.Table:
    unknown = set(row) - set(schema.COLUMN_NAMES)
    if unknown:
        raise ValueError(f"row has columns not in bench.schema: {sorted(unknown)}")
    data = {name: [_clean_value(name, row.get(name))] for name in schema.COLUMN_NAMES}
    meta = {schema.META_SCHEMA_KEY: str(schema.SCHEMA_VERSION).encode(),
            schema.META_ENV_KEY: json.dumps(env or {}, default=str).encode()}
    return pa.Table.from_pydict(data, schema=ARROW_SCHEMA.with_metadata(meta))


def write_row(results_dir, row: dict, env: dict | None = None) -> Path | None:
    """Write one result row atomically as ``<cell_id>.a<NNN>.parquet``. Returns the path, or None
    if that attempt already has a row (first writer wins)."""
    results_dir = Path(results_dir)
    final = row_path(results_dir, row["cell_id"], int(row["attempt"]))
    if final.exists():
        return None
    tmp_dir = results_dir / TMP
    tmp_dir.mkdir(parents=True, exist_ok=True)
    tmp = tmp_dir / f"{final.stem}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.parquet"
    table = make_table(row, env)
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, final)
        except FileExistsError:
            return None
        except OSError as exc:  # a file system without hard links: rename (last writer wins)
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if final.exists():
                return None
            os.replace(tmp, final)
        _fsync_dir(results_dir)
        return final
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def clean_stale_tmp(results_dir, max_age_s: float = 3600.0) -> int:
    """Remove temp files of dead writers on this host (or older than max_age_s). Returns count."""
    tmp_dir = Path(results_dir) / TMP
    if not tmp_dir.is_dir():
        return 0
    host = socket.gethostname()
    now = _dt.datetime.now().timestamp()
    removed = 0
    for p in tmp_dir.iterdir():
        parts = p.name.split(".")
        stale = False
        try:
            if now - p.stat().st_mtime > max_age_s:
                stale = True
            elif len(parts) >= 5 and parts[-4] == host and parts[-3].isdigit():
                stale = not _pid_alive(int(parts[-3]))
        except OSError:
            continue
        if stale:
            with contextlib.suppress(OSError):
                p.unlink()
                removed += 1
    return removed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------
# reading: what is done
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class CellState:
    attempts: list = dataclasses.field(default_factory=list)   # [(attempt, status or None if unreadable)]

    @property
    def max_attempt(self) -> int:
        return max((a for a, _ in self.attempts), default=0)

    @property
    def ok(self) -> bool:
        return any(s == "ok" for _, s in self.attempts)

    @property
    def last_status(self):
        readable = [(a, s) for a, s in self.attempts if s is not None]
        return max(readable)[1] if readable else None

    @property
    def has_row(self) -> bool:
        return any(s is not None for _, s in self.attempts)


def attempt_files(results_dir) -> dict[str, list[tuple[int, Path]]]:
    out: dict[str, list] = {}
    try:
        names = os.listdir(results_dir)
    except FileNotFoundError:
        return out
    for name in names:
        m = ROW_RE.match(name)
        if m:
            out.setdefault(m["cell_id"], []).append((int(m["attempt"]), Path(results_dir) / name))
    return out


def _read_status(path: Path):
    try:
        return str(pq.ParquetFile(path).read(columns=["status"]).column(0)[0].as_py())
    except Exception:  # noqa: BLE001 - a corrupt file does not count as a row
        return None


def cell_states(results_dir, cell_ids=None) -> dict[str, CellState]:
    """Attempts and their statuses per cell id (only for ``cell_ids`` if given)."""
    files = attempt_files(results_dir)
    wanted = files.keys() if cell_ids is None else [c for c in cell_ids if c in files]
    return {cid: CellState(sorted((a, _read_status(p)) for a, p in files[cid])) for cid in wanted}


def next_attempt(results_dir, cell_id: str) -> int:
    return max((a for a, _ in attempt_files(results_dir).get(cell_id, [])), default=0) + 1


# ---------------------------------------------------------------------------------------------
# reading: the whole folder
# ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Results:
    df: object                       # pandas.DataFrame, columns of bench.schema (+ 'file')
    env: dict                        # file name -> environment dict
    problems: list                   # "path: why" for files that could not be read
    schema_version: int | None


def _row_files(results_dir: Path):
    """Files pandas.read_parquet(results_dir) would read: recursive, skipping names that start
    with '.' or '_'."""
    for root, dirs, files in os.walk(results_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_")))
        for f in sorted(files):
            if not f.startswith((".", "_")):
                yield Path(root) / f


def _upgrade(table, version: int):
    """An older table (version 1 or 2) as the current version: precision from dtype, the cell
    fields added since at their defaults (schema.UPGRADE_DEFAULTS), the new metrics null."""
    n = table.num_rows
    names = table.column_names
    if "precision" not in names:
        dtypes = table.column("dtype").to_pylist() if "dtype" in names else ["float32"] * n
        table = table.append_column("precision", pa.array(["fp64" if d == "float64" else "fp32" for d in dtypes],
                                                          pa.string()))
    for name, value in schema.UPGRADE_DEFAULTS.items():
        if name not in table.column_names:
            table = table.append_column(name, pa.array([value] * n, ARROW_SCHEMA.field(name).type))
    for name, dtype, _ in schema.COLUMNS:
        if name not in table.column_names:
            table = table.append_column(name, pa.nulls(n, ARROW_SCHEMA.field(name).type))
    return table


def read_results(results_dir) -> Results:
    """Merge a results folder into one DataFrame with the schema's dtypes. Unreadable files are
    reported in ``problems`` (and skipped); files of different schema versions are refused."""
    import pandas as pd
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: no such results folder")
    tables, envs, problems, versions = [], {}, [], {}
    for path in _row_files(results_dir):
        rel = str(path.relative_to(results_dir))
        try:
            pf = pq.ParquetFile(path)
            meta = pf.schema_arrow.metadata or {}
            if schema.META_SCHEMA_KEY not in meta:
                problems.append(f"{rel}: not a qssm result file (no {schema.META_SCHEMA_KEY.decode()} metadata)")
                continue
            version = int(meta[schema.META_SCHEMA_KEY].decode())
            table = pf.read()
        except Exception as exc:  # noqa: BLE001
            problems.append(f"{rel}: unreadable ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
            continue
        versions.setdefault(version, []).append(rel)
        if version in schema.READABLE_VERSIONS and version != schema.SCHEMA_VERSION:
            table = _upgrade(table, version)
        if version in schema.READABLE_VERSIONS:
            missing = [c for c in schema.COLUMN_NAMES if c not in table.column_names]
            if missing:
                problems.append(f"{rel}: missing columns {missing[:3]}")
                continue
            table = table.select(schema.COLUMN_NAMES).cast(ARROW_SCHEMA)
        try:
            envs[rel] = json.loads(meta.get(schema.META_ENV_KEY, b"{}").decode() or "{}")
        except ValueError:
            envs[rel] = {}
        tables.append(table.append_column("file", pa.array([rel] * table.num_rows, pa.string())))
    foreign = sorted(v for v in versions if v not in schema.READABLE_VERSIONS)
    if foreign and len(versions) > 1:
        parts = [f"version {v} ({len(fs)} files, e.g. {fs[0]})" for v, fs in sorted(versions.items())]
        raise UserError(f"{results_dir}: mixes result schema versions: {'; '.join(parts)}; "
                        "read them separately (move one set to another folder)")
    if foreign:
        raise UserError(f"{results_dir}: result schema version {foreign[0]}, but this qssm-bench reads "
                        f"versions {', '.join(map(str, schema.READABLE_VERSIONS))}")
    # older readable versions were upgraded to this one as they were read
    version = (schema.SCHEMA_VERSION if versions else None)
    if tables:
        df = pa.concat_tables([t.replace_schema_metadata(None) for t in tables]).to_pandas()
    else:
        df = pd.DataFrame({name: pd.Series([], dtype="object") for name in schema.COLUMN_NAMES + ["file"]})
    dtypes = {name: ("Int64" if dtype == "int64" and df[name].isna().any() else dtype)
              for name, dtype in schema.DTYPES.items()}  # e.g. n_params of a cell that failed to build
    df = df.astype({**dtypes, "file": "string"})
    return Results(df=df, env=envs, problems=problems, schema_version=version)


# ---------------------------------------------------------------------------------------------
# locks and progress
# ---------------------------------------------------------------------------------------------
class LockBusy(Exception):
    """Another process is running an attempt of this cell."""


@contextlib.contextmanager
def cell_lock(results_dir, cell_id: str):
    """Hold ``.locks/<cell_id>.lock`` (flock; released when the process dies, even by SIGKILL).
    Raises LockBusy at once if another process holds it."""
    lock_dir = Path(results_dir) / LOCKS
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / f"{cell_id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LockBusy(cell_id) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{socket.gethostname()} {os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


def lock_is_held(results_dir, cell_id: str) -> bool:
    path = Path(results_dir) / LOCKS / f"{cell_id}.lock"
    if not path.exists():
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def progress_path(results_dir, cell_id: str) -> Path:
    return Path(results_dir) / PROGRESS / f"{cell_id}.json"


def write_progress(results_dir, cell_id: str, info: dict) -> None:
    path = progress_path(results_dir, cell_id)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(info))
        os.replace(tmp, path)
    except OSError:
        pass


def read_progress(results_dir, cell_id: str) -> dict | None:
    try:
        return json.loads(progress_path(results_dir, cell_id).read_text())
    except (OSError, ValueError):
        return None


def clear_progress(results_dir, cell_id: str) -> None:
    with contextlib.suppress(OSError):
        progress_path(results_dir, cell_id).unlink()
