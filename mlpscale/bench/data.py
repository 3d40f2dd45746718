"""Generated datasets for the benchmarks: arrays and `.beton` files in mlpscale's layout.

Raw images are uniform noise (a raw beton's cost does not depend on content); JPEG images are
smooth colour fields with mild noise, so they compress and decode like photographs rather than
like noise. Betons are written with FFCV's own DatasetWriter (mlpscale does not import
data_prep; the inputs here are valid in-memory arrays, so none of its failure modes apply), plus
the `meta_<res>.json` that lets the trainer's dataset registry know the generated dataset.
"""
from __future__ import annotations

import contextlib
import json
import os

import numpy as np
import torch

from ..datasets import CIFAR_MEAN, CIFAR_STD, beton_path, meta_path

NAME = "benchsynth"


def make_images(n: int, res: int, smooth: bool, seed: int = 0) -> np.ndarray:
    """(n, res, res, 3) uint8."""
    rng = np.random.default_rng(seed)
    if not smooth:
        return rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
    coarse = torch.from_numpy(rng.uniform(0, 255, (n, 3, 4, 4)).astype(np.float32))
    up = torch.nn.functional.interpolate(coarse, size=(res, res), mode="bilinear", align_corners=False)
    up = up + torch.from_numpy(rng.normal(0, 6, (n, 3, res, res)).astype(np.float32))
    return up.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def make_labels(n: int, num_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, num_classes, n).astype(np.int64)


class _Indexed:
    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], int(self.labels[i])


def write_beton(path: str, images: np.ndarray, labels: np.ndarray, fmt: str = "raw", workers: int = 0) -> str:
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    from ..loader import keep_torch_threads

    res = images.shape[1]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    import ffcv.writer
    from tqdm import tqdm

    quiet = lambda *a, **k: tqdm(*a, **{**k, "disable": True})  # noqa: E731 - its bar would flood CI logs
    with keep_torch_threads(), _swapped(ffcv.writer, "tqdm", quiet):
        w = DatasetWriter(tmp, {"image": RGBImageField(write_mode=fmt, max_resolution=res, jpeg_quality=90),
                                "label": IntField()}, num_workers=workers or min(8, os.cpu_count() or 1))
        w.from_indexed_dataset(_Indexed(images, labels))
    os.replace(tmp, path)
    return path


def make_dataset(root: str, n_train: int, n_test: int, res: int, num_classes: int = 10, fmt: str = "raw",
                 seed: int = 0) -> str:
    """Write ROOT/benchsynth/{train,test}_<res>.beton and meta_<res>.json; returns the dataset name.

    Reuses files that already exist with the same size (the loader suite and e2e share them)."""
    meta = {"num_classes": num_classes, "counts": {"train": n_train, "test": n_test}, "res": res,
            "mean": list(CIFAR_MEAN), "std": list(CIFAR_STD), "eval_split": "test", "format": fmt}
    mp = meta_path(root, NAME, res)
    if os.path.exists(mp):
        with open(mp) as f:
            if json.load(f) == meta and all(os.path.exists(beton_path(root, NAME, s, res)) for s in ("train", "test")):
                return NAME
    smooth = fmt == "jpg"
    for split, n, s in (("train", n_train, seed), ("test", n_test, seed + 100)):
        write_beton(beton_path(root, NAME, split, res), make_images(n, res, smooth, s),
                    make_labels(n, num_classes, s), fmt)
    os.makedirs(os.path.dirname(mp), exist_ok=True)
    with open(mp, "w") as f:
        json.dump(meta, f)
    return NAME


@contextlib.contextmanager
def _swapped(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def ffcv_status() -> str | None:
    """None when FFCV imports and can read; otherwise why not (one line)."""
    try:
        import ffcv.fields.rgb_image  # noqa: F401 - loads the compiled extension
        import ffcv.loader  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"[:300]
    return None
