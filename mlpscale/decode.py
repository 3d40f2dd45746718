"""JPEG and raw payloads of a fixed-size beton into one uint8 array: the one-time read of a resident split.

`decode_images` runs in threads. Where numba and FFCV's libjpeg-turbo are there, each thread runs one
compiled loop over a slice of images with the GIL released (`nogil`), so decode threads scale with
cores; otherwise (or for small reads, below the loop's one-time compile cost) one Python call per image.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .beton import MODE_RAW, Beton
from .errors import UserError


def _libffcv_imdecode(addresses: bool = False):
    """FFCV's own JPEG decoder (libjpeg-turbo, FASTDCT; what its loader uses), loaded with ctypes
    without importing the ffcv package (no numba compile); None when FFCV is not installed.
    `addresses`: pointers typed as integers (for numba, which then compiles integer arithmetic only)."""
    spec = importlib.util.find_spec("ffcv")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_libffcv*.so"))
    if not libs:
        return None
    try:
        fn = ctypes.CDLL(libs[0]).imdecode
    except OSError:
        return None
    c = ctypes
    ptr = c.c_uint64 if addresses else c.c_void_p
    fn.argtypes = [ptr, c.c_uint64, c.c_uint32, c.c_uint32, ptr, c.c_uint32, c.c_uint32,
                   c.c_uint32, c.c_uint32, c.c_uint32, c.c_uint32, c.c_bool, c.c_bool]
    fn.restype = c.c_int
    return fn


def _per_image_decoder():
    """decode(payload uint8 array, out (H, W, 3) uint8 view) for JPEG payloads, one call per image."""
    fn = _libffcv_imdecode()
    if fn is not None:
        def decode(src: np.ndarray, out: np.ndarray) -> None:
            h, w = out.shape[:2]
            if fn(src.ctypes.data, src.size, h, w, out.ctypes.data, h, w, 0, 0, 1, 1, False, False) != 0:
                raise ValueError("JPEG decode failed")
        return decode, "libffcv (libjpeg-turbo)"
    import cv2

    def decode_cv2(src: np.ndarray, out: np.ndarray) -> None:
        img = cv2.imdecode(src, cv2.IMREAD_COLOR)
        if img is None or img.shape != out.shape:
            raise ValueError("JPEG decode failed")
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=out)
    return decode_cv2, "opencv"


_BATCH = []  # [the compiled batch decoder or None], built on first use


def _batch_decoder():
    """run(file address, ptrs, sizes, modes, out address, H*W*3, H, W) -> index of the first payload that does
    not decode, or -1: the whole loop in numba's nopython mode with the GIL released (`nogil`), calling
    FFCV's libjpeg-turbo decoder, so decode threads scale with cores. None without FFCV or numba."""
    if _BATCH:
        return _BATCH[0]
    fn = _libffcv_imdecode(addresses=True)
    run = None
    if fn is not None and importlib.util.find_spec("numba") is not None:
        import numba

        memmove = ctypes.CDLL(None).memmove
        memmove.argtypes, memmove.restype = [ctypes.c_uint64, ctypes.c_uint64, ctypes.c_uint64], ctypes.c_uint64
        raw = MODE_RAW

        @numba.njit(nogil=True)
        def run(src, ptrs, sizes, modes, dst, nbytes, h, w):  # pragma: no cover - compiled
            # src, dst: addresses of the file's mapping and of the (n, nbytes) output rows
            for j in range(len(ptrs)):
                if modes[j] == raw:
                    memmove(dst + j * nbytes, src + ptrs[j], nbytes)
                elif fn(src + ptrs[j], sizes[j], h, w, dst + j * nbytes, h, w, 0, 0, 1, 1, False, False) != 0:
                    return j
            return -1

        empty = np.zeros(0, np.int64)
        run(0, empty, empty, np.zeros(0, np.uint8), 0, 1, 1, 1)
    _BATCH.append(run)
    return run


def decode_images(b: Beton, rows: np.ndarray, out: np.ndarray, workers: int = 0, progress=None,
                  batch: bool | None = None) -> str:
    """Decode the images `rows` of a fixed-size beton (JPEG or raw payloads) into out (len(rows), H, W, 3),
    in parallel threads; returns the decoder's name. `batch`: one GIL-free call per slice of images
    where numba and FFCV's decoder are there (None: for 4096 rows or more; False: one Python call per
    image, the baseline)."""
    rows = np.asarray(rows, dtype=np.int64)
    ptrs, sizes, modes = b.data_ptrs()[rows], b.sizes()[rows], b.scan()["modes"][rows]
    h, w = out.shape[1:3]
    nbytes = h * w * 3
    if (sizes[modes == MODE_RAW] < nbytes).any():
        raise UserError(f"{b.path}: a raw image is shorter than {h}x{w}x3 bytes; the file is damaged: "
                        f"re-convert it with mlpscale-convert")
    if batch is None:  # the batch loop's one-time compile pays off from a few thousand images
        batch = len(rows) >= 4096
    run = _batch_decoder() if batch and out.flags.c_contiguous else None  # it writes rows by address
    decode, name = (None, "libffcv (libjpeg-turbo), batch nogil") if run is not None else _per_image_decoder()
    mm = np.memmap(b.path, dtype=np.uint8, mode="r")

    def bad(j: int):
        return UserError(f"{b.path}: image {rows[j]} does not decode; the file is damaged: "
                         f"re-convert it with mlpscale-convert")

    def work(a: int, e: int) -> int:
        if run is not None:
            j = run(mm.ctypes.data, ptrs[a:e], sizes[a:e], modes[a:e], out[a:e].ctypes.data, nbytes, h, w)
            if j >= 0:
                raise bad(a + j)
            return e - a
        for j in range(a, e):
            src = mm[ptrs[j]:ptrs[j] + sizes[j]]
            if modes[j] == MODE_RAW:
                out[j] = src[:nbytes].reshape(h, w, 3)
            else:
                try:
                    decode(np.ascontiguousarray(src), out[j])
                except ValueError:
                    raise bad(j) from None
        return e - a

    nw = workers or len(os.sched_getaffinity(0))
    chunk = 512
    with ThreadPoolExecutor(max_workers=nw) as pool:
        for done in pool.map(lambda a: work(a, min(a + chunk, len(rows))), range(0, len(rows), chunk)):
            if progress is not None:
                progress(done)
    return name
