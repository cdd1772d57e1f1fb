"""Run each micro-benchmark measurement in a fresh child process.

Why a child per measurement: peak memory is the child's own (RSS high-water mark, or CUDA peak),
not what an earlier measurement left in the allocator; a crash, a timeout or running out of
memory is recorded as a status instead of ending the run.

On CPU children are forked from this process (torch and PennyLane already imported, nothing
computed yet, so no thread pool is copied). CUDA cannot be forked and a spawned process pays
seconds of start-up (imports, CUDA context), so CUDA measurements go to one persistent spawned
worker (`Worker`) instead: its peak memory is still per measurement, since
torch.cuda.reset_peak_memory_stats starts each one afresh. A worker that dies or hangs is
replaced for the next measurement.
A watchdog thread in the child ends it with exit code OOM_EXIT when its resident memory passes
the cap, before the machine starts swapping or the kernel's OOM killer picks a victim.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback

from ..metrics import proc_bytes

OOM_EXIT = 87


def mem_available_bytes() -> int | None:
    return proc_bytes("/proc/meminfo", "MemAvailable")


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _watchdog(cap: int) -> None:
    while True:
        rss = _rss_bytes()
        if rss is None:
            return
        if rss > cap:
            os._exit(OOM_EXIT)
        time.sleep(0.02)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text or "not enough memory" in text


def _child(spec: dict, conn, mem_cap: int | None) -> None:
    if mem_cap:
        threading.Thread(target=_watchdog, args=(mem_cap,), daemon=True).start()
    try:
        from .measure import measure

        result = measure(spec)
    except BaseException as exc:  # reported to the parent, never raised there
        result = {"status": "oom" if _is_oom(exc) else "failed",
                  "error": f"{type(exc).__name__}: {exc}".strip()[:500],
                  "traceback": traceback.format_exc()[-2000:]}
    try:
        conn.send(result)
    finally:
        conn.close()


def run_isolated(spec: dict, *, timeout_s: float, mem_cap: int | None, start_method: str = "fork") -> dict:
    """Measure `spec` in a child process; always returns a dict with a `status`."""
    predicted = spec.get("predicted_peak_bytes")
    if predicted and mem_cap and predicted > mem_cap:
        return {"status": "oom", "predicted": True,
                "error": f"predicted peak {predicted / 2**30:.1f} GiB exceeds the memory cap "
                         f"{mem_cap / 2**30:.1f} GiB; not run"}
    ctx = mp.get_context(start_method)
    parent_conn, child_conn = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(spec, child_conn, mem_cap), daemon=True)
    t0 = time.perf_counter()
    proc.start()
    child_conn.close()
    result = None
    try:
        if parent_conn.poll(timeout_s):
            try:
                result = parent_conn.recv()
            except EOFError:
                result = None
    finally:
        if result is None and proc.is_alive():
            os.kill(proc.pid, signal.SIGKILL)
            proc.join(5)
            result = {"status": "timeout", "error": f"no result within {timeout_s:.0f} s"}
        proc.join(30)
        parent_conn.close()
    if result is None:
        result = _lost_result(proc.exitcode, mem_cap, "child")
    result["wall_s"] = time.perf_counter() - t0
    return result


def _lost_result(code, mem_cap, who: str) -> dict:
    """The result of a measurement process that exited without sending one."""
    if code == OOM_EXIT:
        return {"status": "oom", "error": f"resident memory passed the cap {mem_cap / 2**30:.1f} GiB"}
    if code in (-signal.SIGKILL, 137):
        return {"status": "oom", "error": "killed (SIGKILL): most likely the kernel's OOM killer"}
    return {"status": "failed", "error": f"{who} exited with code {code} and no result"}


def _serve(conn, mem_cap: int | None) -> None:
    """Body of a persistent worker: measure each spec received until None arrives."""
    if mem_cap:
        threading.Thread(target=_watchdog, args=(mem_cap,), daemon=True).start()
    from .measure import measure

    while True:
        try:
            spec = conn.recv()
        except EOFError:
            return
        if spec is None:
            return
        try:
            result = measure(spec)
        except BaseException as exc:
            result = {"status": "oom" if _is_oom(exc) else "failed",
                      "error": f"{type(exc).__name__}: {exc}".strip()[:500],
                      "traceback": traceback.format_exc()[-2000:]}
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except Exception:
                pass
        conn.send(result)


class Worker:
    """One persistent (spawned) measurement process, restarted after a crash or a timeout."""

    def __init__(self, mem_cap: int | None, start_method: str = "spawn"):
        self.mem_cap = mem_cap
        self.ctx = mp.get_context(start_method)
        self.proc = None
        self.conn = None

    def _start(self):
        parent_conn, child_conn = self.ctx.Pipe(duplex=True)
        self.proc = self.ctx.Process(target=_serve, args=(child_conn, self.mem_cap), daemon=True)
        self.proc.start()
        child_conn.close()
        self.conn = parent_conn

    def _kill(self):
        if self.proc is not None and self.proc.is_alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.join(5)
        self.proc = None
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    def run(self, spec: dict, *, timeout_s: float) -> dict:
        predicted = spec.get("predicted_peak_bytes")
        if predicted and self.mem_cap and predicted > self.mem_cap and spec.get("device", "cpu") == "cpu":
            return {"status": "oom", "predicted": True,
                    "error": f"predicted peak {predicted / 2**30:.1f} GiB exceeds the memory cap "
                             f"{self.mem_cap / 2**30:.1f} GiB; not run"}
        if self.proc is None or not self.proc.is_alive():
            self._start()
        t0 = time.perf_counter()
        result = None
        try:
            self.conn.send(spec)
            if self.conn.poll(timeout_s):
                result = self.conn.recv()
        except (EOFError, BrokenPipeError, OSError):
            result = None
        if result is None:
            code = self.proc.exitcode if self.proc is not None else None
            alive = self.proc is not None and self.proc.is_alive()
            self._kill()
            if alive:
                result = {"status": "timeout", "error": f"no result within {timeout_s:.0f} s"}
            else:
                result = _lost_result(code, self.mem_cap, "worker")
        result["wall_s"] = time.perf_counter() - t0
        return result

    def close(self):
        if self.proc is not None and self.proc.is_alive():
            try:
                self.conn.send(None)
                self.proc.join(10)
            except (BrokenPipeError, OSError):
                pass
        self._kill()
