"""`mlpscale-train --config X.yaml [--set section.field=value ...] [--resume RUN_DIR]`.

The hot path per optimizer step:  loader (uint8 NHWC on the device) -> DeviceAugment (crop, flip,
normalise, HWC flatten) -> MixUp -> model under bf16 autocast -> label-smoothed cross-entropy ->
backward (accumulated over micro-batches, DDP-synchronised on the last) -> clip -> optimizer.
No host sync per step: losses and the NaN check stay on the device until a log point.

A run folder holds config.yaml (resolved), metrics.jsonl (one object per epoch), last.pt and
summary.json. `--resume RUN_DIR` continues from last.pt and ends with the same weights as a run
that was never interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .augment import DeviceAugment, mixup, mixup_lambda
from .checkpoint import check_compatible, load_checkpoint, save_checkpoint
from .config import Config, load_config, save_config, to_dict
from .datasets import DatasetInfo, beton_path, get_dataset
from .distributed import DistInfo, all_reduce_sum, barrier, init_distributed, shutdown
from .errors import UserError, cli_entry
from .hardware import peak_flops
from .loader import ResidentLoader, Shard, StreamLoader, beton_resolution, check_beton, read_labels, read_split
from .logging_ import MetricsLog
from .models import MLP, parse_arch
from .optim import build_optimizer
from .schedule import lr_at
from .subsets import balanced_subset


class TrainingDiverged(UserError):
    pass


# --- data -----------------------------------------------------------------------------------

@dataclass
class Data:
    info: DatasetInfo
    res: int            # stored resolution
    crop_res: int       # resolution the model sees
    train: ResidentLoader | StreamLoader
    eval: ResidentLoader | StreamLoader
    n_train: int        # images per epoch (after any subset)
    resident: bool


def auto_on_off(value: str, name: str) -> bool | None:
    """'auto' -> None, 'on' -> True, 'off' -> False (YAML turns a bare on/off into true/false)."""
    v = str(value).lower()
    if v in ("on", "true"):
        return True
    if v in ("off", "false"):
        return False
    if v == "auto":
        return None
    raise UserError(f"{name} must be auto, on or off, not '{value}'")


def _fits_on_device(nbytes: int, device: torch.device, limit_gb: float) -> bool:
    if limit_gb > 0:
        return nbytes <= limit_gb * 2**30
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes <= free // 2
    return nbytes <= 4 * 2**30  # CPU: resident below 4 GiB of RAM, else FFCV streams from the page cache


def build_data(cfg: Config, device: torch.device, dist: DistInfo, micro_batch: int) -> Data:
    d = cfg.data
    info = get_dataset(d.dataset, d.root, d.res or None)
    res = d.res or info.default_res
    train_path = beton_path(d.root, info.name, "train", res)
    eval_path = beton_path(d.root, info.name, info.eval_split, res)
    for p in (train_path, eval_path):
        check_beton(p, info.convert_command(d.root, res))
        stored = beton_resolution(p)
        if stored != (res, res):
            raise UserError(f"{p} holds {stored[0]}x{stored[1]} images but data.res={res}; "
                            f"re-convert with --res {res} or set data.res={stored[0]}")
    labels = read_labels(train_path)
    if labels.max() >= info.num_classes:
        raise UserError(f"{train_path} has label {labels.max()} but {info.name} has {info.num_classes} classes; "
                        f"its meta_{res}.json does not belong to it: re-convert")
    indices = balanced_subset(labels, d.n_train, d.subset_seed) if d.n_train else None
    n_train = len(labels) if indices is None else len(indices)
    nbytes = (len(labels) + info.eval_samples) * res * res * 3
    resident = auto_on_off(d.resident, "data.resident")
    if resident is None:
        resident = _fits_on_device(nbytes, device, d.resident_max_gb)
    shard = Shard(dist.rank, dist.world)
    seed = cfg.train.seed
    eval_batch = max(micro_batch, 256)
    if resident:
        x, y = read_split(train_path, device, d.workers)
        train = ResidentLoader(x, y, micro_batch, seed, shard, indices, train=True)
        x, y = read_split(eval_path, device, d.workers)
        evl = ResidentLoader(x, y, eval_batch, seed, shard, train=False)
    else:
        train = StreamLoader(train_path, micro_batch, seed, device, shard, indices, True, d.workers, d.os_cache)
        evl = StreamLoader(eval_path, eval_batch, seed, device, shard, None, False, d.workers, d.os_cache)
    return Data(info, res, d.crop_res or res, train, evl, n_train, resident)


def arrays_data(images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
                eval_images: torch.Tensor | None = None, eval_labels: torch.Tensor | None = None):
    """A `data_fn` for Trainer serving uint8 (N, H, W, 3) images and (N,) labels from device memory
    (benchmarks, the GPU check without FFCV, or a researcher's own arrays)."""

    def data_fn(cfg: Config, device: torch.device, dist: DistInfo, micro_batch: int) -> Data:
        shard, seed, res = Shard(dist.rank, dist.world), cfg.train.seed, images.shape[1]
        ex = images if eval_images is None else eval_images
        ey = labels if eval_labels is None else eval_labels
        return Data(info, res, cfg.data.crop_res or res,
                    ResidentLoader(images.to(device), labels.to(device), micro_batch, seed, shard, train=True),
                    ResidentLoader(ex.to(device), ey.to(device), max(micro_batch, 256), seed, shard, train=False),
                    len(images), True)

    return data_fn


# --- the trainer ----------------------------------------------------------------------------

class Trainer:
    """One training run. `data_fn(cfg, device, dist, micro_batch) -> Data` supplies the data; the
    default opens the betons named by cfg.data (`build_data`); `arrays_data(...)` serves tensors."""

    def __init__(self, cfg: Config, run_dir: str, resume: bool = False, data_fn=None):
        self.cfg, self.run_dir = cfg, run_dir
        t = cfg.train
        self.dist, self.device = init_distributed(t.device)
        if t.precision not in ("auto", "bf16", "fp32"):
            raise UserError(f"train.precision must be auto, bf16 or fp32, not '{t.precision}'")
        self.bf16 = t.precision == "bf16" or (t.precision == "auto" and self.device.type == "cuda")
        if t.batch_size % (self.dist.world * t.accum_steps):
            raise UserError(f"train.batch_size={t.batch_size} must be divisible by ranks x accum_steps "
                            f"= {self.dist.world} x {t.accum_steps}")
        self.micro_batch = t.batch_size // (self.dist.world * t.accum_steps)
        parse_arch(cfg.model.arch)  # fail on a bad name before reading any data
        torch.manual_seed(t.seed)
        self.data = (data_fn or build_data)(cfg, self.device, self.dist, self.micro_batch)
        info = self.data.info

        self.model = MLP(cfg.model.arch, self.data.crop_res, info.num_classes, act=cfg.model.act,
                         norm=cfg.model.norm, dropout=cfg.model.dropout).to(self.device)
        self.forward = self._wrap(self.model)
        self.opt = build_optimizer(cfg.optim, self.model, self.device)

        out_dtype = torch.bfloat16 if self.bf16 and self.device.type == "cuda" else torch.float32
        a = cfg.aug
        self.train_aug = DeviceAugment(info.mean, info.std, self.data.crop_res, train=True, crop=a.enabled,
                                       flip=a.enabled and a.flip, scale=a.crop_scale, ratio=a.crop_ratio,
                                       out_dtype=out_dtype, device=self.device)
        self.eval_aug = DeviceAugment(info.mean, info.std, self.data.crop_res, train=False,
                                      out_dtype=out_dtype, device=self.device)
        self.gen = torch.Generator(device=self.device)
        self.mixup_alpha = a.mixup if a.enabled else 0.0

        self.micro_per_epoch = self.data.train.batches_per_epoch()
        self.steps_per_epoch = self.micro_per_epoch // t.accum_steps
        if self.steps_per_epoch == 0:
            raise UserError(f"one optimizer step needs {t.batch_size} images but an epoch has {self.data.n_train}")
        self.total_steps = self.steps_per_epoch * t.epochs
        self.warmup_steps = round(cfg.optim.warmup_epochs * self.steps_per_epoch)
        self.macs = self.model.macs_per_forward()
        self.peak = peak_flops(self.device, t.peak_tflops)

        # position in training; replaced by a checkpoint on resume
        self.epoch, self.micro_in_epoch, self.step = 0, 0, 0
        self.sums = {"loss": 0.0, "count": 0, "wait_s": 0.0, "time_s": 0.0}
        self.elapsed_s, self.best_top1, self.last_eval = 0.0, 0.0, {}
        if resume:
            self._restore(load_checkpoint(os.path.join(run_dir, "last.pt")))
        self.log = MetricsLog(run_dir, cfg, resume_epoch=self.epoch if resume else None, enabled=self.dist.main)
        self.stop_signal = None

    # performance wrappers live apart from the model; checkpoints hold self.model's state
    def _wrap(self, model: torch.nn.Module):
        t = self.cfg.train
        wrapped = model
        if self.dist.world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            wrapped = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.ddp = wrapped if self.dist.world > 1 else None
        use_compile = auto_on_off(t.compile, "train.compile")
        if use_compile is None:
            use_compile = self.device.type == "cuda"
        return torch.compile(wrapped) if use_compile else wrapped

    def _autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- one optimizer step -----------------------------------------------------------------
    def _seed_micro(self, micro_index: int) -> np.random.Generator:
        """Augmentation randomness of one micro-batch: a pure function of (seed, rank, index)."""
        ss = np.random.SeedSequence([self.cfg.train.seed, micro_index])
        self.gen.manual_seed(int(np.random.SeedSequence([self.cfg.train.seed, self.dist.rank, micro_index])
                                 .generate_state(1, np.uint64)[0] >> 1))
        return np.random.default_rng(ss)  # same on every rank: one MixUp lambda per global batch

    def _train_step(self, micro_batches, first_micro_index: int) -> torch.Tensor:
        o = self.cfg.optim
        accum = len(micro_batches)
        total = torch.zeros((), device=self.device)
        for i, (x_u8, y) in enumerate(micro_batches):
            rng = self._seed_micro(first_micro_index + i)
            x = self.train_aug(x_u8, self.gen)                       # (b, r*r*3)
            lam = mixup_lambda(self.mixup_alpha, rng)
            y2 = y
            if lam < 1.0:
                x, y2 = mixup(x, y, lam)
            sync = self.ddp.no_sync() if self.ddp is not None and i < accum - 1 else contextlib.nullcontext()
            with sync:
                with self._autocast():
                    logits = self.forward(x)                         # (b, classes)
                logits = logits.float()
                loss = F.cross_entropy(logits, y, label_smoothing=o.label_smoothing)
                if lam < 1.0:
                    loss = lam * loss + (1 - lam) * F.cross_entropy(logits, y2, label_smoothing=o.label_smoothing)
                (loss / accum).backward()
            total += loss.detach()
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return total / accum

    # --- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> dict:
        self.model.eval()
        k = min(5, self.data.info.num_classes)
        stats = torch.zeros(4, device=self.device, dtype=torch.float64)  # top1, top5, loss sum, n
        for x_u8, y in self.data.eval.epoch(0):
            with self._autocast():
                logits = self.model(self.eval_aug(x_u8)).float()
            top = logits.topk(k, dim=1).indices
            stats[0] += (top[:, 0] == y).sum()
            stats[1] += (top == y[:, None]).any(dim=1).sum()
            stats[2] += F.cross_entropy(logits, y, reduction="sum")
            stats[3] += len(y)
        self.model.train()
        top1, top5, loss, n = all_reduce_sum(stats).tolist()
        return {"test_top1": 100 * top1 / n, "test_top5": 100 * top5 / n, "test_loss": loss / n}

    # --- checkpoints ------------------------------------------------------------------------
    def _state(self) -> dict:
        m = self.model
        return {
            "model": m.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch, "micro_in_epoch": self.micro_in_epoch, "step": self.step,
            "sums": dict(self.sums), "elapsed_s": self.elapsed_s,
            "best_top1": self.best_top1, "last_eval": self.last_eval,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
            "model_meta": {"arch": m.spec.name, "res": m.res, "num_classes": m.num_classes, "flatten": "hwc",
                           "act": self.cfg.model.act, "norm": self.cfg.model.norm},
            "config": to_dict(self.cfg),
        }

    def save(self, name: str = "last.pt") -> None:
        if self.dist.main:
            save_checkpoint(os.path.join(self.run_dir, name), self._state())
        barrier()

    def _restore(self, ck: dict) -> None:
        meta = ck["model_meta"]
        check_compatible(meta, self.model.spec.name, self.data.crop_res, self.data.info.num_classes,
                         os.path.join(self.run_dir, "last.pt"))
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.epoch, self.micro_in_epoch, self.step = ck["epoch"], ck["micro_in_epoch"], ck["step"]
        self.sums, self.elapsed_s = dict(ck["sums"]), ck["elapsed_s"]
        self.best_top1, self.last_eval = ck["best_top1"], ck["last_eval"]
        torch.set_rng_state(ck["rng"]["torch"])
        if ck["rng"]["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.device)

    # --- the loop ---------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        """First SIGINT/SIGTERM: finish the step, save last.pt, stop. A second one stops at once."""
        self.stop_signal = signum
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    def fit(self) -> dict:
        t = self.cfg.train
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        status = "finished"
        try:
            while self.epoch < t.epochs and status == "finished":
                status = self._run_epoch()  # "finished" (the epoch), "interrupted" or "max_steps"
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.log.close()
        return self._finish(status)

    def _check_finite(self, bad_step: torch.Tensor) -> None:
        s = int(bad_step.item())
        if s >= 0:
            raise TrainingDiverged(
                f"the training loss became NaN/inf at optimizer step {s} (epoch {self.epoch}); "
                f"no checkpoint was written after it: lower optim.lr or set optim.grad_clip, "
                f"then restart (last good state: {os.path.join(self.run_dir, 'last.pt')})"
            )

    def _run_epoch(self) -> str:
        t, accum = self.cfg.train, self.cfg.train.accum_steps
        batches = self.data.train.epoch(self.epoch, start_batch=self.micro_in_epoch)
        loss_sum = torch.tensor(self.sums["loss"], device=self.device, dtype=torch.float64)
        bad_step = torch.tensor(-1, device=self.device)
        bar = self._bar()
        t_epoch = time.perf_counter()
        first_step = self.step
        wait = 0.0
        status = "finished"
        with contextlib.closing(batches):
            while self.micro_in_epoch // accum < self.steps_per_epoch:
                t0 = time.perf_counter()
                micro = [next(batches) for _ in range(accum)]
                wait += time.perf_counter() - t0
                lr = lr_at(self.step, self.total_steps, self.cfg.optim.lr, self.warmup_steps,
                           self.cfg.optim.schedule, self.cfg.optim.min_lr)
                for g in self.opt.param_groups:
                    g["lr"] = lr
                loss = self._train_step(micro, self.epoch * self.micro_per_epoch + self.micro_in_epoch)
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss), self.step, bad_step)
                loss_sum += loss
                self.step += 1
                self.micro_in_epoch += accum
                self.sums["count"] += 1
                if bar is not None:
                    bar.update(1)
                if self.step % t.log_every == 0:
                    self._check_finite(bad_step)  # the one host sync of a log interval
                    if bar is not None:
                        rate = (self.step - first_step) * t.batch_size / max(time.perf_counter() - t_epoch, 1e-9)
                        bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.0f}",
                                        pflops=f"{self.macs * 3 * self.step * t.batch_size / 1e15:.3g}",
                                        **({"mfu": f"{rate * 6 * self.macs / self.peak:.1%}"} if self.peak else {}))
                if self.stop_signal is not None or (t.max_steps and self.step >= t.max_steps):
                    status = "interrupted" if self.stop_signal is not None else "max_steps"
                    break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self._check_finite(bad_step)
        dt = time.perf_counter() - t_epoch
        self.elapsed_s += dt
        self.sums["loss"] = float(loss_sum)
        self.sums["wait_s"] += wait
        self.sums["time_s"] += dt
        if bar is not None:
            bar.close()
        if status != "finished":
            self.save()  # mid-epoch: resume continues at micro_in_epoch
            return status
        self._end_epoch()
        return status

    def _end_epoch(self) -> None:
        t = self.cfg.train
        s = self.sums
        images = s["count"] * t.batch_size
        row = {
            "epoch": self.epoch + 1,  # epochs completed
            "step": self.step,
            "train_loss": s["loss"] / max(1, s["count"]),
            "lr": self.opt.param_groups[0]["lr"],
            "img_per_s": images / s["time_s"] if s["time_s"] > 0 else 0.0,
            "data_wait_share": s["wait_s"] / s["time_s"] if s["time_s"] > 0 else 0.0,
            "compute_pflops": self.macs * 3 * self.step * t.batch_size / 1e15,
            "elapsed_s": self.elapsed_s,
        }
        if self.peak:
            row["mfu"] = row["img_per_s"] * 6 * self.macs / self.peak
        last = self.epoch + 1 == t.epochs
        if (self.epoch + 1) % t.eval_every == 0 or last:
            self.last_eval = self.evaluate()
            self.best_top1 = max(self.best_top1, self.last_eval["test_top1"])
            row.update(self.last_eval)
        self.log.log(row)
        if self.dist.main and self.cfg.run.progress and not sys.stdout.isatty():  # one line per epoch in logs
            evals = f" test_top1 {row['test_top1']:.2f}%" if "test_top1" in row else ""
            print(f"epoch {row['epoch']}/{t.epochs} loss {row['train_loss']:.4f}{evals} "
                  f"{row['img_per_s']:.0f} img/s {row['compute_pflops']:.4g} PFLOPs", flush=True)
        self.epoch += 1
        self.micro_in_epoch = 0
        self.sums = {"loss": 0.0, "count": 0, "wait_s": 0.0, "time_s": 0.0}
        if self.epoch % t.ckpt_every == 0 or last:
            self.save()
        if t.keep_every and self.epoch % t.keep_every == 0:
            self.save(f"epoch_{self.epoch}.pt")

    def _bar(self):
        if not (self.dist.main and self.cfg.run.progress):
            return None
        from tqdm import tqdm

        if not sys.stdout.isatty():  # no bar in logs and CI; metrics.jsonl has the numbers
            return None
        return tqdm(total=self.steps_per_epoch, initial=self.micro_in_epoch // self.cfg.train.accum_steps,
                    desc=f"epoch {self.epoch + 1}/{self.cfg.train.epochs}", leave=False, dynamic_ncols=True)

    def _finish(self, status: str) -> dict:
        t = self.cfg.train
        rows = []
        mpath = os.path.join(self.run_dir, "metrics.jsonl")
        if os.path.exists(mpath):
            with open(mpath) as f:
                rows = [json.loads(ln) for ln in f if ln.strip()]
        summary = {
            "status": status,
            "run_dir": self.run_dir,
            "dataset": self.data.info.name,
            "arch": self.model.spec.name,
            "res": self.data.crop_res,
            "num_classes": self.data.info.num_classes,
            "n_train": self.data.n_train,
            "epochs_done": self.epoch,
            "steps": self.step,
            "batch_size": t.batch_size,
            "params": self.model.get_num_params(),
            "macs_per_forward": self.macs,
            "compute_pflops": self.macs * 3 * self.step * t.batch_size / 1e15,
            "img_per_s": statistics.median(r["img_per_s"] for r in rows) if rows else None,
            "elapsed_s": self.elapsed_s,
            "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu",
            "world_size": self.dist.world,
            "resident": self.data.resident,
            "best_test_top1": self.best_top1,
            **self.last_eval,
        }
        if self.dist.main:
            tmp = os.path.join(self.run_dir, "summary.json.tmp")
            with open(tmp, "w") as f:
                json.dump(summary, f, indent=1)
            os.replace(tmp, os.path.join(self.run_dir, "summary.json"))
        return summary


# --- entry point ----------------------------------------------------------------------------

def prepare_run(cfg: Config, resume_dir: str | None, overwrite: bool) -> str:
    """The run folder, created with its resolved config.yaml (kept as is on resume)."""
    if resume_dir:
        return resume_dir
    run_dir = os.path.join(cfg.run.out_dir, cfg.run.name)
    if os.path.exists(os.path.join(run_dir, "last.pt")) and not overwrite:
        raise UserError(f"{run_dir} already holds a run; continue it with `mlpscale-train --resume {run_dir}`, "
                        f"or pass --overwrite, or choose another run.name")
    if int(os.environ.get("RANK", "0")) == 0:
        os.makedirs(run_dir, exist_ok=True)
        for stale in ("last.pt", "summary.json"):
            if os.path.exists(os.path.join(run_dir, stale)):
                os.remove(os.path.join(run_dir, stale))
        save_config(cfg, os.path.join(run_dir, "config.yaml"))
    return run_dir


def run(cfg: Config, resume_dir: str | None = None, overwrite: bool = False) -> dict:
    run_dir = prepare_run(cfg, resume_dir, overwrite)
    try:
        trainer = Trainer(cfg, run_dir, resume=resume_dir is not None)
        return trainer.fit()
    finally:
        shutdown()


@cli_entry
def main(argv=None):
    p = argparse.ArgumentParser(prog="mlpscale-train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file, or a bare name from configs/ (e.g. bmlp12.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set optim.lr=1e-4 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    a = p.parse_args(argv)
    if a.resume:
        cfg_path = os.path.join(a.resume, "config.yaml")
        if not os.path.exists(cfg_path):
            raise UserError(f"{a.resume} is not a run folder (no config.yaml); pass the folder mlpscale-train wrote")
        cfg = load_config(cfg_path, a.set)
    elif a.config:
        cfg = load_config(a.config, a.set)
    else:
        raise UserError("pass --config FILE (e.g. --config configs/demo_digits.yaml) or --resume RUN_DIR")
    s = run(cfg, a.resume, a.overwrite)
    if int(os.environ.get("RANK", "0")) == 0:
        top1 = s.get("test_top1")
        print(f"{s['status']}: {s['arch']} on {s['dataset']} ({s['epochs_done']} epochs, {s['steps']} steps, "
              f"{s['compute_pflops']:.4g} PFLOPs)" + (f", test top-1 {top1:.2f}%" if top1 is not None else ""))
        print(f"results in {s['run_dir']}/ (summary.json, metrics.jsonl, last.pt)")
        if s["status"] == "interrupted":
            print(f"resume with: mlpscale-train --resume {s['run_dir']}")


if __name__ == "__main__":
    main()
