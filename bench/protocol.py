"""The learning protocol of a cell: learning-rate schedule, periodic held-out evaluation, and
stopping at a target accuracy (time-to-accuracy, as MLPerf's time-to-train).

  lr_schedule      constant: lr at every step; cosine: linear warm-up from lr/W to lr over the first
                   W = max(1, steps // 20) steps, then cosine decay to 0 at `steps`
  eval_every       every k optimiser steps, the held-out accuracy (the same samples as the final
                   `accuracy`) -> eval_curve: JSON [[step, accuracy, train_wall_s], ...], where
                   train_wall_s sums the training steps' times so far (evaluation excluded)
  target_accuracy  with eval_every: stop after the first evaluation that reaches it ->
                   steps_to_target (optimiser steps run) and time_to_target_s (train_wall_s then);
                   both null when the step budget (`steps`) ends first
Throughput and step-time columns count training steps only, never evaluation.
"""
from __future__ import annotations

import math

__all__ = ["LR_SCHEDULES", "lr_factor", "make_scheduler", "Evaluator"]

LR_SCHEDULES = ("constant", "cosine")


def warmup_steps_of(steps: int) -> int:
    return max(1, steps // 20)


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base lr at optimiser step `step` (0-based) of `steps`."""
    if schedule == "constant":
        return 1.0
    warm = warmup_steps_of(steps)
    if step < warm:
        return (step + 1) / warm
    span = max(1, steps - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warm) / span)))


def make_scheduler(opt, schedule: str, steps: int):
    import torch

    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(schedule, step, steps))


class Evaluator:
    """Held-out accuracy on the task's evaluation blocks, shared out over the ranks."""

    def __init__(self, task, model, device, dtype, precision, rank: int, world: int, allreduce):
        self.task, self.model, self.device, self.dtype = task, model, device, dtype
        self.precision, self.rank, self.world, self.allreduce = precision, rank, world, allreduce
        self.curve: list = []

    def accuracy(self) -> float | None:
        import torch

        was_training = self.model.training
        self.model.eval()
        correct = total = 0
        with torch.no_grad(), self.precision.autocast():
            for k in range(self.rank, self.task.n_eval_blocks(), self.world):
                xb, yb = self.task.eval_block(k)
                pred = self.model(torch.from_numpy(xb).to(self.device, self.dtype)).argmax(-1).cpu()
                correct += int((pred == torch.from_numpy(yb)).sum())
                total += len(yb)
        correct, total = self.allreduce([correct, total])
        if was_training:
            self.model.train()
        return correct / total if total else None

    def record(self, step: int, train_wall_s: float) -> tuple[float | None, float]:
        """(accuracy, training wall time) at `step`; the time is the slowest rank's (as step times)."""
        acc = self.accuracy()
        wall = self.allreduce([train_wall_s], "max")[0]
        self.curve.append([step, None if acc is None else round(acc, 6), round(wall, 6)])
        return acc, wall
