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
import stat
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
SOURCES = [HERE / "scan_kernel.cpp", HERE / "gated_kernel.cpp", HERE / "ssm_circuit_kernel.cpp",
           HERE / "conv_kernel.cpp"]
HEADERS = [HERE / "workers.h", HERE / "fastmath.h", HERE / "lanes.h"]
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
    return _private_tmp_root()


def _private_tmp_root() -> Path:
    """A folder under the shared temporary directory that only this user can have written: a
    library loaded from a folder someone else could write would run their code."""
    path = Path(tempfile.gettempdir()) / f"qssm-bench-native-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o022:
        raise OSError(f"refusing the kernel cache {path}: not a directory of this user's that only "
                      "they can write (set QSSM_NATIVE_CACHE)")
    return path


def library_path(cxx: str) -> Path:
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    key = hashlib.sha256()
    for part in (*(f.read_bytes() for f in SOURCES + HEADERS), version.encode(), " ".join(flags()).encode(),
                 _cpu_key().encode(), platform.machine().encode()):
        key.update(part)
        key.update(b"\0")
    return _cache_root() / key.hexdigest()[:16] / "libqssm_native.so"


PORTABLE_FLAGS = [f for f in BASE_FLAGS if f != "-march=native"]
BUILD_TIMEOUT_S = 300


def _compile(cxx: str, flag_list: list[str], out: str) -> str | None:
    """Compile the kernels into `out`; None when it worked, else the compiler's first error line."""
    try:
        proc = subprocess.run([cxx, *flag_list, "-o", out, *map(str, SOURCES)], capture_output=True,
                              text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"no result after {BUILD_TIMEOUT_S} s"
    if proc.returncode == 0:
        return None
    lines = proc.stderr.strip().splitlines() or ["(no message)"]
    return next((ln for ln in lines if "error" in ln), lines[0]).strip()


def _build(cxx: str, target: Path) -> None:
    """Build into a temporary file beside `target` and rename it into place (atomic: a process
    that loads concurrently sees the old state or the whole library). A compiler that rejects
    -march=native (some non-x86 ones) gets a second try with portable flags."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".build-", suffix=".so")
    os.close(fd)
    try:
        error = _compile(cxx, flags(), tmp)
        if error is not None:
            error = _compile(cxx, PORTABLE_FLAGS, tmp) and error
        if error is not None:
            raise OSError(f"{Path(cxx).name} failed on the native kernels: {error}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# The C ABI: name -> (pointer arguments, int64 arguments); every entry point returns an int status
# (0 done, 1 out of memory, 2 other failure, -1 work-split mismatch) and has a _f32 and a _f64
# variant. Kept beside the sources' QSSM_EXPORT lines.
_SIGNATURES = {
    "qssm_scan_fwd": (8, 6),
    "qssm_scan_bwd": (14, 7),
    "qssm_gated_fwd": (3, 4),
    "qssm_gated_bwd": (4, 4),
    "qssm_ssm_fwd": (4, 4),
    "qssm_ssm_bwd": (6, 4),
    "qssm_conv_silu_fwd": (4, 7),
    "qssm_conv_silu_bwd": (7, 7),
}


def _declare(lib: ctypes.CDLL) -> ctypes.CDLL:
    for name, (n_ptr, n_int) in _SIGNATURES.items():
        for suffix in ("f32", "f64"):
            fn = getattr(lib, f"{name}_{suffix}")
            fn.argtypes = [ctypes.c_void_p] * n_ptr + [ctypes.c_int64] * n_int
            fn.restype = ctypes.c_int
    lib.qssm_scan_groups.argtypes = [ctypes.c_int64] * 4
    lib.qssm_scan_groups.restype = ctypes.c_int64
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
            try:
                lib = _declare(ctypes.CDLL(str(path)))
            except (OSError, AttributeError):  # a stale or damaged cached build: rebuild it once
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
