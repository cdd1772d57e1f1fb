"""``report.md``, ``claims.csv`` and the plots, written atomically into one folder.

Everything is produced in a hidden temporary folder beside the output folder; only when all of it
exists are the files renamed into place (``report.md`` last). An error leaves the output folder as
it was. Files of an earlier report that this run does not produce (a plot without data now) are
removed; nothing else in the folder is touched.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from . import catalog as C
from . import stats as S
from .checks import ClaimResult, evaluate
from .claims import CLAIMS, NOT_MEASURABLE
from .errors import AnalysisError
from .io import Results
from .learning import section as learning_section
from .ranks import section as ranks_section
from .stability import section as stability_section

REPORT = "report.md"
CSV = "claims.csv"
DEFAULT_OUT = "_report"   # inside RESULTS; the leading "_" keeps pandas.read_parquet(RESULTS) working


def default_out(results_path) -> Path:
    p = Path(results_path)
    return (p.parent if p.is_file() else p) / DEFAULT_OUT


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _num(v, digits=3) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return ""
    return f"{v:.{digits}g}"


def claims_frame(results: list[ClaimResult]) -> pd.DataFrame:
    recs = []
    for r in results:
        c = r.claim
        for ch in r.checks:
            recs.append({
                "claim_id": c.id, "section": c.section, "statement": c.quote, "kind": c.kind,
                "metric": c.metric, "phase": c.phase or "", "implementation": r.implementation,
                **{f: r.impl.get(f) for f in C.IMPL_FIELDS},
                "claim_verdict": r.verdict, "subject": ch.subject,
                "subject_verdict": r.subject_verdicts.get(ch.subject, ""), "context": ch.context,
                "verdict": ch.verdict, "reason": ch.reason, "estimate": ch.estimate, "ci_lo": ch.ci_lo,
                "ci_hi": ch.ci_hi, "expected": ch.expected, "test": c.test, "n_cells": ch.n_cells,
                "detail": ch.detail,
                "cells_to_add": " / ".join(r.suggestions),
            })
    cols = ["claim_id", "section", "statement", "kind", "metric", "phase", "implementation",
            *C.IMPL_FIELDS, "claim_verdict", "subject", "subject_verdict", "context", "verdict",
            "reason", "estimate", "ci_lo", "ci_hi", "expected", "test", "n_cells", "detail",
            "cells_to_add"]
    return pd.DataFrame(recs, columns=cols)


def _env_summary(res: Results) -> list[str]:
    lines = []
    values: dict[str, Counter] = {}
    for env in res.envs:
        for k, v in env.items():
            values.setdefault(k, Counter())[json.dumps(v, sort_keys=True, default=str).strip('"')] += 1
    for col in ("device_name", "mem_source", "launcher"):
        if col in res.rows.columns:
            cnt = Counter(str(v) for v in res.rows[col].dropna())
            if cnt:
                values.setdefault(f"{col} (rows)", Counter()).update(cnt)
    if not values:
        return ["No environment metadata in the files."]
    lines.append("| key | values (files) |")
    lines.append("|---|---|")
    for k in sorted(values):
        cnt = values[k]
        shown = ", ".join(f"`{_cell(v)[:80]}` ({n})" for v, n in cnt.most_common(6))
        if len(cnt) > 6:
            shown += f", … {len(cnt) - 6} more"
        lines.append(f"| {_cell(k)} | {shown} |")
    return lines


def _provenance_warnings(res: Results) -> list[str]:
    """Mixed code versions or uncommitted changes behind the rows: worth knowing before trusting
    a comparison across cells."""
    out = []
    shas = Counter(str(e.get("git_sha")) for e in res.envs if e.get("git_sha"))
    if len(shas) > 1:
        out.append(f"the rows come from {len(shas)} different git commits "
                   f"({', '.join(s[:10] for s, _ in shas.most_common(3))}{', …' if len(shas) > 3 else ''}); "
                   "cells compared with each other may have run different code")
    dirty = sum(1 for e in res.envs if e.get("git_dirty") is True)
    if dirty:
        out.append(f"{dirty} of {len(res.envs)} files were written from a working tree with "
                   "uncommitted changes")
    devices = Counter(str(v) for v in res.rows.get("device_name", pd.Series(dtype=str)).dropna())
    if len(devices) > 1:
        out.append(f"the rows come from {len(devices)} different processors/GPUs "
                   f"({', '.join(d for d, _ in devices.most_common(3))})")
    return out


def _status_section(res: Results) -> list[str]:
    bad = res.not_ok
    if bad.empty:
        return ["Every row has status `ok`."]
    lines = ["Rows with another status are not measurements; they are listed here and left out of "
             "every verdict.", "", "| model | status | rows | first error |", "|---|---|---:|---|"]
    for (model, status), g in bad.groupby(["model", "status"], dropna=False, observed=True):
        errs = [e for e in g["error"].dropna().astype(str) if e.strip()]
        first = errs[0].strip().splitlines()[0][:120] if errs else ""
        lines.append(f"| {_cell(model)} | {_cell(status)} | {len(g)} | {_cell(first)} |")
    return lines


def render(res: Results, results: list[ClaimResult], plots: list[tuple[str, str]]) -> str:
    rows = res.rows
    counts = Counter(rows["status"].astype(str))
    status = ", ".join(f"{k} {counts[k]}" for k in ("ok", "failed", "oom", "timeout", "nan") if counts[k])
    others = {k: v for k, v in counts.items() if k not in ("ok", "failed", "oom", "timeout", "nan")}
    if others:
        status += ", " + ", ".join(f"{k} {v}" for k, v in others.items())
    verdicts = Counter(r.verdict for r in results)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    L = [
        "# The design document's claims against the measurements",
        "",
        f"Results folder `{res.path}`: {res.n_files} files, {len(rows)} rows ({status}); schema "
        f"version {res.schema_version}. Written by `qssm analyze` on {now}.",
        "",
    ]
    warnings = _provenance_warnings(res)
    if warnings:
        for w in warnings:
            L += [f"> **Note:** {w}", ""]
    L += [
        f"**{len(results)} verdicts** (one per claim and implementation): "
        f"{verdicts[S.SUPPORTED]} supported · {verdicts[S.CONTRADICTED]} contradicted · "
        f"{verdicts[S.INCONCLUSIVE]} inconclusive. Only `ok` rows count; the rules are under "
        "[How verdicts are decided](#how-verdicts-are-decided); per-series numbers are in "
        f"[`{CSV}`]({CSV}) and under [Details](#details).",
        "",
        "## Claims",
        "",
        "| claim | § | statement | implementation | verdict | evidence |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        L.append(f"| `{r.claim.id}` | {r.claim.section} | {_cell(r.claim.title)} | "
                 f"{_cell(r.implementation)} | **{r.verdict}** | {_cell(r.evidence)} |")
    L += ["", "## How verdicts are decided", "", S.RULES, ""]
    L += ["Implementation: device, dtype and precision (mixed precisions are shown by name); the selective-scan implementation (`scan`) when an SSM "
          "model is involved; the quantum backend (and PennyLane device) when a quantum model is. "
          "Each implementation present in the folder gets its own verdict.", ""]
    L += ["## Plots", ""]
    if plots:
        for name, caption in plots:
            L += [f"![{name}]({name})", "", caption, ""]
    else:
        L += ["No plot could be drawn (no `ok` rows with the needed metrics).", ""]
    lacking = [r for r in results if r.suggestions]
    L += ["## Claims lacking data: cells to add", ""]
    if not lacking:
        L += ["Every claim has enough data for a verdict.", ""]
    groups: dict[tuple, list[ClaimResult]] = {}
    for r in lacking:
        text = (yaml.safe_dump(r.suggestion_yaml, sort_keys=False, default_flow_style=None).rstrip()
                if r.suggestion_yaml else "")
        groups.setdefault((tuple(r.suggestions), text), []).append(r)
    for (suggestions, text), rs in groups.items():
        ids = ", ".join(f"`{r.claim.id}`" for r in rs)
        impls = ", ".join(dict.fromkeys(r.implementation for r in rs))
        L += [f"### {ids} — {impls}", ""]
        L += [f"Needs: {m}." for m in dict.fromkeys(r.claim.measurement for r in rs)] + [""]
        L += [f"- {s}" for s in suggestions]
        if text:
            L += ["", "A sweep file that adds them:", "", "```yaml", text, "```"]
        L.append("")
    L += ["## Details", ""]
    for r in results:
        L += [f"### `{r.claim.id}` — {r.implementation}: {r.verdict}", "",
              f"> {r.claim.quote} ({r.claim.section})", "",
              f"Measurement: {r.claim.measurement}. Test: {r.claim.test}.", "",
              "| subject | context | estimate | 95% CI | verdict | why | cells | detail |",
              "|---|---|---:|---|---|---|---:|---|"]
        for ch in r.checks:
            ci = f"[{_num(ch.ci_lo)}, {_num(ch.ci_hi)}]" if np.isfinite(ch.ci_lo) else ""
            L.append(f"| {_cell(ch.subject)} | {_cell(ch.context)} | {_num(ch.estimate)} | {ci} | "
                     f"{ch.verdict} | {_cell(ch.reason)} | {ch.n_cells} | {_cell(ch.detail)} |")
        L.append("")
    L += ranks_section(res.ok) + learning_section(res.rows) + stability_section(res.rows)
    L += ["## Runs that did not finish ok", ""] + _status_section(res) + [""]
    L += ["## Skipped files", ""]
    L += ([f"- `{_cell(p)}`" for p in res.problems] if res.problems else ["None: every file was read."])
    L += ["", "## Environment", ""] + _env_summary(res) + [""]
    L += ["## Not checked", "", "Statements of the document that a results folder cannot decide:", ""]
    L += [f"- {sec}: {text}" for sec, text in NOT_MEASURABLE]
    L.append("")
    return "\n".join(L)


def write_report(res: Results, out, n_boot: int = S.N_BOOT, seed: int = 0, plots: bool = True,
                 claims=CLAIMS) -> dict:
    """Evaluate, draw and write; returns {"results": [...], "files": [...], "out": Path}."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise AnalysisError(f"--out {out} exists and is not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise AnalysisError(f"cannot write the report next to {out}: {exc.strerror or exc}") from None
    try:
        results = evaluate(res.ok, claims, n_boot=n_boot, seed=seed)
        made = []
        if plots and len(res.ok):
            from .plots import draw_all  # seaborn/matplotlib only when drawing
            made = draw_all(res.ok, tmp)
        if plots:
            from .learning import draw as draw_learning
            from .stability import draw as draw_stability
            made += draw_learning(res.rows, tmp) + draw_stability(res.rows, tmp)
        claims_frame(results).to_csv(tmp / CSV, index=False)
        (tmp / REPORT).write_text(render(res, results, made), encoding="utf-8")
        try:
            out.mkdir(exist_ok=True)
            produced = [name for name, _ in made] + [CSV, REPORT]   # report.md last
            for name in produced:
                os.replace(tmp / name, out / name)
        except OSError as exc:
            raise AnalysisError(f"cannot write into {out}: {exc.strerror or exc}") from None
        from .plots import PLOT_FILES
        for name in PLOT_FILES:
            if name not in produced and (out / name).is_file():
                (out / name).unlink()
        return {"results": results, "files": [out / n for n in produced], "out": out}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
