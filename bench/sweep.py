"""Sweep files: YAML (safe_load) whose keys are cell fields, expanded into validated cells.

Shape (docs/harness.md documents it for users)::

    description: free text                 # optional, ignored
    task: marked_recall                    # a plain key: the same value for every cell
    steps: 20
    model: [classical_mamba, quantum_mamba_gated]   # `model` may be a list (or `all`)
    grid:                                  # cartesian product of the lists
      seq_len: [16, 32]
      world_size: [1, 2]
    zip:                                   # lists taken in lockstep (a mapping, or a list of them)
      d_model: [16, 32]
      batch_size: [8, 16]
    models:                                # per-model blocks: same keys (no `model`, no `models`)
      quantum_mamba_gated:
        grid: {chunk_size: [4, 8]}         # replaces / adds axes for this model only
        hidden_dim: 32
    exclude:                               # drop cells matching every key of a rule
      - {model: classical_mamba, seq_len: 32}
      - {world_size: 2, seq_len: [16, 64]}  # a list matches any of its values

A per-model block overrides the top level key by key: a key set in the block (as a value, in its
grid or in its zip) replaces that key wherever the top level set it. Cells are normalised
(``bench.cell``) and de-duplicated by ``cell_id``, so a field the model ignores does not multiply
its cells. Exclude rules compare with the values as written (before ``chunk_size`` /
``quantum_steps`` are clamped to ``seq_len``); a field the model does not use reads as null.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .cell import CELL_FIELDS, Cell, cell_from_mapping, coerce, unknown_field
from .errors import UserError

SWEEP_KEYS = ("grid", "zip", "models", "exclude", "description")
MAX_POINTS = 200_000
SHIPPED = Path(__file__).resolve().parent / "sweeps"


@dataclass
class Level:
    fixed: dict = field(default_factory=dict)      # field -> value
    grid: dict = field(default_factory=dict)       # field -> list
    zips: list = field(default_factory=list)       # [ {field -> list (equal lengths)} ]
    exclude: list = field(default_factory=list)    # [ (where, {field -> [values]}) ]

    def keys(self) -> set:
        return set(self.fixed) | set(self.grid) | {k for z in self.zips for k in z}


@dataclass
class Sweep:
    source: str
    cells: list                       # validated, de-duplicated Cells in file order
    n_points: int = 0                 # combinations before exclusion and de-duplication
    n_excluded: int = 0
    n_duplicates: int = 0
    warnings: list = field(default_factory=list)
    description: str = ""


class _StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""


def _mapping_no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            dup = key in seen
        except TypeError:
            continue
        if dup:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                    key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_no_duplicates)


def resolve_sweep_path(name: str) -> Path:
    """A path, or the name of a shipped sweep (``smoke`` -> bench/sweeps/smoke.yaml)."""
    p = Path(name).expanduser()
    if p.exists():
        return p
    for cand in (SHIPPED / name, SHIPPED / f"{name}.yaml"):
        if cand.is_file():
            return cand
    shipped = sorted(q.stem for q in SHIPPED.glob("*.yaml"))
    raise UserError(f"sweep file {name}: no such file (shipped sweeps: {', '.join(shipped) or 'none'})")


def load_sweep(name) -> Sweep:
    path = resolve_sweep_path(str(name))
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # safe_load, but duplicate keys are an error
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_sweep(doc, source=str(path), base_dir=path.resolve().parent)


# ---------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------
def _model_names():
    from qssm import MODEL_NAMES
    return MODEL_NAMES


def _value(name: str, value: Any, where: str) -> Any:
    """Check one value of a field (type and simple range); `model` may be a model name."""
    if isinstance(value, (list, dict)):
        raise UserError(f"{where}{name}: expected a single value, got a {type(value).__name__}"
                        + (" (put lists under grid: or zip:)" if isinstance(value, list) else ""))
    try:
        v = coerce(name, value)
    except UserError as exc:
        raise UserError(f"{where}{exc}") from None
    if name == "model" and v not in _model_names():
        import difflib
        near = difflib.get_close_matches(v, _model_names(), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise UserError(f"{where}model={v!r} is not a known model{hint}; choose one of {', '.join(_model_names())}")
    return v


def _values(name: str, values: Any, where: str) -> list:
    if not isinstance(values, list):
        raise UserError(f"{where}{name}: expected a list of values, got {values!r} "
                        f"(write `{name}: {values!r}` at the top level for a fixed value)")
    if not values:
        raise UserError(f"{where}{name}: the list is empty; give at least one value")
    out = []
    for i, v in enumerate(values):
        if name == "model" and v == "all":
            out.extend(_model_names())
        else:
            out.append(_value(name, v, f"{where}{name}[{i}]: "))
    return out


def _check_key(key: Any, where: str) -> str:
    if not isinstance(key, str):
        raise UserError(f"{where}keys must be field names; got {key!r}")
    if key not in CELL_FIELDS:
        raise unknown_field(key, where)
    return key


def _parse_level(doc: dict, where: str, top: bool) -> tuple[Level, dict]:
    level, blocks = Level(), {}
    seen: dict[str, str] = {}

    def claim(key, how):
        if key in seen:
            raise UserError(f"{where}{key} is set twice ({seen[key]} and {how}); set each field once per level")
        seen[key] = how

    for key, value in doc.items():
        if key == "description" and top:
            if not isinstance(value, str):
                raise UserError(f"{where}description: expected text")
            continue
        if key == "grid":
            if not isinstance(value, dict) or not value:
                raise UserError(f"{where}grid: expected a non-empty mapping of field: [values]; got {value!r}")
            for k, vs in value.items():
                _check_key(k, f"{where}grid: ")
                if k == "model" and not top:
                    raise UserError(f"{where}grid: model cannot be set inside a models: block")
                claim(k, "in grid")
                level.grid[k] = _values(k, vs, f"{where}grid.")
        elif key == "zip":
            groups = value if isinstance(value, list) else [value]
            if not groups:
                raise UserError(f"{where}zip: expected a mapping of field: [values] (or a list of them); got []")
            for gi, group in enumerate(groups):
                gw = f"{where}zip" + (f"[{gi}]" if isinstance(value, list) else "")
                if not isinstance(group, dict) or not group:
                    raise UserError(f"{gw}: expected a non-empty mapping of field: [values]; got {group!r}")
                parsed = {}
                for k, vs in group.items():
                    _check_key(k, f"{gw}: ")
                    if k == "model" and not top:
                        raise UserError(f"{gw}: model cannot be set inside a models: block")
                    claim(k, "in zip")
                    parsed[k] = _values(k, vs, f"{gw}.")
                lengths = {k: len(v) for k, v in parsed.items()}
                if len(set(lengths.values())) > 1:
                    desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
                    raise UserError(f"{gw}: the lists must have the same length to go in lockstep; {desc}")
                level.zips.append(parsed)
        elif key == "exclude":
            rules = value if isinstance(value, list) else None
            if rules is None:
                raise UserError(f"{where}exclude: expected a list of rules like - {{model: X, seq_len: 64}}")
            for ri, rule in enumerate(rules):
                rw = f"{where}exclude[{ri}]: "
                if not isinstance(rule, dict) or not rule:
                    raise UserError(f"{rw}expected a non-empty mapping of field: value (or [values])")
                parsed = {}
                for k, vs in rule.items():
                    _check_key(k, rw)
                    items = vs if isinstance(vs, list) else [vs]
                    if not items:
                        raise UserError(f"{rw}{k}: the list is empty")
                    vals = []
                    for v in items:
                        if v is None:
                            vals.append(None)
                        elif k == "model" and v == "all":
                            vals.extend(_model_names())
                        else:
                            vals.append(_value(k, v, rw))
                    parsed[k] = vals
                level.exclude.append((f"{where}exclude[{ri}]", parsed))
        elif key == "models":
            if not top:
                raise UserError(f"{where}models: blocks cannot be nested")
            if not isinstance(value, dict) or not value:
                raise UserError(f"{where}models: expected a mapping of model name: {{settings}}")
            for name, block in value.items():
                bw = f"{where}models.{name}: "
                if name not in _model_names():
                    _value("model", name, f"{where}models: ")
                if block is None:
                    block = {}
                if not isinstance(block, dict):
                    raise UserError(f"{bw}expected a mapping of settings (like the top level)")
                blocks[name] = _parse_level(block, bw, top=False)[0]
        elif key in SWEEP_KEYS:
            raise UserError(f"{where}{key}: only allowed at the top level")
        else:
            _check_key(key, where)
            if key == "model" and not top:
                raise UserError(f"{where}model cannot be set inside a models: block (the block's name is the model)")
            claim(key, "as a value")
            if key == "model" and isinstance(value, list):
                level.grid["model"] = _values("model", value, where)
            elif key == "model" and value == "all":
                level.grid["model"] = list(_model_names())
            else:
                level.fixed[key] = _value(key, value, where)
    return level, blocks


def _merge(top: Level, block: Level | None) -> Level:
    if block is None:
        return Level(dict(top.fixed), dict(top.grid), [dict(z) for z in top.zips], list(top.exclude))
    over = block.keys()
    fixed = {k: v for k, v in top.fixed.items() if k not in over}
    grid = {k: v for k, v in top.grid.items() if k not in over}
    zips = []
    for z in top.zips:
        kept = {k: v for k, v in z.items() if k not in over}
        if kept:
            zips.append(kept)
    fixed.update(block.fixed)
    grid.update(block.grid)
    zips.extend(dict(z) for z in block.zips)
    return Level(fixed, grid, zips, list(top.exclude) + list(block.exclude))


def _models_of(top: Level, blocks: dict, where: str) -> list[str]:
    if "model" in top.fixed:
        models = [top.fixed["model"]]
    elif "model" in top.grid:
        models = list(dict.fromkeys(top.grid["model"]))
    else:
        zipped = [z["model"] for z in top.zips if "model" in z]
        models = list(dict.fromkeys(zipped[0])) if zipped else list(blocks)
    if not models:
        raise UserError(f"{where}no model given: set `model: NAME`, `model: [A, B]`, `model: all`, "
                        "or give a `models:` block per model")
    extra = [m for m in blocks if m not in models]
    if extra:
        raise UserError(f"{where}models.{extra[0]}: {extra[0]} is not among this sweep's models "
                        f"({', '.join(models)}); add it to `model:` or remove the block")
    return models


def _points(level: Level, model: str):
    """Yield (raw field dict, varying-fields description) for one model."""
    grid = {k: v for k, v in level.grid.items() if k != "model"}
    zips = []
    for z in level.zips:
        if "model" in z:
            idx = [i for i, m in enumerate(z["model"]) if m == model]
            z = {k: [v[i] for i in idx] for k, v in z.items() if k != "model"}
            if not idx:
                return
        if z:
            zips.append(z)
    gkeys = list(grid)
    for combo in itertools.product(*(grid[k] for k in gkeys)):
        for pos in itertools.product(*(range(len(next(iter(z.values())))) for z in zips)):
            raw = dict(level.fixed)
            raw.pop("model", None)
            raw.update(zip(gkeys, combo))
            for z, i in zip(zips, pos):
                raw.update({k: v[i] for k, v in z.items()})
            raw["model"] = model
            yield raw


def _n_points(level: Level, model: str) -> int:
    n = 1
    for k, v in level.grid.items():
        if k != "model":
            n *= len(v)
    for z in level.zips:
        if "model" in z:
            n *= sum(1 for m in z["model"] if m == model)
        else:
            n *= len(next(iter(z.values())))
    return n


def _describe(raw: dict, level: Level) -> str:
    varying = ["model"] + [k for k in level.grid if k != "model"] + [k for z in level.zips for k in z if k != "model"]
    return ", ".join(f"{k}={raw[k]!r}" if isinstance(raw[k], str) and k != "model" else f"{k}={raw[k]}"
                     for k in dict.fromkeys(varying) if k in raw)


def _match_value(cell: Cell, raw: dict, key: str):
    v = getattr(cell, key)
    if v is None:
        return None
    if key in raw:
        return coerce(key, raw[key])
    return v


def _rebase_file_tasks(node, base_dir: Path):
    """`task: file:REL` in a sweep file: relative to the sweep file's folder when the file is
    there, else to the working directory."""
    if isinstance(node, dict):
        return {k: (_rebase_one(v, base_dir) if k == "task" else _rebase_file_tasks(v, base_dir))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase_file_tasks(v, base_dir) for v in node]
    return node


def _rebase_one(value, base_dir: Path):
    if isinstance(value, list):
        return [_rebase_one(v, base_dir) for v in value]
    if isinstance(value, str) and value.startswith("file:"):
        raw = Path(value[len("file:"):].strip()).expanduser()
        if raw.parts and not raw.is_absolute() and (base_dir / raw).exists():
            return f"file:{base_dir / raw}"
    return value


def parse_sweep(doc: Any, source: str = "sweep", base_dir: Path | None = None) -> Sweep:
    where = f"{source}: "
    if base_dir is not None:
        doc = _rebase_file_tasks(doc, base_dir)
    if doc is None:
        raise UserError(f"{where}the sweep file is empty")
    if not isinstance(doc, dict):
        raise UserError(f"{where}expected a mapping of cell fields (and grid/zip/models/exclude) at the "
                        f"top level; got a {type(doc).__name__}")
    top, blocks = _parse_level(doc, where, top=True)
    models = _models_of(top, blocks, where)
    sweep = Sweep(source=source, cells=[], description=str(doc.get("description") or ""))
    levels = {m: _merge(top, blocks.get(m)) for m in models}
    total = sum(_n_points(levels[m], m) for m in models)
    if total > MAX_POINTS:
        raise UserError(f"{where}the sweep expands to {total} combinations (limit {MAX_POINTS}); split it")
    rule_hits: dict[str, int] = {}
    for _, rules in [(None, top.exclude)] + [(m, b.exclude) for m, b in blocks.items()]:
        for rw, _rule in rules:
            rule_hits.setdefault(rw, 0)
    seen: set[str] = set()
    for m in models:
        level = levels[m]
        for raw in _points(level, m):
            sweep.n_points += 1
            cell = cell_from_mapping(raw, where=f"{where}cell {_describe(raw, level)}: ")
            excluded = False
            for rw, rule in level.exclude:
                if all(_match_value(cell, raw, k) in vals for k, vals in rule.items()):
                    rule_hits[rw] += 1
                    excluded = True
            if excluded:
                sweep.n_excluded += 1
                continue
            if cell.cell_id in seen:
                sweep.n_duplicates += 1
                continue
            seen.add(cell.cell_id)
            sweep.cells.append(cell)
    for rw, hits in rule_hits.items():
        if hits == 0:
            sweep.warnings.append(f"{rw} matches no cell")
    if not sweep.cells:
        raise UserError(f"{where}no cells left to run: all {sweep.n_points} combinations are excluded")
    return sweep
