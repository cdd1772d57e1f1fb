"""How a failed cell is classified, and the faults tests inject into a running cell.

``classify(exc)`` turns an exception raised while a cell ran into a row status (``nan``,
``timeout``, ``oom``, ``failed``) and a one-paragraph error text; ``is_peer_failure(exc)`` tells a
rank that failed only because another rank went away.
"""
from __future__ import annotations

import os
import signal
import time
import traceback
from pathlib import Path

from .cell import Cell


class NanLoss(RuntimeError):
    """The training loss or the gradient norm became NaN or infinite."""


class CellTimeout(RuntimeError):
    """The cell's time budget was spent."""


class InjectedFault(RuntimeError):
    """Raised by QSSM_FAULT (tests)."""


# ---------------------------------------------------------------------------------------------
# failure classification
# ---------------------------------------------------------------------------------------------
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "defaultcpuallocator",
             "std::bad_alloc")


PEER_FAILED = "peer-failed"
_PEER_TEXT = ("connection closed by peer", "connection reset by peer", "remote worker crashing",
              "broken pipe", "socket closed")


def is_peer_failure(exc: BaseException) -> bool:
    """Did this rank fail only because another rank went away?"""
    import torch.distributed as dist
    if isinstance(exc, tuple(t for t in (getattr(dist, "DistNetworkError", None),) if t)):
        return True
    return isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _PEER_TEXT)


def classify(exc: BaseException) -> tuple[str, str]:
    """(status, one-paragraph error text) for an exception raised while a cell ran."""
    import torch
    text = f"{type(exc).__name__}: {exc}".strip()
    tb = traceback.extract_tb(exc.__traceback__)
    if tb:
        frame = tb[-1]
        text += f" (at {Path(frame.filename).name}:{frame.lineno} in {frame.name})"
    text = text[:4000]
    if isinstance(exc, NanLoss):
        return "nan", text
    if isinstance(exc, CellTimeout):
        return "timeout", text
    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return "oom", text
    if isinstance(exc, RuntimeError) and any(s in str(exc).lower() for s in _OOM_TEXT):
        return "oom", text
    return "failed", text


# ---------------------------------------------------------------------------------------------
# fault injection for tests: QSSM_FAULT="kind@step[,rank=R][,model=M][,seq_len=T][,nodes=N][,restart=K][,seconds=S]; ..."
# kinds: raise, nan, oom (a real failed allocation), sleep, kill (SIGKILL this rank), exit
# ---------------------------------------------------------------------------------------------
def _faults(cell: Cell, rank: int):
    spec = os.environ.get("QSSM_FAULT", "").strip()
    out = []
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        head, *opts = part.split(",")
        kind, _, step = head.partition("@")
        o = dict(x.split("=", 1) for x in opts if "=" in x)
        if "rank" in o and int(o["rank"]) != rank:
            continue
        if "model" in o and o["model"] != cell.model:
            continue
        if "seq_len" in o and int(o["seq_len"]) != cell.seq_len:
            continue
        if "nodes" in o and int(o["nodes"]) != cell.nodes:
            continue
        if "restart" in o and int(o["restart"]) != int(os.environ.get("SLURM_RESTART_COUNT") or 0):
            continue   # only in that run of a SLURM job (0: before any requeue)
        out.append((kind.strip(), int(step or 0), float(o.get("seconds", 0))))
    return out


def _fire(faults, step: int, loss):
    import torch
    for kind, at, seconds in faults:
        if at != step:
            continue
        if kind == "raise":
            raise InjectedFault(f"injected fault at step {step}")
        if kind == "nan":
            loss = loss * float("nan")
        elif kind == "oom":
            torch.empty(1 << 62, dtype=torch.uint8)  # a real failed allocation
        elif kind == "sleep":
            time.sleep(seconds)
        elif kind == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif kind == "exit":
            os._exit(3)
    return loss
