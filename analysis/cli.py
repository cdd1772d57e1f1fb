"""``qssm analyze RESULTS [--out DIR]``: check the design document's claims against a results
folder; write report.md, claims.csv and the scaling plots. ``qssm analyze A B ...`` (one folder per
machine) analyses each and puts the machines side by side (``analysis.compare``).

The default output folder is ``RESULTS/_report`` (the leading underscore keeps
``pandas.read_parquet(RESULTS)`` and the harness's reader away from it). User mistakes raise
``analysis.errors.AnalysisError`` (a ValueError), which ``qssm`` prints as one line, exit 2.
"""
from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from .errors import AnalysisError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("results", metavar="RESULTS", nargs="+",
                        help="results folder (one parquet file per cell); several folders (one per machine) "
                             "are compared side by side")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="output folder for report.md, claims.csv and the plots "
                             "(default: RESULTS/_report; with several folders FIRST/_compare)")
    parser.add_argument("--bootstrap", metavar="N", type=int, default=2000,
                        help="bootstrap resamples for the confidence intervals (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--no-plots", action="store_true", help="skip the plots (faster)")


def _check_out(results: Path, out: Path) -> None:
    """A report inside the results folder must sit under a name starting with '_' or '.': pandas
    and pyarrow skip those, so `pandas.read_parquet(RESULTS)` keeps working."""
    try:
        rel = out.resolve().relative_to(results.resolve())
    except ValueError:
        return
    if not rel.parts or not rel.parts[0].startswith(("_", ".")):
        raise AnalysisError(f"--out {out}: inside the results folder the report folder's name must start with "
                            f"'_' (e.g. {results / '_report'}) so that pandas.read_parquet({str(results)!r}) "
                            "still reads the folder")


def run(args) -> int:
    from . import stats
    from .io import load_results
    from .report import default_out, write_report

    if args.bootstrap < 200:
        raise AnalysisError(f"--bootstrap={args.bootstrap}: use at least 200 resamples")
    if len(args.results) > 1:
        return _compare(args)
    args.results = args.results[0]
    out = Path(args.out) if args.out else default_out(args.results)
    _check_out(Path(args.results), out)
    res = load_results(args.results)
    done = write_report(res, out, n_boot=args.bootstrap, seed=args.seed, plots=not args.no_plots)
    verdicts = Counter(r.verdict for r in done["results"])
    n_plots = sum(1 for f in done["files"] if f.suffix == ".png")
    skipped = f"; {len(res.problems)} unreadable files skipped" if res.problems else ""
    print(f"{len(res.ok)} ok rows of {len(res.rows)} from {res.n_files} files{skipped}")
    print(f"{len(done['results'])} verdicts: {verdicts[stats.SUPPORTED]} supported, "
          f"{verdicts[stats.CONTRADICTED]} contradicted, {verdicts[stats.INCONCLUSIVE]} inconclusive")
    print(f"report: {out / 'report.md'} (claims.csv, {n_plots} plots)")
    return 0


def _compare(args) -> int:
    from .compare import REPORT, compare

    first = Path(args.results[0])
    out = Path(args.out) if args.out else (first.parent if first.is_file() else first) / "_compare"
    for r in args.results:
        _check_out(Path(r), out)
    done = compare(args.results, out, n_boot=args.bootstrap, seed=args.seed, plots=not args.no_plots)
    for label in done["labels"]:
        n = Counter(r.verdict for r in done["per_machine"][label]["results"])
        print(f"{label}: {n['supported']} supported, {n['contradicted']} contradicted, {n['inconclusive']} inconclusive")
    print(f"report: {out / REPORT} (one sub-folder per machine)")
    return 0


def main(argv=None) -> int:
    import sys

    parser = argparse.ArgumentParser(prog="python -m analysis", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except AnalysisError as exc:
        print(f"analysis: error: {exc}", file=sys.stderr)
        return 2
