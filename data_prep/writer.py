"""Writing `.beton` files safely.

FFCV's `DatasetWriter` truncates its target first, hangs if one of its workers raises, and leaves a
partial file after a crash. So every image reaching it is already decoded and validated (a fixed
`res x res x 3` uint8 array), the file is written to a temporary name next to the target, read
back and checked (header, sample count), and only then renamed into place. An interrupted
conversion therefore leaves at most a `*.tmp-*` file, never a file that looks complete.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Protocol

import numpy as np

from mlpscale.errors import UserError


class ImageRecords(Protocol):
    """What the writer needs: `len()` and `[i] -> (uint8 array (res, res, 3), int label)`."""

    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[np.ndarray, int]: ...


class ArrayRecords:
    """Records backed by in-memory arrays: images (N, res, res, 3) uint8, labels (N,) int."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])


def write_beton(path: str, records: ImageRecords, res: int, fmt: str = "raw", jpeg_quality: int = 90,
                workers: int = 0) -> int:
    """Write `records` to `path` atomically; returns the number of samples written."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    if fmt not in ("raw", "jpg"):
        raise UserError(f"unknown --format '{fmt}': use raw (fastest to read) or jpg (smaller)")
    n = len(records)
    if n == 0:
        raise UserError(f"nothing to write to {path}: the source split is empty")
    first, _ = records[0]
    if first.shape != (res, res, 3):
        raise ValueError(f"records must be ({res}, {res}, 3), got {first.shape}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=os.path.dirname(os.path.abspath(path)))
    os.close(fd)
    try:
        fields = {
            "image": RGBImageField(write_mode=fmt, max_resolution=res, jpeg_quality=jpeg_quality),
            "label": IntField(),
        }
        nw = max(1, workers or os.cpu_count() or 1)
        nw = min(nw, 1 + (n * (res * res * 3 + 64)) // (1 << 22))  # a tiny dataset needs one worker
        writer = DatasetWriter(tmp, fields, num_workers=nw, page_size=_page_size(n, res, nw))
        writer.from_indexed_dataset(records, chunksize=max(16, min(1000, n // (4 * (workers or 1)) or 16)))
        got = count_samples(tmp)
        if got != n:
            raise RuntimeError(f"wrote {got} samples to {tmp}, expected {n}")
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return n


def _page_size(n: int, res: int, workers: int) -> int:
    """FFCV page size: its default 4 MiB for big datasets, its minimum 2 MiB for small ones.

    Each worker fills whole pages, so a tiny dataset written with big pages wastes megabytes.
    A page must be a power of two that holds at least one sample.
    """
    from ffcv.writer import MIN_PAGE_SIZE

    sample = res * res * 3 + 64
    page = MIN_PAGE_SIZE if n * sample < 8 * workers * MIN_PAGE_SIZE else 1 << 22
    return max(page, 1 << (sample - 1).bit_length())


def count_samples(path: str) -> int:
    """Number of samples recorded in a beton's header (raises if the file is not a valid beton)."""
    from ffcv.reader import Reader

    return int(Reader(path).num_samples)


def write_json_atomic(path: str, obj: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def channel_stats(images: np.ndarray, max_images: int = 50_000) -> tuple[list[float], list[float]]:
    """Per-channel mean and std on the 0..255 scale, from up to `max_images` evenly spaced images."""
    step = max(1, len(images) // max_images)
    x = images[::step].reshape(-1, 3).astype(np.float64)
    return x.mean(0).tolist(), x.std(0).tolist()
