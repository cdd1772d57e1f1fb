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

RUN_DEFAULTS = {"task": "marked_recall", "seq_len": 100, "batch_size": 8, "world_size": 1, "nodes": 1,
                "device": "cpu", "dtype": "float32", "precision": "fp32", "track_activations": 0, "repeat": 0, "circuit_probe_steps": 0, "lr_schedule": "constant", "eval_every": 0, "steps": 20, "warmup_steps": 5, "lr": 1e-3,
                "seed": 0, "feature_dim": 64, "output_dim": 10, "dropout": 0.1}
MODEL_DEFAULTS = {"n_qubits": 4, "qlcu_layers": 2, "d_model": 128, "d_state": 16, "n_layers": 2,
                  "hidden_dim": 64, "chunk_size": 16, "quantum_steps": 32, "quantum_backend": "torch",
                  "qml_device": None, "scan": "chunked"}
ENV = {"host": "fabricated", "python": "3.x", "torch": "fake", "git_sha": "0000000", "git_dirty": False}


def fake_row(model: str, **values) -> dict:
    """A result row: defaults (the seed config on CPU, one node, status ok; ``hostnames`` null),
    then ``values``; fields the model does not use are null."""
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


# ------------------------------------------------------------------------------------ planted
# Document-consistent defaults: per-model scales of step time and memory (the orderings of §8.6/
# §8.10 hold; Hydra = 2 x Mamba in memory) and the §8.2 parameter counts.
TIME_SCALE = {"classical_mamba": 1.0, "classical_hydra": 1.5, "quantum_mamba_gated": 3.0,
              "quantum_hydra_gated": 3.5, "quantum_mamba_ssm": 6.0, "quantum_hydra_ssm": 10.0}
MEM_SCALE = {"quantum_mamba_gated": 1.0, "quantum_hydra_gated": 2.0, "classical_mamba": 4.0,
             "classical_hydra": 8.0, "quantum_mamba_ssm": 16.0, "quantum_hydra_ssm": 32.0}
ACCURACY = {"quantum_mamba_gated": 0.6, "quantum_hydra_gated": 0.6, "classical_mamba": 0.9,
            "classical_hydra": 0.9, "quantum_mamba_ssm": 0.9, "quantum_hydra_ssm": 0.9}


def _q2q(q):
    return q * 2.0 ** q


def planted_row(model: str, *, time_T: float = 1.0, time_q: float = 1.0, time_C: float = -1.0,
                mem_T_gated: float = 0.0, mem_T_ssm: float = 1.0, mem_q: float = 0.0,
                time_scale=None, mem_scale=None, n_params=None, accuracy=None, noise=None,
                spread: float = 0.03, index: int = 0, circuit_share: float = 0.8, **fields) -> dict:
    """One row whose metrics follow the planted laws at its (seq_len, n_qubits, chunk_size, seed).

    time = scale · (T/32)^time_T · (q·2^q / 64)^time_q · (C/16)^time_C (ms);
    memory = scale · (T/32)^mem_T · (q·2^q / 64)^mem_q (MB; inference ¼, saved-for-backward ½).
    ``noise(index, metric) -> factor`` multiplies each metric; ``spread`` sets the cell's
    fastest/p90 step at (1 ∓ spread) × its median. Quantum models' cells are probed
    (circuit_probe_steps 4 unless given) and get ``circuit_share`` (times the noise, at most 1)."""
    ts, ms = time_scale or TIME_SCALE, mem_scale or MEM_SCALE
    params, acc = n_params or C.DOC_PARAMS, accuracy or ACCURACY
    T = fields.setdefault("seq_len", RUN_DEFAULTS["seq_len"])
    q = fields.get("n_qubits") or MODEL_DEFAULTS["n_qubits"]
    c = fields.get("chunk_size") or MODEL_DEFAULTS["chunk_size"]
    seed = fields.get("seed") or 0
    f = (lambda metric: noise(index, metric)) if noise else (lambda metric: 1.0)
    t = ts[model] * 1e-3 * (T / 32) ** time_T
    mem = ms[model] * 1e6 * (T / 32) ** (mem_T_gated if model in C.GATED else mem_T_ssm)
    if model in C.QUANTUM:
        t *= (_q2q(q) / 64) ** time_q
        mem *= (_q2q(q) / 64) ** mem_q
    if model in C.GATED:
        t *= (c / 16) ** time_C
    t_step = t * f("step_time_median_s")
    batch = fields.get("batch_size") or RUN_DEFAULTS["batch_size"]
    probe = fields.setdefault("circuit_probe_steps", 4 if model in C.QUANTUM else 0)
    share = min(1.0, circuit_share * f("circuit_share")) if probe and model in C.QUANTUM else None
    return fake_row(
        model, step_time_median_s=t_step, step_time_min_s=t_step * (1 - spread),
        step_time_p90_s=t_step * (1 + spread), infer_time_median_s=0.3 * t * f("infer_time_median_s"),
        peak_mem_train_bytes=mem * f("peak_mem_train_bytes"),
        peak_mem_infer_bytes=0.25 * mem * f("peak_mem_infer_bytes"),
        saved_bytes_per_step=0.5 * mem * f("saved_bytes_per_step"),
        samples_per_s=batch / t_step, timesteps_per_s=batch * T / t_step,
        n_params=params[model], accuracy=min(1.0, acc[model] + 0.005 * seed), circuit_share=share, **fields)


def planted_rows(*, seeds=(0,), seq_lens=(32, 64, 128, 256), qubits=(2, 4, 6, 8), chunks=(4, 8, 16, 32),
                 fixed_T: int = 64, models=C.MODEL_NAMES, **kwargs) -> list[dict]:
    """Rows with planted power laws (``planted_row``): all ``models`` over ``seq_lens`` (q=4,
    C=16), the quantum ones over ``qubits`` and the Gated ones over ``chunks`` at T=``fixed_T``.
    Keyword arguments are the laws and scales of ``planted_row``, then cell fields."""
    points = []
    for m in models:
        for T in seq_lens:
            points.append((m, T, 4, 16))
        if m in C.QUANTUM:
            points += [(m, fixed_T, q, 16) for q in qubits if (fixed_T not in seq_lens or q != 4)]
        if m in C.GATED:
            points += [(m, fixed_T, 4, c) for c in chunks if (fixed_T not in seq_lens or c != 16)]
    rows = []
    for m, T, q, c in points:
        for seed in seeds:
            rows.append(planted_row(m, index=len(rows), **kwargs,
                                    **{"seq_len": T, "n_qubits": q, "chunk_size": c, "seed": seed}))
    return rows
