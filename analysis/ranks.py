"""Scaling over ranks: throughput per world size, with the ranks within one node or across nodes.

A *series* is one model at fixed settings: every relevant cell field but the run's shape
(``world_size``, ``nodes``: ``catalog.RUN_SHAPE``) and ``seed`` is equal (repeats pooled). Within a
series each point is one (world size, nodes): the median ``samples_per_s`` of its cells, and

    efficiency = thr(n) / (n · thr(1)),

thr(1) being the series' median at world size 1 on 1 node, the same baseline for the ranks within
a node and for those across nodes. Where a series has a cell within one node and one across nodes
at the same world size, ``across_within`` = thr(across) / thr(within): the cost of crossing nodes.

The number of nodes of a row is its ``nodes`` field, unless ``hostnames`` (the ranks' hosts in rank
order) names another number of distinct hosts: then the hosts count, since that is what ran.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from . import catalog as C
from .io import as_float
from .rows import _label, _norm, _sortkey, _varying, group_rows, prepare

WITHIN = "within a node"
ACROSS = "across nodes"
COLUMNS = ["model", "series", "setting", "world_size", "nodes", "shape", "placement", "cells",
           "samples_per_s", "efficiency", "across_within", "hosts_disagree"]


def _hosts(raw) -> list[str] | None:
    """The hosts of ``hostnames`` (None when null or empty)."""
    if raw is None or raw is pd.NA or (isinstance(raw, float) and math.isnan(raw)):
        return None
    hosts = [h.strip() for h in str(raw).split(",") if h.strip()]
    return hosts or None


def _shape(world_size: int, nodes: int, hosts: list[str] | None) -> str:
    """'nodes×ranks per node' (e.g. 2×1); ranks per host joined by '+' when the hosts held unequal
    shares."""
    if hosts:
        per = list(Counter(hosts).values())
        if len(set(per)) > 1:
            return "+".join(str(p) for p in per)
        return f"{len(per)}×{per[0]}"
    per = world_size / nodes
    return f"{nodes}×{per:g}"


def node_counts(rows: pd.DataFrame) -> pd.DataFrame:
    """Per row (same index): ``nodes`` as ran (distinct hosts where ``hostnames`` is recorded, else
    the ``nodes`` field, 1 when null), ``shape`` ("2×1") and ``hosts_disagree`` (the hosts counted
    differ from the ``nodes`` field)."""
    ws = rows["world_size"].tolist() if "world_size" in rows else [1] * len(rows)
    declared = rows["nodes"].tolist() if "nodes" in rows else [1] * len(rows)
    names = rows["hostnames"].tolist() if "hostnames" in rows else [None] * len(rows)
    out = []
    for w, d, h in zip(ws, declared, names):
        w, d = _norm(w) or 1, _norm(d)
        d = int(d) if isinstance(d, (int, float)) and d >= 1 else 1
        hosts = _hosts(h)
        n = len(set(hosts)) if hosts else d
        out.append({"nodes": n, "shape": _shape(int(w), n, hosts), "hosts_disagree": n != d})
    return pd.DataFrame(out, index=rows.index, columns=["nodes", "shape", "hosts_disagree"])


def scaling_points(ok: pd.DataFrame) -> pd.DataFrame:
    """One row per model × series × (world size, nodes) of the ``ok`` rows with a throughput (the
    ``COLUMNS``; ``setting`` names the fields that tell a model's series apart, "" when it has one)."""
    if ok.empty or "samples_per_s" not in ok or "world_size" not in ok:
        return pd.DataFrame(columns=COLUMNS)
    df = prepare(ok)
    thr, ws = as_float(df["samples_per_s"]), as_float(df["world_size"])
    df = df[np.isfinite(thr) & (thr > 0) & np.isfinite(ws) & (ws >= 1)]
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    nc = node_counts(df)
    df = df.assign(_ws=as_float(df["world_size"]).astype(int), _nodes=nc["nodes"].to_numpy(),
                   _shape=nc["shape"].to_numpy(), _disagree=nc["hosts_disagree"].to_numpy(),
                   _thr=as_float(df["samples_per_s"]))
    models = [m for m in C.MODEL_NAMES if (df["model"] == m).any()]
    models += sorted(set(df["model"].dropna().astype(str)) - set(models))
    recs = []
    for m in models:
        rm = df[df["model"] == m]
        key_fields = [f for f in C.relevant_fields(m) if f != "seed" and f not in C.RUN_SHAPE]
        vary = _varying(rm, key_fields)
        groups = sorted(group_rows(rm, key_fields).items(), key=lambda kv: _sortkey(kv[0]))
        for i, (key, g) in enumerate(groups):
            setting = _label(key_fields, key, vary) if vary else ""
            pts = {}
            for (w, n), p in g.groupby(["_ws", "_nodes"], sort=True):
                pts[(int(w), int(n))] = (float(np.median(p["_thr"])), len(p),
                                         Counter(p["_shape"]).most_common(1)[0][0], int(p["_disagree"].sum()))
            base = pts.get((1, 1), (math.nan,))[0]
            for (w, n), (t, cells, shape, disagree) in pts.items():
                within = pts.get((w, 1), (math.nan,))[0]
                recs.append({"model": m, "series": i, "setting": setting, "world_size": w, "nodes": n,
                             "shape": shape, "placement": WITHIN if n == 1 else ACROSS, "cells": cells,
                             "samples_per_s": t, "efficiency": t / (w * base) if base > 0 else math.nan,
                             "across_within": t / within if n > 1 and within > 0 else math.nan,
                             "hosts_disagree": disagree})
    return pd.DataFrame(recs, columns=COLUMNS)


def _f(v, fmt) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and math.isfinite(v) else "—"


def section(ok: pd.DataFrame) -> list[str]:
    """The report's "Scaling over ranks" table; nothing when no ``ok`` row has world size > 1."""
    if ok.empty or not (as_float(ok["world_size"]) > 1).any():
        return []
    pts = scaling_points(ok)
    L = ["## Scaling over ranks", ""]
    multi = pts[pts["world_size"] > 1] if len(pts) else pts
    if multi.empty:
        return L + ["Rows with world size > 1 exist, but none with a throughput (`samples_per_s`).", ""]
    L += ["Median global throughput per world size and placement of the ranks: *within a node* (every "
          "rank on one host) or *across nodes* (shape: nodes × ranks per node; nodes as the ranks' "
          "`hostnames` record them, else the `nodes` field). Efficiency = throughput at n ÷ (n × "
          "throughput of the same model and settings at 1 rank on 1 node; — without such a cell). "
          "Across ÷ within: throughput across nodes ÷ throughput of the same world size within one "
          "node — below 1, what crossing nodes costs.", ""]
    disagree = int(pts["hosts_disagree"].sum())
    if disagree:
        L += [f"> **Note:** {disagree} row(s) name another number of hosts in `hostnames` than their "
              "`nodes` field; they are counted by their distinct hosts (that is what ran).", ""]
    L += ["| model | setting | world size | ranks | nodes × ranks/node | cells | samples/s | efficiency "
          "| across ÷ within |", "|---|---|---:|---|---|---:|---:|---:|---:|"]
    for _, r in multi.sort_values(["model", "series", "world_size", "nodes"], kind="stable",
                                  key=lambda s: s.map(_model_order) if s.name == "model" else s).iterrows():
        L.append(f"| {C.short(r['model'])} | {str(r['setting'] or '—').replace('|', '/')} | {r['world_size']} | {r['placement']} | "
                 f"{r['shape']} | {r['cells']} | {_f(r['samples_per_s'], '.4g')} | "
                 f"{_f(r['efficiency'], '.2f')} | {_f(r['across_within'], '.2f')} |")
    L.append("")
    return L


def _model_order(m) -> str:
    """A sort key: the catalogue's order, then unknown models by name."""
    return f"{C.MODEL_NAMES.index(m) if m in C.MODEL_NAMES else len(C.MODEL_NAMES):02d} {m}"
