"""The inline executor: cells one after another inside the driver process (easy to debug: a
breakpoint in the model stops the sweep). A cell with ``world_size > 1`` still needs one process
per rank; those are started as the local executor starts them.

Caveats: peak RSS is the driver's (reset per cell through /proc/self/clear_refs where the kernel
allows it); a crash that kills the process (segfault, the kernel's OOM killer) ends the sweep —
use the local executor for isolation.
"""
from __future__ import annotations

from .base import MachineExecutor, Submission
from .launchers import RankEnv
from .local import run_claimed, supervise


class InlineExecutor(MachineExecutor):
    name = "inline"

    def wait(self, submission: Submission, on_event=None) -> dict[str, str]:
        from ..train import run_cell

        def run_one(cell, attempt, on_step):
            if cell.world_size > 1:
                return supervise(cell, submission.results_dir, attempt, on_step=on_step, launcher="local")
            out = run_cell(cell, submission.results_dir, RankEnv.single("inline"), attempt=attempt,
                           on_step=on_step)
            return out.status
        return run_claimed(submission, on_event, run_one)
