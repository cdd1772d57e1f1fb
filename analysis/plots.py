"""The scaling plots (seaborn on matplotlib's Agg canvas; PNG).

Every function takes the prepared ``ok`` rows and an output folder and returns
``[(file name, caption)]`` for what it drew (nothing when it has no data). Figures are built as
``matplotlib.figure.Figure`` objects, never through pyplot, so no display or global backend is
touched.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from . import catalog as C
from . import checks as K
from . import ranks as RK
from . import scaling as SC
from .io import as_float

MAX_IMPL_ROWS = 4
PALETTE = dict(zip(C.MODEL_NAMES, sns.color_palette("colorblind", len(C.MODEL_NAMES))))
MARKERS = dict(zip(C.MODEL_NAMES, ["o", "s", "^", "v", "D", "P"]))
METRIC_LABEL = {
    "step_time_median_s": "training step time (s, median)",
    "infer_time_median_s": "inference time per batch (s, median)",
    "peak_mem_train_bytes": "peak memory, training (bytes)",
    "peak_mem_infer_bytes": "peak memory, inference (bytes)",
    "saved_bytes_per_step": "saved for backward per step (bytes)",
    "samples_per_s": "throughput (samples/s)",
    "accuracy": "held-out accuracy",
}


def _color(m):
    return PALETTE.get(m, (0.4, 0.4, 0.4))


def _figure(nrows, ncols, w=5.2, h=3.8):
    fig = Figure(figsize=(w * ncols, h * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def _save(fig, out: Path, name: str) -> str:
    fig.savefig(out / name, dpi=110)
    return name


def _models(df):
    present = [m for m in C.MODEL_NAMES if (df["model"] == m).any()]
    return present + sorted(set(df["model"].dropna()) - set(present))


def _best_series(rows: pd.DataFrame, model: str, x: str) -> pd.DataFrame | None:
    """The series (all fields fixed but x and seed) with the most x values."""
    key_fields = [f for f in C.relevant_fields(model) if f not in (x, "seed") and f not in C.IMPL_FIELDS]
    best, rank = None, None
    for _, g in K.series_groups(rows, key_fields, x):
        r = (g[x].nunique(), len(g))
        if r[0] >= 2 and (rank is None or r > rank):
            best, rank = g, r
    return best


def _scaling(df: pd.DataFrame, out: Path, name: str, x: str, metrics, models=None,
             transform=None, xlabel=None, log_x=True, caption="", xname="T") -> list[tuple[str, str]]:
    models = [m for m in (models or _models(df)) if (df["model"] == m).any()]
    metrics = [m for m in metrics if m in df.columns and np.isfinite(as_float(df[m])).any()]
    if not models or not metrics:
        return []
    impls = K.implementations(df[df["model"].isin(models)], models)[:MAX_IMPL_ROWS]
    panels = []
    for impl in impls:
        rows = K.select_impl(df[df["model"].isin(models)], impl)
        for metric in metrics:
            lines = []
            for m in models:
                rm = rows[(rows["model"] == m)]
                rm = rm[np.isfinite(as_float(rm[metric])) & np.isfinite(as_float(rm[x]))]
                rm = rm[as_float(rm[metric]) > 0] if metric != "accuracy" else rm
                s = _best_series(rm, m, x) if len(rm) else None
                if s is not None:
                    lines.append((m, s))
            panels.append((impl, metric, lines))
    if not any(lines for _, _, lines in panels):
        return []
    fig, axes = _figure(len(impls), len(metrics))
    for i, (impl, metric, lines) in enumerate(panels):
        ax = axes[i // len(metrics)][i % len(metrics)]
        for m, s in lines:
            xv, yv = as_float(s[x]), as_float(s[metric])
            xt = transform(xv, s) if transform else xv
            fit = SC.fit_scaling(xt, yv, n_boot=0)
            sns.scatterplot(x=xv, y=yv, ax=ax, color=_color(m), marker=MARKERS.get(m, "o"), s=36,
                            legend=False)
            grid = np.linspace(xv.min(), xv.max(), 60) if not log_x else np.geomspace(xv.min(), xv.max(), 60)
            gt = transform(grid, s) if transform else grid
            if fit is None:
                continue
            term = "constant" if fit.constant else SC.term_text(fit.i, fit.j, xname)
            fixed = "" if fit.constant else f", fixed {fit.fixed_share_at_min:.0%} at min"
            ax.plot(grid, fit.predict(gt), color=_color(m), lw=1.4, label=f"{C.short(m)}: {term}{fixed}")
        ax.set_yscale("log")
        if log_x:
            ax.set_xscale("log", base=2)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_xlabel(xlabel or x)
        ax.set_ylabel(METRIC_LABEL.get(metric, metric))
        ax.set_title(K.impl_label(impl), fontsize=9)
        if lines:
            ax.legend(fontsize=7, loc="best")
        else:
            ax.text(0.5, 0.5, "no series", ha="center", va="center", transform=ax.transAxes)
    return [(_save(fig, out, name), caption)]


def _q2q(q, series=None):
    return q * np.power(2.0, q)


def _chunks(c, series):
    """T/C, the number of chunks (the series holds one T)."""
    return float(np.nanmedian(as_float(series["seq_len"]))) / np.asarray(c, float)


def plot_time_vs_T(df, out):
    return _scaling(df, out, "time_vs_T.png", "seq_len", ["step_time_median_s", "infer_time_median_s"],
                    xlabel="T (seq_len)", caption="Step and inference time vs T (log–log); lines: each "
                    "model's scaling model c0 + c1·f(T) (leading term and the fixed cost's share at the "
                    "smallest T in the legend; §8.3 claims T).")


def plot_mem_vs_T(df, out):
    return _scaling(df, out, "mem_vs_T.png", "seq_len",
                    ["peak_mem_train_bytes", "peak_mem_infer_bytes", "saved_bytes_per_step"],
                    xlabel="T (seq_len)", caption="Peak memory vs T (log–log); lines: scaling models. "
                    "§8.4: Gated flat, SSM linear in T.")


def plot_time_vs_qubits(df, out):
    return _scaling(df, out, "time_vs_qubits.png", "n_qubits", ["step_time_median_s", "infer_time_median_s"],
                    models=C.QUANTUM, transform=_q2q, xlabel="q (n_qubits)", log_x=False, xname="q·2^q",
                    caption="Time vs qubits at fixed T (log y); lines: scaling models in x = q·2^q "
                    "(§8.3 claims x).")


def plot_mem_vs_qubits(df, out):
    return _scaling(df, out, "mem_vs_qubits.png", "n_qubits",
                    ["peak_mem_train_bytes", "peak_mem_infer_bytes"], models=C.QUANTUM, transform=_q2q,
                    xlabel="q (n_qubits)", log_x=False, xname="q·2^q",
                    caption="Peak memory vs qubits; lines: scaling models in x = q·2^q (§8.4: "
                    "'minimal' overhead, flat).")


def plot_time_vs_chunk(df, out):
    return _scaling(df, out, "time_vs_chunk.png", "chunk_size", ["step_time_median_s", "infer_time_median_s"],
                    models=C.GATED, xlabel="C (chunk_size)", transform=_chunks, xname="T/C", caption="Gated models: "
                    "time vs chunk size at fixed T (log–log); lines: scaling models in x = T/C, the "
                    "number of chunks (§8.3 claims x).")


def plot_world_size(df, out):
    """Throughput and efficiency against world size; per series, the cells with every rank on one
    node (solid, filled markers) and those across nodes (dashed, hollow markers, each labelled
    nodes × ranks per node) — analysis.ranks computes the points."""
    pts = RK.scaling_points(df)
    if pts.empty:
        return []
    pts = pts[pts.groupby(["model", "series"])["world_size"].transform("size") >= 2]
    if pts.empty:
        return []
    fig, axes = _figure(1, 2)
    for col, ax in zip(["samples_per_s", "efficiency"], axes[0]):
        for (m, _), g in pts.groupby(["model", "series"], sort=False):
            color, marker = _color(m), MARKERS.get(m, "o")
            within = g[g["nodes"] == 1].sort_values("world_size")
            across = g[g["nodes"] > 1].sort_values(["world_size", "nodes"])
            if len(within):
                ax.plot(within["world_size"], within[col], marker=marker, color=color, lw=1.2, ls="-")
            if len(across):
                ax.plot(across["world_size"], across[col], marker=marker, color=color, lw=1.2, ls="--",
                        markerfacecolor="none")
                for _, r in across.iterrows():
                    if np.isfinite(r[col]):
                        ax.annotate(r["shape"], (r["world_size"], r[col]), textcoords="offset points",
                                    xytext=(4, 4), fontsize=6, color=color)
        for m in pts["model"].unique():
            ax.plot([], [], marker=MARKERS.get(m, "o"), color=_color(m), ls="", label=C.short(m))
        ax.plot([], [], color="0.3", ls="-", marker="o", label=RK.WITHIN)
        if (pts["nodes"] > 1).any():
            ax.plot([], [], color="0.3", ls="--", marker="o", markerfacecolor="none",
                    label=f"{RK.ACROSS} (nodes×ranks per node)")
        ax.set_xlabel("world size (DDP ranks)")
        ax.set_xticks(sorted(pts["world_size"].unique()))
        if col == "efficiency":
            ax.axhline(1.0, color="grey", ls=":", lw=1)
            ax.set_ylabel("scaling efficiency  thr(n) / (n · thr(1))")
        else:
            ax.set_yscale("log")
            ax.set_ylabel(METRIC_LABEL[col])
        ax.legend(fontsize=7)
    return [(_save(fig, out, "world_size.png"), "Global throughput (left) and scaling efficiency (right) vs "
             "world size, one colour per model and one line per series (settings fixed; seeds pooled, "
             "median). Solid lines, filled markers: every rank within one node; dashed lines, hollow "
             "markers: ranks across nodes, each point labelled nodes × ranks per node (nodes as the "
             "ranks' hostnames record them, else the nodes field). Efficiency = throughput at n ÷ (n × "
             "throughput of the same series at 1 rank on 1 node), one baseline for both.")]


def plot_accuracy(df, out):
    rows = df[np.isfinite(as_float(df["accuracy"])) & np.isfinite(as_float(df["seq_len"]))]
    if rows.empty:
        return []
    tasks = sorted(rows["task"].dropna().unique())
    fig, axes = _figure(1, max(len(tasks), 1))
    for ax, task in zip(axes[0], tasks):
        rt = rows[(rows["task"] == task).fillna(False).to_numpy(dtype=bool)]
        d = pd.DataFrame({"T": as_float(rt["seq_len"]), "accuracy": as_float(rt["accuracy"]),
                          "model": rt["model"].astype(str).map(C.short).to_numpy()})
        order = [C.short(m) for m in _models(rt)]
        sns.lineplot(data=d, x="T", y="accuracy", hue="model", hue_order=order, style="model",
                     markers=True, dashes=False, errorbar=("pi", 100), estimator="median", ax=ax,
                     palette={C.short(m): _color(m) for m in _models(rt)})
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"task: {task}", fontsize=9)
        ax.set_xlabel("T (seq_len)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=7)
    return [(_save(fig, out, "accuracy_vs_T.png"), "Held-out accuracy vs T per task (median over "
             "cells; band: range over seeds and other settings).")]


def plot_params(df, out):
    rows = df[np.isfinite(as_float(df["n_params"]))]
    recs = []
    for m in C.MODEL_NAMES:
        recs.append({"model": C.short(m), "source": "document §8.2", "n_params": C.DOC_PARAMS[m]})
        seed_rows = K._seed_config_rows(rows, m)
        if len(seed_rows):
            recs.append({"model": C.short(m), "source": "measured, seed config",
                         "n_params": float(np.median(as_float(seed_rows["n_params"])))})
        rm = rows[rows["model"] == m]
        if len(rm) and not len(seed_rows):
            recs.append({"model": C.short(m), "source": "measured, other config",
                         "n_params": float(np.median(as_float(rm["n_params"])))})
    d = pd.DataFrame(recs)
    if rows.empty:
        return []
    fig, axes = _figure(1, 1, w=8, h=4)
    ax = axes[0][0]
    order = [C.short(m) for m in sorted(C.DOC_PARAMS, key=C.DOC_PARAMS.get)]   # §8.2's order
    sns.barplot(data=d, x="model", y="n_params", hue="source", ax=ax, palette="muted", order=order)
    ax.set_yscale("log")
    ax.set_ylabel("trainable parameters")
    ax.set_xlabel("")
    ax.tick_params(axis="x", labelsize=8)
    for cont in ax.containers:
        ax.bar_label(cont, labels=[f"{v / 1e3:.0f}K" if math.isfinite(v) else "" for v in cont.datavalues],
                     fontsize=6, rotation=90, padding=2)
    ax.legend(fontsize=7)
    return [(_save(fig, out, "params.png"), "Parameters per model: the document's §8.2 table vs "
             "measured (at the seed config when present; otherwise the median over other configs).")]


PLOTS = (plot_time_vs_T, plot_mem_vs_T, plot_time_vs_qubits, plot_mem_vs_qubits, plot_time_vs_chunk,
         plot_world_size, plot_accuracy, plot_params)
PLOT_FILES = ("time_vs_T.png", "mem_vs_T.png", "time_vs_qubits.png", "mem_vs_qubits.png",
              "time_vs_chunk.png", "world_size.png", "accuracy_vs_T.png", "params.png", "stability_activations.png",
              "accuracy_vs_step.png")


def draw_all(ok: pd.DataFrame, out: Path) -> list[tuple[str, str]]:
    df = K.prepare(ok)
    made = []
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.8):
        for fn in PLOTS:
            made.extend(fn(df, out))
    return made
