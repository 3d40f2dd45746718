"""The on-disk contract, in one place: dataset paths, `meta_<res>.json`, the `.beton` file format
(read and written here without importing FFCV), atomic writes, and folder ownership.

Layout of one converted dataset:

    ROOT/<name>/<split>_<res>.beton     fields `image` (RGB uint8) and `label` (int)
    ROOT/<name>/meta_<res>.json         classes, per-split counts, stats, conversion id (META_KEYS)
    ROOT/<name>/.lock                   held (flock) by the process writing the folder

The `.beton` format is FFCV's (version 2), byte for byte, so FFCV's Reader and Loader and the paper's
own tools read what we write, and we read what they write:

    header (HEADER) | field descriptors (FIELD_DESC) | metadata table (one row per sample)
    | pad to a page | data pages (`page_size` bytes; no sample straddles a page)
    | allocation table (ALLOC: sample id, pointer, size)

Reading it with numpy alone matters for speed: `import ffcv` costs ~4 s and compiles numba code,
while a resident raw dataset is just pages to copy (`read_raw_images`).

A conversion stamps an id into every beton it writes (in the label field's descriptor arguments,
1024 bytes that FFCV's IntField ignores) and into `meta_<res>.json`; `check_dataset` refuses a folder
whose files come from different conversions (e.g. a re-conversion killed half-way).

Every file is written atomically: to `<path>.tmp-<pid>-<random>` in the same folder, flushed,
fsynced and renamed, and the folder is fsynced after the rename (`atomic_file`; files made visible
together: `publish_staged`; a whole folder tree: `atomic_folder`). A process that writes into a
folder holds its `.lock` (`FolderLock`), which the kernel releases when the process dies however it
dies; so whoever next takes the lock knows that any temp file left there belongs to a dead process
and removes it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass

import numpy as np

from .errors import UserError

# --- paths ------------------------------------------------------------------------------------

def dataset_dir(root: str, name: str) -> str:
    return os.path.join(root, name)


def beton_path(root: str, name: str, split: str, res: int, suffix: str = "") -> str:
    """ROOT/<name>/<split>_<res><suffix>.beton (suffix: e.g. '.shard-0-of-4')."""
    return os.path.join(root, name, f"{split}_{res}{suffix}.beton")


def meta_path(root: str, name: str, res: int, suffix: str = "") -> str:
    return os.path.join(root, name, f"meta_{res}{suffix}.json")


def sidecar_path(root: str, name: str, key: str, res: int, suffix: str = "") -> str:
    """Per-sample side data aligned with a split, e.g. ROOT/imagenet1k/real_labels_64.json."""
    return os.path.join(root, name, f"{key}_{res}{suffix}.json")


# --- the beton format (FFCV v2) ----------------------------------------------------------------

VERSION = 2
HEADER = np.dtype([("version", "<u2"), ("num_fields", "<u2"), ("page_size", "<u4"),
                   ("num_samples", "<u8"), ("alloc_table_ptr", "<u8")], align=True)
FIELD_DESC = np.dtype([("type_id", "<u1"), ("name", ("<u1", 16)), ("arguments", ("<u1", (1024,)))], align=True)
ALLOC = np.dtype([("sample_id", "<u8"), ("ptr", "<u8"), ("size", "<u8")])
IMAGE_META = np.dtype([("mode", "<u1"), ("width", "<u2"), ("height", "<u2"), ("data_ptr", "<u8")])
_PTR_SIZE = np.dtype([("ptr", "<u8"), ("size", "<u8")])
# FFCV's type ids and the metadata row of each field type
FIELD_TYPES = {0: ("float", np.dtype("<f8")), 1: ("int", np.dtype("<i8")), 2: ("rgb_image", IMAGE_META),
               3: ("bytes", _PTR_SIZE), 4: ("ndarray", np.dtype("<u8")), 5: ("json", _PTR_SIZE)}
MODE_JPG, MODE_RAW = 0, 1             # IMAGE_META["mode"] (FFCV's IMAGE_MODES)
TYPE_INT, TYPE_IMAGE = 1, 2
PAGE_MIN = 1 << 21                    # FFCV's smallest page (2 MiB)
PAGE_DEFAULT = 1 << 22                # 4 MiB for larger datasets
_STAMP_MAGIC = b"MLPSCALE"            # conversion id stamp in the label descriptor's arguments


def metadata_dtype(type_ids) -> np.dtype:
    return np.dtype([("", FIELD_TYPES[t][1]) for t in type_ids], align=True)


@dataclass
class Beton:
    """The index of a beton file: header, field names, per-sample metadata and allocation table.

    Nothing is decoded; opening a 12M-sample file reads its tables only (~0.5 GB for ImageNet-21k).
    """
    path: str
    num_samples: int
    page_size: int
    field_names: list
    type_ids: list
    metadata: np.ndarray            # (N,) structured, one column per field ("f0", "f1", ...)
    alloc: np.ndarray               # (N,) ALLOC rows
    arguments: list                 # raw descriptor arguments per field (bytes)

    def column(self, name: str) -> np.ndarray:
        if name not in self.field_names:
            raise UserError(f"{self.path} has no '{name}' field (it has {', '.join(self.field_names)}); "
                            f"convert the dataset with mlpscale-convert")
        return self.metadata[f"f{self.field_names.index(name)}"]

    @property
    def labels(self) -> np.ndarray:
        return np.array(self.column("label"), dtype=np.int64)  # a writable copy

    @property
    def images(self) -> np.ndarray:
        """IMAGE_META rows (mode, width, height, data_ptr)."""
        col = self.column("image")
        if self.type_ids[self.field_names.index("image")] != TYPE_IMAGE:
            raise UserError(f"{self.path}: field 'image' is not an RGB image field")
        return col

    def resolution(self) -> tuple[int, int] | None:
        """(height, width) when every image has the same size, else None (variable-size betons)."""
        img = self.images
        if len(img) == 0:
            return None
        h, w = img["height"], img["width"]
        if h.min() != h.max() or w.min() != w.max():
            return None
        return int(h[0]), int(w[0])

    def all_raw(self) -> bool:
        return bool(len(self.images)) and bool((self.images["mode"] == MODE_RAW).all())

    def sizes(self) -> np.ndarray:
        """Payload bytes of each image, in sample order."""
        ptr = self.images["data_ptr"]
        order = np.argsort(self.alloc["ptr"])
        pos = np.searchsorted(self.alloc["ptr"][order], ptr)
        return self.alloc["size"][order][pos].astype(np.int64)

    @property
    def conversion_id(self) -> str | None:
        """The id stamped by the mlpscale conversion that wrote this file (None: another tool)."""
        if "label" not in self.field_names:
            return None
        args = self.arguments[self.field_names.index("label")]
        if args[:8] != _STAMP_MAGIC:
            return None
        return str(uuid.UUID(bytes=bytes(args[8:24])))


def open_beton(path: str, hint: str = "") -> Beton:
    """Read a beton's index, or raise one clear UserError (missing, foreign, truncated, damaged)."""
    if not os.path.exists(path):
        raise UserError(f"missing dataset file {path}" + (f"; create it with: {hint}" if hint else ""))
    redo = hint or "re-convert it with mlpscale-convert"
    size = os.path.getsize(path)
    try:
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(HEADER.itemsize), dtype=HEADER)
            if len(header) != 1:
                raise ValueError("shorter than a header")
            header = header[0]
            if int(header["version"]) != VERSION:
                raise ValueError(f"format version {int(header['version'])}, not {VERSION}")
            nf, n = int(header["num_fields"]), int(header["num_samples"])
            if not 0 < nf < 64:
                raise ValueError(f"{nf} fields")
            desc = np.frombuffer(f.read(nf * FIELD_DESC.itemsize), dtype=FIELD_DESC)
            if len(desc) != nf:
                raise ValueError("truncated field descriptors")
            type_ids = [int(t) for t in desc["type_id"]]
            unknown = [t for t in type_ids if t not in FIELD_TYPES]
            if unknown:
                raise ValueError(f"unsupported field type id {unknown[0]}")
            names = [bytes(d).split(b"\0", 1)[0].decode("ascii", "replace") for d in desc["name"]]
            mtype = metadata_dtype(type_ids)
            meta_bytes = f.read(n * mtype.itemsize)
            if len(meta_bytes) != n * mtype.itemsize:
                raise ValueError("truncated metadata table")
            metadata = np.frombuffer(meta_bytes, dtype=mtype)
            aptr = int(header["alloc_table_ptr"])
            if aptr > size or (size - aptr) % ALLOC.itemsize:
                raise ValueError("allocation table outside the file")
            f.seek(aptr)
            alloc = np.frombuffer(f.read(size - aptr), dtype=ALLOC)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path} as an FFCV beton ({e}); {redo}") from None
    if len(alloc) < n or (n and int((alloc["ptr"] + alloc["size"]).max()) > aptr):
        raise UserError(f"{path} is damaged (its allocation table does not cover its samples); {redo}")
    return Beton(path, n, int(header["page_size"]), names, type_ids, metadata, alloc,
                 [bytes(a) for a in desc["arguments"]])


def read_raw_images(b: Beton, indices: np.ndarray | None = None, out: np.ndarray | None = None,
                    chunk: int = 1 << 16) -> np.ndarray:
    """Images of a fixed-size raw beton, (len(indices), H, W, 3) uint8, in `indices` order.

    A vectorised copy from the memory-mapped pages: samples that lie back to back in the file
    (all of a page, for files we write) are copied as one slice, so a 50k-image split is a few
    hundred memcpys, not 50k Python steps and no decoding.
    """
    res = b.resolution()
    if res is None or not b.all_raw():
        raise UserError(f"{b.path} does not hold fixed-size raw images; stream it (data.resident=off)")
    h, w = res
    nbytes = h * w * 3
    idx = np.arange(b.num_samples) if indices is None else np.asarray(indices, dtype=np.int64)
    if out is None:
        out = np.empty((len(idx), h, w, 3), dtype=np.uint8)
    flat = out.reshape(len(idx), nbytes)
    mm = np.memmap(b.path, dtype=np.uint8, mode="r")
    ptr_all = b.images["data_ptr"].astype(np.int64)
    for s in range(0, len(idx), chunk):
        part = idx[s:s + chunk]
        ptr = ptr_all[part]
        order = np.argsort(ptr, kind="stable")
        sp = ptr[order]
        # runs of samples stored back to back: one slice copy each
        breaks = np.flatnonzero(np.diff(sp) != nbytes) + 1
        starts = np.concatenate([[0], breaks])
        ends = np.concatenate([breaks, [len(sp)]])
        dst = s + order
        for a, e in zip(starts.tolist(), ends.tolist()):
            block = mm[sp[a]:sp[a] + (e - a) * nbytes].reshape(e - a, nbytes)
            if e - a == 1 or np.all(np.diff(dst[a:e]) == 1):
                flat[dst[a]:dst[a] + (e - a)] = block
            else:
                flat[dst[a:e]] = block
    del mm
    return out


def iter_payloads(b: Beton, indices=None):
    """Yield (payload bytes, mode, height, width, label) per sample in `indices` order (default all)."""
    img, lab, sizes = b.images, b.labels, b.sizes()
    idx = range(b.num_samples) if indices is None else indices
    with open(b.path, "rb") as f:
        for i in idx:
            m = img[i]
            f.seek(int(m["data_ptr"]))
            yield f.read(int(sizes[i])), int(m["mode"]), int(m["height"]), int(m["width"]), int(lab[i])


def choose_page_size(capacity: int, max_payload: int) -> int:
    """4 MiB pages for big datasets, 2 MiB for small ones (each split fills at least one page)."""
    page = PAGE_MIN if capacity * max_payload < 64 * PAGE_MIN else PAGE_DEFAULT
    return max(page, 1 << (max_payload - 1).bit_length())


class BetonWriter:
    """Append `(payload, mode, height, width, label)` samples; `commit()` makes the file appear.

    Streams: one page in RAM plus a buffer of metadata rows; the allocation rows are spooled to a
    side file, so 12M samples need no more memory than 50k. The header (sample count, allocation
    table pointer) is written last, the file lives under a temporary name, is fsynced and read back
    (`open_beton`) before `commit()` renames it; `commit(rename=False)` leaves it under `self.tmp`
    for `publish_staged` (several files of one conversion are renamed together).
    """

    def __init__(self, path: str, capacity: int, max_payload: int, conversion_id: str | None = None,
                 page_size: int | None = None, flush_every: int = 8192):
        self.path, self.capacity = path, max(1, capacity)
        self.page_size = page_size or choose_page_size(self.capacity, max_payload)
        self.type_ids = [TYPE_IMAGE, TYPE_INT]
        self.meta_type = metadata_dtype(self.type_ids)
        desc = np.zeros(2, dtype=FIELD_DESC)
        for i, (name, t) in enumerate(zip(("image", "label"), self.type_ids)):
            desc[i]["type_id"] = t
            desc[i]["name"][:len(name)] = np.frombuffer(name.encode("ascii"), dtype="<u1")
        if conversion_id:
            stamp = _STAMP_MAGIC + uuid.UUID(conversion_id).bytes
            desc[1]["arguments"][:len(stamp)] = np.frombuffer(stamp, dtype="<u1")
        self.header = np.zeros(1, dtype=HEADER)[0]
        self.header["version"], self.header["num_fields"], self.header["page_size"] = VERSION, 2, self.page_size
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise disk_error(e, path) from None
        self.f, self.tmp = _open_temp(path)
        try:
            self.spool, self.spool_path = _open_temp(path, ".alloc")
        except BaseException:
            self.f.close()
            os.remove(self.tmp)
            raise
        try:
            self.f.write(self.header.tobytes())
            self.f.write(desc.tobytes())
        except OSError as e:
            self.abort()
            raise disk_error(e, path) from None
        self.meta_start = self.f.tell()
        end_meta = self.meta_start + self.capacity * self.meta_type.itemsize
        self.data_start = -(-end_meta // self.page_size) * self.page_size  # align up to a page
        self.n, self.total_payload = 0, 0
        self.page = np.zeros(self.page_size, dtype=np.uint8)
        self.page_no, self.page_used = -1, self.page_size  # no page open yet
        self.flush_every = flush_every
        self._rows = []  # (mode, width, height, ptr, label, size) per buffered sample
        self._meta_first = 0

    def add(self, payload, mode: int, height: int, width: int, label: int) -> None:
        if self.n >= self.capacity:
            raise RuntimeError(f"more samples than the {self.capacity} reserved in {self.path}")
        buf = np.frombuffer(payload, dtype=np.uint8)
        size = buf.nbytes
        if size > self.page_size:
            raise ValueError(f"a sample of {size} bytes does not fit a {self.page_size}-byte page")
        if size > self.page_size - self.page_used:
            self._flush_page()
            self.page_no += 1
            self.page_used = 0
        ptr = self.data_start + self.page_no * self.page_size + self.page_used
        self.page[self.page_used:self.page_used + size] = buf
        self.page_used += size
        self._rows.append((mode, width, height, ptr, label, size))
        self.n += 1
        self.total_payload += size
        if len(self._rows) == self.flush_every:
            self._flush_rows()

    def _flush_page(self) -> None:
        if self.page_no < 0:
            return
        self.page[self.page_used:] = 0
        self.f.seek(self.data_start + self.page_no * self.page_size)
        self.f.write(self.page.tobytes())  # whole pages: FFCV's page cache reads page_size bytes

    def _flush_rows(self) -> None:
        b = len(self._rows)
        if not b:
            return
        rows = np.array(self._rows, dtype=np.int64)  # (b, 6)
        meta = np.zeros(b, dtype=self.meta_type)
        for j, key in enumerate(("mode", "width", "height", "data_ptr")):
            meta["f0"][key] = rows[:, j]
        meta["f1"] = rows[:, 4]
        alloc = np.zeros(b, dtype=ALLOC)
        alloc["sample_id"] = np.arange(self._meta_first, self._meta_first + b)
        alloc["ptr"], alloc["size"] = rows[:, 3], rows[:, 5]
        self.f.seek(self.meta_start + self._meta_first * self.meta_type.itemsize)
        self.f.write(meta.tobytes())
        self.spool.write(alloc.tobytes())
        self._meta_first += b
        self._rows = []

    def commit(self, rename: bool = True) -> int:
        """Finish, fsync, verify and (by default) rename into place; returns the sample count."""
        ok = False
        try:
            if self.n == 0:
                raise ValueError(f"no samples to write to {self.path}")
            self._flush_rows()
            self._flush_page()
            end = self.data_start + (self.page_no + 1) * self.page_size
            self.f.seek(end)
            self.spool.flush()
            self.spool.seek(0)
            while chunk := self.spool.read(1 << 24):
                self.f.write(chunk)
            self.header["num_samples"] = self.n
            self.header["alloc_table_ptr"] = end
            self.f.seek(0)
            self.f.write(self.header.tobytes())
            _fsync_close(self.f)
            b = open_beton(self.tmp)
            if b.num_samples != self.n or len(b.alloc) != self.n:
                raise RuntimeError(f"{self.tmp}: read back {b.num_samples} samples, wrote {self.n}")
            os.chmod(self.tmp, 0o644)  # mkstemp creates 0600
            if rename:
                os.replace(self.tmp, self.path)
                _fsync_path(os.path.dirname(os.path.abspath(self.path)))
            ok = True
            return self.n
        except OSError as e:
            raise disk_error(e, self.path) from None
        finally:
            self._close(remove_main=not ok or rename)

    def _close(self, remove_main: bool = True) -> None:
        for fh in (self.f, self.spool):
            if not fh.closed:
                fh.close()
        for p in ((self.tmp, self.spool_path) if remove_main else (self.spool_path,)):
            with contextlib.suppress(FileNotFoundError):
                os.remove(p)

    def abort(self) -> None:
        """Close and delete the temporary files (no-op after a successful commit)."""
        self._close(remove_main=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()


def encode_image(arr: np.ndarray, fmt: str, quality: int = 90) -> tuple[bytes, int]:
    """(payload, mode) of one (H, W, 3) uint8 image: its raw bytes, or a JPEG (Pillow, libjpeg-turbo)."""
    if fmt == "raw":
        return np.ascontiguousarray(arr).tobytes(), MODE_RAW
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), MODE_JPG


def write_arrays(path: str, images: np.ndarray, labels, fmt: str = "raw", quality: int = 90,
                 conversion_id: str | None = None) -> int:
    """Write in-memory images (N, H, W, 3) uint8 and labels (N,) as a beton, atomically (tests, benchmarks)."""
    n, h, w, _ = images.shape
    writer = BetonWriter(path, n, h * w * 3, conversion_id=conversion_id)
    try:
        for img, lab in zip(images, labels):
            payload, mode = encode_image(img, fmt, quality)
            writer.add(payload, mode, h, w, int(lab))
        return writer.commit()
    finally:
        writer.abort()


def ffcv_fields(res: int, fmt: str = "raw"):
    """FFCV's field objects for our two fields (for FFCV's own DatasetWriter, e.g. in tests)."""
    from .ffcv_compat import import_ffcv

    import_ffcv()
    from ffcv.fields import IntField, RGBImageField

    return {"image": RGBImageField(write_mode=fmt, max_resolution=res), "label": IntField()}


# --- atomic writes ------------------------------------------------------------------------------

def _open_temp(path: str, extra: str = ""):
    """A new temp file next to `path`, named `<base><extra>.tmp-<pid>-<random>`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}{extra}.tmp-{os.getpid()}-", dir=folder)
    except OSError as e:
        raise disk_error(e, path) from None
    return os.fdopen(fd, "w+b"), tmp


def _fsync_close(f) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def _fsync_path(path: str) -> None:
    """fsync a file or folder by name (a folder: so that the renames in it survive a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_space(folder: str) -> str:
    try:
        st = os.statvfs(folder)
    except OSError:
        return "unknown"
    return f"{st.f_bavail * st.f_frsize / 2**20:,.1f} MiB"


def disk_error(e: BaseException, path: str) -> UserError:
    """One sentence for any failure of a write (full disk, read-only or missing folder, rights; torch.save's
    RuntimeError from its C++ writer), naming the path and the space left where it was written."""
    folder = os.path.dirname(os.path.abspath(path))
    err = getattr(e, "errno", None) if isinstance(e, OSError) else None
    if err is None and ("No space left" in str(e) or "file write failed" in str(e)):
        err = errno.ENOSPC   # torch's inline_container.cc reports a short write, not an errno
    if err == errno.ENOSPC or err == errno.EDQUOT:
        why = (f"the disk holding {folder} is full ({free_space(folder)} free); free space there (or write "
               f"elsewhere) and run again")
    elif err in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = f"{folder} is not writable ({os.strerror(err)}); choose a writable folder"
    else:
        detail = os.strerror(err) if err else str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f"{detail} ({free_space(folder)} free); check the folder {folder}"
    return UserError(f"cannot write {path}: {why}; the previous version of the file, if any, is untouched")


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb"):
    """`with atomic_file(p) as f: f.write(...)`: the file appears complete under `path` or not at all."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as e:
        raise disk_error(e, path) from None
    f, tmp = _open_temp(path)
    ok = False
    try:
        if "b" not in mode:
            import io

            f = io.TextIOWrapper(f, encoding="utf-8")
        yield f
        _fsync_close(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        _fsync_path(os.path.dirname(os.path.abspath(path)))
        ok = True
    except OSError as e:
        raise disk_error(e, path) from None
    finally:
        if not f.closed:
            f.close()
        if not ok:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def write_json_atomic(path: str, obj, indent: int | None = 1) -> None:
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=indent)


def write_json_staged(path: str, obj, indent: int | None = 1) -> str:
    """Write `obj` for `path` into a fsynced temp file next to it and return the temp's name, for
    `publish_staged` to rename into place together with other files of one conversion (the
    JSON counterpart of `BetonWriter.commit(rename=False)`)."""
    f, tmp = _open_temp(path)
    try:
        f.write(json.dumps(obj, indent=indent).encode("utf-8"))
        _fsync_close(f)
        os.chmod(tmp, 0o644)
        return tmp
    except OSError as e:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise disk_error(e, path) from None


def publish_staged(staged: list[tuple[str, str]]) -> None:
    """Rename staged temp files into place, in order: `(temp, final path)` pairs from
    `write_json_staged` and `BetonWriter.commit(rename=False)`; then fsync their folder once."""
    path = ""
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
        for folder in {os.path.dirname(os.path.abspath(p)) for _, p in staged}:
            _fsync_path(folder)
    except OSError as e:
        raise disk_error(e, path) from None


def write_text_atomic(path: str, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def save_torch_atomic(path: str, obj) -> None:
    import torch

    with atomic_file(path) as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch's C++ writer (inline_container.cc) reports a full disk so
            raise disk_error(e, path) from None


@contextlib.contextmanager
def atomic_folder(path: str):
    """`with atomic_folder(p) as tmp:` fill the new folder `tmp`; it then takes the place of `p`,
    whose old content stays there until that moment. On failure `tmp` is removed and `p` is untouched."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(path)}.tmp-{os.getpid()}-", dir=parent)
    except OSError as e:
        raise disk_error(e, path) from None
    old = tmp + ".old"
    try:
        yield tmp
        for dirpath, _, files in os.walk(tmp):
            for f in files:
                _fsync_path(os.path.join(dirpath, f))
            _fsync_path(dirpath)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if not os.path.lexists(path):
            os.rename(tmp, path)
        elif not _exchange(tmp, path):  # the kernel cannot swap (e.g. NFS): two renames
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
        _fsync_path(parent)
    except OSError as e:
        raise disk_error(e, path) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the new folder after a failure, else the old one (swapped)
        if os.path.lexists(path):
            shutil.rmtree(old, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Swap the entries `a` and `b` in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


_TEMP_NAME = re.compile(r"\.tmp-\d+-[A-Za-z0-9_]+(\.old)?$")


def is_temp_name(name: str) -> bool:
    """Only the names `_open_temp` / `atomic_folder` make (`<base>.tmp-<pid>-<random>[.old]`): a user's
    `notes.tmp-2024.txt` is not ours."""
    return _TEMP_NAME.search(name) is not None


def remove_temps(folder: str) -> list[str]:
    """Delete every `*.tmp-*` file in `folder`; call only while holding its FolderLock."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for e in os.scandir(folder):
            if e.is_file() and is_temp_name(e.name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(e.path)
                    removed.append(e.name)
    return removed


# --- folder ownership -----------------------------------------------------------------------------

class FolderLock:
    """One process per folder: an exclusive, non-blocking `flock` on `<folder>/.lock`.

    The kernel drops the lock when its process dies (also on kill -9), so a lock is never stale;
    on entry, temp files of earlier, dead writers are removed. A second process gets one sentence
    naming the holder (pid and command, written into the lock file).
    """

    def __init__(self, folder: str, what: str, advice: str = ""):
        self.folder, self.what, self.advice = folder, what, advice
        self.path = os.path.join(folder, ".lock")
        self.fd = None
        self.removed: list[str] = []

    def acquire(self) -> "FolderLock":
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise disk_error(e, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{self.folder} is in use by {holder}; wait for it to finish"
                            + (f" or {self.advice}" if self.advice else "")) from None
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder removed the folder's .lock on the way out: lock the folder anew
            os.close(fd)
            return self.acquire()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:300]})\n".encode(), 0)
        self.fd = fd
        self.removed = remove_temps(self.folder)
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# --- meta_<res>.json ----------------------------------------------------------------------------

META_KEYS = {
    "name": "dataset name on disk",
    "source": "converter source (cifar10, folder, ...)",
    "res": "stored resolution (square; with layout 'paper', the longer side's maximum)",
    "layout": "'square' (res x res, centre crop) or 'paper' (aspect kept, longer side <= res)",
    "format": "raw | jpg",
    "num_classes": "number of classes",
    "classes": "class ids in label order",
    "counts": "samples per split, as written",
    "eval_split": "name of the evaluation split",
    "mean": "per-channel mean on the 0..255 scale (train split)",
    "std": "per-channel std on the 0..255 scale (train split)",
    "conversion_id": "stamped into every beton of this conversion",
    "files": "split -> beton file name",
}


def new_conversion_id() -> str:
    return str(uuid.uuid4())


def read_meta(root: str, name: str, res: int | None) -> dict | None:
    """`meta_<res>.json` of a dataset, or None when there is none."""
    if res is None:
        return None
    path = meta_path(root, name, res)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read {path} ({e}); re-run the conversion that wrote it") from None


def check_dataset(root: str, name: str, res: int, splits: list[str], hint: str) -> dict[str, Beton]:
    """Open the betons of `splits` and check that they and `meta_<res>.json` belong together.

    Images of a fixed size must be res x res. Files of another tool (no stamp, no meta) are accepted
    as they are; a stamped beton needs the meta of the same conversion, with its sample count.
    """
    meta = read_meta(root, name, res)
    bets = {s: open_beton(beton_path(root, name, s, res), hint) for s in splits}
    for b in bets.values():
        fixed = b.resolution()
        if fixed is not None and fixed != (res, res):
            raise UserError(f"{b.path} holds {fixed[0]}x{fixed[1]} images but data.res={res}; "
                            f"re-convert with --res {res} or set data.res={fixed[0]}")
    redo = (meta or {}).get("command") or hint
    mid = (meta or {}).get("conversion_id")
    for split, b in bets.items():
        bid = b.conversion_id
        if bid is None and mid is None:
            continue
        if meta is None:
            raise UserError(f"{meta_path(root, name, res)} is missing next to {b.path} (an interrupted "
                            f"conversion?); re-run it: {redo}")
        if bid != mid:
            raise UserError(f"{b.path} and {meta_path(root, name, res)} come from different conversions "
                            f"(an interrupted re-conversion?); re-run it: {redo}")
        want = (meta.get("counts") or {}).get(split)
        if want is not None and int(want) != b.num_samples:
            raise UserError(f"{b.path} holds {b.num_samples} samples but {meta_path(root, name, res)} "
                            f"says {want}; re-run the conversion: {redo}")
    return bets
