"""The paper's picture of first-layer weights: each hidden unit of `linear_in` seen as an image.

A unit's weight row (H*W*C,) is the image it responds to most; flattened HWC, so it reshapes to
(res, res, C) without a permute. The paper shows that MLPs trained with data augmentation learn
local, Gabor-like filters without any inductive bias for locality. We draw the `n` units with the
largest L2 norm (the ones the next layers listen to most), each scaled on its own and symmetrically
around zero: 0.5 grey is a zero weight, brighter colours positive, darker negative.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from .io import atomic_file


def filter_images(weight: torch.Tensor, res: int, channels: int = 3, n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `weight` (width, res*res*channels) with the largest norm -> (k, res, res, channels) in [0, 1].

    Also returns the chosen rows' indices, largest norm first.
    """
    w = weight.detach().float().cpu()
    if w.dim() != 2 or w.shape[1] != res * res * channels:
        raise ValueError(f"first-layer weight of shape {tuple(w.shape)} is not (width, {res}*{res}*{channels})")
    k = max(1, min(n, w.shape[0]))
    idx = torch.linalg.vector_norm(w, dim=1).topk(k).indices
    units = w[idx]                                            # (k, H*W*C)
    scale = units.abs().amax(dim=1, keepdim=True).clamp_min(1e-12)
    imgs = 0.5 + 0.5 * units / scale                          # zero -> 0.5; the extreme weight -> 0 or 1
    return imgs.reshape(k, res, res, channels).numpy(), idx.numpy()


def unpermute_columns(weight: torch.Tensor, perm: torch.Tensor, channels: int = 3) -> torch.Tensor:
    """First-layer weight (width, H*W*C) of a model trained on pixel-permuted images (data.permute_pixels)
    -> the same weight in the images' own pixel order: the column of position q belongs to stored pixel
    perm[q]."""
    w = weight.detach()
    out = torch.empty_like(w)
    out.view(w.shape[0], -1, channels)[:, perm] = w.view(w.shape[0], -1, channels)
    return out


def _grid(imgs: np.ndarray, pad: int = 1) -> np.ndarray:
    """(k, h, w, c) tiles -> one (rows*(h+pad)-pad, cols*(w+pad)-pad, c) image on a white background."""
    k, h, w, c = imgs.shape
    cols = math.ceil(math.sqrt(k))
    rows = math.ceil(k / cols)
    out = np.ones((rows * (h + pad) - pad, cols * (w + pad) - pad, c), dtype=np.float32)
    for i in range(k):
        r, q = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, q * (w + pad):q * (w + pad) + w] = imgs[i]
    return out


def draw_filters(model, path: str, n: int = 64, title: str = "", perm: torch.Tensor | None = None) -> str:
    """Draw the `n` largest-norm units of `model.linear_in` as RGB tiles into `path` (PNG, PDF, SVG, ...).

    `model` is an mlpscale MLP (anything with `linear_in`, `res` and `channels`); `perm` (a run's
    data.permute_pixels permutation) maps the columns back to the images' own pixel order first. The file
    is written atomically. Returns `path`.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    res, channels = int(model.res), int(getattr(model, "channels", 3))
    weight = model.linear_in.weight if perm is None else unpermute_columns(model.linear_in.weight, perm, channels)
    imgs, _ = filter_images(weight, res, channels, n)
    grid = _grid(imgs)
    arch = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    title = title or (f"{arch} at {res}x{res}: first-layer weights, the {len(imgs)} of {weight.shape[0]} "
                      f"units with the largest norm")

    # an integer number of screen pixels per weight (the grid ~1000 px wide), so tiles stay crisp
    dpi, margin, band = 100, 10, 60                      # pixels: border, title band
    k = max(2, math.ceil(1000 / grid.shape[1]))
    gw, gh = grid.shape[1] * k, grid.shape[0] * k
    fw, fh = gw + 2 * margin, gh + 2 * margin + band
    fig = Figure(figsize=(fw / dpi, fh / dpi), dpi=dpi)
    ax = fig.add_axes((margin / fw, margin / fh, gw / fw, gh / fh))
    if channels == 3:
        ax.imshow(grid, interpolation="nearest")
    else:
        ax.imshow(grid[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    fig.suptitle(title, fontsize=12, y=1 - margin / fh, va="top", wrap=True)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    with atomic_file(path) as f:
        fig.savefig(f, format=fmt, dpi=dpi)
    return path
