"""Site profiles: SLURM settings as data (slurm/profiles/*.yaml), validated into a frozen dataclass.

`--profile P` takes a profile name (looked up in slurm/profiles/ beside this checkout, or
$QSSM_PROFILES_DIR) or a path to a YAML file. `--set KEY=VALUE` (repeatable) overrides one key;
VALUE is read as YAML (``--set qos=debug``, ``--set gpus_per_node=1``, ``--set mem_gb=null``,
``--set 'setup=[module load cuda]'``) and validated exactly like the file.
"""
from __future__ import annotations

import os
import re
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
    mem_per_gpu_gb: float | None = None  # --mem-per-gpu in GB (GPU cells; instead of mem_gb)
    mem_per_cpu_gb: float | None = None  # --mem-per-cpu in GB (instead of mem_gb)
    time_min: int = 60             # time limit per array task (minutes)
    max_concurrent: int = 8        # array throttle (--array=...%N)
    pack: bool = False             # one-GPU cells: gpus_per_node of them side by side per node (whole-node QOS)
    mpi: str = "pmix"              # srun --mpi= for the MPI launcher
    network_interface: str | None = None  # NIC for gloo/nccl/OpenMPI between nodes (e.g. ib0, hsn0)
    setup: tuple = ()              # shell lines run before the cell (module loads, env)
    python: str | None = None      # the interpreter jobs run, after setup (None: the one running qssm)
    extra_sbatch: dict = field(default_factory=dict)  # more #SBATCH --key=value pairs
    overrides: tuple = ()          # (key, repr(value)) given with --set, kept for provenance

    def __post_init__(self):
        for name, low in (("gpus_per_node", 0), ("cpus_per_task", 1), ("time_min", 1), ("max_concurrent", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise UserError(f"profile {self.name!r}: {name}={v!r} is not allowed; need an integer >= {low}")
        if not isinstance(self.pack, bool):
            raise UserError(f"profile {self.name!r}: pack={self.pack!r} is not allowed; need true or false")
        mems = [n for n in ("mem_gb", "mem_per_gpu_gb", "mem_per_cpu_gb") if getattr(self, n) is not None]
        for n in mems:
            v = getattr(self, n)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise UserError(f"profile {self.name!r}: {n}={v!r} is not allowed; need a positive number")
        if len(mems) > 1:
            raise UserError(f"profile {self.name!r}: {mems[0]} and {mems[1]} are both set; set at most one "
                            "of mem_gb, mem_per_gpu_gb, mem_per_cpu_gb (the others: null)")
        for name in ("partition", "account", "qos", "constraint", "python", "network_interface"):
            v = getattr(self, name)
            if v is not None and not isinstance(v, str):
                raise UserError(f"profile {self.name!r}: {name}={v!r} is not allowed; need a string")
        if self.network_interface is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]+(,[A-Za-z0-9_.:-]+)*",
                                                                   self.network_interface):
            raise UserError(f"profile {self.name!r}: network_interface={self.network_interface!r} is not allowed; "
                            "need an interface name such as ib0 or hsn0 (a comma list for several; NCCL's ^ exclusions are "
                            "not understood by gloo and OpenMPI)")
        if not isinstance(self.setup, (list, tuple)) or not all(isinstance(s, str) for s in self.setup):
            raise UserError(f"profile {self.name!r}: setup must be a list of shell lines")
        object.__setattr__(self, "setup", tuple(self.setup))
        if not isinstance(self.extra_sbatch, dict):
            raise UserError(f"profile {self.name!r}: extra_sbatch must be a mapping of sbatch option -> value")


def available() -> list[str]:
    d = Path(os.environ.get("QSSM_PROFILES_DIR", PROFILES_DIR))
    return sorted(p.stem for p in d.glob("*.yaml"))


_TEXT_KEYS = ("description", "partition", "account", "qos", "constraint", "mpi", "python", "network_interface")


def parse_sets(sets) -> dict:
    """``["qos=debug", "gpus_per_node=1"]`` -> ``{"qos": "debug", "gpus_per_node": 1}`` (values as YAML)."""
    out = {}
    for item in sets or ():
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"--set {item!r} is not allowed; use --set KEY=VALUE with a profile key "
                            f"({', '.join(sorted(f.name for f in fields(Profile) if f.name != 'name'))})")
        if key in _TEXT_KEYS and raw.strip() and not raw.strip().startswith(("[", "{")):
            out[key] = raw.strip() if raw.strip() not in ("null", "~") else None   # account=1234 stays text
            continue
        try:
            out[key] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            raise UserError(f"--set {key}={raw!r}: the value is not valid YAML") from None
    return out


def load_profile(spec: str, sets=()) -> Profile:
    """Load a profile by name or path, with ``--set KEY=VALUE`` overrides; unknown keys and bad
    values are one-line UserErrors. ``Profile.overrides`` keeps the overrides for provenance."""
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
    known = {f.name for f in fields(Profile)} - {"overrides"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"profile {path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
    over = parse_sets(sets)
    bad = sorted(set(over) - known - {"name"})
    if bad:
        raise UserError(f"--set {bad[0]}=...: unknown profile key {bad[0]!r}; known keys: "
                        f"{', '.join(sorted(known - {'name'}))}")
    data.setdefault("name", path.stem)
    data.update(over)
    if over:
        data["overrides"] = tuple(sorted((k, repr(v)) for k, v in over.items()))
    return Profile(**data)


def network_setup(profile: Profile) -> list[str]:
    """Shell lines naming the profile's network interface for traffic between nodes: gloo (CPU
    process groups), NCCL's bootstrap and socket transport, OpenMPI's TCP paths."""
    import shlex
    nic = profile.network_interface
    if not nic:
        return []
    q = shlex.quote(nic)
    return [f"export GLOO_SOCKET_IFNAME={q} NCCL_SOCKET_IFNAME={q}",
            f"export OMPI_MCA_btl_tcp_if_include={q} OMPI_MCA_oob_tcp_if_include={q}"]


def provenance_setup(profile: Profile) -> list[str]:
    """Shell lines exporting the profile's name and overrides, recorded in each row's qssm.env
    (and the network interface, when the profile names one)."""
    import shlex
    lines = network_setup(profile) + [f"export QSSM_PROFILE={shlex.quote(profile.name)}"]
    if profile.overrides:
        text = ", ".join(f"{k}={v}" for k, v in profile.overrides)
        lines.append(f"export QSSM_PROFILE_OVERRIDES={shlex.quote(text)}")
    return lines


def add_set_argument(parser) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="profile_set",
                        help="override one profile key (repeatable; VALUE as YAML), e.g. --set account=m1234 "
                             "--set qos=debug --set time_min=30 --set gpus_per_node=1")
