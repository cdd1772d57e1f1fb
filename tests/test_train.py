"""One training cell: every metric recorded, determinism, DDP over two ranks, failures as rows."""
import json
import math

import pytest

from bench import schema, store
from bench.cell import cell_from_mapping
from bench.executors.launchers import RankEnv, first_host
from bench.executors.local import run_ranks_locally
from bench.train import run_cell

TINY = dict(seq_len=8, batch_size=8, steps=5, warmup_steps=2, feature_dim=4, output_dim=3, d_model=8,
            d_state=4, n_layers=1, hidden_dim=8, n_qubits=2, qlcu_layers=1, chunk_size=4, eval_samples=40,
            num_threads=1, lr=0.01)
METRICS_ALWAYS = ["n_params", "steps_run", "samples_per_s", "timesteps_per_s", "step_time_median_s",
                  "step_time_p90_s", "step_time_min_s", "infer_time_median_s", "peak_mem_train_bytes",
                  "peak_mem_infer_bytes", "peak_rss_bytes", "saved_bytes_per_step", "mem_source", "final_loss",
                  "accuracy", "device_name", "threads_per_rank", "loss_curve", "wall_time_s", "started_at"]


def cell(**kw):
    return cell_from_mapping({"model": "classical_mamba", **TINY, **kw})


def run_inline(c, d, **kw):
    return run_cell(c, d, RankEnv.single("inline"), **kw)


def rows(d):
    return store.read_results(d).df


@pytest.mark.parametrize("model", ["classical_mamba", "quantum_hydra_ssm", "quantum_hydra_gated"])
def test_one_cell_records_every_metric(tmp_path, model):
    c = cell(model=model)
    out = run_inline(c, tmp_path)
    assert out.status == "ok" and out.attempt == 1 and out.path.exists()
    df = rows(tmp_path)
    assert len(df) == 1
    r = df.iloc[0]
    for col in METRICS_ALWAYS:
        assert r[col] is not None and not (isinstance(r[col], float) and math.isnan(r[col])), col
    assert r["status"] == "ok" and r["error"] == "" and r["cell_id"] == c.cell_id and r["launcher"] == "inline"
    assert r["steps_run"] == c.steps and r["mem_source"] == "cpu-tensors" and r["threads_per_rank"] == 1
    assert r["timesteps_per_s"] == pytest.approx(r["samples_per_s"] * c.seq_len)
    assert r["step_time_min_s"] <= r["step_time_median_s"] <= r["step_time_p90_s"]
    import qssm
    import torch
    with torch.device("meta"):
        n = qssm.count_parameters(qssm.build_model(c.model, **c.model_kwargs()))
    assert r["n_params"] == n
    # live tensor bytes in training cover at least parameters, gradients and AdamW's two moments
    assert r["peak_mem_train_bytes"] >= 4 * 4 * n and r["peak_mem_infer_bytes"] >= 4 * n
    assert r["saved_bytes_per_step"] > 0 and r["peak_rss_bytes"] > 10e6
    assert len(json.loads(r["loss_curve"])) == c.steps
    assert 0.0 <= r["accuracy"] <= 1.0
    for name, _, _ in schema.CELL_COLUMNS:
        v = getattr(c, name)
        if v is not None:
            assert r[name] == v, name


def test_same_cell_and_seed_give_the_same_loss_curve(tmp_path):
    c = cell(model="quantum_mamba_gated", dropout=0.1)
    run_inline(c, tmp_path / "a")
    run_inline(c, tmp_path / "b")
    run_inline(cell(model="quantum_mamba_gated", dropout=0.1, seed=1), tmp_path / "c")
    a, b, s1 = (json.loads(rows(tmp_path / x).iloc[0]["loss_curve"]) for x in "abc")
    assert a == b
    assert a != s1
    assert rows(tmp_path / "a").iloc[0]["accuracy"] == rows(tmp_path / "b").iloc[0]["accuracy"]


def test_repeat_is_a_replicate_with_the_same_data(tmp_path):
    """repeat runs the same cell and seed again as a separate cell: same loss curve, its own id."""
    c0, c1 = cell(dropout=0.0), cell(dropout=0.0, repeat=1)
    assert c0.cell_id != c1.cell_id and "repeat" not in c0.identity() and c1.identity()["repeat"] == 1
    run_inline(c0, tmp_path)
    run_inline(c1, tmp_path)
    df = rows(tmp_path).set_index("repeat")
    assert json.loads(df.loc[0, "loss_curve"]) == json.loads(df.loc[1, "loss_curve"])


def test_circuit_probe_measures_the_circuits_share(tmp_path, monkeypatch):
    import qssm.quantum.branches as branches

    real = branches.gated_circuit
    c = cell(model="quantum_mamba_gated", circuit_probe_steps=2)
    assert run_inline(c, tmp_path / "q").status == "ok"
    share = rows(tmp_path / "q").iloc[0]["circuit_share"]
    assert 0.0 <= share <= 1.0
    assert branches.gated_circuit is real               # the stand-ins are put back
    # circuits made deliberately slow dominate the pass
    import time

    def slow(*a, **kw):
        time.sleep(0.02)
        return real(*a, **kw)
    monkeypatch.setattr(branches, "gated_circuit", slow)
    assert run_inline(c, tmp_path / "slow").status == "ok"
    assert rows(tmp_path / "slow").iloc[0]["circuit_share"] > 0.5
    # qssm micro's circuit-free step keeps its stand-ins installed
    from bench.circuit_probe import patch_free_circuits
    monkeypatch.setattr(branches, "ssm_circuit", branches.ssm_circuit)
    monkeypatch.setattr(branches, "gated_circuit", branches.gated_circuit)
    patch_free_circuits()
    assert branches.gated_circuit is not real and branches.gated_circuit is not slow
    monkeypatch.undo()
    assert branches.gated_circuit is real
    # a classical model has no circuits: no probe (normalised away: the same cell), null share
    assert cell(circuit_probe_steps=2).cell_id == cell().cell_id
    run_inline(cell(circuit_probe_steps=2), tmp_path / "c")
    assert rows(tmp_path / "c").iloc[0]["circuit_share"] is None or \
        math.isnan(rows(tmp_path / "c").iloc[0]["circuit_share"])


def test_two_ranks_split_the_batch_and_agree(tmp_path):
    c1 = cell(world_size=1, dropout=0.0)
    c2 = cell(world_size=2, dropout=0.0)
    out = run_ranks_locally(c2, tmp_path)
    assert out.status == "ok", out
    run_inline(c1, tmp_path)
    df = rows(tmp_path).set_index("world_size")
    assert df.loc[2, "launcher"] == "local" and df.loc[2, "steps_run"] == c2.steps
    # without dropout, the mean of two half-batch gradients is the full-batch gradient: same curve
    l1, l2 = json.loads(df.loc[1, "loss_curve"]), json.loads(df.loc[2, "loss_curve"])
    assert l1 == pytest.approx(l2, rel=1e-4, abs=1e-5)


def test_skip_when_done_and_attempts_count_up(tmp_path):
    c = cell()
    assert run_inline(c, tmp_path).attempt == 1
    again = run_inline(c, tmp_path)
    assert again.status == "skipped" and again.skipped_reason == "done"
    assert run_inline(c, tmp_path, force=True).attempt == 2
    assert sorted(rows(tmp_path)["attempt"]) == [1, 2]


@pytest.mark.parametrize("fault, status, words", [
    ("nan@2", "nan", "not finite at step 2"),
    ("raise@1", "failed", "InjectedFault: injected fault at step 1"),
    ("oom@3", "oom", "can't allocate memory"),
])
def test_failures_are_rows(tmp_path, monkeypatch, fault, status, words):
    monkeypatch.setenv("QSSM_FAULT", fault)
    c = cell()
    out = run_inline(c, tmp_path)
    assert out.status == status
    df = rows(tmp_path)
    assert len(df) == 1 and df.iloc[0]["status"] == status and words in df.iloc[0]["error"]
    assert df.iloc[0]["n_params"] > 0


def test_time_budget_becomes_a_timeout_row(tmp_path, monkeypatch):
    monkeypatch.setenv("QSSM_FAULT", "sleep@1,seconds=1.5")
    out = run_inline(cell(steps=6, time_budget_s=1.0), tmp_path)
    assert out.status == "timeout"
    r = rows(tmp_path).iloc[0]
    assert "time budget of 1 s" in r["error"] and r["steps_run"] == 2


def test_dead_rank_gets_a_row_from_the_supervisor(tmp_path, monkeypatch):
    monkeypatch.setenv("QSSM_FAULT", "kill@2,rank=1")
    out = run_ranks_locally(cell(world_size=2), tmp_path)
    assert out.status == "oom"
    r = rows(tmp_path).iloc[0]
    assert "rank 1 was killed by SIGKILL" in r["error"] and r["launcher"] == "local"
    assert len(rows(tmp_path)) == 1


def test_failing_rank_in_ddp_writes_one_row(tmp_path, monkeypatch):
    monkeypatch.setenv("QSSM_FAULT", "raise@3,rank=1")
    out = run_ranks_locally(cell(world_size=2), tmp_path)
    assert out.status == "failed"
    df = rows(tmp_path)
    assert len(df) == 1 and "injected fault at step 3" in df.iloc[0]["error"]


def test_launcher_environment(monkeypatch):
    from bench.executors.launchers import detect, threads_for
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "SLURM_STEP_ID", "SLURM_PROCID", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(k, raising=False)
    assert detect("auto") == RankEnv.single("inline")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("MASTER_ADDR", "h")
    monkeypatch.setenv("MASTER_PORT", "1234")
    env = detect("auto")
    assert (env.rank, env.world_size, env.local_rank, env.launcher, env.init_method) == (1, 4, 1, "torchrun", "env://")
    for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
        monkeypatch.delenv(k)
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_PROCID", "3")
    monkeypatch.setenv("SLURM_NTASKS", "4")
    monkeypatch.setenv("SLURM_LOCALID", "1")
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_STEP_NODELIST", "gpu[007-009,012]")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "3")
    env = detect("auto")
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (3, 4, 1, "sbatch")
    assert env.init_method.startswith("tcp://gpu007:")
    assert threads_for(env) == 3 and threads_for(env, 2) == 2
    assert first_host("n1,n2") == "n1" and first_host("node") == "node"
    # ranks per node from SLURM's compressed list: 4 ranks as 2 on each of 2 nodes
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "2(x2)")
    monkeypatch.setenv("SLURM_NODEID", "1")
    assert detect("auto").local_world_size == 2
    monkeypatch.setenv("SLURM_STEP_TASKS_PER_NODE", "3,1")
    assert detect("auto").local_world_size == 1


def test_rows_record_the_ranks_hosts(tmp_path):
    import socket
    run_inline(cell(), tmp_path)
    assert rows(tmp_path).iloc[0]["hostnames"] == socket.gethostname()


def test_a_cell_whose_ranks_land_on_another_number_of_hosts_fails(tmp_path):
    """Two local ranks are one host: a nodes=2 cell run that way is a failed row, not a
    measurement of two nodes."""
    import socket
    c = cell(world_size=2, nodes=2)
    out = run_cell(c, tmp_path, RankEnv.single("inline"))
    df = rows(tmp_path)
    assert out.status == "failed" and len(df) == 1
    assert "nodes=2 but its 2 rank(s) ran on 1 host(s)" in df.iloc[0]["error"]
    assert df.iloc[0]["hostnames"] == f"{socket.gethostname()},{socket.gethostname()}"


def test_a_lost_peer_is_named_by_rank_and_host(monkeypatch):
    from bench import train as T
    addrs = {"n1": "10.0.0.2", "n2": "10.0.0.3", "n3": "10.0.0.4"}
    monkeypatch.setattr(T.socket, "gethostbyname", lambda h: addrs[h])
    text = "RuntimeError: [pair.cc:537] Read error [10.0.0.3]:51844: Connection reset by peer."
    assert T.name_lost_peers(text, ["n1", "n2", "n2", "n3"], 0) == "ranks 1,2 on n2 went away: "
    assert T.name_lost_peers("Connection closed by peer", ["n1", "n2"], 0) == ""
    assert T.name_lost_peers(text, ["n2", "n1"], 0) == ""     # its own host is not a peer's
