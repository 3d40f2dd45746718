"""What a source hands to the converter: records per split, the class list, and facts for meta.

A split is a sequence of records with integer labels, either decoded arrays (`ArrayRecords`:
CIFAR, STL-10, digits) or references to encoded images (`FileRecords`: loose files, members of
uncompressed `.tar` archives read in place by offset, or in-memory bytes). Both cut themselves
into picklable tasks (`task(a, b)`) for the worker processes of `data_prep.engine`, and both keep
a chosen subset of themselves (`subset(keep)`), which is how `--shard I/K` picks its classes.

This module imports nothing of data_prep, so sources and the engine can both import it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np


class ArrayRecords:
    """Decoded images (N, H, W, 3) uint8 (any H, W; resized on writing) and labels (N,)."""

    def __init__(self, images: np.ndarray, labels):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
        if len(images) != len(labels):
            raise ValueError("images and labels differ in length")
        self.images, self.labels = images, np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, keep: np.ndarray) -> "ArrayRecords":
        """Records at the (sorted) indices `keep`."""
        keep = np.asarray(keep, dtype=np.int64)
        return ArrayRecords(self.images[keep], self.labels[keep])

    def task(self, a: int, b: int):
        return ("array", self.images[a:b])


class PathArray:
    """File paths as one byte buffer (os.fsencode) and an offsets array: the path text plus 8 bytes per
    file, instead of one Python string object per file (14M of them for ImageNet-21k as folders).
    Indexing gives a str, a slice a list of str (what the worker tasks carry)."""

    def __init__(self, buf: np.ndarray, ends: np.ndarray):
        self.buf, self.ends = buf, ends      # (bytes,) uint8, (N,) int64 end offsets

    @classmethod
    def from_lists(cls, lists) -> "PathArray":
        """One array from lists (or arrays) of paths, concatenated in order."""
        enc = [os.fsencode(p) for part in lists for p in part]
        ends = np.cumsum(np.fromiter(map(len, enc), np.int64, len(enc)))
        return cls(np.frombuffer(b"".join(enc), np.uint8), ends)

    def __len__(self) -> int:
        return len(self.ends)

    def _one(self, i: int) -> str:
        a = int(self.ends[i - 1]) if i else 0
        return os.fsdecode(self.buf[a:int(self.ends[i])].tobytes())

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self._one(j) for j in range(*i.indices(len(self)))]
        return self._one(int(i) + len(self) if int(i) < 0 else int(i))

    def __iter__(self):
        return (self._one(i) for i in range(len(self)))

    def take(self, keep: np.ndarray) -> "PathArray":
        """The paths at the indices `keep`, as a new array (one vectorised gather of the bytes)."""
        keep = np.asarray(keep, dtype=np.int64)
        starts = np.concatenate([[0], self.ends[:-1]])[keep]
        lens = self.ends[keep] - starts
        ends = np.cumsum(lens)
        # byte i of the result comes from starts[k] + (i - first byte of k): a repeat + arange gather
        src = np.repeat(starts - (ends - lens), lens) + np.arange(int(ends[-1]) if len(ends) else 0)
        return PathArray(self.buf[src], ends)


class FileRecords:
    """Encoded images by reference, with labels (N,).

    Either `paths` (one file per record: a `PathArray` or a list), or tar members: `tars` (archive
    paths) and per record `tar_index`, `offsets` (start of the member's data) and `sizes` -- numpy arrays,
    so ImageNet-21k's millions of records take a few bytes each, not a Python tuple each -- or `blobs`
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
        paths = self.paths.take(keep) if isinstance(self.paths, PathArray) else pick(self.paths)
        return FileRecords(self.labels[keep], paths, self.tars, arr(self.tar_index),
                           arr(self.offsets), arr(self.sizes), pick(self.blobs), pick(self.names))

    def task(self, a: int, b: int):
        if self.paths is not None:
            return ("files", self.paths[a:b])
        if self.blobs is not None:
            return ("blobs", list(zip(self.blobs[a:b], self.names[a:b])))
        return ("tar", [(self.tars[t], int(o), int(s)) for t, o, s in
                        zip(self.tar_index[a:b], self.offsets[a:b], self.sizes[a:b])])


@dataclass
class SourceData:
    """Everything a source found: records per split, in label order classes, and meta facts."""
    splits: dict            # split name -> records (train first, then the evaluation split)
    classes: list[str]      # class ids (wnids, folder names) in label order
    eval_split: str = "test"
    skipped: list[str] = field(default_factory=list)   # files rejected while listing, with reasons
    extra_meta: dict = field(default_factory=dict)      # source-specific facts for meta.json
    # per-sample side data aligned with a split's records: key -> (split, list); written as
    # ROOT/<name>/<key>_<res>.json with the entries of skipped images removed (e.g. ReaL labels)
    sidecars: dict = field(default_factory=dict)
