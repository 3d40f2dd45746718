"""scikit-learn's bundled handwritten digits: 1797 real 8x8 grayscale scans, no download needed.

Pixels (0..16) are scaled to 0..255 and replicated to RGB; the engine resizes them to `res` in
its workers like any other image (bicubic when enlarging, see data_prep/resize.py).
Fixed split: the first 1437 images train, the last 360 test (80/20, in the order sklearn ships).
"""
from __future__ import annotations

import os

import numpy as np

NAME = "digits"
HELP = "scikit-learn's bundled 8x8 handwritten digits (demo and tests; no --src needed)"
N_TRAIN = 1437


def add_arguments(parser) -> None:
    pass


def read_digits() -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float 0..16, labels (1797,)) as `sklearn.datasets.load_digits` returns them.

    Read from the CSV file scikit-learn ships, without importing scikit-learn (~1.5 s, most of
    this source's start-up); `load_digits` itself only where that file is not found.
    """
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    path = os.path.join(spec.submodule_search_locations[0], "datasets", "data", "digits.csv.gz") if spec else ""
    if os.path.isfile(path):
        data = np.loadtxt(path, delimiter=",")
        return data[:, :-1].reshape(-1, 8, 8), data[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target.astype(np.int64)


def load(args, pool=None):
    from data_prep.records import ArrayRecords, SourceData

    images, labels = read_digits()
    gray = np.clip(images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # (1797, 8, 8)
    rgb = np.repeat(gray[..., None], 3, axis=-1)  # (N, 8, 8, 3)
    return SourceData(
        splits={
            "train": ArrayRecords(rgb[:N_TRAIN], labels[:N_TRAIN]),
            "test": ArrayRecords(rgb[N_TRAIN:], labels[N_TRAIN:]),
        },
        classes=[str(i) for i in range(10)],
    )


def export_folders(out: str, labels: dict | None = None) -> None:
    """The digits as a class-folder tree for `mlpscale-convert folder` (8x8 PNGs), e.g. a remapped task:
    OUT/train/<class>/*.png and OUT/test/<class>/*.png, written whole or not at all.

    labels: {digit: class name} (several digits may share a class: a remapped task); digits not listed
    are left out; default: every digit its own class. The split is the one of `mlpscale-convert digits`
    (scikit-learn's first 1437 images train, the last 360 test), so a model pre-trained on the digits
    betons never saw the test images.
    """
    from PIL import Image

    from mlpscale.io import atomic_folder

    images, digits = read_digits()
    gray = np.clip(images * (255.0 / 16.0), 0, 255).astype(np.uint8)           # (1797, 8, 8)
    names = {int(k): str(v) for k, v in (labels or {d: str(d) for d in range(10)}).items()}
    with atomic_folder(out) as tmp:  # a previous export stays in place until this one is complete
        for i, d in enumerate(digits.tolist()):
            if int(d) in names:
                folder = os.path.join(tmp, "train" if i < N_TRAIN else "test", names[int(d)])
                os.makedirs(folder, exist_ok=True)
                Image.fromarray(gray[i], "L").save(os.path.join(folder, f"{i:04d}.png"))
