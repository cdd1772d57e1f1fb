#!/usr/bin/env bash
# On a GPU node: install with the gpu extra, run the tests on CUDA (the Triton kernels compiled for
# real, against their twins), then the GPU micro-benchmarks; everything goes to OUTDIR.
#   bash scripts/gpu-check.sh OUTDIR [--quick]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bash scripts/gpu-check.sh OUTDIR [--quick]}
quick=${2:-}
mkdir -p "$out"
QSSM_EXTRAS=dev,gpu bash scripts/setup.sh env > "$out/setup.log" 2>&1 || { echo "set-up failed: $out/setup.log"; exit 1; }
py=.venv/bin/python
nvidia-smi > "$out/nvidia-smi.txt" 2>&1
$py -c "import torch; from qssm import triton_support as t; print(torch.__version__, torch.cuda.get_device_name(0)); print(t.status())" \
  > "$out/status.txt" 2>&1
timeout 900 $py -m pytest -q -x tests/test_triton.py tests/test_scan.py tests/test_statevector_fast.py -k "not install" \
  > "$out/tests.txt" 2>&1; echo "tests rc=$?" >> "$out/tests.txt"
timeout 1500 .venv/bin/qssm micro --device cuda $quick > "$out/micro-cuda.txt" 2>&1; echo "micro rc=$?" >> "$out/micro-cuda.txt"
$py -m qssm.triton_aot > "$out/triton-aot.txt" 2>&1
tail -40 "$out/micro-cuda.txt"
