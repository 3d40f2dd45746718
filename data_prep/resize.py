"""Image -> fixed square RGB uint8, the on-disk convention (DESIGN.md).

Shorter side resized to `res` with antialiasing, then a centre crop; any mode (grayscale, CMYK,
palette, alpha) becomes RGB; EXIF orientation is honoured. The crop is taken first, as a float
box in source pixels, so only the kept square is filtered (same result as resize-then-crop, less
work on 4:3 photos).
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps

_EXIF_FORMATS = {"JPEG", "PNG", "WEBP"}  # formats whose orientation tag can only come from info["exif"]


def to_rgb(img: Image.Image) -> Image.Image:
    if img.format not in _EXIF_FORMATS or "exif" in img.info:  # skip the EXIF parse when there is none
        img = ImageOps.exif_transpose(img)
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))  # alpha composited on white
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB") if img.mode != "RGB" else img


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
