"""Learning: time-to-accuracy and held-out accuracy during training (rows with ``eval_every``).

- Time-to-accuracy (MLPerf's time-to-train, on training time only): per model × task × T ×
  target, how many seeds reached ``target_accuracy`` within their step budget, and the median
  (min–max) of ``steps_to_target`` and ``time_to_target_s`` over the seeds that did. Models are
  ordered by that median time within each group; a model whose seeds did not all reach the target
  is ranked after those that did, by the share of seeds that did, then by time.
- Plots: held-out accuracy against optimiser step and against training wall time, one line per
  run (``eval_curve``), a panel per model, for the largest T of the rows.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

PLOTS = ("accuracy_vs_step.png",)


def _curve(raw):
    if not isinstance(raw, str) or not raw.strip():
        return []
    try:
        return [c for c in json.loads(raw) if c and c[1] is not None]
    except ValueError:
        return []


def time_to_accuracy(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows[rows["status"] == "ok"]
    rows = rows[pd.to_numeric(rows["target_accuracy"], errors="coerce").notna()]
    if rows.empty:
        return pd.DataFrame()
    out = []
    for (task, T, target, model), g in rows.groupby(["task", "seq_len", "target_accuracy", "model"], sort=True):
        hit = g[pd.to_numeric(g["time_to_target_s"], errors="coerce").notna()]
        t = pd.to_numeric(hit["time_to_target_s"]).to_numpy(float)
        s = pd.to_numeric(hit["steps_to_target"]).to_numpy(float)
        out.append({"task": task, "seq_len": int(T), "target": float(target), "model": model, "runs": len(g),
                    "reached": len(hit), "median_time_s": float(np.median(t)) if len(t) else math.nan,
                    "min_time_s": float(t.min()) if len(t) else math.nan,
                    "max_time_s": float(t.max()) if len(t) else math.nan,
                    "median_steps": float(np.median(s)) if len(s) else math.nan})
    df = pd.DataFrame(out)
    df["all_reached"] = df["reached"] == df["runs"]
    df["share"] = df["reached"] / df["runs"]
    # every seed reached it: fastest first; then by the share of seeds that did, then by time
    return df.sort_values(["task", "seq_len", "target", "all_reached", "share", "median_time_s"],
                          ascending=[True, True, True, False, False, True]).reset_index(drop=True)


def section(rows: pd.DataFrame) -> list[str]:
    table = time_to_accuracy(rows)
    L = ["## Time to accuracy", ""]
    if table.empty:
        return L + ["No `ok` rows with a `target_accuracy` (set `eval_every` and `target_accuracy` in the "
                    "sweep, e.g. `qssm sweep learning`).", ""]
    L += ["Training wall time (optimiser steps only, evaluation excluded) until the held-out accuracy first "
          "reached the target; median (min–max) over the seeds that reached it. Ordered fastest first within "
          "each task × T × target; models not reaching it with every seed come last.", "",
          "| task | T | target | rank | model | reached | time to target (s) | steps to target |",
          "|---|---:|---:|---:|---|---|---|---:|"]
    for (task, T, target), g in table.groupby(["task", "seq_len", "target"], sort=False):
        for rank, (_, r) in enumerate(g.iterrows(), 1):
            tt = (f"{r['median_time_s']:.2f} ({r['min_time_s']:.2f}–{r['max_time_s']:.2f})"
                  if r["reached"] else "never")
            st = f"{r['median_steps']:.0f}" if r["reached"] else "–"
            L.append(f"| {task} | {T} | {target:g} | {rank} | {r['model']} | {r['reached']}/{r['runs']} | {tt} | {st} |")
    L.append("")
    return L


def draw(rows: pd.DataFrame, out: Path) -> list[tuple[str, str]]:
    from .plots import _color, _figure, _models, _save

    rows = rows[(rows["status"] == "ok") & rows["eval_curve"].notna()]
    if rows.empty:
        return []
    T = pd.to_numeric(rows["seq_len"]).max()
    rows = rows[pd.to_numeric(rows["seq_len"]) == T]
    models = _models(rows)
    fig, axes = _figure(2, len(models), w=3.6, h=3.0)
    for j, model in enumerate(models):
        for _, r in rows[rows["model"] == model].iterrows():
            c = _curve(r["eval_curve"])
            if not c:
                continue
            steps, acc, wall = (np.array([p[i] for p in c], float) for i in range(3))
            axes[0][j].plot(steps, acc, color=_color(model), alpha=0.6, lw=1)
            axes[1][j].plot(wall, acc, color=_color(model), alpha=0.6, lw=1)
        axes[0][j].set_title(model, fontsize=9)
        axes[0][j].set_xlabel("step")
        axes[1][j].set_xlabel("training wall time (s)")
        for i in range(2):
            axes[i][j].set_ylim(0, 1.02)
    axes[0][0].set_ylabel("held-out accuracy")
    axes[1][0].set_ylabel("held-out accuracy")
    return [(_save(fig, out, PLOTS[0]), f"Held-out accuracy during training at T={int(T)}: against optimiser step "
             "(top) and against training wall time, evaluation excluded (bottom); one line per run.")]
