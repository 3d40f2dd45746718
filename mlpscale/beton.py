"""The `.beton` file format, read and written without importing FFCV.

The format is FFCV's (version 2), byte for byte, so FFCV's Reader and Loader and the paper's own
tools read what we write, and we read what they write:

    header (HEADER) | field descriptors (FIELD_DESC) | metadata table (one row per sample)
    | pad to a page | data pages (`page_size` bytes; no sample straddles a page)
    | allocation table (ALLOC: sample id, pointer, size)

Reading it with numpy alone matters for speed: `import ffcv` is slow and compiles numba code,
while a resident raw dataset is just pages to copy (`read_raw_images`).

A conversion stamps an id into every beton it writes (in the label field's descriptor arguments,
1024 bytes that FFCV's IntField ignores) and into `meta_<res>.json` (mlpscale.layout), so a folder
whose files come from different conversions is refused.
"""
from __future__ import annotations

import contextlib
import os
import uuid
from dataclasses import dataclass, field

import numpy as np

from .errors import UserError
from .io import disk_error, fsync_close, fsync_path, open_temp

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

    Nothing is decoded: opening a file reads its tables only, however many samples it holds.
    """
    path: str
    num_samples: int
    page_size: int
    field_names: list
    type_ids: list
    metadata: np.ndarray            # (N,) structured, one column per field ("f0", "f1", ...)
    alloc: np.ndarray               # (N,) ALLOC rows
    arguments: list                 # raw descriptor arguments per field (bytes)
    _scan: dict | None = field(default=None, repr=False, compare=False)  # see scan()

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
        return self.scan()["resolution"]

    def image_sizes(self) -> np.ndarray | None:
        """(N, 2) int64 true (height, width) of each image in a paper-layout beton (images stored
        top-left in a res x res canvas, `data_prep.resize.canvas`); None for any other beton."""
        if "height" not in self.field_names or "width" not in self.field_names:
            return None
        return np.stack([self.column("height"), self.column("width")], axis=1).astype(np.int64)

    def all_raw(self) -> bool:
        return self.scan()["all_raw"]

    def sizes(self) -> np.ndarray:
        """Payload bytes of each image, in sample order."""
        return self.scan()["sizes"]

    def data_ptrs(self) -> np.ndarray:
        """File offset of each image's payload, in sample order (int64)."""
        return self.scan()["ptrs"]

    def scan(self) -> dict:
        """The per-image facts derived from the index (one pass, then kept): chunked reads
        of a 12M-sample file ask for them once per chunk and must not redo the pass each time."""
        if self._scan is None:
            self._scan = _scan_index(self)
        return self._scan

    @property
    def conversion_id(self) -> str | None:
        """The id stamped by the mlpscale conversion that wrote this file (None: another tool)."""
        if "label" not in self.field_names:
            return None
        args = self.arguments[self.field_names.index("label")]
        if args[:8] != _STAMP_MAGIC:
            return None
        return str(uuid.UUID(bytes=bytes(args[8:24])))


def _scan_index(b: Beton) -> dict:
    """Payload offsets and sizes, modes, and the fixed resolution (or None) of a beton's images."""
    img = b.images
    ptrs = img["data_ptr"].astype(np.int64)
    alloc = b.alloc[:len(ptrs)]
    if np.array_equal(alloc["ptr"], ptrs):  # allocation rows in sample order (as BetonWriter writes them): no sort
        sizes = alloc["size"].astype(np.int64)
    else:
        order = np.argsort(b.alloc["ptr"])
        starts = b.alloc["ptr"][order]
        pos = np.minimum(np.searchsorted(starts, ptrs), max(len(starts) - 1, 0))
        if len(ptrs) and (starts[pos] != ptrs).any():  # each payload must start an allocation
            raise UserError(f"{b.path} is damaged (an image points outside its allocation table); "
                            f"re-convert it with mlpscale-convert")
        sizes = b.alloc["size"][order][pos].astype(np.int64)
    h, w = img["height"], img["width"]
    fixed = len(img) and h.min() == h.max() and w.min() == w.max()
    return {"ptrs": ptrs, "sizes": sizes,
            "modes": np.ascontiguousarray(img["mode"]),
            "resolution": (int(h[0]), int(w[0])) if fixed else None,
            "all_raw": bool(len(img)) and bool((img["mode"] == MODE_RAW).all())}


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
    ptr_all = b.data_ptrs()
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

    `sizes=True` (the paper layout) adds two int fields, `height` and `width`: each sample's true
    image size inside its fixed-size canvas, given to `add(..., size=(h, w))`.

    Streams: one page in RAM plus a buffer of metadata rows; the allocation rows are spooled to a
    side file, so 12M samples need no more memory than 50k. The header (sample count, allocation
    table pointer) is written last, the file lives under a temporary name, is fsynced and read back
    (`open_beton`) before `commit()` renames it; `commit(rename=False)` leaves it under `self.tmp`
    for `publish_staged` (several files of one conversion are renamed together).
    """

    def __init__(self, path: str, capacity: int, max_payload: int, conversion_id: str | None = None,
                 page_size: int | None = None, flush_every: int = 8192, sizes: bool = False):
        self.path, self.capacity, self.with_sizes = path, max(1, capacity), sizes
        self.page_size = page_size or choose_page_size(self.capacity, max_payload)
        names = ("image", "label", "height", "width") if sizes else ("image", "label")
        self.type_ids = [TYPE_IMAGE] + [TYPE_INT] * (len(names) - 1)
        self.meta_type = metadata_dtype(self.type_ids)
        desc = np.zeros(len(names), dtype=FIELD_DESC)
        for i, (name, t) in enumerate(zip(names, self.type_ids)):
            desc[i]["type_id"] = t
            desc[i]["name"][:len(name)] = np.frombuffer(name.encode("ascii"), dtype="<u1")
        if conversion_id:
            stamp = _STAMP_MAGIC + uuid.UUID(conversion_id).bytes
            desc[1]["arguments"][:len(stamp)] = np.frombuffer(stamp, dtype="<u1")
        self.header = np.zeros(1, dtype=HEADER)[0]
        self.header["version"], self.header["num_fields"], self.header["page_size"] = VERSION, len(names), self.page_size
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise disk_error(e, path) from None
        self.f, self.tmp = open_temp(path)
        try:
            self.spool, self.spool_path = open_temp(path, ".alloc")
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
        self._rows = []  # (mode, width, height, ptr, label, size, true h, true w) per buffered sample
        self._meta_first = 0

    def add(self, payload, mode: int, height: int, width: int, label: int,
            size: tuple[int, int] | None = None) -> None:
        if self.with_sizes and size is None:
            raise ValueError(f"{self.path} stores each image's true size: pass size=(h, w)")
        true_hw = size if self.with_sizes else (0, 0)
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
        self._rows.append((mode, width, height, ptr, label, size, *true_hw))
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

    def add_many(self, data: np.ndarray, sizes, modes, heights, widths, labels, true_hw=None) -> None:
        """Append samples whose payloads lie back to back in `data` (uint8), packed exactly as `add`
        packs them, but one slice copy per page instead of Python steps per sample (combine, subsets).
        true_hw: (n, 2) each image's true (h, w), required when the file stores sizes (paper layout)."""
        sizes = np.asarray(sizes, dtype=np.int64)
        n = len(sizes)
        if self.with_sizes and true_hw is None:
            raise ValueError(f"{self.path} stores each image's true size: pass true_hw=(n, 2) sizes")
        if self.n + n > self.capacity:
            raise RuntimeError(f"more samples than the {self.capacity} reserved in {self.path}")
        if n and int(sizes.max()) > self.page_size:
            raise ValueError(f"a sample of {int(sizes.max())} bytes does not fit a {self.page_size}-byte page")
        self._flush_rows()
        ends = np.cumsum(sizes)
        starts = ends - sizes
        ptrs = np.empty(n, dtype=np.int64)
        i = 0
        while i < n:
            free = self.page_size - self.page_used
            k = int(np.searchsorted(ends[i:], starts[i] + free, side="right"))  # samples i.. that fit
            if k == 0:
                self._flush_page()
                self.page_no += 1
                self.page_used = 0
                continue
            a, e = int(starts[i]), int(ends[i + k - 1])
            ptrs[i:i + k] = self.data_start + self.page_no * self.page_size + self.page_used + starts[i:i + k] - a
            self.page[self.page_used:self.page_used + e - a] = data[a:e]
            self.page_used += e - a
            i += k
        self._write_rows(modes, widths, heights, ptrs, labels, sizes,
                         true_hw=np.asarray(true_hw, dtype=np.int64).reshape(n, 2) if self.with_sizes else None)
        self.n += n
        self.total_payload += int(ends[-1]) if n else 0

    def _flush_rows(self) -> None:
        if self._rows:
            rows = np.array(self._rows, dtype=np.int64)  # (b, 8)
            self._write_rows(*rows[:, :6].T, true_hw=rows[:, 6:8])
            self._rows = []

    def _write_rows(self, modes, widths, heights, ptrs, labels, sizes, true_hw=None) -> None:
        b = len(ptrs)
        meta = np.zeros(b, dtype=self.meta_type)
        for key, col in (("mode", modes), ("width", widths), ("height", heights), ("data_ptr", ptrs)):
            meta["f0"][key] = col
        meta["f1"] = labels
        if self.with_sizes:
            meta["f2"], meta["f3"] = true_hw[:, 0], true_hw[:, 1]
        alloc = np.zeros(b, dtype=ALLOC)
        alloc["sample_id"] = np.arange(self._meta_first, self._meta_first + b)
        alloc["ptr"], alloc["size"] = ptrs, sizes
        self.f.seek(self.meta_start + self._meta_first * self.meta_type.itemsize)
        self.f.write(meta.tobytes())
        self.spool.write(alloc.tobytes())
        self._meta_first += b

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
            fsync_close(self.f)
            b = open_beton(self.tmp)
            if b.num_samples != self.n or len(b.alloc) != self.n:
                raise RuntimeError(f"{self.tmp}: read back {b.num_samples} samples, wrote {self.n}")
            os.chmod(self.tmp, 0o644)  # mkstemp creates 0600
            if rename:
                os.replace(self.tmp, self.path)
                fsync_path(os.path.dirname(os.path.abspath(self.path)))
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
                 conversion_id: str | None = None, sizes: np.ndarray | None = None) -> int:
    """Write in-memory images (N, H, W, 3) uint8 and labels (N,) as a beton, atomically (tests, benchmarks).
    `sizes` (N, 2): true (h, w) of canvases in the paper layout (the `height`/`width` fields)."""
    n, h, w, _ = images.shape
    writer = BetonWriter(path, n, h * w * 3, conversion_id=conversion_id, sizes=sizes is not None)
    try:
        for i, (img, lab) in enumerate(zip(images, labels)):
            payload, mode = encode_image(img, fmt, quality)
            writer.add(payload, mode, h, w, int(lab), None if sizes is None else tuple(int(v) for v in sizes[i]))
        return writer.commit()
    finally:
        writer.abort()
