"""Parallel decode -> resize -> encode, streamed into a `BetonWriter`.

A split is a sequence of records: decoded arrays (`ArrayRecords`: CIFAR, STL-10) or references to
encoded files (`FileRecords`: loose files, members of uncompressed `.tar` archives read in place by
offset, or in-memory bytes). It is cut into tasks of `batch` consecutive records; a pool of worker
processes turns each task into encoded payloads (raw pixels or JPEG bytes), catching every
per-image error (corrupt, truncated, not an image, decompression bomb) as a skip with its reason.
The parent takes results back in task order (so the output order is deterministic: the record
order minus skipped records), with at most `4 x workers` tasks in flight, and appends them to the
beton. Peak RAM is therefore a few hundred images, whatever the dataset size. A worker that dies
(e.g. killed for memory) raises `BrokenProcessPool` instead of hanging.

JPEG decoding uses Pillow's `draft()`: libjpeg's DCT-domain scaling decodes at 1/2, 1/4 or 1/8 size
directly, as long as the result still covers `res` on the shorter side; then an antialiased
box-filter resize and centre crop (`data_prep.resize.square_resize`).
"""
from __future__ import annotations

import io
import os
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .beton import MODE_JPG, MODE_RAW, BetonWriter


class ArrayRecords:
    """Decoded images (N, H, W, 3) uint8 (any H, W; resized to `res` on writing) and labels (N,)."""

    def __init__(self, images: np.ndarray, labels):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        return self.images[i], int(self.labels[i])

    def task(self, a: int, b: int):
        return ("array", self.images[a:b])


class FileRecords:
    """Encoded images by reference, with labels (N,).

    Either `paths` (one file per record), or tar members: `tars` (archive paths) and per record
    `tar_index`, `offsets` (start of the member's data) and `sizes` -- numpy arrays, so 14M
    ImageNet-21k records take ~0.3 GB instead of several GB of Python tuples -- or `blobs`
    (in-memory encoded bytes, with `names`).
    """

    def __init__(self, labels, paths=None, tars=None, tar_index=None, offsets=None, sizes=None,
                 blobs=None, names=None):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.paths, self.tars, self.blobs, self.names = paths, tars, blobs, names
        self.tar_index = None if tar_index is None else np.asarray(tar_index, dtype=np.int32)
        self.offsets = None if offsets is None else np.asarray(offsets, dtype=np.int64)
        self.sizes = None if sizes is None else np.asarray(sizes, dtype=np.int64)
        n = len(paths if paths is not None else blobs if blobs is not None else self.offsets)
        if n != len(self.labels):
            raise ValueError(f"{n} records but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: np.ndarray) -> "FileRecords":
        """Records at the (sorted) indices `keep`."""
        keep = np.asarray(keep, dtype=np.int64)
        pick = (lambda xs: None if xs is None else [xs[i] for i in keep])
        arr = (lambda xs: None if xs is None else xs[keep])
        return FileRecords(self.labels[keep], pick(self.paths), self.tars, arr(self.tar_index),
                           arr(self.offsets), arr(self.sizes), pick(self.blobs), pick(self.names))

    def task(self, a: int, b: int):
        if self.paths is not None:
            return ("files", self.paths[a:b])
        if self.blobs is not None:
            return ("blobs", list(zip(self.blobs[a:b], self.names[a:b])))
        return ("tar", [(self.tars[t], int(o), int(s)) for t, o, s in
                        zip(self.tar_index[a:b], self.offsets[a:b], self.sizes[a:b])])


# -- the worker side ------------------------------------------------------------------------------
def tar_member_name(tar_path: str, offset: int) -> str:
    """Name of the tar member whose data starts at `offset` (read from its 512-byte header)."""
    import tarfile

    try:
        with open(tar_path, "rb") as f:
            f.seek(offset - 512)
            return tarfile.TarInfo.frombuf(f.read(512), "utf-8", "surrogateescape").name
    except Exception:  # noqa: BLE001 - only used to label a skip
        return f"@{offset}"


def decode_image(data: bytes, res: int) -> np.ndarray:
    """Encoded image bytes -> (res, res, 3) uint8; raises on anything that is not a valid image."""
    from PIL import Image

    from .resize import square_resize

    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            # size request: keep both sides >= res so the shorter side still covers `res`
            img.draft("RGB", (res, res))
        img.load()
        if img.width < 1 or img.height < 1:
            raise ValueError("empty image")
        return square_resize(img, res)


def encode(arr: np.ndarray, fmt: str, quality: int) -> tuple[bytes, int]:
    if fmt == "raw":
        return np.ascontiguousarray(arr).tobytes(), MODE_RAW
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), MODE_JPG


def _source_items(kind, items):
    """Yield (name, loader) pairs; loader() returns a decoded-later thing (bytes or an array)."""
    if kind == "array":
        for i, a in enumerate(items):
            yield f"#{i}", a
    elif kind == "files":
        for p in items:
            yield p, p
    elif kind == "blobs":
        for data, name in items:
            yield name, data
    else:
        for tar, off, size in items:
            yield (tar, off), (tar, off, size)


def _read(kind, thing) -> bytes:
    if kind == "files":
        with open(thing, "rb") as f:
            return f.read()
    tar, off, size = thing
    with open(tar, "rb") as f:
        f.seek(off)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"archive ends after {len(data)} of {size} bytes")
    return data


def work(task, res: int, fmt: str, quality: int):
    """One task -> (payloads: list of (bytes, mode) or None, errors: list of (name, reason),
    pixel sums (3,), squared sums (3,), pixel count). Never raises for a bad image."""
    from PIL import Image

    from .resize import square_resize

    kind, items = task
    out, errors, arrays = [], [], []
    for name, thing in _source_items(kind, items):
        try:
            if kind == "array":
                arr = thing if thing.shape[:2] == (res, res) else square_resize(Image.fromarray(thing), res)
            else:
                arr = decode_image(thing if kind == "blobs" else _read(kind, thing), res)
            out.append(encode(arr, fmt, quality))
            arrays.append(arr)
        except Exception as e:  # noqa: BLE001 - a bad file is a skip, never a crash
            if kind == "tar":
                name = f"{name[0]}:{tar_member_name(*name)}"
            out.append(None)
            errors.append((str(name), _reason(e)))
    s = np.zeros(3, np.int64)
    ss = np.zeros(3, np.int64)
    npx = 0
    if arrays:  # exact integer statistics from per-channel histograms of the task's pixels
        px = np.stack(arrays).reshape(-1, 3)
        counts = np.stack([np.bincount(px[:, c], minlength=256) for c in range(3)])  # (3, 256)
        values = np.arange(256, dtype=np.int64)
        s, ss = counts @ values, counts @ (values * values)  # 4x faster than summing squares
        npx = len(px)
    return out, errors, s, ss, npx


def _reason(e: Exception) -> str:
    """A short, reproducible reason (no memory addresses) for meta.json's skipped list."""
    import re

    msg = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "data", str(e))
    return f"{type(e).__name__}: {msg}"[:300]


# -- the parent side ------------------------------------------------------------------------------
@dataclass
class SplitResult:
    count: int
    kept: np.ndarray                  # (len(records),) bool: which records are in the beton
    skipped: list = field(default_factory=list)   # "name: reason" strings
    pixel_sum: np.ndarray = None      # (3,) int64 over every written pixel
    pixel_sqsum: np.ndarray = None
    pixels: int = 0
    seconds: float = 0.0
    payload_bytes: int = 0

    def mean_std(self) -> tuple[list[float], list[float]]:
        n = max(1, self.pixels)
        mean = self.pixel_sum / n
        var = np.maximum(self.pixel_sqsum / n - mean ** 2, 0)
        return mean.tolist(), np.sqrt(var).tolist()


def default_workers(workers: int) -> int:
    if workers and workers > 0:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def run_tasks(records, res: int, fmt: str, quality: int, workers: int, batch: int):
    """Yield `work()` results for consecutive `batch`-sized tasks, in order."""
    n = len(records)
    bounds = [(a, min(n, a + batch)) for a in range(0, n, batch)]
    if workers <= 1 or len(bounds) <= 1:
        for a, b in bounds:
            yield work(records.task(a, b), res, fmt, quality)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = deque()
        it = iter(bounds)
        try:
            for a, b in it:
                pending.append(pool.submit(work, records.task(a, b), res, fmt, quality))
                if len(pending) >= 4 * workers:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(work, records.task(*nxt), res, fmt, quality))
                yield result
        finally:
            for fut in pending:
                fut.cancel()


def write_split(path: str, records, res: int, fmt: str = "raw", quality: int = 90, workers: int = 0,
                batch: int = 64, desc: str | None = None, progress: bool = True) -> SplitResult:
    """Decode `records` in parallel and write them to `path` atomically (see module docstring)."""
    if fmt not in ("raw", "jpg"):
        from mlpscale.errors import UserError

        raise UserError(f"unknown --format '{fmt}': use raw (fastest to read) or jpg (smaller)")
    n = len(records)
    nw = default_workers(workers)
    kept = np.zeros(n, dtype=bool)
    res_ = SplitResult(0, kept, [], np.zeros(3, np.int64), np.zeros(3, np.int64), 0)
    t0 = time.perf_counter()
    bar = _progress(n, desc or os.path.basename(path), progress)
    writer = BetonWriter(path, res, fmt, capacity=n)
    try:
        i = 0
        for out, errors, s, ss, npx in run_tasks(records, res, fmt, quality, nw, batch):
            for item in out:
                if item is not None:
                    payload, mode = item
                    writer.add(payload, mode, res, res, int(records.labels[i]))
                    kept[i] = True
                i += 1
            res_.skipped += [f"{name}: {reason}" for name, reason in errors]
            res_.pixel_sum += s
            res_.pixel_sqsum += ss
            res_.pixels += npx
            if bar is not None:
                bar.update(len(out))
                if res_.skipped:
                    bar.set_postfix(skipped=len(res_.skipped), refresh=False)
        if writer.n == 0:
            from mlpscale.errors import UserError

            first = f" (first: {res_.skipped[0]})" if res_.skipped else ""
            raise UserError(f"no readable image for {path}: all {n} records were skipped{first}; "
                            "check that --src points at the downloaded images")
        res_.payload_bytes = writer.total_payload
        res_.count = writer.commit()
    finally:
        writer.abort()
        if bar is not None:
            bar.close()
    res_.seconds = time.perf_counter() - t0
    return res_


def _progress(n: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=n, desc=desc, unit="img", unit_scale=True, smoothing=0.05, mininterval=1.0,
                file=sys.stderr)
