"""The `qssm` command. Each subcommand lives in its own module with `add_arguments(parser)` and
`run(args) -> int`; modules are imported only when their command runs (fast start-up).

User mistakes (UserError, qssm.ConfigError, analysis.AnalysisError) print one line `qssm: error: ...` and exit 2.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys

# name -> (module, one-line help)
COMMANDS = {
    "params": ("bench.cmd_params", "print the §8.2 parameter table for a configuration"),
    "train": ("bench.cmd_train", "run one cell from flags"),
    "sweep": ("bench.cmd_sweep", "expand a sweep file into cells and run the ones not yet done"),
    "status": ("bench.cmd_status", "summarise a results folder"),
    "run-cell": ("bench.cmd_run_cell", "run cell INDEX of a manifest (used by sbatch scripts)"),
    "sbatch": ("bench.cmd_sbatch", "write an sbatch array script and manifest for a sweep"),
    "micro": ("bench.micro.cli", "micro-benchmarks: scan, circuits, training steps (ratios)"),
    "analyze": ("analysis.cli", "check the design document's claims; plots; report.md"),
}


def _available():
    """The commands whose module is installed (find_spec raises when the parent package is not)."""
    out = {}
    for name, (mod, help_) in COMMANDS.items():
        try:
            if importlib.util.find_spec(mod) is not None:
                out[name] = (mod, help_)
        except ModuleNotFoundError:
            pass
    return out


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag or value as one line (exit 2), naming the --help to read."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(commands=None) -> argparse.ArgumentParser:
    commands = commands if commands is not None else _available()
    parser = _Parser(prog="qssm", description="qssm-bench: benchmark six quantum/classical "
                     "Mamba/Hydra sequence models")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (mod, help_) in commands.items():
        p = sub.add_parser(name, help=help_, description=help_)
        p.set_defaults(_module=mod)
        importlib.import_module(mod).add_arguments(p)
    return parser


def main(argv=None) -> int:
    from qssm.config import ConfigError

    from .errors import UserError

    user_errors = (UserError, ConfigError)
    try:
        from analysis.errors import AnalysisError
        user_errors += (AnalysisError,)
    except ImportError:  # pragma: no cover
        pass

    argv = sys.argv[1:] if argv is None else argv
    commands = _available()
    # only import the chosen command's module (argparse needs the others' names only)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in commands:
        parser = build_parser({chosen: commands[chosen]})
    else:
        parser = build_parser(commands)
    args = parser.parse_args(argv)
    try:
        return int(importlib.import_module(args._module).run(args) or 0)
    except user_errors as exc:
        print(f"qssm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("qssm: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `qssm status DIR | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
