"""mlpscale's own training path, driven step by step for timing.

The timed unit is `Trainer._train_step` - the real optimizer step (device augmentation, MixUp,
bf16 autocast, label-smoothed CE, backward, foreach LION) - fed by the trainer's own loader.
Two ways to get a Trainer:
  * `trainer_on_betons`: the full path, `Trainer(cfg, run_dir)` on generated betons (reads them
    with FFCV, resident or streaming exactly as a user's run would);
  * `trainer_on_arrays`: the same Trainer, with `data_fn=arrays_data(...)`: in-memory arrays on the
    device (no FFCV needed) - used by the step suite and by the GPU check when FFCV cannot load.
"""
from __future__ import annotations

import torch

from .. import train as train_mod
from ..config import Config
from ..datasets import CIFAR_MEAN, CIFAR_STD, DatasetInfo
from ..optim import lion_source


def ensure_lion() -> str:
    """Which LION the trainer will use (lion-pytorch, or mlpscale's ForeachLion where it is absent)."""
    return lion_source()


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
    info = DatasetInfo("arrays", num_classes, len(images), len(images), images.shape[1], tuple(mean), tuple(std))
    return train_mod.Trainer(cfg, run_dir, data_fn=train_mod.arrays_data(images, labels, info))


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
