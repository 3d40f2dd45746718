"""What is on disk: a unit's and a probe's state from its run folder (done / resume / new / stale), the
check that a folder holds the configuration the spec asks for, the unit locks, and the resolved
spec.yaml and probe.yaml the sweep writes beside the runs."""
from __future__ import annotations

import fcntl
import json
import os
import re

import yaml

from ..config import to_dict
from ..errors import UserError
from ..io import write_text_atomic
from .plan import Point, Sweep, Unit
from .spec import flatten

# config fields a resumed or extended run may change: length, checkpointing, speed, logging, paths
SAME_RESULT = re.compile(r"^(run\..*|train\.(epochs|keep_every|keep_epochs|eval_every|ckpt_every|log_every|"
                         r"device|compile|prefetch|peak_tflops)|data\.(root|resident|resident_max_gb|host_max_gb|"
                         r"workers|os_cache))$")
# ... and a probe: the fine-tuner writes what its checkpoint resolved
PROBE_SAME = re.compile(SAME_RESULT.pattern[:-2] + r"|model\..*|data\.crop_res|finetune\.from)$")


def read_json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


_YAML_CACHE: dict = {}


def read_yaml(path: str):
    """A run folder's config.yaml as a dict (None if missing or unreadable); cached per (path, mtime), since
    results.csv is rebuilt from every folder whenever a point finishes."""
    key = (path, mtime(path))
    if key[1] < 0:
        return None
    if key not in _YAML_CACHE:
        try:
            with open(path) as f:
                _YAML_CACHE[key] = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (OSError, yaml.YAMLError):
            return None
    return _YAML_CACHE[key]


def mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _diff(saved: dict, wanted: dict, ignore: re.Pattern) -> list[str]:
    a, b = flatten(saved or {}), flatten(wanted)
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
        saved = read_yaml(os.path.join(sweep.unit_dir(u), "config.yaml"))
        if saved is None:
            continue
        d = _diff(saved, u.cfg, SAME_RESULT)
        if d:
            raise UserError(f"{sweep.unit_dir(u)} was trained with another configuration ({d[0]}"
                            + (f"; {len(d) - 1} more" if len(d) > 1 else "") + "); the spec changed: use another "
                            "--out, or delete that folder to train it again")


def source(sweep: Sweep, u: Unit, p: Point) -> str:
    """The checkpoint a point is measured from."""
    return os.path.join(sweep.unit_dir(u), f"epoch_{p.epochs}.pt" if u.reuse else "last.pt")


def train_state(sweep: Sweep, u: Unit) -> str:
    """done | resume | new, from the files in the unit's run folder."""
    d = sweep.unit_dir(u)
    s = read_json(os.path.join(d, "summary.json"))
    reached = s and s.get("status") == "finished" and (
        s.get("epochs_done") == u.epochs or (u.reuse and (s.get("epochs_done") or 0) >= u.epochs))
    if reached and all(os.path.exists(source(sweep, u, p)) for p in u.points):
        return "done"
    return "resume" if os.path.exists(os.path.join(d, "last.pt")) else "new"


def missing_kept(sweep: Sweep, u: Unit) -> list[int]:
    """Ts whose epoch_<T>.pt the run has passed without keeping (the grid gained a T after it ran)."""
    if not u.reuse:
        return []
    s = read_json(os.path.join(sweep.unit_dir(u), "summary.json")) or {}
    done = s.get("epochs_done") or 0
    return [p.epochs for p in u.points if p.epochs <= done and not os.path.exists(source(sweep, u, p))]


def probe_state(sweep: Sweep, u: Unit, p: Point) -> str:
    """done | resume | new | stale (a probe of another checkpoint or other settings: start it again)."""
    d = sweep.probe_dir(p)
    src = source(sweep, u, p)
    s = read_json(os.path.join(d, "summary.json"))
    fresh = mtime(os.path.join(d, "config.yaml")) >= mtime(src)
    same = True
    saved = read_yaml(os.path.join(d, "config.yaml"))
    if saved is not None:
        same = not _diff(saved, sweep.probe_cfg, PROBE_SAME) and \
            (saved.get("finetune") or {}).get("from") == src
    if s and s.get("status") == "finished" and same and fresh and \
            s.get("epochs_done") == sweep.probe_cfg["train"]["epochs"]:
        return "done"
    if os.path.exists(os.path.join(d, "last.pt")):
        return "resume" if same and fresh else "stale"
    return "new"


def locked(folder: str) -> bool:
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


def write_support_files(sweep: Sweep) -> None:
    """spec.yaml (the resolved spec and its points) and probe.yaml (when the spec names no probe config)."""
    s = sweep.spec
    resolved = {
        "name": s.name, "spec_file": s.path, "base": s.base, "set": s.sets, "grid": s.grid, "names": s.names,
        "measure": s.measure.kind if s.measure.kind == "test" else
        {"probe": {"config": s.measure.config, "set": s.measure.sets, "mode": s.measure.mode}},
        "reuse_epochs": s.reuse_epochs, "local": _set_fields(s.local), "slurm": _set_fields(s.slurm),
        "prepare": [_set_fields(st) for st in s.prepare],
        "working_dir": sweep.cwd,
        "units": [{"name": u.name, "epochs": u.epochs, "reuse": u.reuse, "set": u.overrides + u.extra,
                   "points": [p.name for p in u.points]} for u in sweep.units],
        "points": [{"name": p.name, "unit": p.unit, "epochs": p.epochs, "values": p.values} for p in sweep.points],
    }
    write_text_atomic(os.path.join(sweep.dir, "spec.yaml"), yaml.safe_dump(resolved, sort_keys=False))
    if s.measure.kind == "probe" and s.measure.config is None:
        write_text_atomic(sweep.probe_file(), "# written by mlpscale-sweep: the probe's settings come as --set\n"
                                              f"finetune:\n  mode: {s.measure.mode}\n")


def _set_fields(section) -> dict:
    """A spec section as plain data, without the fields left unset."""
    return {k: v for k, v in to_dict(section).items() if v is not None and v != [] and v != {}}
