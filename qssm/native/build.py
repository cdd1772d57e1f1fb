"""Build and load the native CPU kernels (qssm/native/*.cpp) as one shared library.

The kernels have no Python or torch headers: a C ABI over raw pointers, compiled with the
system C++ compiler on first use and loaded through ctypes (which releases the GIL during calls).
The library is cached under ``$QSSM_NATIVE_CACHE`` (default ``~/.cache/qssm-bench/native``) in a
folder named by a hash of the source, the compiler, the flags and this CPU's instruction-set
flags, so a shared home on a cluster with mixed nodes keeps one build per CPU kind. It is
written to a temporary file and renamed into place: concurrent first uses (DDP ranks, array
tasks) never load a half-written library.

``QSSM_NATIVE=0`` turns the kernels off (the torch implementations run instead); when no compiler
is present or the build fails, `load()` returns None and `status()` says why.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = [HERE / "scan_kernel.cpp", HERE / "gated_kernel.cpp", HERE / "ssm_circuit_kernel.cpp",
           HERE / "conv_kernel.cpp"]
HEADERS = [HERE / "workers.h", HERE / "fastmath.h"]
BASE_FLAGS = ["-O3", "-march=native", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
              "-std=c++17", "-shared", "-fPIC", "-pthread"]
_state: dict = {}

__all__ = ["load", "status", "loaded_status", "library_path", "compiler"]


def compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _cpu_key() -> str:
    """Instruction-set flags of this CPU (what -march=native compiles for)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def flags() -> list[str]:
    """Compiler flags: tuned for this CPU; 512-bit vectors where AVX-512 is present (the kernel's
    inner loops are long, contiguous and compute-bound, which is where 512-bit pays)."""
    extra = ["-mprefer-vector-width=512"] if "avx512f" in _cpu_key().split() else []
    return BASE_FLAGS + extra


def _cache_root() -> Path:
    """$QSSM_NATIVE_CACHE, else ~/.cache/qssm-bench/native, else (home not writable, as in some
    batch jobs) a per-user folder under the temporary directory."""
    root = os.environ.get("QSSM_NATIVE_CACHE")
    if root:
        return Path(root)
    home = Path.home() / ".cache" / "qssm-bench" / "native"
    try:
        home.mkdir(parents=True, exist_ok=True)
        if os.access(home, os.W_OK):
            return home
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"qssm-bench-native-{os.getuid()}"


def library_path(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for part in (*(f.read_bytes() for f in SOURCES + HEADERS), version.encode(), " ".join(flags()).encode(),
                 _cpu_key().encode(), platform.machine().encode()):
        key.update(part)
        key.update(b"\0")
    return _cache_root() / key.hexdigest()[:16] / "libqssm_native.so"


def _build(cxx: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        proc = subprocess.run([cxx, *flags(), "-o", tmp, *map(str, SOURCES)], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            raise OSError(f"{Path(cxx).name} failed on the native kernels: {last}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    p, i64 = ctypes.c_void_p, ctypes.c_int64
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"qssm_scan_fwd_{suffix}")
        fwd.argtypes = [p] * 8 + [i64] * 6
        fwd.restype = None
        bwd = getattr(lib, f"qssm_scan_bwd_{suffix}")
        bwd.argtypes = [p] * 14 + [i64] * 7
        bwd.restype = ctypes.c_int
    lib.qssm_scan_groups.argtypes = [i64] * 4
    lib.qssm_scan_groups.restype = i64
    for suffix in ("f32", "f64"):
        fwd = getattr(lib, f"qssm_gated_fwd_{suffix}")
        fwd.argtypes = [p] * 3 + [i64] * 4
        fwd.restype = None
        bwd = getattr(lib, f"qssm_gated_bwd_{suffix}")
        bwd.argtypes = [p] * 4 + [i64] * 4
        bwd.restype = None
        fwd = getattr(lib, f"qssm_ssm_fwd_{suffix}")
        fwd.argtypes = [p] * 4 + [i64] * 4
        fwd.restype = None
        bwd = getattr(lib, f"qssm_ssm_bwd_{suffix}")
        bwd.argtypes = [p] * 6 + [i64] * 4
        bwd.restype = None
        fwd = getattr(lib, f"qssm_conv_silu_fwd_{suffix}")
        fwd.argtypes = [p] * 4 + [i64] * 7
        fwd.restype = None
        bwd = getattr(lib, f"qssm_conv_silu_bwd_{suffix}")
        bwd.argtypes = [p] * 7 + [i64] * 7
        bwd.restype = None
    return lib


def load() -> ctypes.CDLL | None:
    """The loaded kernels' library, building it on first use; None when unavailable (see status())."""
    if "lib" in _state:
        return _state["lib"]
    lib, reason = None, "loaded"
    if os.environ.get("QSSM_NATIVE", "1") == "0":
        reason = "turned off by QSSM_NATIVE=0"
    elif (cxx := compiler()) is None:
        reason = "no C++ compiler (g++, c++ or clang++) on PATH"
    else:
        try:
            path = library_path(cxx)
            if not path.exists():
                _build(cxx, path)
            lib = _declare(ctypes.CDLL(str(path)))
            reason = f"loaded {path}"
        except (OSError, AttributeError) as exc:
            lib, reason = None, f"build or load failed: {exc}"
    _state["lib"], _state["reason"] = lib, reason
    return lib


def loaded_status() -> str:
    """What this process has done with the kernels so far, without building them: "loaded
    <path>", why they are unavailable, or "not used" when nothing has asked for them yet."""
    return _state.get("reason", "not used")


def status() -> str:
    """Why the kernels are or are not in use (builds them if needed)."""
    load()
    return _state["reason"]
