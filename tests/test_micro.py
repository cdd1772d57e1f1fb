"""`qssm micro` runs end to end and reports side-by-side ratios with verdicts (no timing asserted)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_micro_quick_scan_json():
    out = subprocess.run([sys.executable, "-m", "bench.cli", "micro", "--quick", "--only", "scan", "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    data = json.loads(out.stdout)
    assert data["scan"], data
    assert 0 < data["scan_slope"] < 3
    verdicts = {t["target"]: t for t in data["targets"]}
    scan_targets = [t for name, t in verdicts.items() if name.startswith("scan")]
    assert len(scan_targets) >= 3
    for t in scan_targets:
        assert t["verdict"] in ("PASS", "FAIL") and t["value"] is not None and t["value"] > 0
