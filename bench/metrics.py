"""Measurement helpers: step-time statistics, peak memory (CUDA and CPU), bytes saved for backward,
peak RSS, device names.

CPU tensor memory (``mem_source = "cpu-tensors"``): PyTorch's CPU allocator reports every
allocation and free to the profiler when ``profile_memory=True``. ``CpuTensorMemory`` records
those events over a window that starts *before the model is built*, so every tensor alive in the
window was allocated inside it; the running sum of (+alloc, -free) is then the exact number of
live tensor bytes, and its maximum over a phase (marked with ``phase(name)``) is that phase's peak.
The profiler only runs during warm-up (never during timed steps).

CUDA (``mem_source = "cuda"``): ``torch.cuda.max_memory_allocated`` after
``reset_peak_memory_stats`` at the start of the phase.
"""
from __future__ import annotations

import contextlib
import os
import platform
import resource
import statistics

import torch

# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------


def percentile(values, q: float) -> float:
    """Linear-interpolation percentile (numpy's default) of a non-empty sequence."""
    xs = sorted(values)
    if not xs:
        return float("nan")
    pos = (len(xs) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def time_stats(step_times) -> dict:
    if not step_times:
        return {"step_time_median_s": None, "step_time_p90_s": None, "step_time_min_s": None}
    return {"step_time_median_s": statistics.median(step_times),
            "step_time_p90_s": percentile(step_times, 90),
            "step_time_min_s": min(step_times)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------------------
# memory
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr():
    """Kineto prints a line on profiler start/stop; keep it off the user's terminal."""
    try:
        fd = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(fd, 2)
        os.close(fd)


class CpuTensorMemory:
    """Peak live CPU tensor bytes per phase, from the profiler's allocator events (see module doc)."""

    def __init__(self):
        self._prof = None
        self._peaks: dict[str, float] = {}

    def __enter__(self):
        from torch.autograd.profiler import profile
        self._prof = profile(profile_memory=True)
        with _quiet_stderr():
            self._prof.__enter__()
        return self

    def __exit__(self, *exc):
        with _quiet_stderr():
            self._prof.__exit__(*exc)
        if exc[0] is None:
            self._compute()
        return False

    @contextlib.contextmanager
    def phase(self, name: str):
        from torch.autograd.profiler import record_function
        with record_function("qssm::" + name):
            yield

    def _compute(self):
        events = self._prof.kineto_results.events()
        mem, ranges = [], {}
        for e in events:
            name = e.name()
            if name == "[memory]":
                if str(e.device_type()).endswith("CPU"):
                    mem.append((e.start_ns(), e.nbytes()))
            elif name.startswith("qssm::"):
                ranges[name[len("qssm::"):]] = (e.start_ns(), e.end_ns())
        mem.sort()
        for phase, (start, end) in ranges.items():
            live = peak = 0
            for t, nbytes in mem:
                if t > end:
                    break
                live += nbytes
                if t >= start:
                    peak = max(peak, live)
                elif t < start:
                    peak = live  # level at phase start
            self._peaks[phase] = float(max(peak, 0))

    def peak(self, name: str) -> float | None:
        return self._peaks.get(name)


class SavedTensorBytes:
    """Bytes of distinct tensor storages autograd saves for backward (parameters excluded: they
    exist anyway). Use around one forward pass."""

    def __init__(self, params):
        self._param_ptrs = set()
        for p in params:
            try:
                self._param_ptrs.add(p.untyped_storage().data_ptr())
            except Exception:  # noqa: BLE001
                pass
        self._seen: set[tuple[int, int]] = set()
        self.bytes = 0
        self._ctx = None

    def _pack(self, t):
        try:
            st = t.untyped_storage()
            key = (st.data_ptr(), st.nbytes())
            if key[0] not in self._param_ptrs and key not in self._seen:
                self._seen.add(key)
                self.bytes += key[1]
        except Exception:  # noqa: BLE001 - tensors without storage (e.g. meta) count nothing
            pass
        return t

    def __enter__(self):
        self._ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._ctx.__enter__()
        return self

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        self._seen.clear()
        return False


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux /proc/self/clear_refs, value 5)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def proc_bytes(path: str, key: str) -> int | None:
    """A 'Key:  N kB' line of a /proc file (e.g. /proc/self/status VmRSS) in bytes; None if absent."""
    try:
        with open(path) as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_bytes() -> float:
    """Peak resident set size of this process: VmHWM (honours reset_peak_rss), else getrusage."""
    hwm = proc_bytes("/proc/self/status", "VmHWM")
    if hwm is not None:
        return float(hwm)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(rss if platform.system() == "Darwin" else rss * 1024)


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_model()
