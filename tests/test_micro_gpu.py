"""`qssm micro --device cuda` pieces that run without a GPU: the GPU plan and its targets from
measurements given to it, the DDP-scaling runner (on CPU, gloo), and the refusal without CUDA."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from bench.micro import gpu
from bench.micro.ddp import measure_ddp, render_ddp, world_sizes


def _results(plan, times):
    return {k: {"status": "ok", "time_median_s": times(k), "B": spec.get("B"), "kernel": "triton"} for k, spec, _ in plan}


def test_gpu_plan_covers_the_issue_and_targets_follow_the_figures():
    sizes = gpu.sizes(False)
    plan = gpu.plan(sizes, {"device": "cuda"}, lightning_gpu=True, sections=("scan", "circuit", "train"))
    keys = {k for k, _, _ in plan}
    assert {("scan", "chunked", 2048), ("scan", "chunked", 8192), ("scan", "chunked-torch", 2048),
            ("scan", "reference", 2048), ("conv", "triton", 2048), ("conv", "cudnn", 2048)} <= keys
    for q in (8, 12, 16):
        for c in ("ssm", "gated"):
            assert {("circuit", c, "torch", q), ("circuit", c, "twin", q), ("circuit", c, "lightning.gpu", q)} <= keys
    assert {("train", "classical_hydra", "T=100"), ("train", "quantum_hydra_gated", "T=4096")} <= keys

    # a Triton scan 100x faster than its twin, linear in L; circuits 60x lightning per sample
    def times(k):
        if k[0] == "scan":
            return (0.2 if k[1] == "chunked-torch" else 1e-3) * k[2] / 2048
        if k[0] == "circuit":
            return 1e-3 if k[2] != "lightning.gpu" else 60e-3 * {8: 256, 12: 64, 16: 8}[k[3]] / 4096
        return 10e-3

    d = gpu.derive(sizes, _results(plan, times), {"gpu": "NVIDIA H200"})
    verdicts = {t["target"].split(":")[0]: (t["verdict"], t["value"]) for t in d["targets"]}
    assert verdicts["scan L=2048"][0] == "PASS"
    assert d["scan_vs_twin"] == pytest.approx(200)
    assert d["scan_slope"] == pytest.approx(1.0)
    circ = [t for t in d["targets"] if "circuit q=12" in t["target"]]
    assert len(circ) == 2 and all(t["verdict"] == "PASS" and t["value"] == pytest.approx(60) for t in circ)
    share = next(r for r in d["scan"] if r["impl"] == "chunked" and r["L"] == 2048)["bw_share"]
    assert share == pytest.approx(gpu.scan_traffic_bytes(32, 2048, 256, 16) / 1e-3 / 4.8e12)
    text = gpu.render(sizes, d, {"gpu": "NVIDIA H200", "torch": torch.__version__, "gpu_kernels": "triton"})
    assert "PASS" in text and "lightning.gpu" in text
    # a scan twice too slow fails the 3 ms bound
    slow = gpu.derive(sizes, _results(plan, lambda k: 6e-3 if k[0] == "scan" else 1e-3), {"gpu": "?"})
    assert any(t["verdict"] == "FAIL" and "<= 3 ms" in t["target"] for t in slow["targets"])


def test_world_sizes():
    assert world_sizes(1) == [1] and world_sizes(4) == [1, 2, 4] and world_sizes(6) == [1, 2, 4, 6]


@pytest.mark.slow
def test_ddp_scaling_runner_on_cpu():
    rows = measure_ddp(["classical_mamba"], [1, 2], device="cpu", per_rank=4, seq_len=8, steps=4, warmup=1,
                       extra_args=["--d_model", "8", "--n_layers", "1", "--num_threads", "1"])
    assert [r["world_size"] for r in rows] == [1, 2]
    assert all(r["status"] == "ok" and r["samples_per_s"] > 0 for r in rows), rows
    assert rows[0]["efficiency"] == pytest.approx(1.0)
    assert rows[1]["efficiency"] == pytest.approx(rows[1]["samples_per_s"] / (2 * rows[0]["samples_per_s"]))
    assert "efficiency" in render_ddp(rows, 4)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where no GPU is")
def test_micro_cuda_refused_without_a_gpu():
    proc = subprocess.run([sys.executable, "-m", "bench.cli", "micro", "--device", "cuda", "--quick"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
