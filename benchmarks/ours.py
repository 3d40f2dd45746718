"""mlpscale's own training path, set up for timing.

  * `make_config`: the Config a user would write for a benchmark run (progress bar off).
  * `trainer_on_arrays`: a `Trainer` whose data are in-memory arrays (`data.arrays_data`, no beton,
    no FFCV) - the step suite and the GPU check's step figures.
  * `FixedBatchDriver`: n calls of `Trainer.train_step` (augmentation + MixUp + step) on one
    resident uint8 batch - the step suite's unit.
End to end, ours is timed as a user runs it, in its own process: worker.py (`train.run` on a beton).
"""
from __future__ import annotations

import torch

from mlpscale import train as train_mod
from mlpscale.config import Config
from mlpscale.data import arrays_data
from mlpscale.datasets import CIFAR_MEAN, CIFAR_STD, DatasetInfo


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


def trainer_on_arrays(cfg: Config, run_dir: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
                      mean=CIFAR_MEAN, std=CIFAR_STD):
    """A Trainer whose data is `images` (N, H, W, 3) uint8 / `labels` (N,), resident on its device."""
    info = DatasetInfo("arrays", num_classes, len(images), len(images), images.shape[1], tuple(mean), tuple(std))
    return train_mod.Trainer(cfg, run_dir, data_fn=arrays_data(images, labels, info))


class FixedBatchDriver:
    """n optimizer steps on one resident batch: the step alone, without the loader."""

    def __init__(self, trainer):
        self.t = trainer
        it = trainer.data.train.epoch(0)
        self.batch = next(it)
        it.close()
        self.micro = 0

    def __call__(self, steps: int) -> int:
        x_u8, y = self.batch
        for _ in range(steps):
            self.t.train_step([(x_u8, y)], self.micro)
            self.micro += 1
        return steps * len(y)
