"""Experiment configuration: YAML mapped onto typed dataclasses.

Every hyper-parameter has one home here, with its default and a one-line meaning. A YAML file
sets any subset of fields; an unknown key is an error that names the file, the key and the valid
keys. Any field can be overridden from the command line with `--set section.field=value`
(the value is parsed as YAML: `--set optim.lr=1e-4 --set aug.crop_scale=[0.35,1]`).
Everything is checked when the file is read, before any data is touched: types, choices
(`Literal` fields list their valid values), ranges (`RULES`) and the architecture name.
The fully resolved config is saved as `config.yaml` in the run directory.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.resources
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import UserError
from .io import write_text_atomic

OnOff = Literal["auto", "on", "off"]

def _config_dir() -> Path | None:
    """The shipped configs/: package data of `mlpscale._configs` (setup.py maps it to the top-level
    configs/), so a wheel and an editable checkout both have it; None where it is not installed."""
    try:
        return Path(str(importlib.resources.files("mlpscale._configs")))
    except ModuleNotFoundError:
        return None


CONFIG_DIR = _config_dir()


@dataclass
class DataConfig:
    dataset: str = "cifar10"     # registry name (mlpscale/datasets.py) or a converted folder dataset
    root: str = "data"           # folder holding <dataset>/<split>_<res>.beton (mlpscale-convert --root)
    res: int = 0                 # resolution of the stored images; 0 = the dataset's default
    crop_res: int = 0            # resolution the model sees; 0 = res
    n_train: int = 0             # train on a class-balanced subset of this many images; 0 = all
    subset_seed: int = 0         # seed of the subset choice (fixed across runs of one study)
    permute_pixels: int = 0      # >= 1: seed of one fixed random permutation of pixel positions applied to every
                                 # stored image before augmentation (the inductive-bias control); 0 = off
    stats: Literal["auto", "paper", "measured"] = "auto"  # normalisation: the authors' constants (paper) or the
                                 # converter's (measured); auto = paper where the authors define them
    resident: OnOff = "auto"     # read the split once into memory tiers: auto (if it fits) | on | off (stream)
    resident_max_gb: float = 0.0  # device tier size; 0 = free device memory minus the measured training need
    host_max_gb: float = 0.0     # host tier size; 0 = most of the free RAM on GPUs, none on CPUs
    workers: int = 0             # threads for FFCV streaming and the one-time JPEG decode; 0 = all cores
    os_cache: bool = True        # FFCV: memory-map the beton (fast when it fits in RAM)


@dataclass
class ModelConfig:
    arch: str = "B_6-Wi_1024"    # paper naming: B_<blocks>-Wi_<width>[-E_<expansion>] or S_<depth>-Wi_<width>
    act: Literal["gelu", "relu"] = "gelu"
    norm: Literal["layer", "batch", "none"] = "layer"
    dropout: float = 0.0         # dropout inside each block


@dataclass
class AugConfig:
    enabled: bool = True         # random-resized-crop + flip on the training set
    crop_scale: tuple[float, float] = (0.08, 1.0)   # area fraction range of the crop (paper)
    crop_ratio: tuple[float, float] = (0.75, 4 / 3)  # aspect-ratio range of the crop (paper)
    flip: bool = True            # horizontal flip with probability 1/2
    mixup: float = 0.8           # MixUp Beta(alpha, alpha), one lambda per batch; 0 = off


@dataclass
class OptimConfig:
    name: Literal["lion", "sgd", "adamw"] = "lion"
    lr: float = 5e-5             # peak learning rate (paper: LION 5e-5 from scratch, 1e-5 scaling runs)
    weight_decay: float = 0.0    # decoupled: p *= 1 - lr * wd (paper scaling runs: 1e-3)
    betas: tuple[float, float] = (0.9, 0.99)  # LION / AdamW betas
    momentum: float = 0.9        # SGD momentum
    schedule: Literal["constant", "cosine"] = "constant"  # the paper's is constant; both after the warmup
    warmup_epochs: float = 0.0   # linear warmup length in epochs
    min_lr: float = 0.0          # floor of the cosine schedule
    grad_clip: float = 0.0       # clip the global grad norm to this; 0 = off
    label_smoothing: float = 0.3  # cross-entropy label smoothing (paper)


@dataclass
class TrainConfig:
    epochs: int = 500            # passes over the (sub)set (the paper's code default)
    batch_size: int = 4096       # global batch per optimizer step (= per-rank x ranks x accum_steps)
    accum_steps: int = 1         # gradient accumulation micro-steps per optimizer step
    precision: Literal["auto", "bf16", "fp32"] = "auto"  # auto: bf16 autocast on CUDA, fp32 on CPUs
    compile: OnOff = "auto"      # torch.compile the model: auto (on CUDA only) | on | off
    seed: int = 0                # seeds data order, augmentation and init
    device: str = "auto"         # auto (cuda if available) | cpu | cuda | cuda:N
    eval_every: int = 1          # evaluate every K epochs (and at the last)
    ckpt_every: int = 1          # write last.pt every K epochs (and at the last, and on SIGINT/SIGTERM)
    keep_every: int = 0          # also keep epoch_<E>.pt every K epochs (scaling study); 0 = never
    keep_epochs: tuple[int, ...] = ()  # also keep epoch_<E>.pt after exactly these epochs (e.g. [50, 100, 200])
    log_every: int = 50          # steps between host syncs for the progress bar and the NaN check
    peak_tflops: float = 0.0     # device peak for MFU; 0 = datasheet value of a known GPU (hardware.py)
    max_steps: int = 0           # stop after this many optimizer steps (smoke tests, benchmarks); 0 = all
    prefetch: OnOff = "auto"     # augment the next micro-batches on a worker thread while the step runs;
                                 # auto = on CPU devices where torch leaves a core free (else it slows the GEMMs)


@dataclass
class EvalConfig:
    """Extra scores of a run's final evaluation (written to summary.json and eval.json)."""
    tta: int = 0                 # also score N random crops + flips per test image (the paper: 100); 0 = off
    tta_average: Literal["logits", "probs"] = "logits"  # the paper averages logits, the authors' code probabilities
    real: bool = False           # also score the ImageNet ReaL labels (mlpscale-convert imagenet1k --real)


@dataclass
class FinetuneConfig:
    """Used by mlpscale-finetune (defaults: the authors' fine-tuning recipe)."""
    from_: str = field(default="", metadata={"key": "from"})  # a run folder, one of our checkpoints, or a
                                 # paper checkpoint file (its arch is model.arch)
    mode: Literal["full", "linear"] = "full"  # full: all weights; linear: head only, body frozen (a probe)
    body_lr_mult: float = 0.1    # full mode: body lr = optim.lr x this (the authors' 0.1); the head gets optim.lr
    cache_features: OnOff = "auto"  # linear mode: compute body features once (auto: when aug is off; exact)
    solver: Literal["paper", "lbfgs"] = "paper"  # linear mode: paper = the optimizer loop of optim.* (the
                                 # paper's LION 1e-5, 50 epochs); lbfgs = multinomial logistic regression by
                                 # L-BFGS on cached features, L2 strength chosen on a held-out 20% of train
    source_classes: int = 11230  # paper checkpoints: classes of their head (ImageNet-21k)
    source_res: int = 64         # paper checkpoints: their input resolution


@dataclass
class RunConfig:
    name: str = ""               # run folder name under out_dir; "" = the config file's stem
    out_dir: str = "runs"        # parent of run folders
    tensorboard: bool = False    # also log to TensorBoard (needs `tensorboard` installed)
    wandb: bool = False          # also log to Weights & Biases (needs `wandb` installed)
    wandb_project: str = "mlpscale"
    progress: bool = True        # tqdm bar


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    aug: AugConfig = field(default_factory=AugConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    run: RunConfig = field(default_factory=RunConfig)


# --- ranges, checked when a config is read ----------------------------------------------------

def _between(lo, hi, lo_open=False, hi_open=False):
    def ok(v):
        return (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else v <= hi))
    return ok


_POS = (lambda v: v > 0, "must be > 0")
_NONNEG = (lambda v: v >= 0, "must be >= 0")
_ONE_UP = (lambda v: v >= 1, "must be >= 1")
_UNIT = (_between(0, 1, hi_open=True), "must be in [0, 1)")
_RANGE = (lambda v: 0 < v[0] <= v[1], "must be two numbers 0 < low <= high")

MAX_RES = 1024  # a 1024x1024x3 raw image (3 MiB) still fits one 4 MiB beton page
MAX_TTA = 1000  # crops per image at evaluation; the paper scores 100

RULES = {
    "data.res": ((lambda v: 0 <= v <= MAX_RES), f"must be between 1 and {MAX_RES} pixels (0 = the dataset's default)"),
    "data.crop_res": ((lambda v: 0 <= v <= MAX_RES), f"must be between 1 and {MAX_RES} pixels (0 = data.res)"),
    "data.n_train": _NONNEG, "data.resident_max_gb": _NONNEG, "data.host_max_gb": _NONNEG,
    "data.workers": _NONNEG, "data.permute_pixels": _NONNEG,
    "model.dropout": _UNIT,
    "aug.crop_scale": ((lambda v: 0 < v[0] <= v[1] <= 1), "must be two numbers 0 < low <= high <= 1"),
    "aug.crop_ratio": _RANGE,
    "aug.mixup": _NONNEG,
    "optim.lr": _POS, "optim.weight_decay": _NONNEG, "optim.momentum": _UNIT,
    "optim.betas": ((lambda v: all(0 <= b < 1 for b in v)), "must be two numbers in [0, 1)"),
    "optim.warmup_epochs": _NONNEG, "optim.min_lr": _NONNEG, "optim.grad_clip": _NONNEG,
    "optim.label_smoothing": _UNIT,
    "train.epochs": _ONE_UP, "train.batch_size": _ONE_UP, "train.accum_steps": _ONE_UP,
    "train.eval_every": _ONE_UP, "train.ckpt_every": _ONE_UP, "train.keep_every": _NONNEG,
    "train.keep_epochs": ((lambda v: all(e >= 1 for e in v)), "must list epochs >= 1"),
    "train.log_every": _ONE_UP, "train.peak_tflops": _NONNEG, "train.max_steps": _NONNEG,
    "train.device": ((lambda v: re.fullmatch(r"auto|cpu|cuda(:\d+)?", v) is not None),
                     "must be auto, cpu, cuda or cuda:N"),
    "eval.tta": ((lambda v: 0 <= v <= MAX_TTA), f"must be between 0 and {MAX_TTA} crops (the paper: 100)"),
    "finetune.body_lr_mult": _NONNEG, "finetune.source_classes": _ONE_UP, "finetune.source_res": _ONE_UP,
}


def read_text(path, what: str) -> str:
    """A text file as UTF-8, or one sentence saying it is not (a Latin-1 comment, a .pt passed by mistake)."""
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise UserError(f"{path} is a folder, not a file; {what}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (byte {e.start} is 0x{data[e.start]:02x}); {what}: save it "
                        f"as UTF-8, or pass the right file") from None


def check(cfg: "Config", where: str, given: dict[str, str] | None = None) -> None:
    """Ranges (RULES), the architecture name and cross-field rules; one UserError naming the field, and
    the option that gave it where `given` (dotted key -> `--set a.b=v` / `--tta 5`) says so."""
    given = given or {}

    def at(dotted: str) -> str:
        return f"{given[dotted]}: " if dotted in given else f"{where}: "

    import math

    from .models import parse_arch

    for section in dataclasses.fields(cfg):  # inf and nan pass every range test: refuse them first
        for f in dataclasses.fields(getattr(cfg, section.name)):
            v = getattr(getattr(cfg, section.name), f.name)
            if any(isinstance(x, float) and not math.isfinite(x) for x in (v if isinstance(v, (list, tuple)) else [v])):
                raise UserError(f"{at(section.name + '.' + f.name)}{section.name}.{f.name}={_show(v)} "
                                f"must be a finite number")
    for dotted, (ok, what) in RULES.items():
        section, name = dotted.split(".")
        value = getattr(getattr(cfg, section), name)
        if not ok(value):
            raise UserError(f"{at(dotted)}{dotted}={_show(value)} {what}")
    try:
        parse_arch(cfg.model.arch)
    except UserError as e:
        raise UserError(f"{at('model.arch')}model.arch: {e}") from None
    if cfg.optim.schedule == "cosine" and cfg.optim.min_lr > cfg.optim.lr:
        raise UserError(f"{where}: optim.min_lr={cfg.optim.min_lr} is above optim.lr={cfg.optim.lr}")


def _show(v) -> str:
    return f"[{', '.join(str(x) for x in v)}]" if isinstance(v, tuple) else str(v)


# --- dict <-> dataclass ---------------------------------------------------------------------

def _coerce(value, tp, where: str):
    """Convert a YAML value to the field type `tp`, or raise a UserError naming `where`."""
    origin = typing.get_origin(tp)
    try:
        if tp is Any:                                   # a free-form value, checked by its reader
            return value
        if origin in (typing.Union, types.UnionType):   # `T | None`: None means "not set"
            if value is None:
                return None
            (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
            return _coerce(value, inner, where)
        if tp is dict:
            if not isinstance(value, dict):
                raise ValueError("expected a mapping")
            return value
        if origin is Literal:
            choices = typing.get_args(tp)
            if isinstance(value, bool) and "on" in choices:  # YAML reads a bare on/off as true/false
                value = "on" if value else "off"
            if value not in choices:
                raise ValueError(f"choose one of {', '.join(choices)}")
            return value
        if origin is tuple and typing.get_args(tp)[1:] == (Ellipsis,):  # a list of any length
            if not isinstance(value, (list, tuple)):
                raise ValueError("expected a list")
            return tuple(_coerce(v, typing.get_args(tp)[0], where) for v in value)
        if origin is tuple:
            args = typing.get_args(tp)
            if not isinstance(value, (list, tuple)) or len(value) != len(args):
                raise ValueError(f"expected a list of {len(args)} values")
            return tuple(_coerce(v, a, where) for v, a in zip(value, args))
        if tp is bool:
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
                return value.lower() in ("true", "yes", "on")
            raise ValueError("expected true or false")
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected an integer")
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError("expected a number")
            return float(value)  # YAML reads 5e-5 as a string; float() accepts it
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError("expected a string")
            return str(value)
    except (TypeError, ValueError) as e:
        raise UserError(f"{where}: bad value {value!r} ({e})") from None
    raise AssertionError(f"unsupported config type {tp}")


def from_dict(cls, d: dict, where: str, prefix: str = ""):
    """A config dataclass from YAML data, every key and value checked (also other tools' schemas, e.g.
    sweep specs). A field with `metadata={"section": True}` is a section whose errors name it in `where`
    and its keys bare (`spec.yaml: slurm: unknown key 'gpus'; valid keys are partition, ...`)."""
    if not isinstance(d, dict):
        raise UserError(f"{where}: '{prefix.rstrip('.') or 'top level'}' must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    fields = {_key(f): f.name for f in dataclasses.fields(cls)}  # YAML key -> attribute
    kwargs = {}
    for key, value in d.items():
        if key not in fields:
            raise UserError(
                f"{where}: unknown key '{prefix}{key}'; valid keys are {', '.join(prefix + n for n in fields)}"
            )
        name = fields[key]
        tp = hints[name]
        if dataclasses.is_dataclass(tp) and _field(cls, name).metadata.get("section"):
            if value is not None and not isinstance(value, dict):
                raise UserError(f"{where}: {prefix}{key} must be a mapping with the keys "
                                f"{', '.join(_key(f) for f in dataclasses.fields(tp))}")
            kwargs[name] = from_dict(tp, value or {}, f"{where}: {prefix}{key}")
        elif dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, value or {}, where, f"{prefix}{key}.")
        else:
            kwargs[name] = _coerce(value, tp, f"{where}: {prefix}{key}")
    return cls(**kwargs)


def _field(cls, name: str):
    return next(f for f in dataclasses.fields(cls) if f.name == name)


def _key(f) -> str:
    """A field's YAML key: its name, or `metadata['key']` where the name is a Python keyword (from)."""
    return f.metadata.get("key", f.name)


def to_dict(cfg) -> dict:
    """The config as plain data, with YAML keys (`finetune.from`), tuples as lists."""
    out = {}
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        out[_key(f)] = to_dict(v) if dataclasses.is_dataclass(v) else (list(v) if isinstance(v, tuple) else v)
    return out


def config_from_dict(d: dict, where: str = "checkpoint") -> "Config":
    """A Config from `to_dict`'s output (e.g. the copy inside a checkpoint), checked."""
    cfg = from_dict(Config, d, where)
    check(cfg, where)
    return cfg


def _set_path(d: dict, dotted: str, value, where: str):
    keys = dotted.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise UserError(f"{where}: '{dotted}' does not name a config field")
    node[keys[-1]] = value


def closest(word: str, choices, n: int = 3) -> str:
    """' (did you mean a, b?)' with the choices nearest to `word` (difflib), or '' when none is near."""
    near = difflib.get_close_matches(word, list(choices), n=n, cutoff=0.5)
    return f" (did you mean {', '.join(near)}?)" if near else ""


def config_keys(cls=None, prefix: str = "") -> dict[str, Any]:
    """Every settable dotted key of a config dataclass -> its type (`optim.lr` -> float)."""
    return dict(_config_keys(cls or Config, prefix))


@functools.lru_cache(maxsize=None)
def _config_keys(cls, prefix: str) -> dict[str, Any]:
    """config_keys, computed once per class (resolving the type hints would otherwise be repeated for
    every --set and every planned sweep run)."""
    hints = typing.get_type_hints(cls)
    out = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(_config_keys(tp, f"{prefix}{_key(f)}."))
        else:
            out[f"{prefix}{_key(f)}"] = tp
    return out


def _example(key: str, tp) -> str:
    """An accepted --set spelling of `key`: its default value in YAML flow style."""
    section, name = key.split(".", 1)
    default = getattr(getattr(Config(), section), next(f.name for f in dataclasses.fields(getattr(Config(), section))
                                                       if _key(f) == name))
    value = yaml.safe_dump(list(default) if isinstance(default, tuple) else default, default_flow_style=True,
                           width=10**6).strip()
    value = value[:-3].strip() if value.endswith("...") else value
    return f"--set {key}={value.replace(', ', ',')}"


def parse_override(text: str) -> tuple[str, Any]:
    """One `--set section.field=value` -> (key, value as YAML reads it), checked against the Config
    fields and types; every error names the --set and shows the accepted syntax."""
    if "=" not in text:
        raise UserError(f"--set {text}: expected section.field=value, e.g. --set optim.lr=1e-4")
    key, val = (x.strip() for x in text.split("=", 1))
    keys = config_keys()
    if key not in keys:
        section = key.split(".", 1)[0]
        sections = sorted({k.split(".", 1)[0] for k in keys})
        if "." not in key or section not in sections:
            same_field = [k for k in keys if k.rsplit(".", 1)[-1] == key.rsplit(".", 1)[-1]]
            hint = (f" (did you mean {', '.join(same_field)}?)" if same_field else
                    closest(key, keys) or closest(section, sections) or f"; sections are {', '.join(sections)}")
        else:
            hint = (f"; valid keys are {', '.join(k for k in keys if k.startswith(section + '.'))}"
                    f"{closest(key, keys)}")
        raise UserError(f"--set {text}: unknown key '{key}'{hint}")
    try:
        value = yaml.safe_load(val) if val else ""
    except yaml.YAMLError:
        raise UserError(f"--set {text}: the value is not valid YAML; write e.g. {_example(key, keys[key])}") from None
    try:
        _coerce(value, keys[key], f"--set {text}")
    except UserError as e:
        raise UserError(f"{e}; write e.g. {_example(key, keys[key])}") from None
    return key, value


def resolve_config_path(path: str, subdir: str = "", what: str = "config file") -> Path:
    """A path as given, else a bare name (with or without .yaml) among the shipped configs (in their
    folder `subdir`, e.g. sweeps)."""
    p = Path(path)
    if p.is_file():
        return p
    shipped = CONFIG_DIR / subdir if CONFIG_DIR is not None and (CONFIG_DIR / subdir).is_dir() else None
    for c in ([shipped / p.name, shipped / (p.name + ".yaml")] if shipped else []):
        if c.is_file():
            return c
    available = sorted(x.name for x in shipped.glob("*.yaml")) if shipped else []
    near = difflib.get_close_matches(p.name if p.name.endswith(".yaml") else p.name + ".yaml", available, n=3,
                                     cutoff=0.6)
    hint = (f"did you mean {', '.join(near)}?" if near else
            f"the {len(available)} available ones are in {shipped}" if shipped else
            "the shipped configs are not installed")
    raise UserError(f"{what} '{path}' not found, here or among the shipped ones; {hint}")


def apply_overrides(raw: dict, overrides, flags: dict | None = None) -> dict[str, str]:
    """Apply `--set` strings (checked by parse_override), then `flags` ({dotted key: (the option as typed,
    its value or None when not given)}), to the raw config `raw` in place; returns {dotted key: what set
    it}, for error messages."""
    given = {}
    for ov in overrides:
        key, value = parse_override(ov)
        _set_path(raw, key, value, "--set")
        given[key] = f"--set {ov}"
    for key, (option, value) in (flags or {}).items():
        if value is not None:
            _set_path(raw, key, value, option)
            given[key] = f"{option} {value}"
    return given


def load_config(path: str | None = None, overrides: list[str] = (), recipe=None) -> Config:
    """Load a YAML file (or the defaults when `path` is None) and apply `key=value` overrides.

    `recipe(raw) -> dict`, if given, supplies defaults of a tool (e.g. the fine-tuning recipe) from
    the file and overrides as read: the file and the overrides win over it, it wins over the
    dataclass defaults."""
    raw: dict = {}
    where = "defaults"
    if path is not None:
        p = resolve_config_path(path)
        where = str(p)
        try:
            raw = yaml.safe_load(read_text(p, "a config is YAML")) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise UserError(f"{p} must hold a mapping of sections (data, model, aug, optim, train, run)")
        raw.setdefault("run", {})
        if not (raw["run"] or {}).get("name"):
            raw["run"] = {**(raw["run"] or {}), "name": p.stem}
    from_dict(Config, raw, where)  # the file alone: its own mistakes are blamed on it
    given = apply_overrides(raw, overrides)
    if recipe is not None:
        raw = _merged(recipe(raw), raw)
    cfg = from_dict(Config, raw, where)
    if not cfg.run.name:
        cfg.run.name = "run"
    check(cfg, where, given)
    return cfg


def _merged(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merged(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def save_config(cfg: Config, path) -> None:
    """The resolved config as ordinary YAML that load_config reads back."""
    write_text_atomic(str(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
