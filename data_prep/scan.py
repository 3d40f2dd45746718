"""Finding images on disk: class folders, per-class `.tar` archives, class names, and clear layout errors.

Shared by the sources (data_prep/sources/); it imports only `data_prep.records`, so a worker that
runs one of its functions does not load the sources.
"""
from __future__ import annotations

import os
import tarfile
import zlib

import numpy as np

from mlpscale.errors import UserError

from .records import FileRecords, PathArray

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm"}


def is_image_name(name: str) -> bool:
    base = os.path.basename(name)
    return not base.startswith(".") and os.path.splitext(base)[1].lower() in IMAGE_EXTS


def require_src(args, expected: str) -> str:
    """The --src path, or a one-sentence error saying what was expected."""
    if not args.src:
        raise UserError(f"{args.source} needs --src: {expected}")
    if not os.path.exists(args.src):
        raise UserError(f"--src {args.src} does not exist; expected {expected}")
    return args.src


def list_images(folder: str) -> list[str]:
    """Image files under `folder` (recursively), sorted by relative path.

    Links to folders are followed only while they stay inside `folder` and reach a folder not seen
    yet (by real path), so `loop -> ..` neither repeats images nor pulls in other classes. Names are
    listed whatever the file is: the reader skips (and lists) a FIFO, socket or device without
    opening it for reading."""
    out = []
    top = os.path.realpath(folder)
    seen = {top}
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        keep = []
        for d in sorted(dirnames):
            real = os.path.realpath(os.path.join(dirpath, d))
            if real not in seen and (real + os.sep).startswith(top + os.sep):
                seen.add(real)
                keep.append(d)
        dirnames[:] = keep
        out += [os.path.join(dirpath, f) for f in sorted(filenames) if is_image_name(f)]
    return out


def index_tar(path: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(data offsets, sizes, member names) of the image members of an uncompressed tar, in order.

    Only headers are read (tarfile seeks over the data), so indexing a 1 GB synset archive costs
    about as many reads as it has members; nothing is extracted.
    """
    offs, sizes, names = [], [], []
    try:
        with tarfile.open(path, mode="r:") as tf:
            for m in tf:
                if m.isfile() and is_image_name(m.name):
                    offs.append(m.offset_data)
                    sizes.append(m.size)
                    names.append(m.name)
    except tarfile.ReadError as e:
        raise UserError(f"{path} is not an uncompressed tar archive ({e}); re-download it or "
                        "extract it into a folder of images") from None
    order = np.argsort(names, kind="stable")
    return (np.asarray(offs, np.int64)[order], np.asarray(sizes, np.int64)[order],
            [names[i] for i in order])


def count_tar_images(path: str) -> int:
    """The number of image members of an uncompressed tar, from its 512-byte headers alone: one
    read per member and no member objects (tarfile builds one per member and parses every field),
    so a source can drop small classes before indexing the rest. Archives with headers this walk does
    not know (sparse files, base-256 sizes) are counted by tarfile instead."""
    n, pos, long_name = 0, 0, None
    try:
        with open(path, "rb") as f:
            while True:
                f.seek(pos)
                h = f.read(512)
                if len(h) < 512 or h == bytes(512):
                    return n
                kind, raw = h[156:157], h[124:136]
                if raw[:1] in (b"\x80", b"\xff") or kind == b"S":
                    return len(index_tar(path)[0])
                size = int(raw.strip(b"\0 ") or b"0", 8)
                data = pos + 512
                pos = data + -(-size // 512) * 512
                if kind in (b"L", b"x"):
                    f.seek(data)
                    body = f.read(size)
                    if kind == b"L":
                        long_name = body.rstrip(b"\0")
                    else:  # pax: records "<len> key=value\n"; only the path matters here
                        for rec in body.split(b"\n"):
                            key, _, val = rec.partition(b" ")[2].partition(b"=")
                            if key == b"path":
                                long_name = val
                    continue
                name = long_name or (h[345:500].rstrip(b"\0") + b"/" if h[257:262] == b"ustar" and h[345] else b"") \
                    + h[:100].rstrip(b"\0")
                long_name = None
                if kind in (b"0", b"\0", b"7") and is_image_name(os.fsdecode(name)):
                    n += 1
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is not an uncompressed tar archive ({e}); re-download it or "
                        "extract it into a folder of images") from None


def class_entries(root: str) -> dict[str, str]:
    """{class name: folder or .tar path} for the class folders / per-class tars directly under root."""
    out = {}
    for e in sorted(os.listdir(root)):
        p = os.path.join(root, e)
        if e.startswith("."):
            continue
        if os.path.isdir(p):
            out[e] = p
        elif e.endswith(".tar") and os.path.isfile(p):
            out.setdefault(e[:-4], p)
    return out


class RecordBuilder:
    """Collects (file | tar member, label) records in order and builds one `FileRecords`: paths as one
    `PathArray`, labels as numpy (no Python object per image once built)."""

    def __init__(self):
        self.paths, self.labels = [], []     # per added entry: a list of paths, an int64 array
        self.tars, self.tar_index, self.offsets, self.sizes = [], [], [], []

    def add_files(self, paths, label: int):
        self.paths.append(paths)
        self.labels.append(np.full(len(paths), label, np.int64))

    def add_tar(self, tar: str, offsets, sizes, label: int):
        self.tars.append(tar)
        self.tar_index.append(np.full(len(offsets), len(self.tars) - 1, np.int32))
        self.offsets.append(offsets)
        self.sizes.append(sizes)
        self.labels.append(np.full(len(offsets), label, np.int64))

    def build(self) -> FileRecords:
        has_files = any(len(p) for p in self.paths)
        if has_files and self.tars:
            raise UserError("found both class folders and per-class .tar files in one split; "
                            "keep one kind (extract the tars, or remove the folders)")
        labels = np.concatenate(self.labels) if self.labels else np.zeros(0, np.int64)
        if self.tars:
            return FileRecords(labels, tars=self.tars, tar_index=np.concatenate(self.tar_index),
                               offsets=np.concatenate(self.offsets), sizes=np.concatenate(self.sizes))
        return FileRecords(labels, paths=PathArray.from_lists(self.paths))


def _index_one(entry: str):
    if os.path.isdir(entry):
        return ("files", list_images(entry))
    offs, sizes, _ = index_tar(entry)
    return ("tar", offs, sizes)


def index_entries(entries: list[str], pool=None, desc: str = "indexing") -> list[tuple]:
    """Index class folders / tars (in parallel on `pool`, a `data_prep.workers.Workers`):
    per entry ("files", paths) or ("tar", offs, sizes)."""
    from tqdm import tqdm

    if pool is None or len(entries) < 8:  # a few folders: not worth a round trip to the workers
        return [_index_one(e) for e in entries]
    return list(tqdm(pool.map_ordered(_index_one, ((e,) for e in entries)), total=len(entries), desc=desc,
                     unit="class", mininterval=1.0, disable=len(entries) < 200))


def add_indexed(builder: RecordBuilder, entry: str, indexed: tuple, label: int, keep=None) -> int:
    """Add an `index_entries` result (optionally only the sorted positions `keep`) to `builder`."""
    if indexed[0] == "files":
        files = indexed[1] if keep is None else [indexed[1][i] for i in keep]
        builder.add_files(files, label)
        return len(files)
    offs, sizes = indexed[1], indexed[2]
    if keep is not None:
        offs, sizes = offs[keep], sizes[keep]
    builder.add_tar(entry, offs, sizes, label)
    return len(offs)


def _count_one(entry: str) -> int:
    return len(list_images(entry)) if os.path.isdir(entry) else count_tar_images(entry)


def count_entries(entries: list[str], pool=None, desc: str = "counting") -> list[int]:
    """Image counts of class folders / tars (in parallel on `pool`), without indexing them."""
    from tqdm import tqdm

    if pool is None or len(entries) < 8:
        return [_count_one(e) for e in entries]
    return list(tqdm(pool.map_ordered(_count_one, ((e,) for e in entries)), total=len(entries), desc=desc,
                     unit="class", mininterval=1.0, disable=len(entries) < 200))


def entry_size(indexed: tuple) -> int:
    return len(indexed[1])


def file_reader(src: str, expected: str, folder: str, marker: str, archive: str | None = None):
    """`read(name) -> bytes | None` over a dataset shipped as a few named files: `src` is the tar
    archive itself, the extracted `folder/` (recognised by holding `marker`), its parent, or a
    parent holding `archive`. Members are matched by base name."""
    if os.path.isfile(src):
        damaged = f"--src {src} is truncated or damaged (an interrupted download?); download it again"
        try:
            tf = tarfile.open(src, "r:*")
        except tarfile.ReadError:
            raise UserError(f"--src {src} is not a tar archive; expected {expected}") from None
        except (EOFError, zlib.error, OSError):
            raise UserError(damaged) from None
        try:
            members = {os.path.basename(m.name): m for m in tf.getmembers() if m.isfile()}
        except (tarfile.TarError, EOFError, zlib.error, OSError):
            raise UserError(damaged) from None

        def read_member(name: str) -> bytes | None:
            if name not in members:
                return None
            try:
                return tf.extractfile(members[name]).read()
            except (tarfile.TarError, EOFError, zlib.error, OSError):
                raise UserError(damaged) from None
        return read_member
    root = src
    if not os.path.exists(os.path.join(src, marker)):
        if os.path.exists(os.path.join(src, folder, marker)):
            root = os.path.join(src, folder)
        elif archive and os.path.isfile(os.path.join(src, archive)):
            return file_reader(os.path.join(src, archive), expected, folder, marker)

    def read(name: str) -> bytes | None:
        path = os.path.join(root, name)
        if not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()
    return read


def read_words(path: str) -> dict[str, str]:
    """wnid -> first lemma, from an ImageNet-style words.txt ("n01443537<TAB>goldfish, Carassius auratus")."""
    out = {}
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) >= 2:
                    out[parts[0]] = parts[1]
    return out
