#!/usr/bin/env bash
# qssm-bench set-up and the README's two commands.
#   bash scripts/setup.sh demo   # venv + install + small sweep of all six models + analysis report
#   bash scripts/setup.sh test   # venv + install + the test suite
#   bash scripts/setup.sh env    # venv + install only
# On a machine without CUDA the pinned CPU build of torch is installed first, so pip never pulls a
# multi-GB CUDA build. VENV (default .venv) and PYTHON (default python3) may be overridden.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${QSSM_EXTRAS:-dev}   # CI adds mpi
PYTHON=${PYTHON:-python3}
TORCH_VERSION=2.13.0

log() { printf '[setup] %s\n' "$*" >&2; }

ensure_env() {
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV with $($PYTHON --version 2>&1)"
    "$PYTHON" -m venv "$VENV"
  fi
  local py="$VENV/bin/python" stamp="$VENV/.qssm-installed"
  if [ -f "$stamp" ] && [ "$stamp" -nt pyproject.toml ] && [ "$(cat "$stamp")" = "$EXTRAS" ] \
     && "$py" -c "import qssm, bench, analysis" 2>/dev/null; then
    return 0
  fi
  if ! "$py" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      log "CUDA present: installing torch==$TORCH_VERSION (CUDA build)"
      "$py" -m pip install -q "torch==$TORCH_VERSION"
    else
      # pip's own configuration (pip.conf, PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, PIP_FIND_LINKS)
      # decides where the build comes from: point it at PyTorch's CPU wheels to get the +cpu build
      log "no CUDA: installing the CPU build torch==$TORCH_VERSION(+cpu) first"
      "$py" -m pip install -q "torch==$TORCH_VERSION+cpu" 2>/dev/null \
        || "$py" -m pip install -q "torch==$TORCH_VERSION" \
        || { log "could not install torch==$TORCH_VERSION: configure pip (pip.conf or PIP_INDEX_URL) to reach a torch build"; exit 1; }
    fi
  fi
  log "installing qssm-bench with extras [$EXTRAS]"
  "$py" -m pip install -q -e ".[$EXTRAS]"
  echo "$EXTRAS" > "$stamp"
}

# The native CPU kernels need a C++ compiler; without one the (slower) torch paths run.
ensure_compiler() {
  if [ -n "${CXX:-}" ] || command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1 \
     || command -v clang++ >/dev/null 2>&1; then
    return 0
  fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "no C++ compiler: installing g++ (apt) for the native CPU kernels"
    apt-get install -y -qq g++ >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq g++ >/dev/null 2>&1; } \
      || log "could not install g++: the torch paths will run instead of the native kernels"
  else
    log "no C++ compiler found: the torch paths will run instead of the native kernels"
  fi
}

build_kernels() {
  ensure_compiler
  "$VENV/bin/python" -c "from qssm import native; print('[setup] native kernels:', native.status())" >&2
}

cmd=${1:-}
case "$cmd" in
  env)
    ensure_env; build_kernels ;;
  demo)
    ensure_env; build_kernels
    out=${QSSM_DEMO_RESULTS:-results/demo}
    log "running the smoke sweep (all six models) into $out"
    rc=0
    "$VENV/bin/qssm" sweep bench/sweeps/smoke.yaml --results "$out" --executor local || rc=$?
    log "writing the analysis report"
    "$VENV/bin/qssm" analyze "$out"   # -> $out/_report (pandas.read_parquet skips _ names)
    log "report: $out/_report/report.md"
    exit "$rc" ;;
  test)
    ensure_env; build_kernels
    shift
    exec "$VENV/bin/python" -m pytest -q "$@" ;;
  *)
    echo "usage: bash scripts/setup.sh demo|test|env" >&2
    exit 2 ;;
esac
