"""Dataset registry: what every module needs to know about a dataset, in one place.

Built-in entries carry the paper's numbers (classes, training-set sizes, default resolution) and
the fixed normalisation constants of the authors' code (`data_utils/data_stats.py`: CIFAR-100 uses
CIFAR-10's, the ImageNets and TinyImageNet ImageNet's). A dataset converted by `mlpscale-convert`
also has `ROOT/<name>/meta_<res>.json` (mlpscale/layout.py owns the layout); `get_dataset(name, root,
res)` reads it, so a user's own dataset (the `folder` source) is known without code changes, and
the statistics the converter measured are available next to the paper's (`stats_for`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .errors import UserError
from .layout import beton_path, read_meta

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
CIFAR_MEAN = (0.49139968 * 255, 0.48215827 * 255, 0.44653124 * 255)
CIFAR_STD = (0.24703233 * 255, 0.24348505 * 255, 0.26158768 * 255)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    train_samples: int          # size of the training split (the paper's N for a full run)
    eval_samples: int           # size of the evaluation split
    default_res: int            # resolution the paper trains at
    mean: tuple[float, float, float] | None  # the paper's per-channel constants, 0..255 scale (None: none)
    std: tuple[float, float, float] | None
    eval_split: str = "test"    # name of the evaluation split on disk ("val" for ImageNet)
    class_names: tuple[str, ...] = field(default=(), repr=False)
    measured_mean: tuple[float, float, float] | None = None  # the converter's statistics (meta_<res>.json)
    measured_std: tuple[float, float, float] | None = None
    builtin: bool = False

    def beton_path(self, root: str, split: str, res: int | None = None) -> str:
        return beton_path(root, self.name, split, res or self.default_res)

    def convert_command(self, root: str, res: int | None = None) -> str:
        """The exact command that writes this dataset's betons at `res`."""
        return f"mlpscale-convert {self.name} --res {res or self.default_res} --root {root}" + (
            "" if self.name == "digits" else " --src PATH_TO_DOWNLOADED_FILES"
        )


BUILTIN: dict[str, DatasetInfo] = {
    d.name: dataclasses.replace(d, builtin=True)
    for d in [
        # scikit-learn's bundled 8x8 handwritten digits (1797 images), our demo dataset.
        # Split: the first 1437 images train, the last 360 test (fixed, see data_prep/sources/digits.py).
        DatasetInfo("digits", 10, 1437, 360, 16, None, None),  # no paper constants: measured stats (meta.json)
        DatasetInfo("cifar10", 10, 50_000, 10_000, 32, CIFAR_MEAN, CIFAR_STD),
        DatasetInfo("cifar100", 100, 50_000, 10_000, 32, CIFAR_MEAN, CIFAR_STD),
        DatasetInfo("stl10", 10, 5_000, 8_000, 64, (0.4914 * 255, 0.4822 * 255, 0.4465 * 255),
                    (0.2471 * 255, 0.2435 * 255, 0.2616 * 255)),
        DatasetInfo("tinyimagenet", 200, 100_000, 10_000, 64, IMAGENET_MEAN, IMAGENET_STD, "val"),
        DatasetInfo("imagenet1k", 1000, 1_281_167, 50_000, 64, IMAGENET_MEAN, IMAGENET_STD, "val"),
        # The paper's ImageNet-21k (Ridnik et al. 2021 preprocessing): 11,230 classes, 11,801,680 training
        # images; validation = 50 held-out images per class. meta_<res>.json has the converted counts.
        DatasetInfo("imagenet21k", 11_230, 11_801_680, 11_230 * 50, 64, IMAGENET_MEAN, IMAGENET_STD, "val"),
    ]
}


def known_names() -> list[str]:
    return sorted(BUILTIN)


def converted_resolutions(root: str, name: str) -> list[int]:
    """The resolutions of ROOT/<name>/ that have a meta_<res>.json, ascending."""
    import os
    import re

    try:
        names = os.listdir(os.path.join(root, name))
    except OSError:
        return []
    return sorted(int(m[1]) for m in map(re.compile(r"meta_(\d+)\.json$").match, names) if m)


def get_dataset(name: str, root: str | None = None, res: int | None = None) -> DatasetInfo:
    """Registry entry for `name`, updated from `ROOT/<name>/meta_<res>.json` when it exists.

    The meta file wins for what it knows (classes, counts, measured statistics), so a
    subset or a user's own class-folder dataset needs no code change.
    """
    info = BUILTIN.get(name)
    meta = read_meta(root, name, res or (info.default_res if info else None)) if root else None
    if meta is None:
        have = converted_resolutions(root, name) if root else []
        if have and res:  # the dataset exists, at other resolutions
            import re

            command = (read_meta(root, name, have[-1]) or {}).get("command") or \
                f"mlpscale-convert SOURCE --name {name} --res {have[-1]} --out {root}"
            command = re.sub(r"--res \d+", f"--res {res}", command)
            raise UserError(f"{name} in {root} is converted at {', '.join(f'{r}px' for r in have)}, not {res}px; "
                            f"use data.res={have[-1]} (--set data.res={have[-1]}), or convert it at {res}px "
                            f"({command})")
        if info is None:
            raise UserError(
                f"unknown dataset '{name}': known are {', '.join(known_names())}; for your own data, "
                f"convert it first with `mlpscale-convert folder --src DIR --dataset {name} --res R --root ROOT`"
            )
        return info
    counts = meta.get("counts", {})
    eval_split = meta.get("eval_split", info.eval_split if info else "test")
    updates = dict(
        name=name,
        num_classes=int(meta["num_classes"]),
        train_samples=int(counts.get("train", info.train_samples if info else 0)),
        eval_samples=int(counts.get(eval_split, info.eval_samples if info else 0)),
        default_res=int(meta.get("res", res)),
        measured_mean=tuple(meta["mean"]) if "mean" in meta else None,
        measured_std=tuple(meta["std"]) if "std" in meta else None,
        eval_split=eval_split,
        class_names=tuple(meta.get("classes", ())),
    )
    return dataclasses.replace(info, **updates) if info else DatasetInfo(**updates, mean=None, std=None)


def stats_for(info: DatasetInfo, mode: str) -> tuple[tuple, tuple, str]:
    """(mean, std, which) for `data.stats`: paper (the authors' constants), measured (the converter's),
    auto (paper where the authors define them, else measured)."""
    if mode == "auto":
        mode = "paper" if info.mean is not None else "measured"
    if mode == "paper":
        if info.mean is None:
            raise UserError(f"data.stats=paper, but the paper defines no normalisation constants for "
                            f"'{info.name}'; use data.stats=measured")
        return tuple(info.mean), tuple(info.std), "paper"
    if info.measured_mean is None:
        raise UserError(f"data.stats=measured, but {info.name} has no meta_<res>.json with measured statistics; "
                        f"convert it with mlpscale-convert, or use data.stats=paper")
    return tuple(info.measured_mean), tuple(info.measured_std), "measured"


