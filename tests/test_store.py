"""Results store: atomic one-row files, pandas reads the folder, versions, corrupt files, locks."""
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from bench import schema, store
from bench.errors import UserError


def _row(cell_id="0123456789ab", attempt=1, status="ok", **extra):
    row = {"model": "classical_mamba", "task": "adding", "seq_len": 8, "batch_size": 4, "world_size": 1,
           "device": "cpu", "dtype": "float32", "steps": 3, "warmup_steps": 1, "lr": 1e-3, "seed": 0,
           "eval_samples": 8, "num_threads": 1, "feature_dim": 4, "output_dim": 2, "dropout": 0.1,
           "cell_id": cell_id, "status": status, "error": "" if status == "ok" else "boom", "attempt": attempt,
           "requeues": 0, "launcher": "inline", "steps_run": 3}
    if status == "ok":
        row.update(n_params=10, samples_per_s=1.5, accuracy=0.5)
    row.update(extra)
    return row


def test_write_read_round_trip_and_pandas_reads_the_folder(tmp_path):
    d = store.prepare_results_dir(tmp_path / "r")
    assert store.write_row(d, _row(), store.environment("inline")).name == "0123456789ab.a001.parquet"
    store.write_row(d, _row("0123456789ac", status="oom", n_qubits=4, time_budget_s=5.0), {})
    # debris pandas must ignore: temp files, locks, progress, logs
    (d / store.TMP / "half-written.parquet").write_bytes(b"PAR1 torn")
    with store.cell_lock(d, "0123456789ab"):
        store.write_progress(d, "0123456789ab", {"step": 1})
        df = pd.read_parquet(d)
    assert sorted(df["status"]) == ["ok", "oom"]
    assert list(df.columns) == schema.COLUMN_NAMES
    res = store.read_results(d)
    assert res.problems == [] and res.schema_version == schema.SCHEMA_VERSION
    assert str(res.df["n_qubits"].dtype) == "Int64" and res.df["n_qubits"].isna().sum() == 1
    assert str(res.df["n_params"].dtype) == "Int64"  # null for the failed row
    env = res.env["0123456789ab.a001.parquet"]
    for key in ("host", "cpu_model", "python", "torch", "pennylane", "git_sha", "git_dirty", "slurm_job_id",
                "slurm_array_job_id", "slurm_array_task_id", "launcher"):
        assert key in env
    meta = pq.ParquetFile(d / "0123456789ab.a001.parquet").schema_arrow.metadata
    assert meta[schema.META_SCHEMA_KEY] == str(schema.SCHEMA_VERSION).encode()
    assert json.loads(meta[schema.META_ENV_KEY])["launcher"] == "inline"


def test_every_file_has_the_same_arrow_schema(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    store.write_row(d, _row("aaaaaaaaaaaa"), {})
    store.write_row(d, _row("bbbbbbbbbbbb", status="failed"), {})
    schemas = [pq.read_schema(p).remove_metadata() for p in sorted(d.glob("*.parquet"))]
    assert schemas[0] == schemas[1] == store.ARROW_SCHEMA


def test_first_writer_of_an_attempt_wins(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    assert store.write_row(d, _row(status="failed"), {}) is not None
    assert store.write_row(d, _row(status="ok"), {}) is None
    assert store.cell_states(d)["0123456789ab"].attempts == [(1, "failed")]
    assert store.next_attempt(d, "0123456789ab") == 2
    assert list((d / store.TMP).iterdir()) == []


def test_unknown_columns_are_refused(tmp_path):
    with pytest.raises(ValueError, match="not in bench.schema"):
        store.write_row(store.prepare_results_dir(tmp_path), _row(bogus=1), {})


def test_corrupt_and_foreign_files_are_reported_not_fatal(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    store.write_row(d, _row(), {})
    (d / "ffffffffffff.a001.parquet").write_bytes(b"garbage")
    pq.write_table(pa.table({"x": [1]}), d / "other.parquet")
    res = store.read_results(d)
    assert len(res.df) == 1
    assert any("ffffffffffff.a001.parquet: unreadable" in p for p in res.problems)
    assert any("other.parquet: not a qssm result file" in p for p in res.problems)
    # the done-check treats the corrupt attempt as no row, and numbers the next attempt after it
    st = store.cell_states(d)["ffffffffffff"]
    assert not st.has_row and st.max_attempt == 1


def test_mixed_schema_versions_are_refused(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    store.write_row(d, _row(), {})
    t = store.make_table(_row("bbbbbbbbbbbb"), {})
    meta = dict(t.schema.metadata)
    meta[schema.META_SCHEMA_KEY] = str(schema.SCHEMA_VERSION + 1).encode()
    pq.write_table(t.replace_schema_metadata(meta), d / "bbbbbbbbbbbb.a001.parquet")
    with pytest.raises(UserError, match="mixes result schema versions"):
        store.read_results(d)


def test_unwritable_results_folder(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        store.prepare_results_dir(f)
    with pytest.raises(UserError, match="cannot write"):
        store.prepare_results_dir(f / "sub")
    assert store.prepare_results_dir(tmp_path / "new", create=False) == (tmp_path / "new").resolve()
    assert not (tmp_path / "new").exists()


def _hold_lock(d, cid, ready):
    with store.cell_lock(d, cid):
        ready.set()
        time.sleep(60)


def test_lock_is_exclusive_and_dies_with_its_holder(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    p = ctx.Process(target=_hold_lock, args=(str(d), "0123456789ab", ready))
    p.start()
    try:
        assert ready.wait(60)
        assert store.lock_is_held(d, "0123456789ab")
        with pytest.raises(store.LockBusy):
            with store.cell_lock(d, "0123456789ab"):
                pass
        os.kill(p.pid, signal.SIGKILL)
        p.join(10)
        assert not store.lock_is_held(d, "0123456789ab")
        with store.cell_lock(d, "0123456789ab"):
            assert store.lock_is_held(d, "0123456789ab")  # flock: a second open file sees our lock
    finally:
        if p.is_alive():
            p.kill()


def test_stale_temp_files_of_dead_writers_are_cleaned(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    import socket
    stale = d / store.TMP / f"0123456789ab.a001.{socket.gethostname()}.{pid}.abcd1234.parquet"
    live = d / store.TMP / f"0123456789ab.a002.{socket.gethostname()}.{os.getpid()}.abcd1234.parquet"
    stale.write_bytes(b"x")
    live.write_bytes(b"x")
    assert store.clean_stale_tmp(d) == 1
    assert not stale.exists() and live.exists()


WRITER = r"""
import sys
from bench import store
d, k = sys.argv[1], int(sys.argv[2])
for i in range(25):
    row = dict(model="classical_mamba", task="adding", seq_len=8, batch_size=4, world_size=1, device="cpu",
               dtype="float32", steps=3, warmup_steps=1, lr=1e-3, seed=0, eval_samples=8, num_threads=1,
               feature_dim=4, output_dim=2, dropout=0.1, cell_id=f"{k:06x}{i:06x}", status="ok", error="",
               attempt=1, requeues=0, launcher="inline", steps_run=3, loss_curve="[" + ",".join(["1.0"] * 2000) + "]")
    store.write_row(d, row, {"writer": k})
    # and everyone races for one shared attempt: exactly one row must result
    row.update(cell_id="0000000000ff", error=f"writer {k}")
    store.write_row(d, row, {"writer": k})
"""


def test_concurrent_writers_leave_no_torn_files(tmp_path):
    d = store.prepare_results_dir(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(d), str(k)], env=env) for k in range(3)]
    seen_problems = []
    while any(p.poll() is None for p in procs):
        res = store.read_results(d)        # a reader never sees a partial file
        seen_problems += res.problems
        pd.read_parquet(d)
    assert all(p.wait() == 0 for p in procs)
    assert seen_problems == []
    res = store.read_results(d)
    assert len(res.df) == 3 * 25 + 1 and res.problems == []
    assert (res.df["cell_id"] == "0000000000ff").sum() == 1
    assert list((d / store.TMP).iterdir()) == []


def test_every_column_is_documented():
    from pathlib import Path
    doc = (Path(__file__).resolve().parent.parent / "docs" / "harness.md").read_text()
    missing = [name for name in schema.COLUMN_NAMES if f"`{name}`" not in doc]
    assert missing == []
