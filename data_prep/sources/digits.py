"""scikit-learn's bundled handwritten digits: 1797 real 8x8 grayscale scans, no download needed.

Pixels (0..16) are scaled to 0..255, upsampled to `res` (bicubic) and replicated to RGB.
Fixed split: the first 1437 images train, the last 360 test (80/20, in the order sklearn ships).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

NAME = "digits"
HELP = "scikit-learn's bundled 8x8 handwritten digits (demo and tests; no --src needed)"
N_TRAIN = 1437


def add_arguments(parser) -> None:
    pass


def load(args):
    from sklearn.datasets import load_digits

    from data_prep.sources import SourceData
    from data_prep.writer import ArrayRecords

    d = load_digits()
    gray = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)  # (1797, 8, 8)
    res = args.res
    up = np.stack([np.asarray(Image.fromarray(g).resize((res, res), Image.Resampling.BICUBIC)) for g in gray])
    rgb = np.repeat(up[..., None], 3, axis=-1)  # (N, res, res, 3)
    labels = d.target.astype(np.int64)
    return SourceData(
        splits={
            "train": ArrayRecords(rgb[:N_TRAIN], labels[:N_TRAIN]),
            "test": ArrayRecords(rgb[N_TRAIN:], labels[N_TRAIN:]),
        },
        classes=[str(i) for i in range(10)],
    )
