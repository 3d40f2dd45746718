"""Writing `.beton` files safely: the small public surface over `engine` and `beton`.

FFCV's `DatasetWriter` truncates its target first, hangs if one of its workers raises, and leaves a
partial file after a crash. We never hand it anything: images are decoded and validated in our own
workers (`data_prep.engine`), streamed into our own page writer (`data_prep.beton.BetonWriter`,
same file format) under a temporary name, read back through FFCV's `Reader` and checked (header,
sample count, allocation table), and only then renamed into place. An interrupted conversion
therefore leaves at most a `*.tmp-*` file, never a file that looks complete.
"""
from __future__ import annotations

import json
import os

import numpy as np

from mlpscale.errors import UserError

from .engine import ArrayRecords, FileRecords, SplitResult, write_split  # noqa: F401 (re-exported)


def write_beton(path: str, records, res: int, fmt: str = "raw", jpeg_quality: int = 90,
                workers: int = 0, progress: bool = False) -> int:
    """Write `records` to `path` atomically; returns the number of samples written."""
    if len(records) == 0:
        raise UserError(f"nothing to write to {path}: the source split is empty")
    return write_split(path, records, res, fmt, jpeg_quality, workers, progress=progress).count


def count_samples(path: str) -> int:
    """Number of samples recorded in a beton's header (raises if the file is not a valid beton)."""
    from ffcv.reader import Reader

    return int(Reader(path).num_samples)


def write_json_atomic(path: str, obj) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def channel_stats(images: np.ndarray, max_images: int = 50_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0..255 scale, from up to `max_images` evenly spaced images."""
    step = max(1, len(images) // max_images)
    x = images[::step].reshape(-1, 3).astype(np.float64)
    return x.mean(0).tolist(), x.std(0).tolist()
