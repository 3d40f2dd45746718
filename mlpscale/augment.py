"""Batched augmentation on the device: uint8 NHWC batch in, HWC-flattened floats out.

    x_u8 (B, H, W, 3) uint8 --random-resized-crop + flip (one affine_grid + grid_sample)-->
    (B, 3, r, r) float --normalise--> (B, r*r*3) in HWC order --MixUp (one lambda per batch)-->

Randomness comes from an explicit `torch.Generator` (on the batch's device) and, for MixUp's
lambda, a host-side numpy generator, both reseeded per micro-batch by the trainer from
(seed, step, rank): a batch's augmentation is a pure function of those, so runs are reproducible
and a resumed run is identical to an uninterrupted one.

Crops follow torchvision's RandomResizedCrop: area fraction ~ U(scale), log aspect ratio ~
U(log ratio), 10 tries per image, else the largest centred crop with the ratio clamped. Boxes
are continuous (sub-pixel) rather than rounded to integers; the resampling is bilinear.

The paper layout (`hw` given: each image's true (h, w) at the top-left of its canvas) draws every
box inside its own image, and its evaluation view is FFCV's `CenterCropRGBImageDecoder(ratio=1)`:
the centred square of side min(h, w), resized to the output resolution. Either is the same one
`grid_sample` over the canvas that the square layout pays.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_TRIES = 10


def sample_boxes(batch: int, height, width, scale: tuple[float, float], ratio: tuple[float, float],
                 gen: torch.Generator, device) -> torch.Tensor:
    """Per-sample crop boxes (B, 4) as (x0, y0, w, h) in pixels of the source image.

    `height`, `width`: the source size, ints (one for all) or (B,) tensors (each image its own)."""
    height = torch.as_tensor(height, dtype=torch.float32, device=device).expand(batch)  # (B,)
    width = torch.as_tensor(width, dtype=torch.float32, device=device).expand(batch)
    u = torch.rand((batch, _TRIES, 4), generator=gen, device=device)
    target_area = (height * width)[:, None] * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_lo + (log_hi - log_lo) * u[..., 1])
    w = torch.sqrt(target_area * aspect)
    h = torch.sqrt(target_area / aspect)
    ok = (w <= width[:, None]) & (h <= height[:, None])
    first = ok.to(torch.uint8).argmax(dim=1, keepdim=True)  # first valid try (0 if none is valid)
    pick = lambda t: t.gather(1, first).squeeze(1)  # noqa: E731
    w, h, ux, uy = pick(w), pick(h), pick(u[..., 2]), pick(u[..., 3])
    # fallback when no try fits: the whole image with its aspect clamped into the ratio range
    in_ratio = width / height
    fw = torch.where(in_ratio > ratio[1], height * ratio[1], width)
    fh = torch.where(in_ratio < ratio[0], width / ratio[0], height)
    any_ok = ok.any(dim=1)
    w = torch.where(any_ok, w, fw)
    h = torch.where(any_ok, h, fh)
    x0 = ux * (width - w)
    y0 = uy * (height - h)
    return torch.stack([x0, y0, w, h], dim=1)


def center_boxes(hw: torch.Tensor) -> torch.Tensor:
    """FFCV's centre crop with ratio 1 (`get_center_crop`): the centred square of side min(h, w),
    its offsets rounded down as FFCV's are; boxes (B, 4) as (x0, y0, w, h) for hw (B, 2)."""
    h, w = hw[:, 0], hw[:, 1]
    side = torch.minimum(h, w)
    y0, x0 = torch.div(h - side, 2, rounding_mode="floor"), torch.div(w - side, 2, rounding_mode="floor")
    return torch.stack([x0, y0, side, side], dim=1).float()


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, flip: torch.Tensor | None, out_res: int) -> torch.Tensor:
    """Resample each box of x (B, C, H, W) to (B, C, out_res, out_res); `flip` (B,) bool mirrors it."""
    b, c, height, width = x.shape
    x0, y0, w, h = boxes.unbind(1)
    # affine_grid maps output coords in [-1, 1] to input coords in [-1, 1] (align_corners=False)
    sx, sy = w / width, h / height
    tx = (2 * x0 + w) / width - 1
    ty = (2 * y0 + h) / height - 1
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    zero = torch.zeros_like(sx)
    theta = torch.stack([torch.stack([sx, zero, tx], 1), torch.stack([zero, sy, ty], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(x.dtype), [b, c, out_res, out_res], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def pixel_permutation(seed: int, height: int, width: int) -> torch.Tensor:
    """(H*W,) int64: stored pixel perm[q] goes to position q (row-major), the same for every image; a pure
    function of the seed (CPU generator), so training, evaluation and --unpermute agree."""
    return torch.randperm(height * width, generator=torch.Generator().manual_seed(seed))


def permute_pixels(x_u8: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """(B, H, W, C) -> the same images with their pixel positions shuffled by `perm` (channels stay together)."""
    b, h, w, c = x_u8.shape
    return x_u8.reshape(b, h * w, c)[:, perm].view(b, h, w, c)


def normalize_flatten(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(B, 3, r, r) float on the 0..255 scale -> (B, r*r*3) standardised, HWC order.

    One pass: x * (1/std) + (-mean/std) written straight into a contiguous NHWC buffer, so the
    permute, the normalisation and the flatten cost a single read and write of the batch.
    """
    b, c, h, w = x.shape
    if torch.compiler.is_compiling():  # inductor fuses this itself (and mishandles out= strides)
        return torch.addcmul(-mean / std, x.permute(0, 2, 3, 1), 1.0 / std).reshape(b, -1)
    out = torch.empty((b, h, w, c), dtype=x.dtype, device=x.device)
    torch.addcmul(-mean / std, x.permute(0, 2, 3, 1), 1.0 / std, out=out)
    return out.view(b, -1)


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with its mirror in the batch: lam*x + (1-lam)*x.flip(0); returns (x, y_other)."""
    return x.mul(lam).add_(x.flip(0), alpha=1.0 - lam), y.flip(0)


def mixup_lambda(alpha: float, rng: np.random.Generator) -> float:
    return float(rng.beta(alpha, alpha)) if alpha > 0 else 1.0


class DeviceAugment:
    """The whole per-batch input pipeline on the device, for training or evaluation.

    train=True: random-resized-crop (if `crop`), flip (if `flip`), normalise, flatten.
    train=False: resize to `out_res` when it differs from the stored resolution, normalise, flatten.
    `permute` (a seed >= 1, data.permute_pixels) first shuffles the pixel positions of the stored image.
    With `hw` (paper-layout canvases): crops come from each image's own (h, w), and the view without
    a random crop (evaluation, or training with `crop` off) is the centred square (`center_boxes`).
    """

    def __init__(self, mean, std, out_res: int, train: bool, crop: bool = True, flip: bool = True,
                 scale=(0.08, 1.0), ratio=(0.75, 4 / 3), out_dtype=torch.float32, device="cpu", permute: int = 0):
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device)
        # a constant channel (std 0, e.g. a synthetic or single-colour dataset) must not divide by zero
        self.std = torch.as_tensor(std, dtype=torch.float32, device=device).clamp_min(1.0)
        self.out_res, self.train, self.crop, self.flip = out_res, train, crop, flip
        self.scale, self.ratio, self.out_dtype = tuple(scale), tuple(ratio), out_dtype
        self.permute, self.device, self._perm = permute, device, None

    def stored(self, x_u8: torch.Tensor) -> torch.Tensor:
        """The images as the model's data holds them: pixel positions permuted when `permute` is set."""
        if not self.permute:
            return x_u8
        if self._perm is None or self._perm.numel() != x_u8.shape[1] * x_u8.shape[2]:
            self._perm = pixel_permutation(self.permute, x_u8.shape[1], x_u8.shape[2]).to(x_u8.device)
        return permute_pixels(x_u8, self._perm)

    def __call__(self, x_u8: torch.Tensor, gen: torch.Generator | None = None,
                 hw: torch.Tensor | None = None) -> torch.Tensor:
        x_u8 = self.stored(x_u8)
        b, height, width, _ = x_u8.shape
        x = x_u8.permute(0, 3, 1, 2).float()  # (B, 3, H, W), channels-last in memory: no copy yet
        flip = None
        if self.train and self.flip:
            flip = torch.rand(b, generator=gen, device=x.device) < 0.5
        if self.train and self.crop:
            size_h, size_w = (height, width) if hw is None else (hw[:, 0], hw[:, 1])
            boxes = sample_boxes(b, size_h, size_w, self.scale, self.ratio, gen, x.device)
            x = crop_resize(x, boxes, flip, self.out_res)
        elif hw is not None:  # the paper layout's fixed view: the centred square of each image
            x = crop_resize(x, center_boxes(hw), flip, self.out_res)
        elif flip is not None:
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        if x.shape[-1] != self.out_res:
            x = F.interpolate(x, size=(self.out_res, self.out_res), mode="bilinear", antialias=True,
                              align_corners=False)
        return normalize_flatten(x, self.mean, self.std).to(self.out_dtype)
