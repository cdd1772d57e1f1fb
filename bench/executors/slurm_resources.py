"""SLURM resources: the shape of one job array (nodes, ranks and GPUs per node) for the cells of
a sweep, and the sbatch options a site profile (``bench.profiles``) gives it.

A cell of ``world_size`` W and ``nodes`` N runs as one array task of W SLURM tasks (ranks), W/N on
each of N nodes; CUDA cells take one GPU per rank (W/N at most ``gpus_per_node``). Cells
with the same shape share an array (``group_cells``). With a profile's ``pack: true`` (sites whose
QOS allocates whole nodes), one-GPU cells are packed: an array task takes a whole node and runs
``gpus_per_node`` cells side by side on it, one per GPU (``Shape.cells_per_task``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class Shape:
    """What one array task of a group asks for."""
    nodes: int
    tasks_per_node: int       # ranks per node
    gpus_per_node: int        # 0 for CPU cells
    world_size: int
    device: str
    cells_per_task: int = 1   # > 1: that many one-rank cells side by side (packing)


def shape_of(cell, profile) -> Shape:
    """The resources of one cell under a profile (UserError when the profile cannot run it)."""
    w, n = cell.world_size, cell.nodes
    if cell.device != "cuda":
        return Shape(n, w // n, 0, w, cell.device)
    gpn = profile.gpus_per_node
    if gpn < 1:
        raise UserError(f"device=cuda ({cell.label()}): profile {profile.name!r} has gpus_per_node=0; "
                        "choose a GPU profile (e.g. --profile gpu-generic) or set device: cpu")
    if n > 1:   # the cell says how its ranks are spread
        if w // n > gpn:
            raise UserError(f"world_size={w} over nodes={n} ({cell.label()}) needs {w // n} GPUs per node; "
                            f"profile {profile.name!r} has gpus_per_node={gpn}: use more nodes or fewer ranks")
        return Shape(n, w // n, w // n, w, "cuda")
    if w == 1 and profile.pack and gpn > 1:
        return Shape(1, gpn, gpn, 1, "cuda", cells_per_task=gpn)
    if w > gpn:
        need = -(-w // gpn)
        raise UserError(f"world_size={w} with device=cuda ({cell.label()}) needs more GPUs than one node of profile "
                        f"{profile.name!r} has ({gpn}); spread it over nodes: set nodes: {need}"
                        + ("" if w % need == 0 else f" and a world_size that is a multiple of {need}"))
    return Shape(1, w, w, w, "cuda")


def shape_tag(shape: Shape) -> str:
    """A short name for one array's shape, unique within a sweep: w2, w4-n2, w1-cuda."""
    return (f"w{shape.world_size}" + (f"-n{shape.nodes}" if shape.nodes > 1 else "")
            + ("-cuda" if shape.device == "cuda" else ""))


def group_cells(cells, profile) -> dict:
    """{Shape: [cells]} in the order the shapes first appear."""
    groups: dict = {}
    for c in cells:
        groups.setdefault(shape_of(c, profile), []).append(c)
    return groups


def packs(cells: list, shape: Shape) -> list[list]:
    """The cells of one array in array tasks: one each, or ``cells_per_task`` each (packing)."""
    k = max(1, shape.cells_per_task)
    return [cells[i:i + k] for i in range(0, len(cells), k)]


def throttles(groups: dict, max_concurrent: int) -> dict:
    """{Shape: N}: the profile's ``max_concurrent`` shared by the arrays of one sweep, in proportion
    to their task counts (each at least 1), so the whole sweep runs at most about that many tasks
    at once rather than that many per array."""
    total = sum(len(g) for g in groups.values()) or 1
    out = {s: max(1, min(len(g), int(max_concurrent * len(g) / total))) for s, g in groups.items()}
    spare = max_concurrent - sum(out.values())
    for s, g in sorted(groups.items(), key=lambda kv: -len(kv[1])):   # hand out what rounding left
        if spare <= 0:
            break
        if out[s] < len(g):
            out[s] += 1
            spare -= 1
    return out


def sbatch_options(profile, shape: Shape) -> dict:
    """The sbatch options (long names, no dashes) of one array's tasks, in a fixed order."""
    opts: dict = {"nodes": shape.nodes, "ntasks-per-node": shape.tasks_per_node,
                  "cpus-per-task": profile.cpus_per_task}
    if shape.gpus_per_node:
        opts["gpus-per-node"] = shape.gpus_per_node
    if profile.mem_gb is not None:
        opts["mem"] = mem_option(profile.mem_gb)
    elif profile.mem_per_gpu_gb is not None and shape.gpus_per_node:
        opts["mem-per-gpu"] = mem_option(profile.mem_per_gpu_gb)
    elif profile.mem_per_cpu_gb is not None:
        opts["mem-per-cpu"] = mem_option(profile.mem_per_cpu_gb)
    opts["time"] = profile.time_min
    for key in ("partition", "account", "qos", "constraint"):
        if getattr(profile, key):
            opts[key] = getattr(profile, key)
    for key, value in profile.extra_sbatch.items():
        opts[str(key).lstrip("-")] = value
    return opts


def mem_option(mem_gb: float) -> str:
    return f"{int(mem_gb)}G" if float(mem_gb) == int(mem_gb) else f"{int(round(mem_gb * 1024))}M"


def pythonpath_setup() -> list[str]:
    """Setup lines that make ``bench`` importable in a job when it is used from a checkout rather
    than installed (PYTHONPATH); nothing when qssm-bench is installed in the interpreter."""
    from importlib import metadata
    root = Path(__file__).resolve().parents[2]
    try:
        dist = metadata.distribution("qssm-bench")
        if dist is not None:
            return []
    except metadata.PackageNotFoundError:
        pass
    return [f'export PYTHONPATH="{root}${{PYTHONPATH:+:$PYTHONPATH}}"']
