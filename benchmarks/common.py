"""What the suites share: the sizes of a run (`Sizes`), the folder for generated betons, and FFCV
loaders kept for the whole process (each new one costs a numba compile)."""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from dataclasses import dataclass, field

import torch

from . import data as bdata
from . import reference as ref

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout: benchmarks/ lives in it


@dataclass
class Sizes:
    """Everything a suite's size depends on. `quick()` is CI's; the defaults are the recorded CPU run
    (CIFAR-sized 32px beton, B_6-Wi_512, batch 512, augmentation on)."""
    arch: str = "B_6-Wi_512"
    res: int = 32
    batch: int = 512
    num_classes: int = 10
    n_train: int = 50_000           # CIFAR-sized
    n_test: int = 2_048
    precision: str = "auto"         # ours: bf16 on CUDA; fp32 on the CPU (bf16 autocast is slow on CPUs
                                    # without AVX512-BF16/AMX, see benchmarks/README.md)
    compile: str = "auto"           # ours: torch.compile on CUDA only, as the trainer's default
    steps: int = 5                  # optimizer steps per timed repetition
    batches: int = 40               # loader batches per timed repetition
    reps: int = 5
    warmup: int = 2
    threads: list[int] = field(default_factory=lambda: sorted({1, max(1, len(os.sched_getaffinity(0)))}))
    tta_crops: int = 10
    formats: list[str] = field(default_factory=lambda: ["raw", "jpg"])
    e2e_steps: int = 10             # e2e: timed optimizer steps per process
    e2e_warmup: int = 3             # e2e: untimed steps first, in each process
    e2e_arch: str = ""              # e2e: model ("" = arch)
    e2e_reps: int = 0               # e2e: rounds of processes (0 = reps)
    e2e_stream: bool = True         # e2e: also time the Trainer streaming from the beton (data.resident=off)
    e2e_baseline: bool = True       # e2e: also time the authors' recipe (end to end and bare step)
    tiered_res: int = 64            # tiered: JPEG beton resolution
    tiered_n: int = 16_384          # tiered: images in it
    tiered_device_share: float = 0.5  # tiered: share of the rows in the device tier (the rest on the host)
    device: str = "auto"
    root: str = ""                  # where generated betons go; "" = a temporary folder

    @classmethod
    def quick(cls) -> Sizes:
        return cls(arch="B_2-Wi_256", batch=256, n_train=4_096, n_test=512, steps=3, batches=8, reps=3, warmup=1,
                   tta_crops=4, threads=[max(1, len(os.sched_getaffinity(0)))], e2e_steps=6, e2e_warmup=2,
                   e2e_arch="B_6-Wi_512", e2e_reps=2, e2e_stream=False, tiered_n=2_048)

    def for_e2e(self) -> Sizes:
        """These sizes with the e2e model as `arch` and the e2e rounds as `reps`."""
        return dataclasses.replace(self, arch=self.e2e_arch or self.arch, reps=self.e2e_reps or self.reps)

    def prec(self) -> str:
        if self.precision == "auto":
            return "bf16" if self.dev().type == "cuda" else "fp32"
        return self.precision

    def dev(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


@contextlib.contextmanager
def beton_root(s: Sizes):
    if s.root:
        os.makedirs(s.root, exist_ok=True)
        yield s.root
    else:
        with tempfile.TemporaryDirectory(prefix="mlpscale-bench-") as d:
            yield d


def uint8_batch(batch: int, res: int, num_classes: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, res, res, 3), generator=g, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (batch,), generator=g)
    return x.to(device), y.to(device)


def ffcv_missing(suite: str) -> dict | None:
    why = bdata.ffcv_status()
    return None if why is None else {"suite": suite, "skipped": f"FFCV cannot load ({why})"}


_KEEP = []  # FFCV loaders stay alive until exit: freeing them makes numba's finalizer print spurious KeyErrors
_LOADERS = {}  # one FFCV loader per configuration per process: each new one costs a numba compile


def keep(loader):
    _KEEP.append(loader)
    return loader


def ref_loader(path, batch, res, dev, workers=0, mixup_alpha=0.8, drop_last=True, order_random=None):
    key = ("ref", path, batch, res, str(dev), workers, mixup_alpha, drop_last, order_random)
    if key not in _LOADERS:
        _LOADERS[key] = keep(ref.reference_loader(path, batch, res, dev, workers=workers, mixup_alpha=mixup_alpha,
                                                   drop_last=drop_last, order_random=order_random))
    return _LOADERS[key]


def stream_loader(path, batch, dev, workers):
    from mlpscale.beton import open_beton
    from mlpscale.loader import StreamLoader

    key = ("stream", path, batch, str(dev), workers)
    if key not in _LOADERS:
        _LOADERS[key] = keep(StreamLoader(open_beton(path), batch, 0, dev, workers=workers))
    return _LOADERS[key]


def fresh(make_iter, n: int) -> int:
    """Start a fresh epoch iterator, take n batches from it, close it; returns the images seen.

    A fresh iterator per timed repetition keeps a paused FFCV loader from prefetching in the
    background while another variant is being timed (which would steal its CPU and hand the
    paused one free batches)."""
    it = make_iter()
    images = 0
    try:
        for _ in range(n):
            x, _ = next(it)
            images += len(x)
    finally:
        it.close()
    return images


class Counter:
    """make_iter factory for loaders whose `epoch(e)` wants a new epoch number each time."""

    def __init__(self, loader):
        self.loader, self.e = loader, 0

    def __call__(self):
        self.e += 1
        return self.loader.epoch(self.e)


