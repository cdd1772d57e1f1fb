"""DDP scaling of a training step over one node's devices, for `qssm micro --device cuda`.

For each model and world size n = 1, 2, 4, .. up to the node's GPUs, one `qssm train` cell runs
in a fresh process (the harness's own DDP path: nccl on CUDA, gloo on CPU) with a fixed batch
per rank (weak scaling: the global batch is per_rank × n). Scaling efficiency =
throughput(n) / (n × throughput(1)), as docs/performance.md defines it; 1.0 is perfect.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile

__all__ = ["world_sizes", "measure_ddp", "render_ddp"]


def world_sizes(n_devices: int) -> list[int]:
    out, n = [], 1
    while n <= n_devices:
        out.append(n)
        n *= 2
    if out and out[-1] != n_devices:
        out.append(n_devices)
    return out


def _cell_args(model: str, world: int, per_rank: int, device: str, seq_len: int, steps: int, warmup: int):
    return ["--model", model, "--device", device, "--world_size", str(world), "--batch_size", str(per_rank * world),
            "--seq_len", str(seq_len), "--steps", str(steps), "--warmup_steps", str(warmup), "--eval_samples", "64",
            "--dropout", "0.0"]


def measure_ddp(models, worlds, *, device: str = "cuda", per_rank: int = 32, seq_len: int = 100, steps: int = 30,
                warmup: int = 5, timeout_s: float = 600, extra_args=(), progress=None) -> list[dict]:
    """[{model, world_size, status, samples_per_s, step_time_median_s, efficiency}] from one
    `qssm train --json` process per (model, world size)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="qssm-micro-ddp-") as tmp:
        for model in models:
            base = None
            for world in worlds:
                if progress is not None:
                    progress(f"ddp {model} world_size={world}")
                cmd = [sys.executable, "-m", "bench.cli", "train", *_cell_args(model, world, per_rank, device, seq_len,
                                                                             steps, warmup),
                       "--results", f"{tmp}/{model}-{world}", "--json", *extra_args]
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
                    out = proc.stdout
                    row = json.loads(out[out.index("{"):]) if "{" in out else {"status": "failed",
                                                                                 "error": proc.stderr[-300:]}
                except subprocess.TimeoutExpired:
                    row = {"status": "timeout"}
                thr = row.get("samples_per_s") if row.get("status") == "ok" else None
                if world == worlds[0]:
                    base = thr
                eff = thr / (world / worlds[0] * base) if thr and base else None
                rows.append({"model": model, "world_size": world, "status": row.get("status"),
                             "samples_per_s": thr, "step_time_median_s": row.get("step_time_median_s"),
                             "efficiency": eff, "error": row.get("error")})
    return rows


def render_ddp(rows, per_rank: int) -> str:
    lines = [f"DDP scaling over this node's devices (fixed {per_rank} samples per rank; efficiency = "
             "throughput(n) / (n x throughput(1)))",
             f"{'model':<20} {'ranks':>5} {'step':>10} {'samples/s':>10} {'efficiency':>10}"]
    for r in rows:
        step = f"{r['step_time_median_s'] * 1e3:.2f} ms" if r["step_time_median_s"] else "-"
        thr = f"{r['samples_per_s']:.0f}" if r["samples_per_s"] else "-"
        eff = f"{r['efficiency']:.2f}" if r["efficiency"] else "-"
        tail = "" if r["status"] == "ok" else f"  ({r['status']}: {(r.get('error') or '').splitlines()[-1:]})"
        lines.append(f"{r['model']:<20} {r['world_size']:>5} {step:>10} {thr:>10} {eff:>10}{tail}")
    return "\n".join(lines)
