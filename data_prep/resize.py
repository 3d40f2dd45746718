"""Image -> the stored RGB uint8 array, in one of two layouts (`--layout`).

  square (default, DESIGN.md): shorter side resized to `res` with antialiasing, then a centre crop;
         every image is res x res. The crop is taken first, as a float box in source pixels, so
         only the kept square is filtered (same result as resize-then-crop, less work on 4:3 photos).
  paper  what the paper's authors stored (FFCV `RGBImageField(max_resolution=res)`): the aspect
         ratio is kept and the image is shrunk only when its longer side exceeds `res`, to
         `int(side * res / longer side)` per side, with OpenCV's INTER_AREA: FFCV's rounding and
         filter, so a PNG gives FFCV's pixels exactly (Pillow's BOX filter is no area filter at
         scales below 2: it differs by ~3 levels there). Smaller images are kept as they are, so
         sizes vary per image. Each is then stored top-left in a res x res canvas (`canvas`) with
         its true (h, w) beside it, so the betons stay fixed-size (resident, tiered, sharded) and the
         crops are taken from the image alone, on the device (`mlpscale.augment`).

Both: any mode (grayscale, CMYK, palette, alpha) becomes RGB; EXIF orientation is honoured (the
paper's converter ignores it; we keep what a viewer shows).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

LAYOUTS = ("square", "paper")
_EXIF_FORMATS = {"JPEG", "PNG", "WEBP"}  # formats whose orientation tag can only come from info["exif"]
_ORIENTATION = 0x0112
_SIDEWAYS = {5, 6, 7, 8}                 # orientations that swap width and height


def _upright_rgb(img: Image.Image) -> tuple[Image.Image, bool]:
    """(the image as displayed, in RGB; whether EXIF orientation turned it sideways)."""
    sideways = False
    if img.format not in _EXIF_FORMATS or "exif" in img.info:  # skip the EXIF parse when there is none
        sideways = img.getexif().get(_ORIENTATION, 1) in _SIDEWAYS
        img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))  # alpha composited on white
        img = Image.alpha_composite(bg, img)
    return (img.convert("RGB") if img.mode != "RGB" else img), sideways


def to_rgb(img: Image.Image) -> Image.Image:
    return _upright_rgb(img)[0]


def paper_size(w: int, h: int, res: int) -> tuple[int, int]:
    """Stored (width, height) of a w x h image in the paper layout (FFCV's `resizer`)."""
    ratio = res / max(w, h)
    if ratio >= 1:
        return w, h
    return max(1, int(ratio * w)), max(1, int(ratio * h))  # FFCV truncates; it would fail on 0


def draft_size(w: int, h: int, res: int, layout: str) -> tuple[int, int]:
    """The smallest (width, height) a JPEG may be decoded at (DCT scaling) for `layout`."""
    if layout == "square":
        return res, res
    # paper: >= 2x the stored size, so that the area filter still averages 2x2 pixels or more; at
    # 1x, 64px photos differed from FFCV's full decode by 1.2 levels on average, at 2x by 0.7,
    # at no measurable cost (the 1/2 .. 1/8 DCT scaling does most of the work either way)
    tw, th = paper_size(w, h, res)
    return 2 * tw, 2 * th


def square_resize(img: Image.Image, res: int) -> np.ndarray:
    """(res, res, 3) uint8: shorter side to `res` (box/area filter when shrinking), centre crop."""
    img = to_rgb(img)
    w, h = img.size
    s = min(w, h)
    box = ((w - s) / 2, (h - s) / 2, (w + s) / 2, (h + s) / 2)
    if s == res:
        if (w, h) != (res, res):
            img = img.crop(tuple(int(v) for v in box))
        return np.asarray(img, dtype=np.uint8)
    shrink = s > res
    resample = Image.Resampling.BOX if shrink else Image.Resampling.BICUBIC
    # reducing_gap: PIL first shrinks by an integer factor (fast), then filters the rest exactly
    img = img.resize((res, res), resample=resample, box=box, reducing_gap=3.0 if shrink else None)
    return np.asarray(img, dtype=np.uint8)


def paper_resize(img: Image.Image, res: int, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """(h, w, 3) uint8 in the paper layout. `full_size`: the (width, height) the file declares,
    when `img` was decoded smaller (JPEG draft); the stored size is computed from it."""
    img, sideways = _upright_rgb(img)
    w, h = full_size or img.size
    if full_size and sideways:
        w, h = h, w
    target = paper_size(w, h, res)
    arr = np.asarray(img, dtype=np.uint8)
    if img.size != target:
        import cv2  # imported here: 0.13 s that only this layout needs

        arr = cv2.resize(arr, target, interpolation=cv2.INTER_AREA)
    return arr


def canvas(arr: np.ndarray, res: int) -> np.ndarray:
    """(res, res, 3) uint8 holding the (h, w, 3) image `arr` (h, w <= res) at the top-left; the rest
    repeats its last row and column, so a bilinear sample half a pixel past the image's edge reads
    what `grid_sample(padding_mode="border")` would read on the image alone (and JPEG blocks that
    straddle the edge see no step)."""
    h, w = arr.shape[:2]
    if (h, w) == (res, res):
        return arr
    return np.pad(arr, ((0, res - h), (0, res - w), (0, 0)), mode="edge")


def fit(img: Image.Image, res: int, layout: str, full_size: tuple[int, int] | None = None) -> np.ndarray:
    """The stored array of `img` in `layout` (see the module docstring)."""
    if layout == "paper":
        return paper_resize(img, res, full_size)
    return square_resize(img, res)
