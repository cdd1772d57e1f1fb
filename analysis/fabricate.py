"""Fabricated results folders with known answers (for tests and demonstrations).

    rows = [fake_row("classical_mamba", seq_len=T, step_time_median_s=1e-3 * T) for T in (32, 64, 128)]
    write_results("/tmp/fake", rows)

Files are written the way the harness writes them: one parquet file per row, the schema's
columns and dtypes, ``qssm.schema_version`` and ``qssm.env`` in the file metadata.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench import schema

from . import catalog as C

RUN_DEFAULTS = {"task": "marked_recall", "seq_len": 100, "batch_size": 8, "world_size": 1,
                "device": "cpu", "dtype": "float32", "steps": 20, "warmup_steps": 5, "lr": 1e-3,
                "seed": 0, "feature_dim": 64, "output_dim": 10, "dropout": 0.1}
MODEL_DEFAULTS = {"n_qubits": 4, "qlcu_layers": 2, "d_model": 128, "d_state": 16, "n_layers": 2,
                  "hidden_dim": 64, "chunk_size": 16, "quantum_steps": 32, "quantum_backend": "torch",
                  "qml_device": None, "scan": "chunked"}
ENV = {"host": "fabricated", "python": "3.x", "torch": "fake", "git_sha": "0000000", "git_dirty": False}


def fake_row(model: str, **values) -> dict:
    """A result row: defaults (the seed config on CPU, status ok), then ``values``; fields the
    model does not use are null."""
    row = {name: None for name in schema.COLUMN_NAMES}
    row.update(RUN_DEFAULTS)
    rel = set(C.relevant_fields(model))
    row.update({k: v for k, v in MODEL_DEFAULTS.items() if k in rel})
    row.update(model=model, status="ok", error="", attempt=1, requeues=0, launcher="inline",
               started_at="2025-01-01T00:00:00Z", wall_time_s=1.0, steps_run=20,
               mem_source="cpu-tensors" if values.get("device", "cpu") == "cpu" else "cuda",
               device_name="fabricated", n_params=C.DOC_PARAMS.get(model))
    row.update(values)
    if row.get("quantum_backend") != "pennylane":
        row["qml_device"] = None
    for f in C.MODEL_SPECIFIC:
        if f not in rel:
            row[f] = None
    if row.get("cell_id") is None:
        key = json.dumps({f: row.get(f) for f in schema.CELL_FIELD_NAMES}, sort_keys=True, default=str)
        row["cell_id"] = hashlib.sha256(key.encode()).hexdigest()[:12]
    return row


def to_table(rows: list[dict], version: int = schema.SCHEMA_VERSION, env: dict | None = None) -> pa.Table:
    df = pd.DataFrame(rows, columns=schema.COLUMN_NAMES)
    for name, dtype, _ in schema.COLUMNS:
        if dtype == "string":
            df[name] = df[name].astype("string")
        elif dtype == "int64" and df[name].notna().all():
            df[name] = df[name].astype("int64")
        elif dtype in ("int64", "Int64"):
            df[name] = df[name].astype("Int64")
        else:
            df[name] = pd.to_numeric(df[name]).astype("float64")
    table = pa.Table.from_pandas(df, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    meta[schema.META_SCHEMA_KEY] = str(version).encode()
    meta[schema.META_ENV_KEY] = json.dumps(env if env is not None else ENV).encode()
    return table.replace_schema_metadata(meta)


def write_results(folder, rows: list[dict], version: int = schema.SCHEMA_VERSION,
                  env: dict | None = None) -> list[Path]:
    """One parquet file per row, named after its cell id and attempt."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, row in enumerate(rows):
        p = folder / f"{row['model']}-{row['cell_id']}-{row.get('attempt') or 1}-{i}.parquet"
        pq.write_table(to_table([row], version, env), p)
        paths.append(p)
    return paths
