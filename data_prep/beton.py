"""A streaming `.beton` writer (FFCV format v2) that holds only one page in memory.

Why not FFCV's `DatasetWriter`: it truncates its target first, needs the sample count before it
starts (so a corrupt image found during decoding cannot be dropped), hangs if `__getitem__`
raises in one of its workers, and keeps the whole metadata table in shared memory. Here decoding
happens elsewhere (`data_prep.engine`); this class only appends already-encoded payloads.

File layout (identical to what FFCV's writer produces, read by `ffcv.reader.Reader`):

    header (HeaderType) | field descriptors | metadata table (reserved for `capacity` samples)
    | pad to a page boundary | data pages, each `page_size` bytes, no sample straddles a page
    | allocation table (sample_id, ptr, size) per sample

The header (with `num_samples` and `alloc_table_ptr`) is written last, and the file lives under a
temporary name until it has been read back and checked; `commit()` renames it into place. A
crash or Ctrl-C therefore leaves a `*.tmp-*` file (removed by `abort()` when Python still runs),
never a file with the final name that looks complete. Unused reserved metadata slots (skipped
images) are harmless: the reader reads exactly `num_samples` entries.

RAM: one page (2-4 MiB) plus a buffer of metadata / allocation rows flushed every `flush_every`
samples; the allocation rows are spooled to a side file, so ImageNet-21k (12M samples) needs no
more memory than CIFAR.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

MODE_JPG, MODE_RAW = 0, 1  # ffcv.fields.rgb_image.IMAGE_MODES
DEFAULT_PAGE = 1 << 22     # 4 MiB
SMALL_PAGE = 1 << 21       # FFCV's minimum (2 MiB)


def _fields(res: int, fmt: str):
    from ffcv.fields import IntField, RGBImageField

    return {"image": RGBImageField(write_mode=fmt, max_resolution=res), "label": IntField()}


def choose_page_size(capacity: int, max_payload: int) -> int:
    """4 MiB pages for big datasets, 2 MiB for small ones (each split fills at least one page)."""
    page = SMALL_PAGE if capacity * max_payload < 64 * SMALL_PAGE else DEFAULT_PAGE
    return max(page, 1 << (max_payload - 1).bit_length())


class BetonWriter:
    """Append `(payload, mode, height, width, label)` samples; `commit()` makes the file appear."""

    def __init__(self, path: str, res: int, fmt: str, capacity: int, page_size: int | None = None,
                 flush_every: int = 8192):
        from ffcv.types import (ALLOC_TABLE_TYPE, CURRENT_VERSION, TYPE_ID_HANDLER, FieldDescType,
                                HeaderType, get_metadata_type)

        self.path, self.res, self.capacity = path, res, max(1, capacity)
        self.page_size = page_size or choose_page_size(self.capacity, res * res * 3)
        fields = _fields(res, fmt)
        self.meta_type = get_metadata_type(list(fields.values()))
        self.alloc_type = ALLOC_TABLE_TYPE
        self.header = np.zeros(1, dtype=HeaderType)[0]
        self.header["version"] = CURRENT_VERSION
        self.header["num_fields"] = len(fields)
        self.header["page_size"] = self.page_size

        desc = np.zeros(len(fields), dtype=FieldDescType)
        type_ids = {v: k for k, v in TYPE_ID_HANDLER.items()}
        for i, (name, field) in enumerate(fields.items()):
            desc[i]["type_id"] = type_ids[type(field)]
            desc[i]["name"][: len(name)] = np.frombuffer(name.encode("ascii"), dtype="<u1")
            desc[i]["arguments"][:] = field.to_binary()[0]

        d = os.path.dirname(os.path.abspath(path))
        os.makedirs(d, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-", dir=d)
        self.f = os.fdopen(fd, "w+b")
        fd2, self.spool_path = tempfile.mkstemp(prefix=os.path.basename(path) + ".tmp-alloc-", dir=d)
        self.spool = os.fdopen(fd2, "w+b")
        self.f.write(self.header.tobytes())
        self.f.write(desc.tobytes())
        self.meta_start = self.f.tell()
        end_meta = self.meta_start + self.capacity * self.meta_type.itemsize
        self.data_start = -(-end_meta // self.page_size) * self.page_size  # align up to a page
        self.n = 0
        self.page = np.zeros(self.page_size, dtype=np.uint8)
        self.page_no, self.page_used = -1, self.page_size  # no page open yet
        self.flush_every = flush_every
        self._rows = []  # (mode, width, height, ptr, label, size) per buffered sample
        self._meta_first = 0
        self.total_payload = 0

    # -- appending -----------------------------------------------------------------------------
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
        if b:
            rows = np.array(self._rows, dtype=np.int64)  # (b, 6), vectorised instead of per-sample numpy writes
            meta = np.zeros(b, dtype=self.meta_type)
            for j, key in enumerate(("mode", "width", "height", "data_ptr")):
                meta["f0"][key] = rows[:, j]
            meta["f1"] = rows[:, 4]
            alloc = np.zeros(b, dtype=self.alloc_type)
            alloc["sample_id"] = np.arange(self._meta_first, self._meta_first + b)
            alloc["ptr"], alloc["size"] = rows[:, 3], rows[:, 5]
            self.f.seek(self.meta_start + self._meta_first * self.meta_type.itemsize)
            self.f.write(meta.tobytes())
            self.spool.write(alloc.tobytes())
            self._meta_first += b
            self._rows = []

    # -- finishing -----------------------------------------------------------------------------
    def commit(self) -> int:
        """Finish, verify and rename into place; returns the number of samples."""
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
            self.f.flush()
            os.fsync(self.f.fileno())
            self.f.close()
            verify_beton(self.tmp, self.n)
            os.chmod(self.tmp, 0o644)  # mkstemp creates 0600
            os.replace(self.tmp, self.path)
            return self.n
        finally:
            self.abort()

    def abort(self) -> None:
        """Close and delete the temporary files (no-op after a successful commit)."""
        for fh in (self.f, self.spool):
            if not fh.closed:
                fh.close()
        for p in (self.tmp, self.spool_path):
            if os.path.exists(p):
                os.remove(p)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.abort()


def verify_beton(path: str, expected: int) -> None:
    """Read the file back through FFCV's own reader and check header, tables and size."""
    from ffcv.reader import Reader

    r = Reader(path)
    if int(r.num_samples) != expected or len(r.alloc_table) != expected:
        raise RuntimeError(f"{path}: header says {r.num_samples} samples, alloc table "
                           f"{len(r.alloc_table)}, expected {expected}")
    ends = r.alloc_table["ptr"] + r.alloc_table["size"]
    if expected and int(ends.max()) > int(r.header["alloc_table_ptr"]):
        raise RuntimeError(f"{path}: a sample points past the data region")


# -- reading our own (or any FFCV image/label) betons back, for combine and subset ----------------
def read_labels(path: str) -> np.ndarray:
    """(N,) int64 labels of a beton with fields (image, label), from its metadata table alone."""
    from ffcv.reader import Reader

    r = Reader(path)
    name = r.field_names.index("label")
    return np.asarray(r.metadata[f"f{name}"], dtype=np.int64)


def iter_samples(path: str, indices=None):
    """Yield (payload bytes, mode, height, width, label) in `indices` order (default: all)."""
    from ffcv.reader import Reader

    r = Reader(path)
    img = r.metadata[f"f{r.field_names.index('image')}"]
    lab = r.metadata[f"f{r.field_names.index('label')}"]
    sizes = dict(zip(r.alloc_table["ptr"].tolist(), r.alloc_table["size"].tolist()))
    idx = range(len(lab)) if indices is None else indices
    with open(path, "rb") as f:
        for i in idx:
            m = img[i]
            ptr = int(m["data_ptr"])
            f.seek(ptr)
            yield f.read(sizes[ptr]), int(m["mode"]), int(m["height"]), int(m["width"]), int(lab[i])


def beton_info(path: str) -> tuple[int, int]:
    """(num_samples, resolution) of an image beton."""
    from ffcv.reader import Reader

    r = Reader(path)
    img = r.metadata[f"f{r.field_names.index('image')}"]
    return int(r.num_samples), int(img["height"].max()) if len(img) else 0
