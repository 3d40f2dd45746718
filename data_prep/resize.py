"""Image -> fixed square RGB uint8, the on-disk convention (DESIGN.md).

Shorter side resized to `res` with antialiasing, then a centre crop; any mode (grayscale, CMYK,
palette, alpha) becomes RGB; EXIF orientation is honoured.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps


def to_rgb(img: Image.Image) -> Image.Image:
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
    scale = res / min(w, h)
    nw, nh = max(res, round(w * scale)), max(res, round(h * scale))
    resample = Image.Resampling.BOX if scale < 1 else Image.Resampling.BICUBIC
    # reducing_gap: PIL first shrinks by an integer factor (fast), then filters the rest exactly
    img = img.resize((nw, nh), resample=resample, reducing_gap=3.0 if scale < 1 else None)
    left, top = (nw - res) // 2, (nh - res) // 2
    img = img.crop((left, top, left + res, top + res))
    return np.asarray(img, dtype=np.uint8)
