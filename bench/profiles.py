"""Site profiles: SLURM settings as data (slurm/profiles/*.yaml), validated into a frozen dataclass.

`--profile P` takes a profile name (looked up in slurm/profiles/ beside this checkout, or
$QSSM_PROFILES_DIR) or a path to a YAML file.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml

from .errors import UserError

PROFILES_DIR = Path(__file__).resolve().parent.parent / "slurm" / "profiles"


@dataclass(frozen=True)
class Profile:
    name: str                      # profile name (file stem)
    description: str = ""
    partition: str | None = None   # --partition
    account: str | None = None     # --account
    qos: str | None = None         # --qos
    constraint: str | None = None  # --constraint
    gpus_per_node: int = 0         # GPUs per node (--gpus-per-node); 0 on CPU sites
    cpus_per_task: int = 1         # --cpus-per-task
    mem_gb: float | None = None    # --mem in GB per node (None: site default)
    time_min: int = 60             # time limit per array task (minutes)
    max_concurrent: int = 8        # array throttle (--array=...%N)
    mpi: str = "pmix"              # srun --mpi= for the MPI launcher
    setup: tuple = ()              # shell lines run before the cell (module loads, env)
    extra_sbatch: dict = field(default_factory=dict)  # more #SBATCH --key=value pairs

    def __post_init__(self):
        for name, low in (("gpus_per_node", 0), ("cpus_per_task", 1), ("time_min", 1), ("max_concurrent", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise UserError(f"profile {self.name!r}: {name}={v!r} is not allowed; need an integer >= {low}")
        if self.mem_gb is not None and (isinstance(self.mem_gb, bool) or not isinstance(self.mem_gb, (int, float))
                                        or self.mem_gb <= 0):
            raise UserError(f"profile {self.name!r}: mem_gb={self.mem_gb!r} is not allowed; need a positive number")
        for name in ("partition", "account", "qos", "constraint"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise UserError(f"profile {self.name!r}: {name}={v!r} is not allowed; need a string")
        if not isinstance(self.setup, (list, tuple)) or not all(isinstance(s, str) for s in self.setup):
            raise UserError(f"profile {self.name!r}: setup must be a list of shell lines")
        object.__setattr__(self, "setup", tuple(self.setup))
        if not isinstance(self.extra_sbatch, dict):
            raise UserError(f"profile {self.name!r}: extra_sbatch must be a mapping of sbatch option -> value")


def available() -> list[str]:
    d = Path(os.environ.get("QSSM_PROFILES_DIR", PROFILES_DIR))
    return sorted(p.stem for p in d.glob("*.yaml"))


def load_profile(spec: str) -> Profile:
    """Load a profile by name or path; unknown keys and bad values are one-line UserErrors."""
    path = Path(spec)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = Path(os.environ.get("QSSM_PROFILES_DIR", PROFILES_DIR)) / f"{spec}.yaml"
    if not path.exists():
        raise UserError(f"profile={spec!r} not found; available: {', '.join(available()) or 'none'}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"profile {path}: not valid YAML ({exc.__class__.__name__})") from exc
    if not isinstance(data, dict):
        raise UserError(f"profile {path}: must be a mapping of keys to values")
    known = {f.name for f in fields(Profile)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"profile {path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    data.setdefault("name", path.stem)
    return Profile(**data)
