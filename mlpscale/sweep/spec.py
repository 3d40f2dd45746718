"""The sweep spec: its schema (typed dataclasses read by config.py's machinery, like a training config)
and `read_spec`, which checks it and resolves its files into a `Spec`."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import CONFIG_DIR, from_dict, read_text, resolve_config_path
from ..errors import UserError

RESERVED = ("run.name", "run.out_dir")          # the sweep places the run folders itself


# --- the schema, as written in the YAML file ---------------------------------------------------------

@dataclass
class ProbeSection:
    """`measure: {probe: {...}}`: a fine-tune per point."""
    config: str | None = None    # fine-tune config file (a path or a bare name in configs/); none: the mode's recipe
    set: Any = None              # overrides of it: the target dataset and anything else ({a.b: value} or ["a.b=value"])
    mode: str = "linear"         # linear (a probe: body frozen, head trained; the paper's) or full


@dataclass
class LocalSection:
    """`local:` defaults of the local launcher."""
    jobs: int | None = None      # runs at a time (default 1)
    threads: int | None = None   # CPU threads per run (default: cores / jobs)


@dataclass
class SlurmSection:
    """`slurm:` submitit resources of --launcher slurm."""
    partition: str | None = None          # slurm partition
    account: str | None = None            # slurm account
    qos: str | None = None                # slurm QOS
    constraint: str | None = None         # slurm node constraint
    gpus_per_node: int | None = None      # GPUs per job (>1: training runs under torchrun)
    cpus_per_task: int | None = None      # CPU cores per job
    mem_gb: int | None = None             # memory per job in GB
    timeout_min: int | None = None        # time limit per job
    array_parallelism: int | None = None  # jobs of the array running at once
    max_num_timeout: int = 30             # requeues after a timeout
    signal_delay_s: int = 120             # seconds between the warning signal and the end of the time limit
    setup: tuple[str, ...] = ()           # shell lines run before each job (module load ..., source venv)
    additional: dict = field(default_factory=dict)  # other sbatch options as {option: value}


@dataclass
class PrepareStep:
    """One `prepare:` step (a bare string is a `run:`)."""
    run: Any = None              # a command line (mlpscale-* tools resolve next to this Python)
    python: str | None = None    # module:function, called with `args`
    args: dict = field(default_factory=dict)  # keyword arguments of `python`
    creates: str | None = None   # a path; the step is skipped when it exists


@dataclass
class SpecFile:
    name: str | None = None      # sweep name; SWEEP_DIR defaults to runs/sweeps/<name> (default: the file's stem)
    base: str | None = None      # training config file: a path (also relative to the spec), or a bare name in configs/
    set: Any = None              # overrides of the base config for every point: {a.b: value} or ["a.b=value", ...]
    grid: Any = None             # {a.b: [values]} expanded as a product (or a list of such mappings, concatenated)
    names: Any = None            # {a.b: prefix, or false to leave it out} for point names (defaults: NAME_PREFIX)
    measure: Any = "test"        # 'test' (the run's own test top-1) or {probe: {config, set, mode}}, a fine-tune
    reuse_epochs: str = "auto"   # auto (one run to max(T) per point when the schedule allows it) or off
    local: LocalSection = field(default_factory=LocalSection, metadata={"section": True})
    slurm: SlurmSection = field(default_factory=SlurmSection, metadata={"section": True})
    prepare: Any = None          # data-preparation steps run by --prepare: [{run: COMMAND | python: module:func, ...}]


# --- the resolved spec ---------------------------------------------------------------------------------

@dataclass
class Measure:
    kind: str                                    # "test" | "probe"
    config: str | None = None                    # fine-tune config file (absolute), or None
    sets: list[str] = field(default_factory=list)
    mode: str = "linear"


@dataclass
class Spec:
    path: str
    name: str
    base: str                                    # absolute path of the training config
    sets: list[str]
    grid: list[dict]                             # [{field: [values]}]
    names: dict
    measure: Measure
    reuse_epochs: str = "auto"
    local: LocalSection = field(default_factory=LocalSection)
    slurm: SlurmSection = field(default_factory=SlurmSection)
    prepare: list[PrepareStep] = field(default_factory=list)


def yaml_value(v) -> str:
    """A value as `--set` parses it back (YAML flow style): 1e-05 -> 1.0e-05, [0.6, 1] -> [0.6, 1]."""
    text = yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
    return text[:-3].strip() if text.endswith("...") else text


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _overrides(value, where: str) -> list[str]:
    """`set:` as `--set` strings: a mapping {a.b: v} (nested mappings are flattened) or ["a.b=v", ...]."""
    if value is None:
        return []
    if isinstance(value, dict):
        items = [f"{k}={yaml_value(v)}" for k, v in flatten(value).items()]
    elif isinstance(value, list) and all(isinstance(x, str) and "=" in x for x in value):
        items = list(value)
    else:
        raise UserError(f"{where} must be a mapping {{section.field: value}} or a list of \"section.field=value\" "
                        f"strings, e.g. {{optim.lr: 1.0e-5}}")
    for it in items:
        if it.split("=", 1)[0].strip() in RESERVED:
            raise UserError(f"{where}: {it.split('=', 1)[0]} is set by the sweep (runs go to SWEEP_DIR/points/<name>); "
                            f"remove it, or choose SWEEP_DIR with --out")
    return items


def _resolve_file(path: str, spec_dir: str, what: str) -> str:
    """A config file: as given (absolute or relative to the working folder), next to the spec, or a bare
    name in configs/."""
    p = Path(path)
    if not p.is_absolute() and not p.is_file() and (Path(spec_dir) / p).is_file():
        p = Path(spec_dir) / p
    try:
        return str(resolve_config_path(str(p)).resolve())
    except UserError as e:
        raise UserError(f"{what}: {e}") from None


def read_spec(path: str, extra_sets: list[str] = ()) -> Spec:
    """Read and check a sweep spec (a path, or a bare name of a shipped spec, as config names resolve);
    every problem is one UserError naming the spec and the key. `extra_sets` (the command line's --set)
    come after the spec's `set:`."""
    path = str(resolve_config_path(path, "sweeps", "sweep spec"))
    try:
        raw = yaml.safe_load(read_text(path, "a sweep spec is YAML"))
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    where = str(path)
    f = from_dict(SpecFile, raw if raw is not None else {}, where)
    spec_dir = os.path.dirname(os.path.abspath(path))
    if not f.base:
        raise UserError(f"{where}: 'base' is missing: name the training config every point starts from "
                        f"(e.g. base: bmlp6.yaml, a file in {CONFIG_DIR})")
    base = _resolve_file(f.base, spec_dir, f"{where}: base")
    name = f.name or Path(path).stem
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise UserError(f"{where}: name '{name}' may use letters, digits and . _ + - only")
    for k, v in (("jobs", f.local.jobs), ("threads", f.local.threads)):
        if v is not None and v < 1:
            raise UserError(f"{where}: local.{k} must be a whole number >= 1, got {v!r}")
    if f.reuse_epochs not in ("auto", "off"):
        raise UserError(f"{where}: reuse_epochs must be auto or off, got '{f.reuse_epochs}'")
    sets = _overrides(f.set, f"{where}: set") + _overrides(list(extra_sets), "--set")
    return Spec(os.path.abspath(path), name, base, sets, _grid(f.grid, where),
                _names(f.names, where), _measure(f.measure, spec_dir, where), f.reuse_epochs, f.local, f.slurm,
                _prepare(f.prepare, where))


def _grid(grid_raw, where: str) -> list[dict]:
    grids = grid_raw if isinstance(grid_raw, list) else [grid_raw or {}]
    grid = []
    for i, g in enumerate(grids):
        gw = f"{where}: grid" + (f"[{i}]" if isinstance(grid_raw, list) else "")
        if not isinstance(g, dict):
            raise UserError(f"{gw} must be a mapping of config fields to lists of values, e.g. "
                            f"{{model.arch: [B_6-Wi_256, B_12-Wi_256], train.epochs: [50, 100]}}")
        g = flatten(g)
        for k, vals in g.items():
            if k in RESERVED:
                raise UserError(f"{gw}: {k} is set by the sweep; remove it from the grid")
            if "." not in k:
                raise UserError(f"{gw}: '{k}' is not a config field; write section.field, e.g. model.arch")
            if not isinstance(vals, list) or not vals:
                raise UserError(f"{gw}: {k} must be a non-empty list of values, e.g. {k}: [{yaml_value(vals)}]")
        grid.append(g)
    return grid


def _names(names, where: str) -> dict:
    names = names or {}
    if not isinstance(names, dict) or not all(v is False or isinstance(v, (str, type(None))) for v in names.values()):
        raise UserError(f"{where}: names must map config fields to name prefixes (or false: not in names), "
                        f"e.g. {{data.n_train: n, train.seed: false}}")
    return {k: (v if v is False else v or "") for k, v in flatten(names).items()}


def _measure(m, spec_dir: str, where: str) -> Measure:
    if m == "test":
        return Measure("test")
    if not (isinstance(m, dict) and set(m) == {"probe"}):
        raise UserError(f"{where}: measure must be 'test' (the run's own test accuracy) or a mapping "
                        f"{{probe: {{config: FILE, set: {{...}}, mode: linear}}}}")
    p = from_dict(ProbeSection, m["probe"] or {}, f"{where}: measure.probe")
    if p.mode not in ("linear", "full"):
        raise UserError(f"{where}: measure.probe.mode must be linear or full, got '{p.mode}'")
    cfg = _resolve_file(p.config, spec_dir, f"{where}: measure.probe.config") if p.config else None
    sets = _overrides(p.set, f"{where}: measure.probe.set")
    if any(s.split("=", 1)[0].strip() in ("finetune.from", "finetune.mode") for s in sets):
        raise UserError(f"{where}: measure.probe.set: finetune.from and finetune.mode are set by the sweep "
                        f"(use measure.probe.mode)")
    return Measure("probe", cfg, sets, p.mode)


def _prepare(prepare, where: str) -> list[PrepareStep]:
    prepare = prepare or []
    if not isinstance(prepare, list):
        raise UserError(f"{where}: prepare must be a list of steps, each {{run: COMMAND, creates: PATH}}")
    steps = []
    for i, st in enumerate(prepare):
        st = from_dict(PrepareStep, {"run": st} if isinstance(st, str) else st, f"{where}: prepare[{i}]")
        if (st.run is not None) == (st.python is not None):
            raise UserError(f"{where}: prepare[{i}] needs exactly one of run (a command) or python (module:function)")
        if st.python is not None and ":" not in st.python:
            raise UserError(f"{where}: prepare[{i}].python must look like module:function, got '{st.python}'")
        steps.append(st)
    return steps
