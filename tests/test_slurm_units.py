"""SLURM executor and `qssm sbatch` pieces that need no cluster: resource shapes, sacct parsing,
the generated sbatch scripts (golden files), the CLI's checks.

Golden files: tests/golden/*.sbatch. To re-record them on purpose after changing the script
template, run `QSSM_RECORD_GOLDEN=1 python -m pytest tests/test_slurm_units.py -k golden`, read
the diff (`git diff tests/golden`) and commit it. A missing golden file is a failure, never
recorded silently.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cell import cell_from_mapping
from bench.cmd_sbatch import fmt_time, render_script
from bench.errors import UserError
from bench.executors import sacct as A
from bench.executors import slurm as S
from bench.profiles import load_profile

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
TINY = dict(model="classical_mamba", d_model=8, d_state=4, n_layers=1, feature_dim=4, output_dim=2,
            seq_len=8, steps=3, warmup_steps=1, batch_size=4, eval_samples=32)


def cell(**kw):
    return cell_from_mapping({**TINY, **kw})


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("QSSM_RECORD_GOLDEN", "").strip() not in ("", "0"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        pytest.skip(f"re-recorded {path.relative_to(REPO)} (QSSM_RECORD_GOLDEN is set): review `git diff` "
                    "and commit it")
    assert path.exists(), (f"golden file {path} is missing; record it on purpose with QSSM_RECORD_GOLDEN=1 "
                           "(see this module's docstring)")
    expected = path.read_text()
    assert text == expected, (f"the generated script differs from {path.name}; if the change is intended, "
                              "re-record with QSSM_RECORD_GOLDEN=1 and commit the diff")


# ---------------------------------------------------------------------------------------------
# resource shapes
# ---------------------------------------------------------------------------------------------
def test_cpu_cells_take_world_size_tasks_over_their_nodes():
    prof = load_profile("local")
    assert S.shape_of(cell(world_size=2, batch_size=4), prof) == S.Shape(1, 2, 0, 2, "cpu")
    assert S.shape_of(cell(world_size=4, nodes=2, batch_size=4), prof) == S.Shape(2, 2, 0, 4, "cpu")
    groups = S.group_cells([cell(seed=0), cell(seed=1, world_size=2), cell(seed=2)], prof)
    assert [(s.world_size, len(cs)) for s, cs in groups.items()] == [(1, 2), (2, 1)]


def test_cuda_cells_take_one_gpu_per_rank_and_whole_nodes():
    prof = load_profile("perlmutter")          # 4 GPUs per node
    assert S.shape_of(cell(device="cuda", world_size=2, batch_size=4), prof) == S.Shape(1, 2, 2, 2, "cuda")
    assert S.shape_of(cell(device="cuda", world_size=8, nodes=2, batch_size=8), prof) == S.Shape(2, 4, 4, 8, "cuda")
    assert S.shape_of(cell(device="cuda", world_size=4, nodes=2, batch_size=8), prof) == S.Shape(2, 2, 2, 4, "cuda")
    # a cell's nodes is what it measures: a one-node cell never spreads silently
    with pytest.raises(UserError, match="set nodes: 2"):
        S.shape_of(cell(device="cuda", world_size=8, batch_size=8), prof)
    with pytest.raises(UserError, match="set nodes: 2 and a world_size that is a multiple of 2"):
        S.shape_of(cell(device="cuda", world_size=7, batch_size=7), prof)
    with pytest.raises(UserError, match="needs 6 GPUs per node"):
        S.shape_of(cell(device="cuda", world_size=12, nodes=2, batch_size=12), prof)
    with pytest.raises(UserError, match="gpus_per_node=0"):
        S.shape_of(cell(device="cuda"), load_profile("local"))


def test_sbatch_options_come_from_the_profile():
    prof = load_profile("perlmutter")
    opts = S.sbatch_options(prof, S.Shape(2, 4, 4, 8, "cuda"))
    assert opts == {"nodes": 2, "ntasks-per-node": 4, "cpus-per-task": 32, "gpus-per-node": 4, "time": 60,
                    "account": "m0000", "qos": "regular", "constraint": "gpu", "gpu-bind": "none"}
    local = S.sbatch_options(load_profile("local"), S.Shape(1, 2, 0, 2, "cpu"))
    assert local["mem"] == "2G" and local["partition"] == "debug" and "gpus-per-node" not in local
    assert S.mem_option(1.5) == "1536M" and fmt_time(30) == "00:30:00" and fmt_time(1500) == "1-01:00:00"


# ---------------------------------------------------------------------------------------------
# sacct output
# ---------------------------------------------------------------------------------------------
def test_job_ids_expand_and_compact():
    assert A.expand_job_id("12_[3-5,7%2]") == ["12_3", "12_4", "12_5", "12_7"]
    assert A.expand_job_id("12_3") == ["12_3"] and A.expand_job_id("12") == ["12"]
    assert A.compact_ids(["5_0", "5_1", "5_2", "5_4", "6", "7_3"]) == ["5_[0-2,4]", "7_3", "6"]
    assert A.elapsed_s(A.JobInfo(elapsed="1-02:03:04")) == 93784.0
    assert A.elapsed_s(A.JobInfo(elapsed="03:04")) == 184.0


def test_sacct_info_reads_states_and_counts_requeues(monkeypatch):
    out = ("7_0|REQUEUED|2026-11-25T16:00:00|00:00:08|0:0\n"
           "7_0|COMPLETED|2026-11-25T16:00:20|00:00:05|0:0\n"
           "7_1|CANCELLED by 0|2026-11-25T16:00:01|00:00:02|0:15\n"
           "7_[2-3%4]|PENDING|Unknown|00:00:00|0:0\n")

    def fake_run(cmd, **kw):
        assert cmd[0] == "sacct" and "-D" in cmd and "7" in cmd[-1]
        return subprocess.CompletedProcess(cmd, 0, out, "")
    monkeypatch.setattr(A.subprocess, "run", fake_run)
    info = A.sacct_info(["7_0", "7_1", "7_2"])
    assert info["7_0"].state == "COMPLETED" and info["7_0"].requeues == 1
    assert info["7_1"].state == "CANCELLED" and info["7_1"].detail == "CANCELLED by 0"
    assert info["7_2"].state == info["7_3"].state == "PENDING"


# ---------------------------------------------------------------------------------------------
# generated scripts (golden files)
# ---------------------------------------------------------------------------------------------
def _render(profile: str, shape, launcher="sbatch", pythonpath=()):
    out = Path("/scratch/jobs")
    return render_script(job_name="qssm-demo", profile=load_profile(profile), shape=shape, n_cells=12,
                         script=out / "demo.sbatch", manifest=out / "demo.cells.json",
                         results_dir=Path("/scratch/results/demo"), log_dir=out / "logs",
                         python="/opt/venv/bin/python", pythonpath=list(pythonpath), launcher=launcher,
                         sweep="/home/me/demo.yaml", checkpoint_every_s=300, signal_delay_s=90, max_requeues=3)


def test_golden_sbatch_script_local():
    check_golden("local-w2.sbatch", _render("local", S.Shape(1, 2, 0, 2, "cpu"),
                                            pythonpath=['export PYTHONPATH="/src/qssm-bench${PYTHONPATH:+:$PYTHONPATH}"']))


def test_golden_sbatch_script_perlmutter_mpi():
    check_golden("perlmutter-w8-mpi.sbatch", _render("perlmutter", S.Shape(2, 4, 4, 8, "cuda"), launcher="mpi"))


def test_generated_scripts_are_valid_bash(tmp_path):
    for text in (_render("local", S.Shape(1, 2, 0, 2, "cpu")),
                 _render("gpu-generic", S.Shape(1, 4, 4, 4, "cuda"), launcher="mpi"),
                 _render("gpu-generic", S.Shape(1, 4, 4, 1, "cuda", cells_per_task=4))):
        p = tmp_path / "s.sbatch"
        p.write_text(text)
        r = subprocess.run(["bash", "-n", str(p)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------------------------
# the CLI
# ---------------------------------------------------------------------------------------------
def qssm(*args, cwd=None, env=None):
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=e, timeout=120)


SWEEP = """\
model: classical_mamba
d_model: 8
d_state: 4
n_layers: 1
feature_dim: 4
output_dim: 2
seq_len: 8
steps: 3
warmup_steps: 1
batch_size: 4
eval_samples: 32
grid:
  seed: [0, 1, 2]
  world_size: [1, 2]
"""


def test_qssm_sbatch_writes_a_script_and_manifest_per_group(tmp_path):
    (tmp_path / "demo.yaml").write_text(SWEEP)
    r = qssm("sbatch", tmp_path / "demo.yaml", "--profile", "local", "-o", tmp_path / "jobs",
             "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    from bench.executors.base import read_manifest
    for w in (1, 2):
        script = tmp_path / "jobs" / f"demo-w{w}.sbatch"
        text = script.read_text()
        man = read_manifest(tmp_path / "jobs" / f"demo-w{w}.cells.json")
        assert len(man.cells) == 3 and {c.world_size for c in man.cells} == {w}
        assert man.results_dir == (tmp_path / "res").resolve()
        # the profile's max_concurrent (4) is shared by the sweep's two arrays
        assert "#SBATCH --array=0-2%2" in text and f"#SBATCH --ntasks-per-node={w}" in text
        assert f"QSSM=({sys.executable} -m bench.cli)" in text and "run-cell \"$MANIFEST\"" in text
        assert os.access(script, os.X_OK)
    assert "sbatch " in r.stdout


def test_qssm_sbatch_leaves_out_done_cells_and_refuses_bad_input(tmp_path):
    (tmp_path / "demo.yaml").write_text(SWEEP.replace("  world_size: [1, 2]\n", ""))
    from bench.executors.launchers import RankEnv
    from bench.sweep import load_sweep
    from bench.train import run_cell
    first = load_sweep(str(tmp_path / "demo.yaml")).cells[0]
    run_cell(first, tmp_path / "res", RankEnv.single("inline"))
    r = qssm("sbatch", tmp_path / "demo.yaml", "-o", tmp_path / "jobs", "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --array=0-1%2" in (tmp_path / "jobs" / "demo.sbatch").read_text()  # throttle <= tasks
    assert "1 done or failed before" in r.stdout
    r = qssm("sbatch", tmp_path / "demo.yaml", "-o", tmp_path / "j2", "--profile", "nosuch")
    assert r.returncode == 2 and "profile='nosuch' not found" in r.stderr
    (tmp_path / "gpu.yaml").write_text(SWEEP.replace("seq_len: 8\n", "seq_len: 8\ndevice: cuda\n"))
    r = qssm("sbatch", tmp_path / "gpu.yaml", "-o", tmp_path / "j3", "--profile", "local")
    assert r.returncode == 2 and "gpus_per_node=0" in r.stderr and not (tmp_path / "j3").exists()
    r = qssm("sbatch", tmp_path / "demo.yaml", "-o", tmp_path / "j4", "--launcher", "pbs")
    assert r.returncode == 2 and "--launcher 'pbs'" in r.stderr


def test_slurm_executor_needs_sbatch(tmp_path):
    (tmp_path / "demo.yaml").write_text(SWEEP)
    r = qssm("sweep", tmp_path / "demo.yaml", "--executor", "slurm", "--results", tmp_path / "res",
             env={"PATH": "/nonexistent"})
    assert r.returncode == 2 and "needs SLURM's sbatch on PATH" in r.stderr
    assert not (tmp_path / "res").exists()


def test_set_overrides_profile_keys_validated_like_the_file():
    p = load_profile("gpu-generic", ["qos=debug", "time_min=30", "gpus_per_node=1", "account=m1234",
                                     "setup=[module load cuda]"])
    assert (p.qos, p.time_min, p.gpus_per_node, p.account, p.setup) == ("debug", 30, 1, "m1234", ("module load cuda",))
    assert dict(p.overrides)["qos"] == "'debug'"
    from bench.profiles import provenance_setup
    assert any("QSSM_PROFILE_OVERRIDES=" in line and "time_min=30" in line for line in provenance_setup(p))
    for bad, words in ((["nosuch=1"], "unknown profile key 'nosuch'"), (["qos"], "KEY=VALUE"),
                       (["time_min=soon"], "time_min='soon'"), (["mem_gb=-1"], "mem_gb=-1"),
                       (["mem_per_gpu_gb=16", "mem_gb=8"], "set at most one")):
        with pytest.raises(UserError, match=words):
            load_profile("gpu-generic", bad)


def test_memory_per_gpu_scales_with_the_cell_and_one_throttle_for_the_sweep():
    p = load_profile("gpu-generic")
    one = S.sbatch_options(p, S.shape_of(cell(device="cuda"), p))
    four = S.sbatch_options(p, S.shape_of(cell(device="cuda", world_size=4, batch_size=8), p))
    assert one["mem-per-gpu"] == "32G" and one["gpus-per-node"] == 1 and "mem" not in one
    assert four["gpus-per-node"] == 4
    from bench.executors.slurm_resources import throttles
    shares = throttles({"a": list(range(162)), "b": list(range(6)), "c": list(range(6))}, 16)
    assert sum(shares.values()) <= 16 and min(shares.values()) >= 1 and shares["a"] >= 12
    assert throttles({"a": [1, 2]}, 16) == {"a": 2}


def test_the_profile_names_the_python_jobs_run(tmp_path):
    (tmp_path / "demo.yaml").write_text(SWEEP)
    r = qssm("sbatch", tmp_path / "demo.yaml", "--profile", "local", "--set", "python=python3", "-o",
             tmp_path / "jobs", "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "jobs" / "demo-w1.sbatch").read_text()
    assert "QSSM=(python3 -m bench.cli)" in text
    assert text.index("QSSM_PROFILE_OVERRIDES") < text.index("QSSM=(python3")   # after the setup lines
    r = qssm("sbatch", tmp_path / "demo.yaml", "--set", "bogus=1", "-o", tmp_path / "j2")
    assert r.returncode == 2 and "unknown profile key 'bogus'" in r.stderr and not (tmp_path / "j2").exists()


def test_dry_run_checks_the_profile_and_prints_the_arrays(tmp_path):
    (tmp_path / "demo.yaml").write_text(SWEEP)
    r = qssm("sweep", tmp_path / "demo.yaml", "--executor", "slurm", "--profile", "nosuch", "--dry-run",
             "--results", tmp_path / "res")
    assert r.returncode == 2 and "profile='nosuch' not found" in r.stderr
    r = qssm("sweep", tmp_path / "demo.yaml", "--executor", "slurm", "--set", "time_min=7", "--dry-run",
             "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    assert "would submit 2 job array(s)" in r.stdout and "time=7" in r.stdout and "at once" in r.stdout
    (tmp_path / "gpu.yaml").write_text(SWEEP.replace("seq_len: 8\n", "seq_len: 8\ndevice: cuda\n"))
    r = qssm("sweep", tmp_path / "gpu.yaml", "--executor", "slurm", "--dry-run", "--results", tmp_path / "res")
    assert r.returncode == 2 and "gpus_per_node=0" in r.stderr
    assert not (tmp_path / "res").exists()


def test_dry_run_labels_tell_every_listed_cell_apart():
    from bench.cell import distinct_labels
    a, b = cell(scan="chunked"), cell(scan="reference")
    la, lb = distinct_labels([a, b])
    assert la != lb and "scan=reference" in lb
    assert distinct_labels([a]) == [a.label()]


def test_packing_puts_one_gpu_cells_side_by_side_on_a_whole_node(tmp_path, monkeypatch):
    prof = load_profile("perlmutter", ["pack=true"])
    shape = S.shape_of(cell(device="cuda"), prof)
    assert shape == S.Shape(1, 4, 4, 1, "cuda", cells_per_task=4)
    assert S.shape_of(cell(device="cuda", world_size=2, batch_size=4), prof).cells_per_task == 1
    assert [len(b) for b in S.packs(list(range(10)), shape)] == [4, 4, 2]
    opts = S.sbatch_options(prof, shape)
    assert opts["gpus-per-node"] == 4 and opts["ntasks-per-node"] == 4 and opts["nodes"] == 1
    text = _render("perlmutter", shape)                       # 12 cells -> 3 array tasks
    assert "#SBATCH --array=0-2%" in text and "srun --exact --ntasks=1 --gpus=1" in text
    assert "i=$(( SLURM_ARRAY_TASK_ID * 4 + j ))" in text
    with pytest.raises(UserError, match="pack='yes'"):
        load_profile("perlmutter", ["pack='yes'"])
    # the submitit side: task p of a packed job runs cell p alone, later tasks idle
    from bench.requeue import CellJob
    monkeypatch.setattr("bench.requeue.install_stop_handler", lambda *a, **k: None)  # keep pytest's handlers
    seen = []
    monkeypatch.setattr("bench.train.run_cell", lambda c, d, launcher, **kw: seen.append((c.seq_len, launcher))
                        or type("O", (), {"cell_id": c.cell_id, "attempt": 1, "status": "ok", "error": "",
                                          "skipped_reason": ""})())
    job = CellJob([cell(seq_len=6).to_dict(), cell(seq_len=7).to_dict()], str(tmp_path))
    monkeypatch.setenv("SLURM_PROCID", "1")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    assert job()["status"] == "ok"
    (T, env), = seen
    assert T == 7 and env.world_size == 1 and env.local_rank == 1
    monkeypatch.setenv("SLURM_PROCID", "3")
    assert job()["status"] == "idle"


def test_set_keeps_text_keys_as_text():
    p = load_profile("local", ["account=1234", "qos=off", "partition=null"])
    assert (p.account, p.qos, p.partition) == ("1234", "off", None)


def test_multi_node_arrays_are_named_by_shape_and_ask_for_their_nodes(tmp_path):
    (tmp_path / "mn.yaml").write_text("model: classical_mamba\nd_model: 8\nfeature_dim: 4\noutput_dim: 2\n"
                                      "seq_len: 8\nsteps: 3\nwarmup_steps: 1\nbatch_size: 4\nworld_size: 2\n"
                                      "grid:\n  nodes: [1, 2]\n")
    r = qssm("sbatch", tmp_path / "mn.yaml", "--set", "network_interface=eth0", "-o", tmp_path / "jobs",
             "--results", tmp_path / "res")
    assert r.returncode == 0, r.stderr
    two = (tmp_path / "jobs" / "mn-w2-n2.sbatch").read_text()
    one = (tmp_path / "jobs" / "mn-w2.sbatch").read_text()
    assert "#SBATCH --nodes=2" in two and "#SBATCH --ntasks-per-node=1" in two
    assert "#SBATCH --nodes=1" in one and "#SBATCH --ntasks-per-node=2" in one
    for text in (one, two):
        assert "export GLOO_SOCKET_IFNAME=eth0 NCCL_SOCKET_IFNAME=eth0" in text
        assert text.index("GLOO_SOCKET_IFNAME") < text.index("run-cell")
    assert S.shape_tag(S.Shape(2, 4, 4, 8, "cuda")) == "w8-n2-cuda" and S.shape_tag(S.Shape(1, 1, 0, 1, "cpu")) == "w1"
    for bad in ("eth0; rm", "^docker"):   # NCCL's ^exclusions mean nothing to gloo and OpenMPI
        with pytest.raises(UserError, match=re.escape(f"network_interface='{bad}' is not allowed")):
            load_profile("local", [f"network_interface={bad}"])
    assert load_profile("local", ["network_interface=ib0,ib1"]).network_interface == "ib0,ib1"
    from bench.profiles import network_setup
    assert network_setup(load_profile("local")) == []


def test_local_executors_leave_multi_node_cells_out():
    from bench.executors.base import split_cells_here
    cells = [cell(world_size=2, batch_size=4), cell(world_size=2, nodes=2, batch_size=4)]
    run, left = split_cells_here(cells, "local")
    assert run == cells[:1] and [c for c, _ in left] == cells[1:] and "--executor slurm" in left[0][1]
    with pytest.raises(UserError, match="every cell spans several nodes"):
        split_cells_here(cells[1:], "local")


def test_a_lost_job_names_the_ranks_srun_saw_die(tmp_path):
    from bench.executors.slurm_lost import lost_ranks
    from bench.executors.slurm_records import Tracked
    (tmp_path / "7_0_log.err").write_text("noise\nsrun: error: qnode1: task 0: Terminated\n"
                                          "srun: error: qnode2: task 1: Killed\n")
    t = Tracked(cell(), "7", 0, None, str(tmp_path))
    assert lost_ranks(t) == "rank 1 on qnode2: Killed; rank 0 on qnode1: Terminated"
    assert lost_ranks(Tracked(cell(), "8", 0, None, str(tmp_path))) == ""
