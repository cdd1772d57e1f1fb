"""Read a results folder: one parquet file per cell attempt (``bench.schema``).

``load_results(path)`` merges every ``*.parquet`` under ``path`` (recursively; names or folders
starting with ``.`` or ``_`` are skipped, as ``pandas.read_parquet`` skips them, so temporary files
and the default report folder ``_report`` are never read). It

* refuses a folder holding a ``qssm.schema_version`` this code does not read, or that mixes one
  with others (``AnalysisError``); version-1 files are read and upgraded (precision from dtype);
* reports, and skips, a file that cannot be read or is not a qssm result (no schema version);
* keeps every row whatever its status; only ``status == "ok"`` rows count as measurements
  (``Results.ok``), the others are reported.

This module reads files with pyarrow itself: ``analysis`` imports nothing from ``bench`` but
``bench.schema``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bench import schema

from .errors import AnalysisError


@dataclass
class Results:
    path: Path
    rows: pd.DataFrame                      # every row read, schema-typed, plus column "_file"
    schema_version: int
    n_files: int
    problems: list[str] = field(default_factory=list)   # skipped files, one line each
    envs: list[dict] = field(default_factory=list)      # qssm.env of each file read

    @property
    def ok(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "ok"].reset_index(drop=True)

    @property
    def not_ok(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] != "ok"].reset_index(drop=True)


def find_files(root: Path) -> list[Path]:
    """Parquet files under root, skipping hidden/underscore names at any depth below root."""
    if root.is_file():
        return [root]
    out = []
    for p in sorted(root.rglob("*.parquet")):
        rel = p.relative_to(root).parts
        if any(part.startswith((".", "_")) for part in rel):
            continue
        if p.is_file():
            out.append(p)
    return out


class _Unreadable(Exception):
    pass


def _read_one(path: Path) -> tuple[pd.DataFrame, int, dict]:
    try:
        table = pq.read_table(path)
    except Exception as exc:  # corrupt, truncated, not parquet: reported, never fatal
        raise _Unreadable(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    meta = table.schema.metadata or {}
    raw = meta.get(schema.META_SCHEMA_KEY)
    if raw is None:
        raise _Unreadable("no qssm.schema_version in the file metadata (not a qssm result file)")
    try:
        version = int(raw.decode() if isinstance(raw, bytes) else raw)
    except ValueError:
        raise _Unreadable(f"schema version {raw!r} is not an integer")
    env: dict = {}
    raw_env = meta.get(schema.META_ENV_KEY)
    if raw_env is not None:
        try:
            env = json.loads(raw_env)
            if not isinstance(env, dict):
                env = {"env": env}
        except ValueError:
            env = {"unreadable_env": raw_env[:80].decode(errors="replace")}
    try:
        df = table.to_pandas()
    except Exception as exc:
        raise _Unreadable(f"cannot convert to a table: {exc}")
    if "status" not in df.columns or "model" not in df.columns:
        raise _Unreadable("no 'model'/'status' column (not a qssm result file)")
    return df, version, env


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Give every schema column its schema dtype (integers nullable); add missing ones as null."""
    out = df.copy()
    for name, dtype, _ in schema.COLUMNS:
        if name not in out.columns:
            out[name] = pd.NA
        col = out[name]
        if dtype == "string":
            out[name] = col.astype("string")
        elif dtype in ("int64", "Int64"):
            out[name] = pd.to_numeric(col, errors="coerce").astype("Float64").round().astype("Int64")
        else:
            out[name] = pd.to_numeric(col, errors="coerce").astype("float64")
    out["status"] = out["status"].fillna("failed")
    out["model"] = out["model"].fillna("(unknown)")
    return out


def _upgrade(rows: pd.DataFrame) -> pd.DataFrame:
    """Older rows as the current version: precision from dtype, later cell fields at their defaults."""
    miss = rows["precision"].isna()
    if miss.any():
        rows.loc[miss, "precision"] = np.where(rows.loc[miss, "dtype"].astype(str) == "float64", "fp64", "fp32")
    for name, value in schema.UPGRADE_DEFAULTS.items():
        rows[name] = rows[name].fillna(value)
    return rows


def load_results(path) -> Results:
    root = Path(path)
    if not root.exists():
        raise AnalysisError(f"results folder {root} does not exist")
    files = find_files(root)
    if not files:
        raise AnalysisError(f"no result files (*.parquet) in {root}")
    frames, problems, envs = [], [], []
    versions: dict[int, list[Path]] = {}
    for f in files:
        try:
            df, version, env = _read_one(f)
        except _Unreadable as exc:
            problems.append(f"{f}: {exc}")
            continue
        versions.setdefault(version, []).append(f)
        df["_file"] = str(f.relative_to(root)) if root.is_dir() else f.name
        frames.append(df)
        envs.append(env)
    readable = schema.READABLE_VERSIONS
    foreign = sorted(v for v in versions if v not in readable)
    if foreign and len(versions) > 1:
        parts = ", ".join(f"{v} ({len(fs)} files, e.g. {fs[0].name})" for v, fs in sorted(versions.items()))
        raise AnalysisError(f"{root} mixes result schema versions: {parts}; analyse them separately")
    if not frames:
        raise AnalysisError(f"no readable result file in {root} ({len(problems)} skipped; first: "
                            f"{problems[0]})")
    if foreign:
        raise AnalysisError(f"{root} holds results of schema version {foreign[0]}; this analysis reads "
                            f"versions {', '.join(map(str, readable))}")
    version = schema.SCHEMA_VERSION  # older readable versions are upgraded below
    frames = [f.dropna(axis=1, how="all") if len(f) else f for f in frames]
    rows = _upgrade(coerce(pd.concat(frames, ignore_index=True, sort=False)))
    return Results(path=root, rows=rows, schema_version=version, n_files=len(files),
                   problems=problems, envs=envs)


def as_float(series: pd.Series) -> np.ndarray:
    """A numeric column as float64 with NaN for nulls."""
    return pd.to_numeric(series, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
