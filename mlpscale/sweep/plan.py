"""Planning a sweep: the grid's points, the training units that serve them (one run to max(T) when the
points differ only in train.epochs and the schedule allows it) and every point's config, loaded and
checked before anything runs."""
from __future__ import annotations

import itertools
import math
import os
import re
from dataclasses import dataclass, field

from ..config import Config, load_config, to_dict
from ..errors import UserError
from .spec import Spec, yaml_value

# How a grid field appears in point names: model.arch B_6-Wi_256, data.n_train n1000, train.epochs e50.
NAME_PREFIX = {"model.arch": "", "data.n_train": "n", "train.epochs": "e", "optim.lr": "lr",
               "optim.weight_decay": "wd", "train.batch_size": "bs", "train.seed": "seed", "data.dataset": "",
               "data.res": "r", "data.subset_seed": "ss", "aug.mixup": "mix", "optim.name": ""}


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
            ov = spec.sets + [f"{k}={yaml_value(v)}" for k, v in c.items()]
            points.append(Point(name, c, ov, 0, group or spec.name))
    return points


def _load(spec: Spec, overrides: list[str], what: str) -> Config:
    try:
        return load_config(spec.base, overrides)
    except UserError as e:
        raise UserError(f"{spec.path}: {what}: {e}") from None


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
    if ts is not None:                                   # reuse: keep epoch_<T>.pt for every T
        extra.append(f"train.keep_epochs={yaml_value(ts)}")
        ev = math.gcd(cfg.train.eval_every, math.gcd(*ts))   # the run's own test top-1 at every T
        if ev != cfg.train.eval_every:
            extra.append(f"train.eval_every={ev}")
    return Unit(name, ov, epochs, ps, ts is not None, extra)


def _load_probe(sweep: Sweep, source: str, name: str) -> Config:
    from ..finetune import recipe

    m = sweep.spec.measure
    ov = m.sets + [f"finetune.mode={m.mode}", f"finetune.from={source}", "run.progress=false",
                   f"run.out_dir={os.path.join(sweep.dir, 'probes')}", f"run.name={name}"]
    try:
        return load_config(m.config, ov, recipe)
    except UserError as e:
        raise UserError(f"{sweep.spec.path}: measure.probe: {e}") from None
