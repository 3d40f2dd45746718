"""`mlpscale-sweep SPEC.yaml [--launcher local|slurm|submitit-local] [--jobs N] [--out DIR] [--prepare]
[--print-commands] [--dry-run] [--collect] [--wait]`: a grid of training runs, each measured, into one
results.csv for `mlpscale-scaling` (the paper's scaling study, Section 4).

A spec (YAML; keys checked when read, see SPEC_KEYS):

    base: bmlp6.yaml                 # training config: a path, or a bare name in configs/
    set: {optim.lr: 1.0e-5}          # overrides for every point (also a list of "a.b=v" strings)
    grid:                            # dotted config fields -> values; their product is the set of points
      model.arch: [B_6-Wi_256, B_12-Wi_256]
      data.n_train: [100000, 1000000]
      train.epochs: [50, 100]
    measure: {probe: {config: FILE, set: {data.dataset: cifar100}, mode: linear}}   # or: test

Each point has a stable, readable name built from its grid fields in grid order, the epochs last:
`B_6-Wi_256__n100000__e50` (prefixes in NAME_PREFIX, or the spec's `names:`). `grid` may also be a
list of such mappings (their products are concatenated).

SWEEP_DIR (`--out`, default runs/sweeps/<spec name>) holds:
    spec.yaml            the resolved spec and its points
    points/<unit>/       training run folders (mlpscale-train), one per training run (see reuse below)
    probes/<point>/      probe run folders (mlpscale-finetune), one per point with `measure: probe`
    state/<unit>/        a lock (the unit is running somewhere) and status.json (the last failure)
    results.csv          arch,params,n_train,epochs,compute_pflops,error (a fraction, 1 - top-1),
                         name,test_top1,probe_top1,status,run_dir,probe_dir and the other grid fields;
                         rewritten atomically whenever a point finishes

Re-running the same command finishes a half-done sweep: finished points are skipped (training: its
summary.json says finished for the requested epochs; probe: its summary.json says finished, from that
checkpoint, written after it), a run with a last.pt continues with `--resume`, failed and interrupted
ones are retried (a failed probe does not stop the other Ts of its run). A point folder whose
config.yaml differs from what the spec asks for (beyond the epoch count and speed knobs) stops the
sweep before anything runs: the spec changed under it.

Reuse across epochs. When the grid varies train.epochs and the run's learning rate does not depend on
the run length (`optim.schedule: constant`; `optim.warmup_epochs` counts epochs, not a fraction of the
total, so any warmup is fine), the points that differ only in T share one training run to max(T) that
keeps `epoch_<T>.pt` for every T of the grid (`train.keep_every` = gcd of the Ts, or the list itself
where config.py offers `train.keep_epochs`; epoch files of other epochs are deleted when the run has
finished), and each T is probed from its kept checkpoint. This is
exact, not an approximation: the data order, augmentation and learning rate of step s are pure
functions of (seed, epoch, step), so the weights after T epochs of the long run are bit-identical to
those of a separate T-epoch run (tests/test_sweep.py checks it). A cosine schedule depends on the total
length, so there each T trains separately (one note says so); `reuse_epochs: off` asks for that too.
The compute of the point at T is the paper's C at T: paper_flops_per_forward x 3 x N x T.

Launchers:
  local           each run as a subprocess `mlpscale-train` / `mlpscale-finetune` (the console scripts
                  next to sys.executable), one unit after another or `--jobs N` at a time; each job
                  gets cores/N threads. Ctrl-C (or SIGTERM) is passed on once: the runs save last.pt,
                  and the same command continues them.
  slurm           a submitit job array (`slurm:` holds the resources), one job per training unit: it
                  trains, then probes, then rewrites results.csv. Jobs are checkpointable: on
                  preemption or timeout the running command is stopped with SIGTERM (it saves
                  last.pt), and the job is requeued and resumes. submitit is optional: pip install submitit.
  submitit-local  the same jobs through submitit's LocalExecutor on this machine (testing the job path).
  --print-commands  one shell line per unit (`mlpscale-train ... && mlpscale-finetune ...`) for any
                  other scheduler; nothing runs.

Data preparation: `--prepare` first runs the spec's `prepare:` steps (a command, or a Python function
`module:function` with `args`), each skipped when the path in its `creates` exists. `--dry-run` checks
the spec and lists what would run; `--collect` only rebuilds results.csv from the folders.

Exit codes: 0 every point finished (slurm without --wait: the jobs were submitted), 1 some point failed
(its log is named), 2 a user error, 130 / 143 interrupted (the runs saved their last.pt).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import csv
import dataclasses
import fcntl
import functools
import importlib
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .config import CONFIG_DIR, Config, load_config, read_text, resolve_config_path, to_dict
from .errors import UserError, cli_entry
from .format import FolderLock, atomic_file, write_json_atomic, write_text_atomic

# --- the spec ---------------------------------------------------------------------------------------

SPEC_KEYS = {
    "name": "sweep name; SWEEP_DIR defaults to runs/sweeps/<name> (default: the spec file's stem)",
    "base": "training config file: a path (also relative to the spec), or a bare name in configs/",
    "set": "overrides of the base config for every point: {a.b: value} or [\"a.b=value\", ...]",
    "grid": "{a.b: [values]} expanded as a product (or a list of such mappings, concatenated)",
    "names": "{a.b: prefix, or false to leave it out} for point names (defaults: NAME_PREFIX)",
    "measure": "'test' (the run's own test top-1) or {probe: {config, set, mode}} (a fine-tune per point)",
    "reuse_epochs": "auto (one run to max(T) per point when the schedule allows it) or off",
    "local": "{jobs, threads}: defaults of the local launcher",
    "slurm": "submitit resources of --launcher slurm (see SLURM_KEYS)",
    "prepare": "data-preparation steps run by --prepare: [{run: COMMAND | python: module:function, args, creates}]",
}
PROBE_KEYS = {
    "config": "fine-tune config file (a path or a bare name in configs/); default: none (the mode's recipe)",
    "set": "overrides of it: the target dataset and anything else ({a.b: value} or [\"a.b=value\"])",
    "mode": "linear (a probe: body frozen, head trained; the paper's) or full",
}
LOCAL_KEYS = {"jobs": "runs at a time (default 1)", "threads": "CPU threads per run (default: cores / jobs)"}
SLURM_KEYS = {
    "partition": "slurm partition", "account": "slurm account", "qos": "slurm QOS",
    "constraint": "slurm node constraint", "gpus_per_node": "GPUs per job (>1: training runs under torchrun)",
    "cpus_per_task": "CPU cores per job", "mem_gb": "memory per job in GB", "timeout_min": "time limit per job",
    "array_parallelism": "jobs of the array running at once", "max_num_timeout": "requeues after a timeout (default 30)",
    "signal_delay_s": "seconds between the warning signal and the end of the time limit (default 120)",
    "setup": "shell lines run before each job (module load ..., source venv)",
    "additional": "other sbatch options as {option: value}",
}
PREPARE_KEYS = {"run": "a command line (mlpscale-* tools resolve next to this Python)",
                "python": "module:function, called with `args`", "args": "keyword arguments of `python`",
                "creates": "a path; the step is skipped when it exists"}

# How a grid field appears in point names: model.arch B_6-Wi_256, data.n_train n1000, train.epochs e50.
NAME_PREFIX = {"model.arch": "", "data.n_train": "n", "train.epochs": "e", "optim.lr": "lr",
               "optim.weight_decay": "wd", "train.batch_size": "bs", "train.seed": "seed", "data.dataset": "",
               "data.res": "r", "data.subset_seed": "ss", "aug.mixup": "mix", "optim.name": ""}
RESERVED = ("run.name", "run.out_dir")          # the sweep places the run folders itself
STATUS = ("finished", "running", "trained", "interrupted", "failed", "pending")

# config fields a resumed or extended run may change: length, checkpointing, speed, logging, paths
SAME_RESULT = re.compile(r"^(run\..*|train\.(epochs|keep_every|keep_epochs|eval_every|ckpt_every|log_every|"
                         r"device|compile|prefetch|peak_tflops)|data\.(root|resident|resident_max_gb|host_max_gb|"
                         r"workers|os_cache))$")
# ... and a probe: the fine-tuner writes what its checkpoint resolved
PROBE_SAME = re.compile(SAME_RESULT.pattern[:-2] + r"|model\..*|data\.crop_res|finetune\.from)$")


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
    local: dict = field(default_factory=dict)
    slurm: dict = field(default_factory=dict)
    prepare: list[dict] = field(default_factory=list)


def _unknown(where: str, key, valid: dict) -> UserError:
    return UserError(f"{where}: unknown key '{key}'; valid keys are {', '.join(valid)}")


def _check_keys(d, valid: dict, where: str) -> dict:
    if not isinstance(d, dict):
        raise UserError(f"{where} must be a mapping with the keys {', '.join(valid)}")
    for k in d:
        if k not in valid:
            raise _unknown(where, k, valid)
    return d


def _yaml_value(v) -> str:
    """A value as `--set` parses it back (YAML flow style): 1e-05 -> 1.0e-05, [0.6, 1] -> [0.6, 1]."""
    text = yaml.safe_dump(v, default_flow_style=True, width=10**6).strip()
    return text[:-3].strip() if text.endswith("...") else text


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _overrides(value, where: str) -> list[str]:
    """`set:` as `--set` strings: a mapping {a.b: v} (nested mappings are flattened) or ["a.b=v", ...]."""
    if value is None:
        return []
    if isinstance(value, dict):
        items = [f"{k}={_yaml_value(v)}" for k, v in _flatten(value).items()]
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


def read_spec(path: str) -> Spec:
    """Read and check a sweep spec; every problem is one UserError naming the spec and the key."""
    if not os.path.isfile(path):
        raise UserError(f"sweep spec {path} not found; pass a YAML file like configs/sweeps/mini_cpu.yaml")
    try:
        raw = yaml.safe_load(read_text(path, "a sweep spec is YAML"))
    except yaml.YAMLError as e:
        raise UserError(f"{path} is not valid YAML: {str(e).splitlines()[0]}") from None
    where = str(path)
    _check_keys(raw if raw is not None else {}, SPEC_KEYS, where)
    raw = raw or {}
    spec_dir = os.path.dirname(os.path.abspath(path))
    if not raw.get("base"):
        raise UserError(f"{where}: 'base' is missing: name the training config every point starts from "
                        f"(e.g. base: bmlp6.yaml, a file in {CONFIG_DIR})")
    base = _resolve_file(str(raw["base"]), spec_dir, f"{where}: base")
    name = str(raw.get("name") or Path(path).stem)
    if not re.fullmatch(r"[A-Za-z0-9._+-]+", name):
        raise UserError(f"{where}: name '{name}' may use letters, digits and . _ + - only")

    grid_raw = raw.get("grid")
    grids = grid_raw if isinstance(grid_raw, list) else [grid_raw or {}]
    grid = []
    for i, g in enumerate(grids):
        gw = f"{where}: grid" + (f"[{i}]" if isinstance(grid_raw, list) else "")
        if not isinstance(g, dict):
            raise UserError(f"{gw} must be a mapping of config fields to lists of values, e.g. "
                            f"{{model.arch: [B_6-Wi_256, B_12-Wi_256], train.epochs: [50, 100]}}")
        g = _flatten(g)
        for k, vals in g.items():
            if k in RESERVED:
                raise UserError(f"{gw}: {k} is set by the sweep; remove it from the grid")
            if "." not in k:
                raise UserError(f"{gw}: '{k}' is not a config field; write section.field, e.g. model.arch")
            if not isinstance(vals, list) or not vals:
                raise UserError(f"{gw}: {k} must be a non-empty list of values, e.g. {k}: [{_yaml_value(vals)}]")
        grid.append(g)

    names = raw.get("names") or {}
    if not isinstance(names, dict) or not all(v is False or isinstance(v, (str, type(None))) for v in names.values()):
        raise UserError(f"{where}: names must map config fields to name prefixes (or false: not in names), "
                        f"e.g. {{data.n_train: n, train.seed: false}}")
    names = {k: (v if v is False else v or "") for k, v in _flatten(names).items()}

    m = raw.get("measure", "test")
    if m == "test":
        measure = Measure("test")
    elif isinstance(m, dict) and set(m) == {"probe"}:
        p = _check_keys(m["probe"] or {}, PROBE_KEYS, f"{where}: measure.probe")
        mode = p.get("mode", "linear")
        if mode not in ("linear", "full"):
            raise UserError(f"{where}: measure.probe.mode must be linear or full, got '{mode}'")
        cfg = _resolve_file(str(p["config"]), spec_dir, f"{where}: measure.probe.config") if p.get("config") else None
        sets = _overrides(p.get("set"), f"{where}: measure.probe.set")
        if any(s.split("=", 1)[0].strip() in ("finetune.from", "finetune.mode") for s in sets):
            raise UserError(f"{where}: measure.probe.set: finetune.from and finetune.mode are set by the sweep "
                            f"(use measure.probe.mode)")
        measure = Measure("probe", cfg, sets, mode)
    else:
        raise UserError(f"{where}: measure must be 'test' (the run's own test accuracy) or a mapping "
                        f"{{probe: {{config: FILE, set: {{...}}, mode: linear}}}}")

    reuse = str(raw.get("reuse_epochs", "auto"))
    if reuse not in ("auto", "off"):
        raise UserError(f"{where}: reuse_epochs must be auto or off, got '{reuse}'")
    local = _check_keys(raw.get("local") or {}, LOCAL_KEYS, f"{where}: local")
    for k, v in local.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise UserError(f"{where}: local.{k} must be a whole number >= 1, got {v!r}")
    slurm = _check_keys(raw.get("slurm") or {}, SLURM_KEYS, f"{where}: slurm")
    prepare = raw.get("prepare") or []
    if not isinstance(prepare, list):
        raise UserError(f"{where}: prepare must be a list of steps, each {{run: COMMAND, creates: PATH}}")
    steps = []
    for i, st in enumerate(prepare):
        st = {"run": st} if isinstance(st, str) else st
        _check_keys(st, PREPARE_KEYS, f"{where}: prepare[{i}]")
        if ("run" in st) == ("python" in st):
            raise UserError(f"{where}: prepare[{i}] needs exactly one of run (a command) or python (module:function)")
        if "python" in st and ":" not in str(st["python"]):
            raise UserError(f"{where}: prepare[{i}].python must look like module:function, got '{st['python']}'")
        steps.append(st)
    return Spec(os.path.abspath(path), name, base, _overrides(raw.get("set"), f"{where}: set"), grid, names,
                measure, reuse, local, slurm, steps)


# --- points and units --------------------------------------------------------------------------------

@dataclass
class Point:
    """One row of results.csv: a configuration trained for `epochs` and measured."""
    name: str
    values: dict                                 # grid field -> value
    overrides: list[str]                         # spec set + grid values ("a.b=v")
    epochs: int
    group: str = ""                              # the name without its epochs part
    unit: str = ""                               # training run (folder under points/)


@dataclass
class Unit:
    """One training run and the points measured from it (several with reuse across epochs)."""
    name: str
    overrides: list[str]                         # of the run: spec set + grid values, epochs = the run's
    epochs: int
    points: list[Point]
    reuse: bool                                  # the points' Ts come from kept epoch_<T>.pt
    extra: list[str] = field(default_factory=list)   # --set of the sweep: epochs, keep_every, eval_every, ...
    keep_user: int = 0                           # train.keep_every of the spec (its files are kept)
    cfg: dict = field(default_factory=dict)      # resolved config (to_dict) for the folder check


@dataclass
class Sweep:
    """Everything a launcher needs (picklable: submitit jobs receive it)."""
    spec: Spec
    dir: str                                     # SWEEP_DIR, absolute
    cwd: str                                     # where relative paths in configs resolve
    points: list[Point]
    units: list[Unit]
    fields: list[str]                            # grid fields, in first-seen order
    probe_cfg: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def unit_dir(self, u: Unit) -> str:
        return os.path.join(self.dir, "points", u.name)

    def probe_dir(self, p: Point) -> str:
        return os.path.join(self.dir, "probes", p.name)

    def state_dir(self, u: Unit) -> str:
        return os.path.join(self.dir, "state", u.name)

    def probe_file(self) -> str:
        return self.spec.measure.config or os.path.join(self.dir, "probe.yaml")

    def unit(self, name: str) -> Unit:
        return next(u for u in self.units if u.name == name)


def _name_value(v) -> str:
    if isinstance(v, bool):
        text = "true" if v else "false"
    elif isinstance(v, float):
        text = f"{v:g}"
    elif isinstance(v, (list, tuple)):
        text = "-".join(_name_value(x) for x in v)
    else:
        text = str(v)
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", text).strip("-") or "x"


def name_parts(values: dict, names: dict) -> list[str]:
    """Name parts of a point: its grid fields in grid order, train.epochs last (a field named `false` in
    the spec's `names:` is left out). Every grid field counts, also one with a single value, so that
    adding values to a grid later keeps the names (and run folders) of the points already there."""
    keys = [k for k in values if names.get(k, "") is not False]
    keys.sort(key=lambda k: k == "train.epochs")
    out = []
    for k in keys:
        prefix = names.get(k, NAME_PREFIX.get(k, k.split(".")[-1]))
        out.append(f"{prefix}{_name_value(values[k])}")
    return out


def expand_grid(spec: Spec) -> list[Point]:
    """The spec's points in grid order (the product of each grid mapping, mappings concatenated)."""
    points, by_name = [], {}
    for g in spec.grid:
        keys = list(g)
        for vals in itertools.product(*(g[k] for k in keys)):
            c = dict(zip(keys, vals))
            name = "__".join(name_parts(c, spec.names)) or spec.name
            group = "__".join(name_parts({k: v for k, v in c.items() if k != "train.epochs"}, spec.names))
            if name in by_name:
                raise UserError(f"{spec.path}: the grid gives two points the name '{name}' ({by_name[name]} and {c}); "
                                f"list each value once, and do not leave a varied field out of names")
            by_name[name] = c
            ov = spec.sets + [f"{k}={_yaml_value(v)}" for k, v in c.items()]
            points.append(Point(name, c, ov, 0, group or spec.name))
    return points


def _load(spec: Spec, overrides: list[str], what: str) -> Config:
    try:
        return load_config(spec.base, overrides)
    except UserError as e:
        raise UserError(f"{spec.path}: {what}: {e}") from None


def _keep_field() -> bool:
    """Whether train.py offers an explicit list of epochs to keep (train.keep_epochs)."""
    return "keep_epochs" in {f.name for f in dataclasses.fields(Config().train)}


def plan(spec: Spec, out: str | None = None) -> Sweep:
    """Points, training units and their configs. Every point's config is loaded (an unknown field or a
    bad value in the grid ends here, before anything runs)."""
    sweep_dir = os.path.abspath(out or os.path.join("runs", "sweeps", spec.name))
    points = expand_grid(spec)
    fields = []
    for g in spec.grid:
        fields += [k for k in g if k not in fields]
    cfgs = {}
    for p in points:
        cfg = _load(spec, p.overrides, f"point {p.name}")
        p.epochs = cfg.train.epochs
        cfgs[p.name] = cfg
    sweep = Sweep(spec, sweep_dir, os.getcwd(), points, [], fields)

    # the points that differ only in train.epochs, under the name of the point without its epochs part
    groups: dict[tuple, list[Point]] = {}
    for p in points:
        groups.setdefault(tuple(o for o in p.overrides if not o.startswith("train.epochs=")), []).append(p)
    cosine_noted = False
    for ps in groups.values():
        cfg = cfgs[ps[0].name]
        ts = sorted({p.epochs for p in ps})
        reuse = len(ts) > 1 and spec.reuse_epochs == "auto" and cfg.optim.schedule == "constant"
        if len(ts) > 1 and not reuse and not cosine_noted:
            why = ("reuse_epochs is off" if spec.reuse_epochs == "off" else
                   f"optim.schedule={cfg.optim.schedule} depends on the run length")
            sweep.notes.append(f"note: {why}, so each train.epochs value ({', '.join(map(str, ts))}) trains "
                               f"separately (one run to the largest T serves all only with a constant schedule)")
            cosine_noted = True
        if reuse:
            sweep.units.append(_unit(spec, ps[0].group, ps, max(ts), cfg, ts))
        else:
            for p in ps:
                sweep.units.append(_unit(spec, p.name, [p], p.epochs, cfgs[p.name], None))
    for u in sweep.units:
        full = _load(spec, u.overrides + u.extra + [f"run.name={u.name}",
                                                   f"run.out_dir={os.path.join(sweep_dir, 'points')}"],
                     f"training run {u.name}")
        u.cfg = to_dict(full)
    if spec.measure.kind == "probe":
        sweep.probe_cfg = to_dict(_load_probe(sweep, "unused.pt", "check"))
    return sweep


def _unit(spec: Spec, name: str, ps: list[Point], epochs: int, cfg: Config, ts: list[int] | None) -> Unit:
    for p in ps:
        p.unit = name
    ov = [o for o in ps[0].overrides if not o.startswith("train.epochs=")] + [f"train.epochs={epochs}"]
    extra = ["run.progress=false"]
    keep_user = cfg.train.keep_every
    if ts is not None:                                   # reuse: keep epoch_<T>.pt for every T
        if _keep_field():
            extra.append(f"train.keep_epochs={_yaml_value(ts)}")
            keep = 0
        else:
            keep = math.gcd(*ts)
            keep = math.gcd(keep, keep_user) if keep_user else keep
            extra.append(f"train.keep_every={keep}")
        ev = math.gcd(cfg.train.eval_every, math.gcd(*ts))   # the run's own test top-1 at every T
        if ev != cfg.train.eval_every:
            extra.append(f"train.eval_every={ev}")
    return Unit(name, ov, epochs, ps, ts is not None, extra, keep_user)


def _load_probe(sweep: Sweep, source: str, name: str) -> Config:
    from .finetune import recipe

    m = sweep.spec.measure
    ov = m.sets + [f"finetune.mode={m.mode}", f"finetune.from={source}", "run.progress=false",
                   f"run.out_dir={os.path.join(sweep.dir, 'probes')}", f"run.name={name}"]
    try:
        return load_config(m.config, ov, recipe)
    except UserError as e:
        raise UserError(f"{sweep.spec.path}: measure.probe: {e}") from None


# --- state on disk ------------------------------------------------------------------------------

def _read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


_YAML_CACHE: dict = {}


def _read_yaml(path: str):
    """A run folder's config.yaml as a dict (None if missing or unreadable); cached per (path, mtime), since
    results.csv is rebuilt from every folder whenever a point finishes."""
    key = (path, _mtime(path))
    if key[1] < 0:
        return None
    if key not in _YAML_CACHE:
        try:
            with open(path) as f:
                _YAML_CACHE[key] = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, yaml.YAMLError):
            return None
    return _YAML_CACHE[key]


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _diff(saved: dict, wanted: dict, ignore: re.Pattern) -> list[str]:
    a, b = _flatten(saved or {}), _flatten(wanted)
    out = []
    for k in sorted(set(a) & set(b)):      # a field one side lacks is new (or gone) in config.py: its default
        if ignore.match(k):
            continue
        va, vb = a.get(k), b.get(k)
        if isinstance(va, list):
            va = [float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x for x in va]
        if isinstance(vb, list):
            vb = [float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else x for x in vb]
        if va != vb and not (isinstance(va, (int, float)) and isinstance(vb, (int, float)) and float(va) == float(vb)):
            out.append(f"{k}: {va!r} there, {vb!r} in the spec")
    return out


def check_folders(sweep: Sweep) -> None:
    """Refuse to continue a training folder that holds another configuration (the spec changed)."""
    for u in sweep.units:
        saved = _read_yaml(os.path.join(sweep.unit_dir(u), "config.yaml"))
        if saved is None:
            continue
        d = _diff(saved, u.cfg, SAME_RESULT)
        if d:
            raise UserError(f"{sweep.unit_dir(u)} was trained with another configuration ({d[0]}"
                            + (f"; {len(d) - 1} more" if len(d) > 1 else "") + "); the spec changed: use another "
                            "--out, or delete that folder to train it again")


def _source(sweep: Sweep, u: Unit, p: Point) -> str:
    """The checkpoint a point is measured from."""
    return os.path.join(sweep.unit_dir(u), f"epoch_{p.epochs}.pt" if u.reuse else "last.pt")


def train_state(sweep: Sweep, u: Unit) -> str:
    """done | resume | new, from the files in the unit's run folder."""
    d = sweep.unit_dir(u)
    s = _read_json(os.path.join(d, "summary.json"))
    reached = s and s.get("status") == "finished" and (
        s.get("epochs_done") == u.epochs or (u.reuse and (s.get("epochs_done") or 0) >= u.epochs))
    if reached and all(os.path.exists(_source(sweep, u, p)) for p in u.points):
        return "done"
    return "resume" if os.path.exists(os.path.join(d, "last.pt")) else "new"


def missing_kept(sweep: Sweep, u: Unit) -> list[int]:
    """Ts whose epoch_<T>.pt the run has passed without keeping (the grid gained a T after it ran)."""
    if not u.reuse:
        return []
    s = _read_json(os.path.join(sweep.unit_dir(u), "summary.json")) or {}
    done = s.get("epochs_done") or 0
    return [p.epochs for p in u.points if p.epochs <= done and not os.path.exists(_source(sweep, u, p))]


def probe_state(sweep: Sweep, u: Unit, p: Point) -> str:
    """done | resume | new | stale (a probe of another checkpoint or other settings: start it again)."""
    d = sweep.probe_dir(p)
    src = _source(sweep, u, p)
    s = _read_json(os.path.join(d, "summary.json"))
    fresh = _mtime(os.path.join(d, "config.yaml")) >= _mtime(src)
    same = True
    saved = _read_yaml(os.path.join(d, "config.yaml"))
    if saved is not None:
        same = not _diff(saved, sweep.probe_cfg, PROBE_SAME) and \
            (saved.get("finetune") or {}).get("from") == src
    if s and s.get("status") == "finished" and same and fresh and \
            s.get("epochs_done") == sweep.probe_cfg["train"]["epochs"]:
        return "done"
    if os.path.exists(os.path.join(d, "last.pt")):
        return "resume" if same and fresh else "stale"
    return "new"


def _locked(folder: str) -> bool:
    """Whether another process (or another thread of this one) holds the unit's lock."""
    path = os.path.join(folder, ".lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def _holder(folder: str) -> str:
    """Who holds a folder's lock, as FolderLock wrote it (pid and command)."""
    try:
        with open(os.path.join(folder, ".lock")) as f:
            return f.read(4096).strip() or "another process"
    except OSError:
        return "another process"


# --- commands -------------------------------------------------------------------------------------

TOOL_MODULES = {"mlpscale-train": "mlpscale.train", "mlpscale-finetune": "mlpscale.finetune",
                "mlpscale-convert": "data_prep.cli", "mlpscale-eval": "mlpscale.evaluate",
                "mlpscale-scaling": "mlpscale.scaling", "mlpscale-sweep": "mlpscale.sweep"}


def tool(name: str) -> list[str]:
    """A console script next to sys.executable (this environment's), else `python -m` its module."""
    exe = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(exe, os.X_OK):
        return [exe]
    if name in TOOL_MODULES:
        return [sys.executable, "-m", TOOL_MODULES[name]]
    return [name]


def _sets(items) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def train_command(sweep: Sweep, u: Unit, state: str, exe=None) -> list[str]:
    exe = exe or ["mlpscale-train"]
    d = sweep.unit_dir(u)
    if state == "resume":   # the run's own config.yaml, with the sweep's length and keep settings
        return exe + ["--resume", d] + _sets([f"train.epochs={u.epochs}"] + u.extra)
    return exe + ["--config", sweep.spec.base] + _sets(u.overrides + u.extra + [
        f"run.out_dir={os.path.join(sweep.dir, 'points')}", f"run.name={u.name}"])


def probe_command(sweep: Sweep, u: Unit, p: Point, state: str, exe=None) -> list[str]:
    exe = exe or ["mlpscale-finetune"]
    m = sweep.spec.measure
    if state == "resume":
        return exe + ["--resume", sweep.probe_dir(p), "--set", "run.progress=false"]
    cmd = exe + ["--config", sweep.probe_file()] + _sets(m.sets + [
        f"finetune.mode={m.mode}", f"finetune.from={_source(sweep, u, p)}", "run.progress=false",
        f"run.out_dir={os.path.join(sweep.dir, 'probes')}", f"run.name={p.name}"])
    return cmd + (["--overwrite"] if state == "stale" else [])


def unit_commands(sweep: Sweep, u: Unit, fresh: bool = False) -> list[list[str]]:
    """The commands that bring a unit to finished (all of them with fresh=True), as the user types them."""
    ts = "new" if fresh else train_state(sweep, u)
    cmds = [] if ts == "done" else [train_command(sweep, u, ts)]
    if sweep.spec.measure.kind == "probe":
        for p in u.points:
            ps = "new" if fresh or ts != "done" else probe_state(sweep, u, p)
            if ts != "done" and os.path.exists(os.path.join(sweep.probe_dir(p), "last.pt")):
                ps = "stale"
            if ps != "done":
                cmds.append(probe_command(sweep, u, p, ps))
    return cmds


def write_support_files(sweep: Sweep) -> None:
    """spec.yaml (the resolved spec and its points) and probe.yaml (when the spec names no probe config)."""
    s = sweep.spec
    resolved = {
        "name": s.name, "spec_file": s.path, "base": s.base, "set": s.sets, "grid": s.grid, "names": s.names,
        "measure": s.measure.kind if s.measure.kind == "test" else
        {"probe": {"config": s.measure.config, "set": s.measure.sets, "mode": s.measure.mode}},
        "reuse_epochs": s.reuse_epochs, "local": s.local, "slurm": s.slurm, "prepare": s.prepare,
        "working_dir": sweep.cwd,
        "units": [{"name": u.name, "epochs": u.epochs, "reuse": u.reuse, "set": u.overrides + u.extra,
                   "points": [p.name for p in u.points]} for u in sweep.units],
        "points": [{"name": p.name, "unit": p.unit, "epochs": p.epochs, "values": p.values} for p in sweep.points],
    }
    write_text_atomic(os.path.join(sweep.dir, "spec.yaml"), yaml.safe_dump(resolved, sort_keys=False))
    if s.measure.kind == "probe" and s.measure.config is None:
        write_text_atomic(sweep.probe_file(), "# written by mlpscale-sweep: the probe's settings come as --set\n"
                                              f"finetune:\n  mode: {s.measure.mode}\n")


# --- results.csv ----------------------------------------------------------------------------------

COLUMNS = ["arch", "params", "n_train", "epochs", "compute_pflops", "error", "name", "test_top1", "probe_top1",
           "status", "run_dir", "probe_dir"]
RESULTS = "results.csv"


def _metrics_top1(run_dir: str) -> dict:
    from .metrics import read_rows

    return {r["epoch"]: r["test_top1"] for r in read_rows(os.path.join(run_dir, "metrics.jsonl")) if "test_top1" in r}


def collect(sweep: Sweep) -> list[dict]:
    """One row per point, from the run folders as they are now."""
    rows = []
    extra = [k for k in sweep.fields if k not in ("model.arch", "data.n_train", "train.epochs")]
    for u in sweep.units:
        d = sweep.unit_dir(u)
        ts = train_state(sweep, u)
        s = _read_json(os.path.join(d, "summary.json")) if ts == "done" else None
        top1_at = _metrics_top1(d) if s and u.reuse else {}
        running = _locked(sweep.state_dir(u))
        failed = _read_json(os.path.join(sweep.state_dir(u), "status.json"))
        for p in u.points:
            cfg = u.cfg
            row = {"name": p.name, "arch": cfg["model"]["arch"], "epochs": p.epochs,
                   "n_train": cfg["data"]["n_train"] or "", "run_dir": os.path.relpath(d, sweep.dir)}
            measured = None
            if s:
                n = s["n_train"]
                row.update(arch=s["arch"], params=s["params"], n_train=n,
                           compute_pflops=s["paper_flops_per_forward"] * 3 * n * p.epochs / 1e15)
                top1 = top1_at.get(p.epochs) if u.reuse else s.get("test_top1")
                row["test_top1"] = top1 if top1 is not None else ""
                measured = top1
            if sweep.spec.measure.kind == "probe":
                pd = sweep.probe_dir(p)
                row["probe_dir"] = os.path.relpath(pd, sweep.dir)
                measured = None
                if s and probe_state(sweep, u, p) == "done":
                    measured = _read_json(os.path.join(pd, "summary.json")).get("test_top1")
                    row["probe_top1"] = measured
            if s and measured is not None:
                row["error"] = 1.0 - measured / 100.0
                status = "finished"
            elif running:
                status = "running"
            elif failed and failed.get("status") in ("failed", "interrupted"):
                status = failed["status"]
            elif s:
                status = "trained"
            elif ts == "resume":
                status = "interrupted"
            else:
                status = "pending"
            row["status"] = status
            for k in extra:
                row[k] = _yaml_value(p.values[k]) if k in p.values else ""
            rows.append(row)
    return rows


def write_results(sweep: Sweep) -> list[dict]:
    """Rewrite SWEEP_DIR/results.csv from the folders (atomically; writers take turns on a lock file, so
    the last one to write has seen every point that finished before it)."""
    os.makedirs(sweep.dir, exist_ok=True)
    fd = os.open(os.path.join(sweep.dir, ".results.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rows = collect(sweep)
        cols = COLUMNS + [k for k in sweep.fields if k not in ("model.arch", "data.n_train", "train.epochs")]
        with atomic_file(os.path.join(sweep.dir, RESULTS), "w") as f:
            w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in cols})
        return rows
    finally:
        os.close(fd)


# --- running one unit -------------------------------------------------------------------------------

def _child_setup(parent_pid: int, ignore_usr2: bool) -> None:
    """In a run's process before it starts: it gets SIGTERM (saves last.pt, exits) when the sweep dies in
    any way, kill -9 included (Linux `prctl(PR_SET_PDEATHSIG)`, as the converter's workers); its own
    session keeps a terminal's Ctrl-C for the sweep, which passes it on once."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the sweep died before prctl took effect
        os._exit(143)
    if ignore_usr2:                 # slurm's warning signal is for the job, not the runs
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)


class Runner:
    """Runs commands as child processes (their output appended to a log), and stops them on request:
    `stop(sig)` passes the signal on once to every running child (which saves its last.pt and exits)
    and starts no new command."""

    def __init__(self, env: dict | None = None, ignore_usr2: bool = False, torchrun: int = 0):
        self.env = {**os.environ, **(env or {})}
        self.ignore_usr2 = ignore_usr2           # slurm's warning signal is for the job, not the runs
        self.torchrun = torchrun                 # processes per training run (multi-GPU jobs)
        self.procs: set = set()
        self.lock = threading.Lock()
        self.stopping: int | None = None

    def call(self, argv: list[str], log_path: str, cwd: str) -> int:
        if self.stopping:
            return 128 + self.stopping
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "a") as log:
            log.write(f"\n== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n")
            log.flush()
            p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                 env=self.env, start_new_session=True,
                                 preexec_fn=functools.partial(_child_setup, os.getpid(), self.ignore_usr2))  # noqa: PLW1509
            with self.lock:
                self.procs.add(p)
            if self.stopping:                    # a stop that came between the check and the start
                self._signal(p, self.stopping)
            try:
                while True:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        return p.wait(timeout=0.5)
            finally:
                with self.lock:
                    self.procs.discard(p)

    @staticmethod
    def _signal(p, sig):
        with contextlib.suppress(ProcessLookupError, OSError):
            p.send_signal(sig)

    def stop(self, sig: int) -> None:
        self.stopping = self.stopping or sig
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            self._signal(p, sig)

    def wait_children(self, timeout: float) -> None:
        """Wait (polling, safe inside a signal handler) until the children have exited."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self.lock:
                alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                return
            time.sleep(0.2)


def _say(msg: str) -> None:
    with contextlib.suppress(OSError):      # a closed stdout (| head) must not stop the runs
        print(msg, flush=True)


def run_unit(sweep: Sweep, u: Unit, runner: Runner, on_point=None, say=_say) -> str:
    """Train one unit (new or resumed) and measure its points; returns finished | failed | interrupted |
    running (another process holds it). `on_point(point)` is called as each point finishes here."""
    sdir = sweep.state_dir(u)
    try:
        lock = FolderLock(sdir, "sweep unit").acquire()
    except UserError:
        say(f"skip  {u.name}: running in another process")
        return "running"
    status_file = os.path.join(sdir, "status.json")
    try:
        ts = train_state(sweep, u)
        udir = sweep.unit_dir(u)
        gone = missing_kept(sweep, u) if ts != "done" else []
        if gone:
            write_json_atomic(status_file, {"status": "failed", "stage": "train", "time": time.time(),
                                            "missing": gone})
            say(f"failed {u.name}: the run passed epoch {gone[0]} without keeping epoch_{gone[0]}.pt (the grid "
                f"gained that T later); delete {udir} to train it again")
            return "failed"
        trained = ts != "done"
        if trained and _locked(udir):  # a run of an earlier sweep that was killed and is still stopping
            holder = _holder(udir)
            say(f"skip  {u.name}: {udir} is still in use by {holder} (a run left by an earlier sweep); "
                f"wait for it to end (or kill it), then run the same command again")
            return "running"
        if trained:
            say(f"train {u.name} ({'resumed from last.pt' if ts == 'resume' else 'new'}, {u.epochs} epochs)")
            exe = tool("mlpscale-train")
            if runner.torchrun > 1:
                exe = [os.path.join(os.path.dirname(sys.executable), "torchrun"), "--standalone",
                       f"--nproc_per_node={runner.torchrun}", "-m", "mlpscale.train"]
            t0 = time.monotonic()
            rc = runner.call(train_command(sweep, u, ts, exe), os.path.join(udir, "sweep.log"), sweep.cwd)
            outcome = _outcome(rc)
            if outcome != "finished" or train_state(sweep, u) != "done":
                outcome = "failed" if outcome == "finished" else outcome
                write_json_atomic(status_file, {"status": outcome, "stage": "train", "rc": rc,
                                                "log": os.path.join(udir, "sweep.log"), "time": time.time()})
                say(f"{outcome} {u.name} (exit code {rc}; log: {os.path.join(udir, 'sweep.log')})")
                return outcome
            say(f"done  {u.name} in {time.monotonic() - t0:.1f} s")
        if u.reuse:
            _drop_unneeded_epochs(sweep, u)
        failed = None
        for p in u.points:
            probed = sweep.spec.measure.kind == "probe" and probe_state(sweep, u, p) != "done"
            if probed:
                outcome = _probe(sweep, u, p, runner, say)
                if outcome != "finished":
                    failed = outcome
                    write_json_atomic(status_file, {"status": outcome, "stage": f"probe {p.name}", "time": time.time(),
                                                    "log": os.path.join(sweep.probe_dir(p), "sweep.log")})
                    if outcome == "interrupted":
                        return outcome
                    continue                     # the other Ts of the run can still be measured
            if on_point and (trained or probed):
                on_point(p)
        if failed:
            return failed
        with contextlib.suppress(FileNotFoundError):
            os.remove(status_file)
        return "finished"
    finally:
        lock.release()


def _probe(sweep: Sweep, u: Unit, p: Point, runner: Runner, say) -> str:
    """Measure one point (new, resumed, or again when its checkpoint or settings changed)."""
    ps = probe_state(sweep, u, p)
    log = os.path.join(sweep.probe_dir(p), "sweep.log")
    say(f"probe {p.name}" + (" (again: its checkpoint or settings changed)" if ps == "stale" else ""))
    rc = runner.call(probe_command(sweep, u, p, ps, tool("mlpscale-finetune")), log, sweep.cwd)
    outcome = _outcome(rc)
    if outcome == "finished" and probe_state(sweep, u, p) != "done":
        outcome = "failed"
    if outcome != "finished":
        say(f"{outcome} probe {p.name} (exit code {rc}; log: {log})")
    return outcome


def _outcome(rc: int) -> str:
    return "finished" if rc == 0 else "interrupted" if rc in (130, 143, -2, -15) else "failed"


def _drop_unneeded_epochs(sweep: Sweep, u: Unit) -> None:
    """Delete the epoch_<E>.pt that only the gcd rule made (a finished run; the grid's Ts and the
    spec's own train.keep_every stay)."""
    want = {p.epochs for p in u.points}
    d = sweep.unit_dir(u)
    for f in os.listdir(d):
        m = re.fullmatch(r"epoch_(\d+)\.pt", f)
        if m:
            e = int(m.group(1))
            if e not in want and not (u.keep_user and e % u.keep_user == 0):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(d, f))


# --- launchers --------------------------------------------------------------------------------------

def run_local(sweep: Sweep, units: list[Unit], jobs: int, threads: int | None) -> dict:
    """Units in this process's children, `jobs` at a time. Returns {unit: outcome}."""
    env = {}
    n_threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    if jobs > 1 or threads:
        env = {k: str(n_threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS") if k not in os.environ}
    runner = Runner(env)
    say_lock = threading.Lock()

    def say(msg):
        with say_lock:
            _say(msg)

    def point_done(p):
        write_results(sweep)

    caught = []

    def on_signal(signum, frame):
        if not caught:
            say(f"stopping ({signal.Signals(signum).name}): the running runs save their last.pt; run the same "
                f"command again to continue")
        caught.append(signum)
        # passed on each time: a second one stops the runs at once; a closed terminal (SIGHUP) as SIGTERM
        runner.stop(signal.SIGTERM if signum == signal.SIGHUP else signum)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    outcomes = {}
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            futs = {ex.submit(run_unit, sweep, u, runner, point_done, say): u for u in units}
            pending = set(futs)
            while pending:
                done, pending = concurrent.futures.wait(pending, timeout=0.5)
                for f in done:
                    outcomes[futs[f].name] = f.result()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if caught:
        outcomes["__signal__"] = caught[0]
    return outcomes


class UnitJob:
    """The function each submitit job runs: train one unit, measure its points, rewrite results.csv.

    Checkpointable: on preemption or timeout submitit calls `checkpoint`, which stops the running
    command with SIGTERM (it saves last.pt after its current step), waits for it, and has the same
    job requeued; the requeued job resumes from last.pt."""

    def __init__(self, sweep: Sweep, torchrun: int = 0):
        self.sweep, self.torchrun = sweep, torchrun
        self.runner = None

    def __getstate__(self):
        return {"sweep": self.sweep, "torchrun": self.torchrun, "runner": None}

    def __call__(self, unit_name: str) -> str:
        os.chdir(self.sweep.cwd)
        self.runner = Runner(ignore_usr2=True, torchrun=self.torchrun)
        u = self.sweep.unit(unit_name)
        outcome = run_unit(self.sweep, u, self.runner, on_point=lambda p: write_results(self.sweep))
        write_results(self.sweep)
        return outcome

    def checkpoint(self, unit_name: str):
        from submitit.helpers import DelayedSubmission

        if self.runner is not None:
            self.runner.stop(signal.SIGTERM)
            self.runner.wait_children(60)
        return DelayedSubmission(UnitJob(self.sweep, self.torchrun), unit_name)


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UserError("--launcher slurm needs submitit, an optional dependency: pip install submitit") from None
    return submitit


def submit_jobs(sweep: Sweep, units: list[Unit], cluster: str) -> list:
    """A submitit job array (cluster slurm or local), one UnitJob per unit; returns submitit's jobs."""
    submitit = _submitit()
    if cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("--launcher slurm needs slurm's sbatch on this machine; run on the cluster's login node, "
                        "or use --launcher local, or --print-commands for another scheduler")
    s = sweep.spec.slurm
    folder = os.path.join(sweep.dir, "submitit", "%j")
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=int(s.get("max_num_timeout", 30)))
    params = {"name": f"sweep-{sweep.spec.name}", "timeout_min": s.get("timeout_min"), "mem_gb": s.get("mem_gb"),
              "cpus_per_task": s.get("cpus_per_task"), "gpus_per_node": s.get("gpus_per_node"), "nodes": 1,
              "tasks_per_node": 1}
    if cluster == "slurm":
        params.update({f"slurm_{k}": s[k] for k in ("partition", "account", "qos", "constraint", "array_parallelism",
                                                    "setup") if k in s})
        params["slurm_signal_delay_s"] = int(s.get("signal_delay_s", 120))
        if s.get("additional"):
            params["slurm_additional_parameters"] = dict(s["additional"])
    try:
        ex.update_parameters(**{k: v for k, v in params.items() if v is not None})
    except (NameError, AssertionError, ValueError) as e:
        raise UserError(f"{sweep.spec.path}: slurm: submitit refused the resources ({str(e).splitlines()[0]})") from None
    job = UnitJob(sweep, torchrun=int(s.get("gpus_per_node") or 0) if cluster == "slurm" else 0)
    jobs = ex.map_array(job, [u.name for u in units])
    with open(os.path.join(sweep.dir, "submitit", "jobs.jsonl"), "a") as f:
        f.write(json.dumps({"time": time.time(), "cluster": cluster,
                            "jobs": {u.name: j.job_id for u, j in zip(units, jobs)}}) + "\n")
    _say(f"submitted {len(jobs)} job(s) to {cluster} ({jobs[0].job_id.split('_')[0] if jobs else '-'}); logs in "
         f"{os.path.dirname(folder)}; results.csv is rewritten as points finish")
    return jobs


def submit(sweep: Sweep, units: list[Unit], cluster: str, wait: bool) -> dict:
    """Submit the units; with `wait`, wait for every job and return {unit: outcome}."""
    jobs = submit_jobs(sweep, units, cluster)
    if not wait:
        return {}
    out = {}
    for u, j in zip(units, jobs):
        try:
            out[u.name] = j.result()
        except Exception as e:  # noqa: BLE001 - a job that died: its log says why
            out[u.name] = "failed"
            _say(f"failed {u.name}: job {j.job_id} ended with {type(e).__name__} (log: {j.paths.stderr})")
    return out


def print_commands(sweep: Sweep, units: list[Unit]) -> None:
    """One shell line per unit: cd to the working folder, train, then probe each point."""
    for u in units:
        cmds = unit_commands(sweep, u)
        if cmds:
            _out(" && ".join([f"cd {shlex.quote(sweep.cwd)}"] + [shlex.join(c) for c in cmds]))


def _out(line: str) -> None:
    """A line of a listing on stdout; a reader that stopped early (| head) ends the listing quietly."""
    try:
        print(line, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


# --- data preparation -----------------------------------------------------------------------------

def prepare(spec: Spec) -> None:
    """Run the spec's prepare steps in order; a step whose `creates` exists is skipped."""
    for i, st in enumerate(spec.prepare):
        creates = st.get("creates")
        what = st.get("run") or st["python"]
        if creates and os.path.exists(creates):
            _say(f"prepare: skip {what if isinstance(what, str) else shlex.join(what)} ({creates} exists)")
            continue
        t0 = time.monotonic()
        if "python" in st:
            mod, fn = str(st["python"]).split(":", 1)
            _say(f"prepare: {mod}:{fn}({', '.join(f'{k}={v!r}' for k, v in (st.get('args') or {}).items())})")
            try:
                func = getattr(importlib.import_module(mod), fn)
            except (ImportError, AttributeError) as e:
                raise UserError(f"{spec.path}: prepare[{i}]: cannot import {st['python']} ({e})") from None
            func(**(st.get("args") or {}))
        else:
            argv = shlex.split(st["run"]) if isinstance(st["run"], str) else [str(x) for x in st["run"]]
            argv = tool(argv[0]) + argv[1:] if argv[0].startswith("mlpscale-") else \
                [sys.executable] + argv[1:] if argv[0] in ("python", "python3") else argv
            _say(f"prepare: {shlex.join(argv)}")
            rc = subprocess.run(argv, check=False).returncode
            if rc != 0:
                raise UserError(f"{spec.path}: prepare[{i}] failed (exit code {rc}): {shlex.join(argv)}")
        _say(f"prepare: done in {time.monotonic() - t0:.1f} s")


def _missing_prepared(spec: Spec) -> list[str]:
    return [st["creates"] for st in spec.prepare if st.get("creates") and not os.path.exists(st["creates"])]


# --- CLI ------------------------------------------------------------------------------------------

def _dry_run(sweep: Sweep, units: list[Unit]) -> None:
    for u in units:
        ts = train_state(sweep, u)
        what = {"done": "trained", "resume": "resume from last.pt", "new": "train"}[ts]
        line = f"{u.name}: {what} ({u.epochs} epochs{', keeps ' + ','.join(str(p.epochs) for p in u.points) if u.reuse else ''})"
        if sweep.spec.measure.kind == "probe":
            todo = [p.name for p in u.points if ts != "done" or probe_state(sweep, u, p) != "done"]
            line += f"; probes to run: {len(todo)} of {len(u.points)}"
        _out(line)


def main_args(argv=None):
    p = argparse.ArgumentParser(prog="mlpscale-sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", metavar="SPEC.yaml", help="sweep spec, e.g. configs/sweeps/mini_cpu.yaml")
    p.add_argument("--launcher", choices=("local", "slurm", "submitit-local"), default="local",
                   help="local: subprocesses here (default); slurm: a submitit job array; submitit-local: "
                        "the same jobs through submitit on this machine")
    p.add_argument("--jobs", type=int, default=None, help="local: runs at a time (default: the spec's local.jobs, or 1)")
    p.add_argument("--out", metavar="DIR", help="SWEEP_DIR (default: runs/sweeps/<spec name>)")
    p.add_argument("--prepare", action="store_true", help="first run the spec's data-preparation steps")
    p.add_argument("--print-commands", action="store_true",
                   help="print one shell line per unit still to do (train && probe ...) and exit")
    p.add_argument("--dry-run", action="store_true", help="check the spec, show what would run, and exit")
    p.add_argument("--collect", action="store_true", help="only rewrite results.csv from the run folders")
    p.add_argument("--wait", action="store_true", help="slurm: wait for the jobs and report them")
    return p.parse_args(argv)


@cli_entry
def main(argv=None):
    a = main_args(argv)
    if a.jobs is not None and a.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {a.jobs}")
    spec = read_spec(a.spec)
    sweep = plan(spec, a.out)
    check_folders(sweep)
    for n in sweep.notes:
        print(n, file=sys.stderr)
    units = sweep.units
    if a.print_commands:
        write_support_files(sweep)        # the probe commands read SWEEP_DIR/probe.yaml
        print_commands(sweep, units)
        return
    if a.prepare:
        prepare(spec)
    if a.dry_run:
        _dry_run(sweep, units)
        return
    write_support_files(sweep)
    if a.collect:
        rows = write_results(sweep)
        _report(sweep, rows)
        return
    missing = _missing_prepared(spec)
    if missing:
        raise UserError(f"{missing[0]} does not exist yet; prepare the data first: mlpscale-sweep {a.spec} --prepare")
    write_results(sweep)
    t0 = time.monotonic()
    if a.launcher == "local":
        jobs = a.jobs or spec.local.get("jobs", 1)
        outcomes = run_local(sweep, units, jobs, spec.local.get("threads"))
    else:
        outcomes = submit(sweep, units, "slurm" if a.launcher == "slurm" else "local",
                          wait=a.wait or a.launcher == "submitit-local")
        if a.launcher == "slurm" and not a.wait:
            return
    rows = write_results(sweep)
    _report(sweep, rows, time.monotonic() - t0)
    sig = outcomes.pop("__signal__", None)
    if sig:
        sys.exit(128 + sig)
    bad = [n for n, o in outcomes.items() if o in ("failed", "interrupted")]
    if bad:
        print(f"error: {len(bad)} training unit(s) did not finish ({', '.join(bad[:3])}"
              f"{', ...' if len(bad) > 3 else ''}); their logs are named above; run the same command again to "
              f"retry them", file=sys.stderr)
        sys.exit(1)


def _report(sweep: Sweep, rows: list[dict], seconds: float | None = None) -> None:
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUS}
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    print(f"{len(rows)} points ({parts}){took}; results in {os.path.join(sweep.dir, RESULTS)}")
    if counts["finished"] == len(rows) and rows:
        print(f"next: mlpscale-scaling {sweep.dir} --out {os.path.join(sweep.dir, 'scaling')}")


if __name__ == "__main__":
    main()
