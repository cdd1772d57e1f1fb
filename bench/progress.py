"""Live progress of a sweep: cells done / failed / left, ETA, and steps within the running cell.

On a terminal one status line is redrawn in place and every finished cell prints one permanent
line; otherwise (logs, CI) only the permanent lines appear, plus a status line every
``quiet_every_s`` seconds while a long cell runs.
"""
from __future__ import annotations

import sys
import time

from .executors.base import CellEvent

FAILED = ("failed", "oom", "timeout", "nan")


def fmt_duration(s: float | None) -> str:
    if s is None or s != s:
        return "?"
    s = int(round(s))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _fmt_num(v, unit="") -> str:
    if v is None or v != v:
        return "-"
    for div, suf in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.1f}{suf}{unit}"
    return f"{v:.3g}{unit}"


class Progress:
    def __init__(self, total: int, stream=None, tty: bool | None = None, quiet_every_s: float = 30.0):
        self.total = total
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet_every_s = quiet_every_s
        self.ok = self.failed = self.skipped = 0
        self.t0 = time.monotonic()
        self.cell_times: list[float] = []
        self.current: CellEvent | None = None
        self.current_t0 = None
        self.phase = ""
        self._last_draw = 0.0
        self._last_quiet = time.monotonic()
        self._line_len = 0

    # ----- state -----
    @property
    def done(self) -> int:
        return self.ok + self.failed + self.skipped

    @property
    def left(self) -> int:
        return self.total - self.done

    def eta(self) -> float | None:
        if not self.cell_times:
            return None
        per = sum(self.cell_times) / len(self.cell_times)
        running = time.monotonic() - self.current_t0 if self.current is not None and self.current_t0 else 0.0
        return max(0.0, per * self.left - min(running, per))

    def status_line(self) -> str:
        line = (f"[{self.done}/{self.total} | ok {self.ok} | failed {self.failed} | left {self.left}"
                + (f" | skipped {self.skipped}" if self.skipped else "")
                + f" | {fmt_duration(time.monotonic() - self.t0)} elapsed, ETA {fmt_duration(self.eta())}]")
        if self.current is not None:
            line += f" {self.current.cell.label()}"
            if self.phase:
                line += f": {self.phase}"
        return line

    # ----- events -----
    def __call__(self, ev: CellEvent) -> None:
        self.on_event(ev)

    def on_event(self, ev: CellEvent) -> None:
        if ev.kind == "started":
            self.current, self.current_t0, self.phase = ev, time.monotonic(), "starting"
            self._draw(force=True)
        elif ev.kind == "progress":
            if self.current is None:
                self.current, self.current_t0 = ev, time.monotonic()
            self.phase = f"{ev.phase} {ev.step}/{ev.steps}" if ev.phase == "train" else ev.phase
            self._draw()
        elif ev.kind == "skipped":
            self.skipped += 1
            why = {"done": "already done", "busy": "running elsewhere",
                   "failed-before": "failed before (--retry-failed to rerun)"}.get(ev.status, ev.status)
            self._print(f"[{self.done}/{self.total}] skip    {ev.cell.label()}  ({why})")
        elif ev.kind == "finished":
            if ev.status == "ok":
                self.ok += 1
            else:
                self.failed += 1
            if ev.wall_s is not None:
                self.cell_times.append(ev.wall_s)
            self.current, self.phase = None, ""
            self._print(self._finished_line(ev))

    def _finished_line(self, ev: CellEvent) -> str:
        row = ev.row or {}
        head = f"[{self.done}/{self.total}] {ev.status:<7} {ev.cell.label()}  {fmt_duration(ev.wall_s)}"
        if ev.status == "ok":
            return (head + f"  acc={_fmt_num(row.get('accuracy'))} loss={_fmt_num(row.get('final_loss'))}"
                    f" samples/s={_fmt_num(row.get('samples_per_s'))} id={ev.cell.cell_id}")
        err = (ev.error or row.get("error") or "").replace("\n", " ")
        return head + f"  id={ev.cell.cell_id}  {err[:300]}"

    # ----- output -----
    def _clear(self):
        if self.tty and self._line_len:
            self.stream.write("\r" + " " * self._line_len + "\r")
            self._line_len = 0

    def _print(self, line: str) -> None:
        self._clear()
        self.stream.write(line + "\n")
        self.stream.flush()
        self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            if not force and now - self._last_draw < 0.1:
                return
            self._last_draw = now
            line = self.status_line()
            width = 200
            try:
                import shutil
                width = shutil.get_terminal_size((200, 20)).columns - 1
            except Exception:  # noqa: BLE001
                pass
            line = line[:width]
            self._clear()
            self.stream.write(line)
            self._line_len = len(line)
            self.stream.flush()
        elif self.current is not None and now - self._last_quiet > self.quiet_every_s:
            self._last_quiet = now
            self.stream.write(self.status_line() + "\n")
            self.stream.flush()

    def close(self) -> None:
        self._clear()
        self.stream.flush()
