"""Install like a cluster user: build the wheel, install it into a fresh environment that already
holds a torch (as a site's environment does), and run `qssm micro --quick` and `qssm train` from
there -- outside the source tree, with the native kernels built from the wheel's own sources.
The torch in that environment must be left as it was (the package asks for a range, not a pin)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, **kw):
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_wheel_installs_beside_a_sites_torch_and_runs(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)], timeout=900)
    wheel = next(dist.glob("qssm_bench-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for need in ("qssm/native/scan_kernel.cpp", "qssm/native/lanes.h", "qssm/ssm/_triton_scan_kernels.py",
                 "qssm/triton_aot.py", "bench/sweeps/smoke.yaml"):
        assert need in names, f"{need} missing from {wheel.name}"
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Requires-Dist: torch>=" in meta and "torch==" not in meta

    venv = tmp_path / "site-env"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    site_torch = torch.__version__  # the "site's" torch: the one this test runs under
    _run([str(py), "-m", "pip", "install", "-q", f"torch=={site_torch}"], timeout=900)
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], timeout=1200)
    after = _run([str(py), "-c", "import torch; print(torch.__version__)"]).strip()
    assert after == site_torch, f"installing the wheel replaced the site's torch {site_torch} with {after}"

    env = {k: v for k, v in os.environ.items() if not k.startswith(("QSSM_", "TRITON_"))}
    env["QSSM_NATIVE_CACHE"] = str(tmp_path / "kernel-cache")  # built from the wheel's sources
    work = tmp_path / "work"  # outside the source tree: nothing is imported from the checkout
    work.mkdir()
    where = _run([str(py), "-c", "import qssm, qssm.native as n; print(qssm.__file__); print(n.status())"],
                 cwd=work, env=env)
    assert str(venv) in where.splitlines()[0] and str(ROOT) not in where.splitlines()[0]
    out = _run([str(venv / "bin" / "qssm"), "train", "--model", "classical_mamba", "--seq_len", "16", "--steps", "3",
                "--warmup_steps", "1", "--batch_size", "8", "--results", str(work / "results"), "--json"],
               cwd=work, env=env, timeout=900)
    row = json.loads(out[out.index("{"):])
    assert row["status"] == "ok", row
    assert any((tmp_path / "kernel-cache").rglob("*.so")), "the native kernels were not built from the wheel"
    micro = _run([str(venv / "bin" / "qssm"), "micro", "--quick", "--no-lightning"], cwd=work, env=env, timeout=1200)
    assert "Targets (docs/performance.md)" in micro and "scan L=" in micro
