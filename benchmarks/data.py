"""Generated datasets for the benchmarks: arrays and `.beton` files in mlpscale's layout.

Raw images are uniform noise (a raw beton's cost does not depend on content); JPEG images are
smooth colour fields with mild noise, so they compress and decode like photographs rather than
like noise. Betons are written by mlpscale's own writer (`format.write_arrays`, FFCV's file format;
no FFCV needed, so the GPU check can make them on a machine without it), plus the `meta_<res>.json`
that lets the trainer's dataset registry know the generated dataset. `write_jpeg_beton` makes
millions of JPEG samples without holding them: a few thousand distinct payloads, cycled, through
the same writer's `BetonWriter`.
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch

from mlpscale import ffcv_compat
from mlpscale.datasets import CIFAR_MEAN, CIFAR_STD
from mlpscale.beton import write_arrays
from mlpscale.io import write_json_atomic
from mlpscale.layout import beton_path, meta_path

NAME = "benchsynth"


def make_images(n: int, res: int, smooth: bool, seed: int = 0, chunk: int = 4096) -> np.ndarray:
    """(n, res, res, 3) uint8 (smooth ones made `chunk` at a time: the float intermediates stay small)."""
    rng = np.random.default_rng(seed)
    if not smooth:
        return rng.integers(0, 256, (n, res, res, 3), dtype=np.uint8)
    g = torch.Generator().manual_seed(seed)
    out = np.empty((n, res, res, 3), dtype=np.uint8)
    for s in range(0, n, chunk):
        k = min(chunk, n - s)
        coarse = torch.rand((k, 3, 4, 4), generator=g) * 255
        up = torch.nn.functional.interpolate(coarse, size=(res, res), mode="bilinear", align_corners=False)
        up += torch.randn(up.shape, generator=g) * 6
        out[s:s + k] = up.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return out


def make_labels(n: int, num_classes: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed + 1).integers(0, num_classes, n).astype(np.int64)


def write_beton(path: str, images: np.ndarray, labels: np.ndarray, fmt: str = "raw") -> str:
    write_arrays(path, images, labels, fmt, quality=90)
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
    write_json_atomic(mp, meta)
    return NAME


def write_jpeg_beton(path: str, n: int, res: int, num_classes: int, distinct: int = 65536, seed: int = 0,
                     workers: int = 0) -> str:
    """A JPEG beton of `n` smooth res x res images for the tiered figures, without holding n images:
    `distinct` images are encoded once (in threads) and their payloads cycled (a JPEG decodes at the
    same cost whichever copy it is), written with mlpscale's own writer (no FFCV)."""
    from concurrent.futures import ThreadPoolExecutor

    from mlpscale.beton import MODE_JPG, BetonWriter, encode_image

    k = min(n, distinct)
    imgs = make_images(k, res, smooth=True, seed=seed)
    with ThreadPoolExecutor(max_workers=workers or len(os.sched_getaffinity(0))) as pool:
        payloads = [p for p, _ in pool.map(lambda a: encode_image(a, "jpg", 90), imgs, chunksize=256)]
    labels = make_labels(n, num_classes, seed)
    writer = BetonWriter(path, n, max(len(p) for p in payloads))
    try:
        for i in range(n):
            writer.add(payloads[i % k], MODE_JPG, res, res, int(labels[i]))
        writer.commit()
    finally:
        writer.abort()
    return path


def ffcv_status() -> str | None:
    """None when FFCV imports here; otherwise why not (one line)."""
    why = ffcv_compat.ffcv_status()
    return None if why is None else why[:300]
