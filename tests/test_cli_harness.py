"""The harness commands end to end: bad input, crashes of the driver, concurrent sweeps, run-cell."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench import store
from bench.cli import main

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(steps=4, warmup_steps=1, batch_size=4, feature_dim=4, output_dim=2, d_model=8, d_state=4,
            n_layers=1, hidden_dim=8, n_qubits=2, qlcu_layers=1, eval_samples=16, num_threads=1)


def write_sweep(path, **doc):
    path.write_text(yaml.safe_dump({**TINY, **doc}, sort_keys=False))
    return path


def qssm(*args, timeout=300, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.update(kw.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, **kw)


def files_open_under(path: Path) -> list:
    """Processes that hold a file under `path` open (our ranks write their logs there)."""
    hits = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith(str(path)):
                    hits.append((pid, target))
        except OSError:
            continue
    return hits


# ----------------------------------------------------------------------------- bad input

BAD_SWEEPS = [
    ({"model": "nope"}, "model='nope'"),
    ({"model": "classical_mamba", "seqlen": 8}, "unknown cell field 'seqlen'"),
    ({"model": "classical_mamba", "grid": {"seq_len": []}}, "grid.seq_len: the list is empty"),
    ({"model": "classical_mamba", "steps": "many"}, "steps='many'"),
    ({"model": "classical_mamba", "grid": {"lr": [0.1, -1]}}, "lr=-1"),
    ({"model": "classical_mamba", "world_size": 3}, "batch_size=4"),
]


@pytest.mark.parametrize("doc, words", BAD_SWEEPS)
def test_bad_sweep_exit_2_one_line_nothing_written(tmp_path, capsys, doc, words):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({**TINY, **doc}))
    out = tmp_path / "results"
    assert main(["sweep", str(f), "--results", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("qssm: error: ") and words in err, err
    assert not out.exists()


def test_bad_invocations(tmp_path, capsys):
    good = write_sweep(tmp_path / "g.yaml", model="classical_mamba")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cases = [
        (["sweep", str(tmp_path / "missing.yaml")], "no such file"),
        (["sweep", str(good), "--results", str(blocker)], "is not a folder"),
        (["sweep", str(good), "--results", str(blocker / "sub")], "cannot write"),
        (["sweep", str(good), "--executor", "cloud"], "--executor 'cloud'"),
        (["train", "--model", "classical_mamba", "--seq_len", "x", "--results", str(tmp_path / "t")], "seq_len='x'"),
        (["train", "--seq_len", "8", "--results", str(tmp_path / "t")], "model is not set"),
        (["status", str(tmp_path / "none")], "no such results folder"),
        (["run-cell", str(tmp_path / "none.json"), "0"], "cannot read"),
    ]
    for argv, words in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and words in err, (argv, err)
    assert not (tmp_path / "t").exists()


def test_dry_run_writes_nothing(tmp_path, capsys):
    f = write_sweep(tmp_path / "s.yaml", model="all", grid={"seq_len": [4, 8]})
    assert main(["sweep", str(f), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "12 cells" in out and out.count("to-run") == 12
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("executor", ["inline", "local"])
def test_dry_run_refuses_cuda_cells_as_the_real_run_does(tmp_path, capsys, executor):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA present: cuda cells can run here")
    f = write_sweep(tmp_path / "s.yaml", model="classical_mamba", device="cuda")
    errors = []
    for extra in ([], ["--dry-run"]):
        assert main(["sweep", str(f), "--results", str(tmp_path / "r"), "--executor", executor, *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.count("\n") == 1, captured
        errors.append(captured.err)
    assert errors[0] == errors[1] and "device=cuda" in errors[0] and f"--executor {executor}" in errors[0]
    assert not (tmp_path / "r").exists()


def test_cells_needing_more_gpus_than_this_machine_has_are_left_out(tmp_path, capsys, monkeypatch):
    """On a 1-GPU node, the 2-GPU cells of a sweep are left out with a line each; the rest runs
    (shown with --dry-run, so nothing needs a GPU here)."""
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    f = write_sweep(tmp_path / "s.yaml", model="classical_mamba", device="cuda", batch_size=4,
                    grid={"world_size": [1, 2]})
    assert main(["sweep", str(f), "--results", str(tmp_path / "r"), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "1 left out: more GPUs than this machine has" in captured.out and captured.out.count("to-run") == 1
    assert "leaving out" in captured.err and "needs 2 GPUs (world_size=2); this machine has 1" in captured.err
    # every cell too big: one line, exit 2
    f2 = write_sweep(tmp_path / "s2.yaml", model="classical_mamba", device="cuda", batch_size=4, world_size=2)
    assert main(["sweep", str(f2), "--results", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "every cell needs more GPUs than this machine has (1)" in capsys.readouterr().err


def test_real_exit_code_for_bad_input(tmp_path):
    f = write_sweep(tmp_path / "s.yaml", model="classical_mamba", dropout=2)
    r = qssm("sweep", f, "--results", tmp_path / "r")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "dropout=2" in r.stderr
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- runs


def test_sweep_runs_skips_done_and_reports_failures(tmp_path):
    f = write_sweep(tmp_path / "s.yaml", model=["classical_mamba", "classical_hydra"], grid={"world_size": [1, 2]})
    res = tmp_path / "r"
    r = qssm("sweep", f, "--results", res, env={"QSSM_FAULT": "raise@2,model=classical_hydra"})
    assert r.returncode == 1, r.stderr
    assert "2 ok, 2 failed" in r.stdout
    df = store.read_results(res).df
    assert sorted(df["status"]) == ["failed", "failed", "ok", "ok"]
    # rerun: nothing runs (failures are data), still exit 1
    r = qssm("sweep", f, "--results", res)
    assert r.returncode == 1 and "0 to run" in r.stdout
    # --retry-failed reruns just the failed cells (now without the fault)
    r = qssm("sweep", f, "--results", res, "--retry-failed", "--executor", "inline")
    assert r.returncode == 0, r.stdout + r.stderr
    df = store.read_results(res).df
    assert len(df) == 6 and sorted(df[df.attempt == 2]["model"]) == ["classical_hydra", "classical_hydra"]
    st = qssm("status", res, "--sweep", f)
    assert st.returncode == 0 and "4 cells, 6 rows" in st.stdout and "4/4 ok" in st.stdout
    js = json.loads(qssm("status", res, "--json").stdout)
    assert js["by_status"] == {"ok": 4} and js["problems"] == []


def test_train_command(tmp_path):
    r = qssm("train", "--model", "quantum_mamba_gated", "--seq-len", "6", "--batch_size", "4", "--steps", "3",
             "--warmup_steps", "1", "--feature_dim", "4", "--output_dim", "2", "--hidden_dim", "8",
             "--n_qubits", "2", "--chunk_size", "3", "--eval_samples", "8", "--results", tmp_path, "--json")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.strip().splitlines()[-1])
    assert row["status"] == "ok" and row["seq_len"] == 6 and row["chunk_size"] == 3 and row["d_model"] is None


def test_run_cell_from_a_manifest(tmp_path):
    from bench.cell import cell_from_mapping
    from bench.executors.base import read_manifest, write_manifest
    cells = [cell_from_mapping({"model": m, **TINY}) for m in ("classical_mamba", "classical_hydra")]
    res = tmp_path / "r"
    man = write_manifest(tmp_path / "cells.json", cells, res)
    assert [c.cell_id for c in read_manifest(man).cells] == [c.cell_id for c in cells]
    r = qssm("run-cell", man, "1")
    assert r.returncode == 0, r.stderr
    assert list(store.read_results(res).df["model"]) == ["classical_hydra"]
    r = qssm("run-cell", man, env={"SLURM_ARRAY_TASK_ID": "1"})
    assert r.returncode == 0 and "skipped (done)" in r.stdout
    assert qssm("run-cell", man, "2").returncode == 2
    doc = json.loads(man.read_text())
    doc["cells"][0]["seed"] = 5
    man.write_text(json.dumps(doc))
    r = qssm("run-cell", man, "0")
    assert r.returncode == 2 and "does not match its fields" in r.stderr


# ----------------------------------------------------------------------------- crashes


def _snapshot(res: Path) -> dict:
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in res.glob("*.parquet")}


@pytest.mark.slow
def test_sigkill_of_the_driver_loses_nothing_duplicates_nothing_reruns_nothing(tmp_path):
    f = write_sweep(tmp_path / "s.yaml", model="classical_mamba", steps=30, grid={"seed": list(range(8))},
                    world_size=2)
    res = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for kill_after_rows in (2, 4):
        before = _snapshot(res) if res.exists() else {}
        p = subprocess.Popen([sys.executable, "-m", "bench.cli", "sweep", str(f), "--results", str(res)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 240
        while len(list(res.glob("*.parquet"))) < kill_after_rows and time.monotonic() < deadline:
            assert p.poll() is None, "sweep ended before it could be killed"
            time.sleep(0.05)
        time.sleep(0.3)  # land inside the next cell
        p.send_signal(signal.SIGKILL)
        p.wait()
        # ranks die with the driver
        for _ in range(100):
            if not files_open_under(res):
                break
            time.sleep(0.1)
        assert files_open_under(res) == []
        after = _snapshot(res)
        assert {k: v for k, v in after.items() if k in before} == before   # finished rows untouched
        assert store.read_results(res).problems == []
    before = _snapshot(res)
    r = subprocess.run([sys.executable, "-m", "bench.cli", "sweep", str(f), "--results", str(res)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    after = _snapshot(res)
    assert {k: v for k, v in after.items() if k in before} == before   # nothing finished was rerun
    df = store.read_results(res).df
    assert len(df) == 8 and df["cell_id"].is_unique and set(df["status"]) == {"ok"}
    assert set(df["attempt"]) == {1}


@pytest.mark.slow
def test_two_sweeps_into_one_folder_at_once(tmp_path):
    a = write_sweep(tmp_path / "a.yaml", model="classical_mamba", steps=20, grid={"seed": list(range(6))})
    b = write_sweep(tmp_path / "b.yaml", model="classical_mamba", steps=20, grid={"seed": list(range(3, 9))})
    res = tmp_path / "r"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "bench.cli", "sweep", str(s), "--results", str(res)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for s in (a, b)]
    problems = []
    while any(p.poll() is None for p in procs):
        if res.exists():
            problems += store.read_results(res).problems
            pd.read_parquet(res) if list(res.glob("*.parquet")) else None
        time.sleep(0.1)
    outs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert problems == []
    df = store.read_results(res).df
    assert len(df) == 9 and df["cell_id"].is_unique   # overlapping cells ran once
    assert list((res / store.TMP).iterdir()) == []


def test_a_killed_attempt_resumes_from_its_checkpoint(tmp_path):
    from bench.cell import cell_from_mapping
    from bench.executors.base import write_manifest
    from bench.executors.launchers import RankEnv
    from bench.train import run_cell
    c = cell_from_mapping({"model": "quantum_mamba_gated", **TINY, "steps": 9, "warmup_steps": 2, "dropout": 0.2})
    res = tmp_path / "r"
    man = write_manifest(tmp_path / "cells.json", [c], res)
    r = qssm("run-cell", man, "0", env={"QSSM_FAULT": "exit@6", "QSSM_CHECKPOINT_EVERY_S": "0"})
    assert r.returncode == 3 and not list(res.glob("*.parquet"))          # died without a row
    assert json.loads((res / ".checkpoints" / c.cell_id / "meta.json").read_text())["step"] == 6
    r = qssm("run-cell", man, "0")                                          # the requeued run
    assert r.returncode == 0, r.stderr
    got = store.read_results(res)
    row = got.df.iloc[0]
    assert row["attempt"] == 1 and row["steps_run"] == 9 and row["status"] == "ok"
    assert got.env[f"{c.cell_id}.a001.parquet"]["resumed_from_step"] == 6
    assert not (res / ".checkpoints" / c.cell_id).exists()
    ref = tmp_path / "ref"
    run_cell(c, ref, RankEnv.single("inline"))
    assert json.loads(row["loss_curve"]) == json.loads(store.read_results(ref).df.iloc[0]["loss_curve"])


def test_sweep_refuses_a_pennylane_device_that_cannot_run_here(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("CUDA present: lightning.gpu may work")
    sweep = tmp_path / "pl.yaml"
    sweep.write_text("model: quantum_mamba_gated\nquantum_backend: pennylane\nqml_device: lightning.gpu\n"
                     "n_qubits: 2\nseq_len: 8\nsteps: 3\nwarmup_steps: 1\nbatch_size: 4\n")
    out = subprocess.run([sys.executable, "-m", "bench.cli", "sweep", str(sweep), "--results", str(tmp_path / "r"),
                          "--executor", "inline"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "qml_device=lightning.gpu" in out.stderr and "qssm-bench[gpu]" in out.stderr
    assert not (tmp_path / "r").exists()
