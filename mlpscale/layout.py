"""Where a converted dataset lives and what its `meta_<res>.json` says.

Layout of one converted dataset:

    ROOT/<name>/<split>_<res>.beton     fields `image` (RGB uint8) and `label` (int); the paper layout adds `height` and `width`
    ROOT/<name>/meta_<res>.json         classes, per-split counts, stats, conversion id (META_KEYS)
    ROOT/<name>/.lock                   held (flock, mlpscale.io.FolderLock) by the process writing the folder

`check_dataset` refuses a folder whose files come from different conversions (e.g. a re-conversion
killed half-way).
"""
from __future__ import annotations

import json
import os
import uuid

from .beton import Beton, open_beton
from .errors import UserError

def dataset_dir(root: str, name: str) -> str:
    return os.path.join(root, name)


def beton_path(root: str, name: str, split: str, res: int, suffix: str = "") -> str:
    """ROOT/<name>/<split>_<res><suffix>.beton (suffix: e.g. '.shard-0-of-4')."""
    return os.path.join(root, name, f"{split}_{res}{suffix}.beton")


def meta_path(root: str, name: str, res: int, suffix: str = "") -> str:
    return os.path.join(root, name, f"meta_{res}{suffix}.json")


def sidecar_path(root: str, name: str, key: str, res: int, suffix: str = "") -> str:
    """Per-sample side data aligned with a split, e.g. ROOT/imagenet1k/real_labels_64.json."""
    return os.path.join(root, name, f"{key}_{res}{suffix}.json")


META_KEYS = {
    "name": "dataset name on disk",
    "source": "converter source (cifar10, folder, ...)",
    "res": "stored resolution (square; with layout 'paper', the longer side's maximum)",
    "layout": "'square' (res x res, centre crop) or 'paper' (aspect kept, longer side <= res, top-left "
              "in a res x res canvas; true sizes in the betons' height/width fields)",
    "format": "raw | jpg",
    "num_classes": "number of classes",
    "classes": "class ids in label order",
    "counts": "samples per split, as written",
    "eval_split": "name of the evaluation split",
    "mean": "per-channel mean on the 0..255 scale (train split)",
    "std": "per-channel std on the 0..255 scale (train split)",
    "conversion_id": "stamped into every beton of this conversion",
    "files": "split -> beton file name",
}


def new_conversion_id() -> str:
    return str(uuid.uuid4())


def read_meta(root: str, name: str, res: int | None) -> dict | None:
    """`meta_<res>.json` of a dataset, or None when there is none."""
    if res is None:
        return None
    path = meta_path(root, name, res)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path} ({e}); re-run the conversion that wrote it") from None


def check_dataset(root: str, name: str, res: int, splits: list[str], hint: str) -> dict[str, Beton]:
    """Open the betons of `splits` and check that they and `meta_<res>.json` belong together.

    Images of a fixed size must be res x res. Files of another tool (no stamp, no meta) are accepted
    as they are; a stamped beton needs the meta of the same conversion, with its sample count.
    """
    meta = read_meta(root, name, res)
    bets = {s: open_beton(beton_path(root, name, s, res), hint) for s in splits}
    for b in bets.values():
        fixed = b.resolution()
        if fixed is not None and fixed != (res, res):
            raise UserError(f"{b.path} holds {fixed[0]}x{fixed[1]} images but data.res={res}; "
                            f"re-convert with --res {res} or set data.res={fixed[0]}")
    redo = (meta or {}).get("command") or hint
    mid = (meta or {}).get("conversion_id")
    for split, b in bets.items():
        bid = b.conversion_id
        if bid is None and mid is None:
            continue
        if meta is None:
            raise UserError(f"{meta_path(root, name, res)} is missing next to {b.path} (an interrupted "
                            f"conversion?); re-run it: {redo}")
        if bid != mid:
            raise UserError(f"{b.path} and {meta_path(root, name, res)} come from different conversions "
                            f"(an interrupted re-conversion?); re-run it: {redo}")
        want = (meta.get("counts") or {}).get(split)
        if want is not None and int(want) != b.num_samples:
            raise UserError(f"{b.path} holds {b.num_samples} samples but {meta_path(root, name, res)} "
                            f"says {want}; re-run the conversion: {redo}")
    return bets
