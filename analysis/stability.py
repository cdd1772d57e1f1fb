"""Training stability: how often runs diverge (status ``nan``), where and when, and how far each
model's activations grow -- per model × precision × learning rate, from every row (not only ok).

- Divergence rate = nan rows / (ok + nan rows) of a group, with a Wilson 95 % interval, the seeds
  and the steps at which runs diverged (``diverged_step``) and the modules where
  (``diverged_module``). Rows that failed otherwise (``failed``, ``oom``, ``timeout``) are left out.
- The largest learning rate at which a model trains (per precision and the rest of the cell held
  fixed): the largest lr of the group's grid at which no run diverged, provided every smaller lr
  of the grid also had none -- with the next lr (where runs did diverge) when there is one.
- Activation growth: the largest block output RMS per tracked step (``activation_curve``, cells
  with ``track_activations`` > 0), one line per run, one panel per model.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog as C

PLOT = "stability_activations.png"
Z = 1.959963984540054


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval for k successes in n trials."""
    if n == 0:
        return (math.nan, math.nan)
    p = k / n
    den = 1 + Z * Z / n
    mid = (p + Z * Z / (2 * n)) / den
    half = Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


def _held(rows: pd.DataFrame) -> list[str]:
    """Cell fields other than model, precision, dtype, lr and seed that vary among these rows."""
    skip = {"model", "precision", "dtype", "lr", "seed", "time_budget_s", "track_activations"}
    return [f for f in rows.columns if f in set(C.RUN_FIELDS) | set(C.MODEL_SPECIFIC) and f not in skip
            and rows[f].astype("string").fillna("").nunique() > 1]


def divergence_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model × precision × lr × setting (the other fields that vary within the
    model's rows, as "k=v, .."): runs, diverged, rate, CI, seeds, steps and modules."""
    rows = rows[rows["status"].isin(["ok", "nan"])]
    if rows.empty:
        return pd.DataFrame()
    out = []
    for model, mrows in rows.groupby("model", sort=True):
        held = _held(mrows)
        setting = mrows[held].astype("string").fillna("–").agg(
            lambda r: ", ".join(f"{k}={v}" for k, v in zip(held, r)), axis=1) if held else pd.Series("", mrows.index)
        mrows = mrows.assign(_setting=setting)
        for (prec, lr, sett), g in mrows.groupby(["precision", "lr", "_setting"], dropna=False, sort=True):
            n, k = len(g), int((g["status"] == "nan").sum())
            lo, hi = wilson(k, n)
            bad = g[g["status"] == "nan"]
            steps = [int(x) for x in bad["diverged_step"].dropna()]
            mods = bad["diverged_module"].dropna().astype(str)
            out.append({"model": model, "precision": prec, "lr": lr, "setting": sett, "runs": n, "diverged": k,
                        "rate": k / n, "ci_lo": lo, "ci_hi": hi,
                        "seeds": ",".join(str(int(x)) for x in sorted(g["seed"].dropna().unique())),
                        "diverged_steps": ",".join(map(str, sorted(steps))),
                        "modules": ", ".join(f"{m} ({c})" for m, c in mods.value_counts().items())})
    return pd.DataFrame(out)


def largest_stable_lr(table: pd.DataFrame) -> pd.DataFrame:
    """Per model × precision × setting: the largest lr of the grid with no divergence at it or
    below it, and the smallest lr that diverged."""
    if table.empty:
        return table
    out = []
    for (model, prec, sett), g in table.groupby(["model", "precision", "setting"], dropna=False, sort=True):
        g = g.sort_values("lr")
        stable, first_bad = None, None
        for lr, k in zip(g["lr"], g["diverged"]):
            if k:
                first_bad = lr
                break
            stable = lr
        out.append({"model": model, "precision": prec, "setting": sett, "grid": ", ".join(f"{v:g}" for v in g["lr"]),
                    "largest_stable_lr": stable, "first_diverging_lr": first_bad,
                    "runs_per_lr": ",".join(str(int(v)) for v in g["runs"])})
    return pd.DataFrame(out)


def _fmt(v, spec="g"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return format(v, spec)


def section(rows: pd.DataFrame) -> list[str]:
    """The report's stability section (markdown lines)."""
    table = divergence_table(rows)
    L = ["## Training stability", "",
         "Divergence: a run whose loss or gradient norm became non-finite (status `nan`); its row says at "
         "which step and in which module the first non-finite value appeared. Rate = nan / (ok + nan) runs "
         "with a Wilson 95 % interval; other failures are left out.", ""]
    if table.empty:
        return L + ["No `ok` or `nan` rows.", ""]
    head = ["model", "precision", "lr", "other settings", "runs", "diverged", "rate [95% CI]", "seeds",
            "diverged at step", "first non-finite module (runs)"]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        L.append("| " + " | ".join([str(r["model"]), str(r["precision"]), _fmt(r["lr"]), r["setting"] or "–",
                                    str(r["runs"]), str(r["diverged"]),
                                    f"{r['rate']:.2f} [{r['ci_lo']:.2f}, {r['ci_hi']:.2f}]", r["seeds"],
                                    r["diverged_steps"] or "–", r["modules"] or "–"]) + " |")
    lrs = largest_stable_lr(table)
    multi = lrs[lrs["grid"].str.contains(",")] if not lrs.empty else lrs
    L += ["", "Largest learning rate at which each model trains (no run diverged at it or at any smaller lr "
          "of the grid):", ""]
    if multi.empty:
        L += ["No group has more than one learning rate: add an lr grid (e.g. `lr: [3e-4, 1e-3, 3e-3]`).", ""]
        return L
    head = ["model", "precision", "other settings", "lr grid", "runs per lr", "largest stable lr",
            "first lr that diverged"]
    L += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in multi.iterrows():
        L.append("| " + " | ".join([str(r["model"]), str(r["precision"]), r["setting"] or "–", r["grid"],
                                    r["runs_per_lr"], _fmt(r["largest_stable_lr"]),
                                    _fmt(r["first_diverging_lr"])]) + " |")
    L.append("")
    return L


def _curves(rows: pd.DataFrame):
    for _, r in rows.iterrows():
        raw = r.get("activation_curve")
        if raw is None or raw is pd.NA or not isinstance(raw, str) or not raw.strip():
            continue
        try:
            curve = json.loads(raw)
        except ValueError:
            continue
        pts = [(s, max((v for v in d.values() if v is not None and not math.isnan(v)), default=math.nan))
               for s, d in curve if d]
        if pts:
            yield r, pts


def draw(rows: pd.DataFrame, out: Path) -> list[tuple[str, str]]:
    """Largest block RMS vs step per run (tracked runs only), a panel per model."""
    from .plots import _color, _figure, _models, _save

    tracked = rows[pd.to_numeric(rows["track_activations"], errors="coerce").fillna(0) > 0]
    if tracked.empty:
        return []
    models = _models(tracked)
    fig, axes = _figure(1, len(models), w=4.2, h=3.4)
    for ax, model in zip(axes[0], models):
        for r, pts in _curves(tracked[tracked["model"] == model]):
            s, v = np.array([p[0] for p in pts], float), np.array([p[1] for p in pts], float)
            v = np.where(np.isinf(v), np.nan, v)
            style = "--" if r["status"] == "nan" else "-"
            ax.plot(s, v, style, color=_color(model), alpha=0.6, lw=1)
            if r["status"] == "nan" and len(s):
                ax.plot(s[-1], np.nanmax(v) if np.isfinite(v).any() else 1.0, "x", color="black")
        ax.set_yscale("log")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("step")
    axes[0][0].set_ylabel("largest block output RMS")
    return [(_save(fig, out, PLOT), "Activation growth: the largest RMS of any block's output at each tracked "
             "step, one line per run (dashed, ending in x: the run diverged).")]
