"""``qssm analyze A B ...``: machines side by side, one results folder per machine.

Each folder is analysed on its own (its full report goes to ``OUT/<label>/``, exactly what
``qssm analyze A`` writes), and ``OUT/report.md`` puts them side by side:

- the machines: label (the folder's name, made unique), device names, hosts, CPU/GPU, software;
- the verdict of every claim on every machine (one column per machine; a claim with several
  implementations on a machine shows each);
- the step time per model at each T, one column per machine, and the ratio to the first machine;
- ``machines_time_vs_T.png``: step time vs T, one panel per model, one hue per machine.

The same cell run on two machines has the same ``cell_id``: keep one folder per machine (a
results folder resumes by cell id, so a second machine writing into the first one's folder would
skip every cell already done there).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from . import catalog as C
from . import stats as S
from .errors import AnalysisError
from .io import as_float, load_results

REPORT = "report.md"
PLOT = "machines_time_vs_T.png"
_MARK = {S.SUPPORTED: "✓ supported", S.CONTRADICTED: "✗ contradicted", S.INCONCLUSIVE: "? inconclusive"}


def labels_for(paths) -> list[str]:
    """The folders' names, made unique (parent/name, then a counter)."""
    names = [Path(p).resolve().name for p in paths]
    out = []
    for p, n in zip(paths, names):
        if names.count(n) > 1:
            n = f"{Path(p).resolve().parent.name}/{n}"
        while n in out:
            n += "'"
        out.append(n)
    return out


def _machine_line(label: str, res) -> str:
    envs = res.envs or [{}]
    pick = lambda key: ", ".join(sorted({str(e.get(key)) for e in envs if e.get(key)})) or "—"  # noqa: E731
    devs = sorted({str(v) for v in res.ok.get("device_name", pd.Series(dtype=object)).dropna()})
    return (f"| {label} | {res.path} | {len(res.ok)} / {len(res.rows)} | {', '.join(devs) or '—'} | "
            f"{pick('host')} | torch {pick('torch')}, CUDA {pick('cuda')}, driver {pick('nvidia_driver')} | "
            f"{pick('profile')} |")


def _step_table(labelled) -> list[str]:
    """Median step time per (model, T) on each machine, at each machine's most common settings."""
    frames = []
    for label, res in labelled:
        ok = res.ok
        if ok.empty or "step_time_median_s" not in ok:
            continue
        t = as_float(ok["step_time_median_s"])
        sub = ok[np.isfinite(t)].copy()
        sub["t"] = as_float(sub["step_time_median_s"])
        keep = [f for f in ("device", "batch_size", "world_size", "nodes", "precision") if f in sub]
        for f in keep:  # the machine's most common value: comparable cells only
            common = sub[f].mode()
            if len(common):
                sub = sub[sub[f] == common.iloc[0]]
        g = sub.groupby(["model", "seq_len"])["t"].median().rename(label)
        frames.append(g)
    if not frames:
        return ["(no step times)"]
    table = pd.concat(frames, axis=1)
    labels = list(table.columns)
    head = "| model | T | " + " | ".join(labels) + (" | " + " | ".join(f"{x} / {labels[0]}" for x in labels[1:])
                                                   if len(labels) > 1 else "") + " |"
    L = [head, "|" + "---|" * (2 + len(labels) + max(0, len(labels) - 1))]
    for (model, T), row in table.iterrows():
        cells = [f"{v * 1e3:.3g} ms" if np.isfinite(v) else "—" for v in row.to_numpy(float)]
        ratios = []
        for x in labels[1:]:
            a, b = row[x], row[labels[0]]
            ratios.append(f"{a / b:.2f}×" if np.isfinite(a) and np.isfinite(b) and b > 0 else "—")
        L.append(f"| {C.short(model)} | {int(T)} | " + " | ".join(cells + ratios) + " |")
    return L


def _plot(labelled, out: Path) -> list[tuple[str, str]]:
    import seaborn as sns
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    frames = []
    for label, res in labelled:
        ok = res.ok
        if ok.empty:
            continue
        t = as_float(ok["step_time_median_s"])
        sub = ok[np.isfinite(t) & (t > 0)][["model", "seq_len", "step_time_median_s"]].copy()
        sub["machine"] = label
        frames.append(sub)
    if not frames:
        return []
    df = pd.concat(frames, ignore_index=True)
    df["t"] = as_float(df["step_time_median_s"])
    df["seq_len"] = as_float(df["seq_len"])
    models = [m for m in C.MODEL_NAMES if (df["model"] == m).any()] + \
        sorted(set(df["model"]) - set(C.MODEL_NAMES))
    n = len(models)
    cols = min(3, n)
    rows = -(-n // cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows))
    FigureCanvasAgg(fig)
    palette = dict(zip([lab for lab, _ in labelled], sns.color_palette("colorblind", len(labelled))))
    for k, m in enumerate(models):
        ax = fig.add_subplot(rows, cols, k + 1)
        dm = df[df["model"] == m]
        sns.lineplot(data=dm, x="seq_len", y="t", hue="machine", palette=palette, marker="o",
                     estimator="median", errorbar=None, ax=ax)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(C.short(m), fontsize=9)
        ax.set_xlabel("T (seq_len)")
        ax.set_ylabel("step time (s)")
        if ax.get_legend() is not None:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / PLOT, dpi=110)
    return [(PLOT, "Median training step time vs T, one panel per model, one hue per machine (log–log).")]


def compare(paths, out, n_boot: int = S.N_BOOT, seed: int = 0, plots: bool = True) -> dict:
    """Analyse each folder (its report in OUT/<label>/) and write OUT/report.md side by side."""
    from .report import write_report

    if len(paths) < 2:
        raise AnalysisError("comparing machines needs at least two results folders")
    labels = labels_for(paths)
    loaded = [(label, load_results(p)) for label, p in zip(labels, paths)]
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"--out {out} exists and is not a folder")
    per = {}
    for label, res in loaded:
        per[label] = write_report(res, out / label.replace("/", "_"), n_boot=n_boot, seed=seed, plots=plots)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent if out.parent.exists() else None))
    try:
        made = _plot(loaded, tmp) if plots else []
        L = ["# Machines side by side", "",
             "Each folder is one machine's results, analysed on its own (full reports in the sub-folders "
             "named after the machines); below, the same claims and cells next to each other.", "",
             "## Machines", "", "| machine | folder | ok rows / rows | devices | hosts | software | profile |",
             "|---|---|---|---|---|---|---|"]
        L += [_machine_line(label, res) for label, res in loaded]
        L += ["", "## Verdicts", "", "| claim | implementation | " + " | ".join(labels) + " |",
              "|" + "---|" * (2 + len(labels))]
        rows: dict = {}
        for label in labels:
            for r in per[label]["results"]:
                rows.setdefault((r.claim.id, r.implementation), {})[label] = r.verdict
        for (cid, impl), v in rows.items():
            L.append(f"| `{cid}` | {impl} | " + " | ".join(_MARK.get(v.get(x), "—") for x in labels) + " |")
        agree = sum(1 for v in rows.values() if len(v) == len(labels) and len(set(v.values())) == 1)
        L += ["", f"{agree} of {len(rows)} claim × implementation rows have the same verdict on every machine.", ""]
        counts = {x: Counter(r.verdict for r in per[x]["results"]) for x in labels}
        L += [f"- {x}: " + ", ".join(f"{counts[x][v]} {v}" for v in S.VERDICTS) + f" — [report]({x.replace('/', '_')}/{REPORT})"
              for x in labels]
        L += ["", "## Step time per model and T", "",
              "Median training step time of each machine's comparable cells (its most common device, batch "
              "size, world size and precision), and the ratio to the first machine.", ""]
        L += _step_table(loaded)
        for name, caption in made:
            L += ["", f"![{caption}]({name})", "", f"*{caption}*"]
        (tmp / REPORT).write_text("\n".join(L) + "\n", encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        for name in [n for n, _ in made] + [REPORT]:
            os.replace(tmp / name, out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"per_machine": per, "out": out, "labels": labels, "plots": [n for n, _ in made]}
