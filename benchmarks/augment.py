"""`augment` suite: batched crop/flip/MixUp - ours (DeviceAugment) vs kornia on the same device and
vs the paper's CPU augmentation (FFCV)."""
from __future__ import annotations

import os

import numpy as np
import torch

from mlpscale.augment import DeviceAugment, mixup, mixup_lambda
from mlpscale.datasets import CIFAR_MEAN, CIFAR_STD
from mlpscale.layout import beton_path

from . import data as bdata
from . import reference as ref
from .common import Sizes, fresh, ref_loader, beton_root, uint8_batch
from .timing import Comparison, Variant, compare


def augment_comparison(s: Sizes, root: str | None, log=print) -> dict:
    """Batched augmentation: ours (DeviceAugment + MixUp on a resident uint8 batch) vs kornia on the
    same device, and vs the reference recipe's CPU augmentation (FFCV crop/flip/MixUp decode of a raw
    beton from the page cache, which also covers its memcpy)."""
    dev = s.dev()
    x_u8, y = uint8_batch(s.batch, s.res, s.num_classes, dev)
    aug = DeviceAugment(CIFAR_MEAN, CIFAR_STD, s.res, train=True, device=dev,
                        out_dtype=torch.bfloat16 if s.prec() == "bf16" else torch.float32)
    gen = torch.Generator(device=dev).manual_seed(0)
    rng = np.random.default_rng(0)

    def ours():
        for _ in range(s.batches):
            xa = aug(x_u8, gen)
            mixup(xa, y, mixup_lambda(0.8, rng))
        return s.batches * s.batch

    variants = [Variant("mlpscale", ours, "ours", "DeviceAugment (affine_grid + grid_sample crop/flip, normalise, "
                                                  "HWC flatten) + MixUp")]
    try:
        import kornia.augmentation as K

        kaug = torch.nn.Sequential(K.RandomResizedCrop((s.res, s.res), scale=ref.SCALE, ratio=ref.RATIO),
                                   K.RandomHorizontalFlip()).to(dev)
        knorm = ref.Normalize(CIFAR_MEAN, CIFAR_STD).to(dev)

        def kornia_fn():
            for _ in range(s.batches):
                xk = knorm(kaug(x_u8.permute(0, 3, 1, 2).float()))
                mixup(xk.reshape(len(xk), -1), y, mixup_lambda(0.8, rng))
            return s.batches * s.batch

        variants.append(Variant("kornia", kornia_fn, "baseline",
                                "kornia RandomResizedCrop + RandomHorizontalFlip + normalise + MixUp, same device"))
    except ImportError:
        variants.append(Variant("kornia", lambda: 0, "baseline", "kornia", skipped="kornia not installed"))
    if root is not None and bdata.ffcv_status() is None:
        sub = os.path.join(root, "raw")
        name = bdata.make_dataset(sub, s.n_train, s.n_test, s.res, s.num_classes, "raw")
        rl = ref_loader(beton_path(sub, name, "train", s.res), s.batch, s.res, dev)
        n = min(s.batches, len(rl))
        variants.append(Variant("reference_ffcv_cpu", lambda: fresh(lambda: ref.iterate(rl), n), "baseline",
                                f"the paper's FFCV pipeline (crop/flip/MixUp per image on {os.cpu_count()} CPU "
                                f"threads, from a raw beton in the page cache) to float NCHW on the device"))
    else:
        variants.append(Variant("reference_ffcv_cpu", lambda: 0, "baseline", "FFCV CPU pipeline",
                                skipped="FFCV cannot load"))
    cmp = Comparison("augment", f"{s.res}px batch {s.batch} crop+flip+MixUp on {dev.type}", "img/s",
                     f"{s.batches} augmented batches, closed by a device sync",
                     {"res": s.res, "batch": s.batch, "device": str(dev), "batches": s.batches},
                     variants, s.reps, s.warmup)
    return compare(cmp, dev, log).to_json()


def suite_augment(s: Sizes, log=print) -> list[dict]:
    with beton_root(s) as root:
        return [augment_comparison(s, root, log)]
