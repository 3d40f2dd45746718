"""The reference recipe: the paper's own code path, rebuilt as the baseline of every benchmark.

What the paper's training loop does per batch (and what this module does, written here from the
description, not copied):
  * FFCV Loader, OrderOption.RANDOM; image pipeline on the CPU threads:
    RandomResizedCropRGBImageDecoder((r, r), scale=(0.08, 1), ratio=(3/4, 4/3)) -> RandomHorizontalFlip()
    -> ImageMixup(alpha=0.8, same_lambda=True) -> ToTensor -> ToDevice -> ToTorchImage -> Convert(float32);
    label pipeline IntDecoder -> LabelMixup(alpha=0.8, same_lambda=True) -> ToTensor -> ToDevice,
    giving (B, 3) rows (label, partner label, lambda);
  * normalisation (a small torch module: torchvision is not a dependency);
  * an fp32 eager MLP on the CHW flattening `x.reshape(B, -1)` of the NCHW batch;
  * the mixed-label cross-entropy with label smoothing;
  * LION as a plain per-parameter Python loop (decoupled decay p *= 1 - lr*wd, update sign of the
    beta1-interpolation, then the beta2 momentum update).
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from mlpscale.models import MLP

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


class Normalize(nn.Module):
    """(B, 3, r, r) float on the 0..255 scale -> standardised per channel."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class PythonLion(torch.optim.Optimizer):
    """LION, one parameter at a time in Python (the paper's utils/optimizer.py style)."""

    def __init__(self, params, lr: float = 1e-4, betas=(0.9, 0.99), weight_decay: float = 0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            lr, wd, (b1, b2) = group["lr"], group["weight_decay"], group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                exp_avg = state["exp_avg"]
                p.mul_(1 - lr * wd)
                update = exp_avg * b1 + g * (1 - b1)
                p.add_(torch.sign(update), alpha=-lr)
                exp_avg.mul_(b2).add_(g, alpha=1 - b2)


def mixed_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, smoothing: float) -> torch.Tensor:
    """labels (B, 3) = (label, partner label, lambda) from FFCV's LabelMixup; no host sync."""
    y_a, y_b, lam = labels[:, 0].long(), labels[:, 1].long(), labels[:, 2].float()
    ce_a = F.cross_entropy(logits, y_a, label_smoothing=smoothing, reduction="none")
    ce_b = F.cross_entropy(logits, y_b, label_smoothing=smoothing, reduction="none")
    return (lam * ce_a + (1 - lam) * ce_b).mean()


class ReferenceStep:
    """One optimizer step of the reference recipe on an already-augmented float NCHW batch.

    `bookkeeping=True` adds what the authors' training loop does per step besides the update: the
    top-1/top-5 accuracy against both MixUp labels (`topk_acc`, kept on the device) and `loss.item()`
    (one host sync per step). On CUDA, fp32 matmuls run as TF32, as their train.py enables
    (`torch.backends.cuda.matmul.allow_tf32 = True`; ours runs bf16 autocast, unaffected)."""

    def __init__(self, arch: str, res: int, num_classes: int, mean, std, device, lr: float = 5e-5,
                 weight_decay: float = 0.0, smoothing: float = 0.3, bookkeeping: bool = False):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = True
        self.model = MLP(arch, res, num_classes).to(self.device)
        self.norm = Normalize(mean, std).to(self.device)
        self.opt = PythonLion(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.smoothing, self.bookkeeping = smoothing, bookkeeping
        self.loss_sum, self.acc_sum = 0.0, torch.zeros((), device=self.device)

    def __call__(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)                                   # (B, 3, r, r) fp32
        logits = self.model(x.reshape(x.shape[0], -1))      # CHW flatten: (B, 3*r*r)
        loss = mixed_cross_entropy(logits, labels, self.smoothing)
        if self.bookkeeping:
            with torch.no_grad():
                top = logits.topk(min(5, logits.shape[1]), dim=1).indices
                acc = [(top[:, 0] == labels[:, j].long()).float().mean() for j in (0, 1)]
                self.acc_sum += torch.maximum(*acc)
        loss.backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.bookkeeping:
            self.loss_sum += loss.item()
        return loss.detach()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return self.model(x.reshape(x.shape[0], -1)).softmax(-1)


def fake_mixed_batch(batch: int, res: int, num_classes: int, device, seed: int = 0):
    """What the reference loader hands the step: float NCHW images (0..255) and (B, 3) mixup labels."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, 3, res, res), generator=g, dtype=torch.uint8).float()
    y = torch.randint(0, num_classes, (batch,), generator=g)
    labels = torch.stack([y.double(), y.flip(0).double(), torch.full((batch,), 0.7, dtype=torch.float64)], 1)
    return x.to(device), labels.to(device)


def reference_loader(path: str, batch_size: int, res: int, device, workers: int = 0, mixup_alpha: float = 0.8,
                     augment: bool = True, os_cache: bool = True, seed: int = 0, drop_last: bool = True,
                     order_random: bool | None = None):
    """The paper's FFCV training loader: crop, flip and MixUp per image on the CPU threads.

    Yields (images float32 (B, 3, res, res) on `device`, labels float64 (B, 3) = label, partner, lambda)
    when mixup_alpha > 0, else (images, labels int (B,)). `augment=False` gives the plain centre path
    (SimpleRGBImageDecoder) for evaluation.
    """
    from mlpscale.ffcv_compat import import_ffcv

    import_ffcv()
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import (
        RandomResizedCropRGBImageDecoder,
        SimpleRGBImageDecoder,
    )
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import (
        Convert,
        ImageMixup,
        LabelMixup,
        RandomHorizontalFlip,
        Squeeze,
        ToDevice,
        ToTensor,
        ToTorchImage,
    )

    device = torch.device(device)
    if augment:
        image = [RandomResizedCropRGBImageDecoder((res, res), scale=SCALE, ratio=RATIO), RandomHorizontalFlip()]
    else:
        image = [SimpleRGBImageDecoder()]
    label = [IntDecoder()]
    if augment and mixup_alpha > 0:
        image.append(ImageMixup(mixup_alpha, True))
        label.append(LabelMixup(mixup_alpha, True))
    image += [ToTensor(), ToDevice(device, non_blocking=True), ToTorchImage(), Convert(torch.float32)]
    label += [ToTensor(), ToDevice(device, non_blocking=True)]
    if not (augment and mixup_alpha > 0):
        label.insert(-1, Squeeze())
    return Loader(path, batch_size=batch_size, num_workers=workers or os.cpu_count() or 1,
                  order=OrderOption.RANDOM if (augment if order_random is None else order_random)
                  else OrderOption.SEQUENTIAL, os_cache=os_cache,
                  drop_last=drop_last, seed=seed, pipelines={"image": image, "label": label})


def iterate(loader):
    """One epoch of an FFCV loader, with mlpscale's guards (no hang on a pipeline error, no leaked thread)."""
    from mlpscale.loader import iterate_ffcv

    return iterate_ffcv(loader)

