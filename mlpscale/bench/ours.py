"""mlpscale's own training path, driven step by step for timing.

The timed unit is `Trainer._train_step` - the real optimizer step (device augmentation, MixUp,
bf16 autocast, label-smoothed CE, backward, foreach LION) - fed by the trainer's own loader.
Two ways to get a Trainer:
  * `trainer_on_betons`: the full path, `Trainer(cfg, run_dir)` on generated betons (reads them
    with FFCV, resident or streaming exactly as a user's run would);
  * `trainer_on_arrays`: the same Trainer, but with its data built from in-memory arrays on the
    device (no FFCV needed) - used by the step suite and by the GPU check when FFCV cannot load.
    This swaps `mlpscale.train.build_data` for the duration of the constructor only (the smallest
    adapter; a `Trainer(..., data=...)` argument would replace it).
"""
from __future__ import annotations

import contextlib
import sys
import types

import torch

from .. import train as train_mod
from ..config import Config
from ..datasets import CIFAR_MEAN, CIFAR_STD, DatasetInfo
from ..loader import ResidentLoader


def ensure_lion() -> str:
    """'lion_pytorch X' when installed; otherwise registers a foreach LION under that module name
    (same update) so the trainer runs where lion-pytorch is absent (the GPU machine), and says so."""
    try:
        import lion_pytorch.foreach  # noqa: F401
    except ImportError:
        pass
    else:
        from .env import _version

        return f"lion_pytorch {_version('lion_pytorch', 'lion-pytorch')}"
    pkg = types.ModuleType("lion_pytorch")
    mod = types.ModuleType("lion_pytorch.foreach")
    mod.Lion = ForeachLion
    pkg.foreach = mod
    sys.modules["lion_pytorch"], sys.modules["lion_pytorch.foreach"] = pkg, mod
    return "shim: mlpscale.bench.ours.ForeachLion (lion_pytorch not installed)"


class ForeachLion(torch.optim.Optimizer):
    """LION with torch._foreach kernels: p *= 1-lr*wd; p -= lr*sign(lerp(m, g, 1-b1)); m = lerp(m, g, 1-b2)."""

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            gs = [p.grad for p in ps]
            ms = [self.state[p].setdefault("exp_avg", torch.zeros_like(p)) for p in ps]
            lr, wd, (b1, b2) = group["lr"], group["weight_decay"], group["betas"]
            torch._foreach_mul_(ps, 1 - lr * wd)
            upd = torch._foreach_lerp(ms, gs, 1 - b1)
            torch._foreach_sign_(upd)
            torch._foreach_add_(ps, upd, alpha=-lr)
            torch._foreach_lerp_(ms, gs, 1 - b2)


def make_config(arch: str, res: int, batch: int, dataset: str = "benchsynth", root: str = "data",
                precision: str = "bf16", compile: str = "auto", device: str = "auto", resident: str = "auto",
                workers: int = 0, mixup: float = 0.8, run_dir: str = "runs") -> Config:
    cfg = Config()
    cfg.data.dataset, cfg.data.root, cfg.data.res = dataset, root, res
    cfg.data.resident, cfg.data.workers = resident, workers
    cfg.model.arch = arch
    cfg.aug.mixup = mixup
    cfg.train.batch_size, cfg.train.precision, cfg.train.compile, cfg.train.device = batch, precision, compile, device
    cfg.train.epochs = 1000
    cfg.run.out_dir, cfg.run.name, cfg.run.progress = run_dir, "bench", False
    return cfg


def trainer_on_betons(cfg: Config, run_dir: str):
    ensure_lion()
    return train_mod.Trainer(cfg, run_dir)


def trainer_on_arrays(cfg: Config, run_dir: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      mean=CIFAR_MEAN, std=CIFAR_STD):
    """A Trainer whose data is `images` (N, H, W, 3) uint8 / `labels` (N,), resident on its device."""
    ensure_lion()
    res = images.shape[1]
    info = DatasetInfo("arrays", num_classes, len(images), len(images), res, tuple(mean), tuple(std))

    def build_data(cfg_, device, dist, micro_batch):
        x, y = images.to(device), labels.to(device)
        seed = cfg_.train.seed
        return train_mod.Data(info, res, cfg_.data.crop_res or res, ResidentLoader(x, y, micro_batch, seed),
                              ResidentLoader(x, y, max(micro_batch, 256), seed, train=False), len(x), True)

    with _swapped(train_mod, "build_data", build_data):
        return train_mod.Trainer(cfg, run_dir)


@contextlib.contextmanager
def _swapped(module, name, value):
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


class StepDriver:
    """Per call: a fresh epoch of the Trainer's own loader, n optimizer steps on it; returns images trained.

    A fresh epoch per call keeps a paused streaming loader from prefetching while another variant
    is timed."""

    def __init__(self, trainer):
        self.t = trainer
        self.epoch, self.micro = 0, 0
        self.loss = torch.zeros((), device=trainer.device)

    def __call__(self, steps: int) -> int:
        if steps > self.t.micro_per_epoch:
            raise ValueError(f"{steps} steps is more than one epoch ({self.t.micro_per_epoch} batches)")
        it = self.t.data.train.epoch(self.epoch)
        self.epoch += 1
        n = 0
        try:
            for _ in range(steps):
                x_u8, y = next(it)
                self.loss += self.t._train_step([(x_u8, y)], self.micro)
                self.micro += 1
                n += len(y)
        finally:
            it.close()
        return n


class FixedBatchDriver:
    """n optimizer steps on one resident batch: the step alone, without the loader."""

    def __init__(self, trainer):
        self.t = trainer
        self.batch = next(iter(trainer.data.train.epoch(0)))
        self.micro = 0

    def __call__(self, steps: int) -> int:
        x_u8, y = self.batch
        for _ in range(steps):
            self.t._train_step([(x_u8, y)], self.micro)
            self.micro += 1
        return steps * len(y)
