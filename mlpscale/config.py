"""Experiment configuration: YAML mapped onto typed dataclasses.

Every hyper-parameter has one home here, with its default and a one-line meaning. A YAML file
sets any subset of fields; an unknown key is an error that names the file, the key and the valid
keys. Any field can be overridden from the command line with `--set section.field=value`
(the value is parsed as YAML: `--set optim.lr=1e-4 --set aug.crop_scale=[0.35,1]`).
The fully resolved config is saved as `config.yaml` in the run directory.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import UserError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class DataConfig:
    dataset: str = "cifar10"     # registry name (mlpscale/datasets.py) or a converted folder dataset
    root: str = "data"           # folder holding <dataset>/<split>_<res>.beton (mlpscale-convert --out)
    res: int = 0                 # resolution of the stored images; 0 = the dataset's default
    crop_res: int = 0            # resolution the model sees; 0 = res
    n_train: int = 0             # train on a class-balanced subset of this many images; 0 = all
    subset_seed: int = 0         # seed of the subset choice (fixed across runs of one study)
    resident: str = "auto"       # keep the whole dataset on the device: auto (if it fits) | on | off
    resident_max_gb: float = 0.0  # auto mode's limit; 0 = half of the device's free memory
    workers: int = 0             # FFCV decode threads when streaming; 0 = all cores
    os_cache: bool = True        # FFCV: memory-map the beton (fast when it fits in RAM)


@dataclass
class ModelConfig:
    arch: str = "B_6-Wi_1024"    # paper naming: B_<blocks>-Wi_<width>[-E_<expansion>] or S_<depth>-Wi_<width>
    act: str = "gelu"            # gelu | relu
    norm: str = "layer"          # layer | batch | none
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
    name: str = "lion"           # lion | sgd | adamw
    lr: float = 5e-5             # peak learning rate (paper: LION 5e-5 from scratch, 1e-5 scaling runs)
    weight_decay: float = 0.0    # decoupled: p *= 1 - lr * wd (paper scaling runs: 1e-3)
    betas: tuple[float, float] = (0.9, 0.99)  # LION / AdamW betas
    momentum: float = 0.9        # SGD momentum
    schedule: str = "constant"   # constant (the paper's) | cosine; both after the linear warmup
    warmup_epochs: float = 0.0   # linear warmup length in epochs
    min_lr: float = 0.0          # floor of the cosine schedule
    grad_clip: float = 0.0       # clip the global grad norm to this; 0 = off
    label_smoothing: float = 0.3  # cross-entropy label smoothing (paper)


@dataclass
class TrainConfig:
    epochs: int = 500            # passes over the (sub)set (the paper's code default)
    batch_size: int = 4096       # global batch per optimizer step (= per-rank x ranks x accum_steps)
    accum_steps: int = 1         # gradient accumulation micro-steps per optimizer step
    precision: str = "auto"      # auto (bf16 on CUDA, fp32 on CPUs without fast bf16) | bf16 (autocast) | fp32
    compile: str = "auto"        # torch.compile the model: auto (on CUDA only) | on | off
    seed: int = 0                # seeds data order, augmentation and init
    device: str = "auto"         # auto (cuda if available) | cpu | cuda | cuda:N
    eval_every: int = 1          # evaluate every K epochs (and at the last)
    ckpt_every: int = 1          # write last.pt every K epochs (and at the last, and on SIGINT/SIGTERM)
    keep_every: int = 0          # also keep epoch_<E>.pt every K epochs (scaling study); 0 = never
    log_every: int = 50          # steps between host syncs for the progress bar and the NaN check
    peak_tflops: float = 0.0     # device peak for MFU; 0 = datasheet value of a known GPU (hardware.py)
    max_steps: int = 0           # stop after this many optimizer steps (smoke tests, benchmarks); 0 = all


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
    run: RunConfig = field(default_factory=RunConfig)


# --- dict <-> dataclass ---------------------------------------------------------------------

def _coerce(value, tp, where: str):
    """Convert a YAML value to the field type `tp`, or raise a UserError naming `where`."""
    origin = typing.get_origin(tp)
    try:
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


def _from_dict(cls, d: dict, where: str, prefix: str = ""):
    if not isinstance(d, dict):
        raise UserError(f"{where}: '{prefix.rstrip('.') or 'top level'}' must be a mapping of keys to values")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in d.items():
        if key not in names:
            raise UserError(
                f"{where}: unknown key '{prefix}{key}'; valid keys are {', '.join(prefix + n for n in names)}"
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            kwargs[key] = _from_dict(tp, value or {}, where, f"{prefix}{key}.")
        else:
            kwargs[key] = _coerce(value, tp, f"{where}: {prefix}{key}")
    return cls(**kwargs)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _set_path(d: dict, dotted: str, value, where: str):
    keys = dotted.split(".")
    node = d
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise UserError(f"{where}: '{dotted}' does not name a config field")
    node[keys[-1]] = value


def resolve_config_path(path: str) -> Path:
    """A path as given, else a bare name (with or without .yaml) inside the repository's configs/."""
    p = Path(path)
    candidates = [p, CONFIG_DIR / p.name, CONFIG_DIR / (p.name + ".yaml")]
    for c in candidates:
        if c.is_file():
            return c
    available = sorted(x.name for x in CONFIG_DIR.glob("*.yaml")) if CONFIG_DIR.is_dir() else []
    raise UserError(
        f"config file '{path}' not found (looked here and in {CONFIG_DIR}); available: {', '.join(available) or 'none'}"
    )


def load_config(path: str | None = None, overrides: list[str] = ()) -> Config:
    """Load a YAML file (or the defaults when `path` is None) and apply `key=value` overrides."""
    raw: dict = {}
    where = "defaults"
    if path is not None:
        p = resolve_config_path(path)
        where = str(p)
        try:
            raw = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise UserError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(raw, dict):
            raise UserError(f"{p} must hold a mapping of sections (data, model, aug, optim, train, run)")
        raw.setdefault("run", {})
        if not (raw["run"] or {}).get("name"):
            raw["run"] = {**(raw["run"] or {}), "name": p.stem}
    for ov in overrides:
        if "=" not in ov:
            raise UserError(f"override '{ov}' must look like section.field=value, e.g. optim.lr=1e-4")
        key, val = ov.split("=", 1)
        _set_path(raw, key.strip(), yaml.safe_load(val) if val.strip() else "", "--set")
    cfg = _from_dict(Config, raw, where)
    if not cfg.run.name:
        cfg.run.name = "run"
    return cfg


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    d = to_dict(cfg)
    # tuples as plain lists, so the file is ordinary YAML that load_config reads back
    text = yaml.safe_dump(json_ready(d), sort_keys=False)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def json_ready(obj):
    if isinstance(obj, dict):
        return {k: json_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_ready(v) for v in obj]
    return obj
