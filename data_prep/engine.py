"""Parallel decode -> resize -> encode of one split, streamed into a `.beton`.

A split's records (`data_prep.records`) are cut into tasks of `batch` consecutive records; the
worker processes (`data_prep.workers`) turn each task into encoded payloads (raw pixels or JPEG
bytes), catching every per-image error (corrupt, truncated, not an image, decompression bomb) as
a skip with its reason. The parent takes results back in task order (so the output order is
deterministic: the record order minus skipped records), with at most `4 x workers` tasks in
flight, and appends them to a `mlpscale.beton.BetonWriter`. Peak RAM is therefore a few hundred
images, whatever the dataset size.

JPEG decoding uses Pillow's `draft()`: libjpeg's DCT-domain scaling decodes at 1/2, 1/4 or 1/8 size
directly, as long as the result still covers what the layout keeps (`data_prep.resize`); then an
antialiased box-filter resize (and, for the square layout, a centre crop).

The pixel statistics of meta.json (mean/std) are exact integer sums over every written pixel,
from per-channel histograms computed in the workers.
"""
from __future__ import annotations

import io
import os
import stat
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from mlpscale.beton import MODE_JPG, MODE_RAW, BetonWriter
from mlpscale.errors import UserError
from mlpscale.io import disk_error

FORMATS = ("raw", "jpg")


@dataclass(frozen=True)
class Encoding:
    """How every image of a conversion is stored (sent to the workers with each task)."""
    res: int
    fmt: str = "raw"          # raw (fastest reads) | jpg (smaller)
    quality: int = 90         # JPEG quality for fmt "jpg"
    layout: str = "square"    # square | paper (data_prep.resize)

    @property
    def max_payload(self) -> int:
        return self.res * self.res * 3


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


def decode_image(data: bytes, res: int, layout: str = "square") -> np.ndarray:
    """Encoded image bytes -> stored (h, w, 3) uint8; raises on anything that is not a valid image."""
    from PIL import Image

    from .resize import draft_size, fit

    with Image.open(io.BytesIO(data)) as img:
        full = img.size
        if img.format == "JPEG":
            img.draft("RGB", draft_size(*full, res, layout))
        img.load()
        if img.width < 1 or img.height < 1:
            raise ValueError("empty image")
        return fit(img, res, layout, full)


def encode(arr: np.ndarray, fmt: str, quality: int) -> tuple[bytes, int]:
    if fmt == "raw":
        return np.ascontiguousarray(arr).tobytes(), MODE_RAW
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), MODE_JPG


def _source_items(kind, items):
    """Yield (name, thing) pairs; thing is an array, a path, bytes, or a tar member reference."""
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
        fd = os.open(thing, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the worker
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                what = "FIFO" if stat.S_ISFIFO(mode) else "socket" if stat.S_ISSOCK(mode) else "device or folder"
                raise OSError(f"not a regular file (a {what})")
            return f.read()
    tar, off, size = thing
    with open(tar, "rb") as f:
        f.seek(off)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"archive ends after {len(data)} of {size} bytes")
    return data


def _array_image(arr: np.ndarray, enc: Encoding) -> np.ndarray:
    from PIL import Image

    from .resize import fit

    if enc.layout == "square" and arr.shape[:2] == (enc.res, enc.res):
        return arr
    if enc.layout == "paper" and max(arr.shape[:2]) <= enc.res:
        return arr
    return fit(Image.fromarray(arr), enc.res, enc.layout)


def work(task, enc: Encoding):
    """One task -> (payloads: list of (bytes, mode, height, width, true (h, w)) or None, errors: list of
    (name, reason), pixel sums (3,), squared sums (3,), pixel count). Never raises for a bad image."""
    from .resize import canvas

    kind, items = task
    out, errors, arrays = [], [], []
    for name, thing in _source_items(kind, items):
        try:
            if kind == "array":
                arr = _array_image(thing, enc)
            else:
                arr = decode_image(thing if kind == "blobs" else _read(kind, thing), enc.res, enc.layout)
            true_hw = arr.shape[:2]
            stored = canvas(arr, enc.res) if enc.layout == "paper" else arr
            payload, mode = encode(stored, enc.fmt, enc.quality)
            out.append((payload, mode, stored.shape[0], stored.shape[1], true_hw))
            arrays.append(arr.reshape(-1, 3))
        except Exception as e:  # noqa: BLE001 - a bad file is a skip, never a crash
            if kind == "tar":
                name = f"{name[0]}:{tar_member_name(*name)}"
            out.append(None)
            errors.append((str(name), _reason(e)))
    s = np.zeros(3, np.int64)
    ss = np.zeros(3, np.int64)
    npx = 0
    if arrays:  # exact integer statistics from per-channel histograms of the task's pixels
        px = np.concatenate(arrays)  # (pixels, 3); images may differ in size (paper layout)
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
    tmp: str | None = None            # the verified file still to be renamed (rename=False)
    first_image_at: float | None = None   # time.time() when the first image reached the writer

    def sums(self) -> dict:
        """The pixel sums as meta.json stores them (`stats_from_sums` turns them into mean/std)."""
        return {"pixel_sum": self.pixel_sum.tolist(), "pixel_sqsum": self.pixel_sqsum.tolist(),
                "pixels": self.pixels}


def stats_from_sums(s: dict) -> tuple[list[float], list[float]]:
    """Per-channel (mean, std) on the 0..255 scale from `SplitResult.sums()` (or their sum over shards)."""
    n = max(1, int(s["pixels"]))
    mean = np.asarray(s["pixel_sum"], dtype=np.float64) / n
    var = np.maximum(np.asarray(s["pixel_sqsum"], dtype=np.float64) / n - mean ** 2, 0.0)
    return mean.tolist(), np.sqrt(var).tolist()


def write_split(path: str, records, enc: Encoding, pool=None, batch: int = 64, conversion_id: str | None = None,
                rename: bool = True, desc: str | None = None, progress: bool = True) -> SplitResult:
    """Decode `records` on `pool` (a `data_prep.workers.Workers`; None: in this process) and write
    them to `path` through a verified temp file (see the module docstring).

    With `rename=False` the verified file stays at `result.tmp` for the caller to rename together
    with the other files of its conversion (`data_prep.output`); the caller then owns it.
    """
    if enc.fmt not in FORMATS:
        raise UserError(f"unknown --format '{enc.fmt}': use raw (fastest to read) or jpg (smaller)")
    n = len(records)
    kept = np.zeros(n, dtype=bool)
    res_ = SplitResult(0, kept, [], np.zeros(3, np.int64), np.zeros(3, np.int64), 0)
    t0 = time.perf_counter()
    try:
        writer = BetonWriter(path, capacity=n, max_payload=enc.max_payload, conversion_id=conversion_id,
                             sizes=enc.layout == "paper")
    except OSError as e:
        raise disk_error(e, path) from None
    bar = _progress(n, desc or os.path.basename(path), progress)
    tasks = ((records.task(a, min(n, a + batch)), enc) for a in range(0, n, batch))
    results = (pool.map_ordered(work, tasks) if pool is not None else (work(*t) for t in tasks))
    try:
        i = 0
        for out, errors, s, ss, npx in results:
            for item in out:
                if item is not None:
                    payload, mode, h, w, true_hw = item
                    try:
                        writer.add(payload, mode, h, w, int(records.labels[i]), true_hw)
                    except OSError as e:  # full disk, read-only folder: one sentence
                        raise disk_error(e, path) from None
                    kept[i] = True
                    if res_.first_image_at is None:
                        res_.first_image_at = time.time()
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
            first = f" (first: {res_.skipped[0]})" if res_.skipped else ""
            raise UserError(f"no readable image for {path}: all {n} records were skipped{first}; "
                            "check that --src points at the downloaded images")
        res_.payload_bytes = writer.total_payload
        res_.count = writer.commit(rename=rename)  # closes the writer, also when it fails
        res_.tmp = None if rename else writer.tmp
    except BaseException:
        writer.abort()  # removes the temp files (harmless after a failed commit)
        raise
    finally:
        results.close()  # cancels the tasks still in flight when something went wrong
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
