"""`mlpscale-train --config X.yaml [--set section.field=value ...] [--resume RUN_DIR] [--overwrite]`.

The hot path per optimizer step:  loader (uint8 NHWC on the device) -> `prepare` (augmentation:
crop, flip, normalise, HWC flatten; MixUp) -> `step` (model under bf16 autocast, soft-target
cross-entropy, backward accumulated over micro-batches and DDP-synchronised on the last, clip,
optimizer update). No host sync per step: losses and the NaN check stay on the device until a log
point. `train.prefetch` can run `prepare` one micro-batch ahead on a worker thread, overlapping
augmentation with the step; `auto` does so on a CPU device only when torch leaves a core free (on
2 cores with 2 GEMM threads the thread measured 0.90x of the bare step, inline 0.98x: it steals the
GEMMs' core). On GPUs kernels are asynchronous anyway.

A run folder holds config.yaml (resolved), metrics.jsonl (one object per epoch), last.pt and
summary.json, and belongs to one process at a time (`.lock`). `--resume RUN_DIR` continues from
last.pt and ends with the same weights as a run that was never interrupted.

Exit codes: 0 finished (or stopped at train.max_steps), 2 a user error (one sentence on stderr),
130 / 143 interrupted by SIGINT / SIGTERM after saving last.pt.

`Trainer` is also the loop of fine-tuning (`mlpscale.finetune.Finetuner` overrides the model,
optimizer and data hooks) and of the benchmarks (`prepare`, `step` and `train_step` are public).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from .augment import DeviceAugment, mixup, mixup_lambda
from .checkpoint import check_compatible, load_checkpoint, model_meta, save_checkpoint
from .config import Config, load_config, save_config, to_dict
from .data import Data, arrays_data, build_data  # noqa: F401 (arrays_data: public via train)
from .datasets import DatasetInfo, get_dataset
from .distributed import barrier, shutdown
from .errors import UserError, cli_entry
from .evaluate import TTA, evaluate, load_real_labels
from .format import FolderLock, write_json_atomic
from .hardware import peak_flops
from .loader import Prefetch
from .loss import soft_target_cross_entropy
from .metrics import (EpochSums, FiniteGuard, MetricsLog, Progress, TrainingDiverged, epoch_row,  # noqa: F401
                      paper_compute_pflops, process_age_s, read_rows)
from .models import MLP
from .optim import build_optimizer
from .runtime import Runtime, auto_on_off
from .schedule import lr_at


@dataclass
class Batch:
    """One prepared micro-batch: model inputs (b, D), labels (b,), MixUp partner labels and lambda."""
    x: torch.Tensor
    y: torch.Tensor
    y2: torch.Tensor | None
    lam: float


class Trainer:
    """One training run. `data_fn(cfg, rt, micro_batch, reserve_bytes) -> Data` supplies the data (the
    default opens the betons named by cfg.data; `data.arrays_data(...)` serves tensors and carries the
    dataset's `info`)."""

    def __init__(self, cfg: Config, run_dir: str, resume: bool = False, data_fn=None):
        self.cfg, self.run_dir = cfg, run_dir
        t = cfg.train
        self.rt = rt = Runtime.create(t.device, t.precision, t.compile)
        self.dist, self.device = rt.dist, rt.device
        if t.batch_size % (self.dist.world * t.accum_steps):
            raise UserError(f"train.batch_size={t.batch_size} must be divisible by ranks x accum_steps "
                            f"= {self.dist.world} x {t.accum_steps}")
        self.micro_batch = t.batch_size // (self.dist.world * t.accum_steps)
        torch.manual_seed(t.seed)
        self.data_fn = data_fn
        self.info = data_fn.info if data_fn is not None else get_dataset(cfg.data.dataset, cfg.data.root,
                                                                          cfg.data.res or None)
        self.model = self.build_model(self.info).to(self.device)
        self.forward, self.ddp = rt.wrap(self.model)
        self.opt = build_optimizer(cfg.optim, self.param_groups(), self.device)
        self.data = self.build_data(self.measure_reserve())
        self.train_view, self.eval_view = self.build_views(self.data)
        self.mixup_alpha = cfg.aug.mixup if cfg.aug.enabled else 0.0
        self.gen = torch.Generator(device=self.device)   # augmentation randomness, reseeded per micro-batch
        self.prefetch = auto_on_off(t.prefetch)
        if self.prefetch is None:  # only where a core is left over for it (see TrainConfig.prefetch)
            self.prefetch = self.device.type == "cpu" and torch.get_num_threads() < len(os.sched_getaffinity(0))

        self.micro_per_epoch = self.data.train.batches_per_epoch()
        self.steps_per_epoch = self.micro_per_epoch // t.accum_steps
        if self.steps_per_epoch == 0:
            raise UserError(f"one optimizer step needs {t.batch_size} images but an epoch has {self.data.n_train}")
        self.total_steps = self.steps_per_epoch * t.epochs
        self.warmup_steps = round(cfg.optim.warmup_epochs * self.steps_per_epoch)
        full = self.export_model()
        self.flops_fwd = full.paper_flops_per_forward()      # the paper's compute unit
        self.macs = full.macs_per_forward()
        self.peak = peak_flops(self.device, t.peak_tflops)

        # position in training; replaced by a checkpoint on resume
        self.epoch, self.micro_in_epoch, self.step_no = 0, 0, 0
        self.sums = EpochSums()
        self.elapsed_s, self.best_top1, self.last_eval = 0.0, 0.0, {}
        if resume:
            self._restore(load_checkpoint(os.path.join(run_dir, "last.pt")))
        self.log = MetricsLog(run_dir, cfg, resume_epoch=self.epoch if resume else None, enabled=self.dist.main)
        self.progress = Progress(self.dist.main and cfg.run.progress)
        self.stop_signal = None
        self.first_step_s = None    # process start -> end of this process's first optimizer step

    # --- hooks (fine-tuning overrides them) ------------------------------------------------------
    def build_model(self, info: DatasetInfo) -> torch.nn.Module:
        m = self.cfg.model
        return MLP(m.arch, self.cfg.data.crop_res or self.cfg.data.res or info.default_res, info.num_classes,
                   act=m.act, norm=m.norm, dropout=m.dropout)

    def param_groups(self) -> list[dict]:
        """Optimizer parameter groups; `lr_mult` scales the scheduled learning rate per group."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr_mult": 1.0}]

    def build_data(self, reserve_bytes: int) -> Data:
        fn = self.data_fn or build_data
        return fn(self.cfg, self.rt, self.micro_batch, reserve_bytes)

    def build_views(self, data: Data):
        """(train view, eval view): uint8 batch -> model input, on the device."""
        a, res = self.cfg.aug, self.model_res()
        crop = a.enabled and not data.cropped_on_cpu
        train = DeviceAugment(data.mean, data.std, res, train=True, crop=crop, flip=a.enabled and a.flip,
                              scale=a.crop_scale, ratio=a.crop_ratio, out_dtype=self.rt.input_dtype, device=self.device)
        evl = DeviceAugment(data.mean, data.std, res, train=False, out_dtype=self.rt.input_dtype, device=self.device)
        return train, evl

    def export_model(self) -> MLP:
        """The whole model: what checkpoints hold and evaluation scores."""
        return self.model

    def summary_extra(self) -> dict:
        """More fields for summary.json (fine-tuning adds its source and mode)."""
        return {}

    def model_res(self) -> int:
        return self.export_model().res

    # --- memory -------------------------------------------------------------------------------------
    def measure_reserve(self) -> int:
        """Device bytes training needs besides the data (CUDA): one forward + backward of a micro-batch,
        measured, plus the optimizer state, plus 10%. Tells the resident data how much it may take."""
        if self.device.type != "cuda":
            return 0
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        x = torch.zeros((self.micro_batch, self.model_input_dim()), device=self.device, dtype=self.rt.input_dtype)
        with self.rt.autocast():
            loss = self.model(x).float().logsumexp(1).mean()
        loss.backward()
        self.model.zero_grad(set_to_none=True)
        peak = torch.cuda.max_memory_allocated(self.device) - base
        params = sum(p.numel() * p.element_size() for p in self.model.parameters() if p.requires_grad)
        state = {"lion": 1, "sgd": 1, "adamw": 2}[self.cfg.optim.name] * params
        del x, loss
        return int((peak + params + state) * 1.1)

    def model_input_dim(self) -> int:
        return self.export_model().dim_in

    # --- one optimizer step ----------------------------------------------------------------------
    def _rngs(self, micro_index: int) -> np.random.Generator:
        """Augmentation randomness of one micro-batch, a pure function of (seed, rank, index): the torch
        generator gets (seed, rank, index); MixUp's lambda (seed, index), so all ranks share it."""
        seed = self.cfg.train.seed
        self.gen.manual_seed(int(np.random.SeedSequence([seed, self.dist.rank, micro_index])
                                 .generate_state(1, np.uint64)[0] >> 1))
        return np.random.default_rng(np.random.SeedSequence([seed, micro_index]))

    def prepare(self, x_u8: torch.Tensor, y: torch.Tensor, micro_index: int) -> Batch:
        """Augment one micro-batch (b, H, W, 3) uint8 into model inputs (b, r*r*3), MixUp included."""
        rng = self._rngs(micro_index)
        x = self.train_view(x_u8, self.gen)
        lam = mixup_lambda(self.mixup_alpha, rng)
        if lam < 1.0:
            x, y2 = mixup(x, y, lam)
            return Batch(x, y, y2, lam)
        return Batch(x, y, None, 1.0)

    def step(self, batches: list[Batch]) -> torch.Tensor:
        """One optimizer step over prepared micro-batches (gradient accumulation); returns the mean loss."""
        o = self.cfg.optim
        accum = len(batches)
        total = torch.zeros((), device=self.device)
        for i, b in enumerate(batches):
            sync = self.ddp.no_sync() if self.ddp is not None and i < accum - 1 else contextlib.nullcontext()
            with sync:
                with self.rt.autocast():
                    logits = self.forward(b.x)                       # (b, classes)
                loss = soft_target_cross_entropy(logits, b.y, b.y2, b.lam, o.label_smoothing)
                (loss / accum).backward()
            total += loss.detach()
        if o.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_([p for g in self.opt.param_groups for p in g["params"]], o.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return total / accum

    def train_step(self, micro_batches, first_micro_index: int) -> torch.Tensor:
        """`prepare` + `step` on raw (x_u8, y) micro-batches: the unit the benchmarks time."""
        return self.step([self.prepare(x, y, first_micro_index + i) for i, (x, y) in enumerate(micro_batches)])

    def set_lr(self) -> float:
        lr = lr_at(self.step_no, self.total_steps, self.cfg.optim.lr, self.warmup_steps,
                   self.cfg.optim.schedule, self.cfg.optim.min_lr)
        for g in self.opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        return lr

    # --- evaluation ----------------------------------------------------------------------------
    def eval_module(self) -> torch.nn.Module:
        """What evaluation feeds the eval view's output to (the whole model; the head on cached features)."""
        return self.export_model()

    def evaluate(self) -> dict:
        r = evaluate(self.eval_module(), self.data.eval, self.rt, self.eval_view, self.info.num_classes)
        return {"test_top1": r["top1"], "test_top5": r["top5"], "test_loss": r["loss"]}

    def final_eval(self) -> dict:
        """The run's last evaluation with the extra scores of cfg.eval (TTA, ReaL); also written to eval.json."""
        e, a = self.cfg.eval, self.cfg.aug
        if e.tta and self.data.cropped_on_cpu:
            raise UserError("eval.tta needs fixed-size images; this dataset holds images of several sizes")
        tta = TTA(e.tta, e.tta_average, tuple(a.crop_scale), tuple(a.crop_ratio), a.flip, seed=self.cfg.train.seed) \
            if e.tta else None
        real = load_real_labels(self.cfg.data.root, self.info.name, self.data.res, self.device) if e.real else None
        r = evaluate(self.eval_module(), self.data.eval, self.rt, self.eval_view, self.info.num_classes, tta,
                     self.data.mean, self.data.std, self.model_res(), real)
        r.update(dataset=self.info.name, split=self.info.eval_split, arch=self.export_model().spec.name,
                 checkpoint=os.path.abspath(os.path.join(self.run_dir, "last.pt")))
        if self.dist.main:
            write_json_atomic(os.path.join(self.run_dir, "eval.json"), r)
        return {k: v for k, v in r.items() if k.startswith(("tta_", "real_"))}

    # --- checkpoints -----------------------------------------------------------------------------
    def _state(self) -> dict:
        m = self.export_model()
        return {
            "model": m.state_dict(),
            "optimizer": self.opt.state_dict(),
            "epoch": self.epoch, "micro_in_epoch": self.micro_in_epoch, "step": self.step_no,
            "sums": self.sums.state(), "elapsed_s": self.elapsed_s,
            "best_top1": self.best_top1, "last_eval": self.last_eval,
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None},
            "model_meta": model_meta(m, self.cfg.model.act, self.cfg.model.norm, self.info.name,
                                     self.data.mean, self.data.std),
            "config": to_dict(self.cfg),
        }

    def save(self, name: str = "last.pt") -> None:
        if self.dist.main:
            save_checkpoint(os.path.join(self.run_dir, name), self._state())
        barrier()

    def _restore(self, ck: dict) -> None:
        m = self.export_model()
        path = os.path.join(self.run_dir, "last.pt")
        check_compatible(ck["model_meta"], m.spec.name, m.res, m.num_classes, path)
        if "optimizer" not in ck:
            raise UserError(f"{path} holds weights only, not a training state; start a new run from it "
                            f"(mlpscale-finetune --set finetune.from={self.run_dir})")
        m.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.epoch, self.micro_in_epoch, self.step_no = ck["epoch"], ck["micro_in_epoch"], ck["step"]
        self.sums, self.elapsed_s = EpochSums(ck["sums"]), ck["elapsed_s"]
        self.best_top1, self.last_eval = ck["best_top1"], ck["last_eval"]
        torch.set_rng_state(ck["rng"]["torch"])
        if ck["rng"]["cuda"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(ck["rng"]["cuda"], self.device)

    # --- the loop --------------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        """First SIGINT/SIGTERM: finish the step, save last.pt, stop. A second one stops at once."""
        self.stop_signal = signum
        signal.signal(signum, signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL)

    def fit(self) -> dict:
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        status = "finished"
        try:
            while self.epoch < self.cfg.train.epochs and status == "finished":
                status = self._run_epoch()  # "finished" (the epoch), "interrupted" or "max_steps"
            if status == "finished" and (self.cfg.eval.tta or self.cfg.eval.real):
                self.last_eval.update(self.final_eval())
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.log.close()
        return self._finish(status)

    def _prepared(self, batches, first_micro: int):
        """The epoch's micro-batches, prepared (augmented) in order; run on a worker thread when prefetching."""
        for i, (x_u8, y) in enumerate(batches):
            yield self.prepare(x_u8, y, first_micro + i)

    def _run_epoch(self) -> str:
        t, accum = self.cfg.train, self.cfg.train.accum_steps
        first_micro = self.epoch * self.micro_per_epoch + self.micro_in_epoch
        prepared = self._prepared(self.data.train.epoch(self.epoch, start_batch=self.micro_in_epoch), first_micro)
        if self.prefetch:
            prepared = Prefetch(prepared, depth=accum, name="mlpscale-prepare")
        loss_sum = torch.tensor(self.sums.loss, device=self.device, dtype=torch.float64)
        guard = FiniteGuard(self.device)
        self.progress.start(self.steps_per_epoch, self.micro_in_epoch // accum,
                            f"epoch {self.epoch + 1}/{t.epochs}")
        t_epoch, first_step, wait, status = time.perf_counter(), self.step_no, 0.0, "finished"
        with contextlib.closing(prepared):
            while self.micro_in_epoch // accum < self.steps_per_epoch:
                t0 = time.perf_counter()
                micro = [next(prepared) for _ in range(accum)]
                wait += time.perf_counter() - t0
                lr = self.set_lr()
                loss = self.step(micro)
                if self.first_step_s is None:
                    self.rt.synchronize()
                    self.first_step_s = process_age_s()
                guard.update(loss, self.step_no)
                loss_sum += loss
                self.step_no += 1
                self.micro_in_epoch += accum
                self.sums.count += 1
                self.progress.update(1)
                if self.step_no % t.log_every == 0:
                    guard.check(self.epoch, os.path.join(self.run_dir, "last.pt"))
                    self._bar_postfix(loss, lr, first_step, t_epoch)
                if self.stop_signal is not None or (t.max_steps and self.step_no >= t.max_steps):
                    status = "interrupted" if self.stop_signal is not None else "max_steps"
                    break
        self.rt.synchronize()
        guard.check(self.epoch, os.path.join(self.run_dir, "last.pt"))
        dt = time.perf_counter() - t_epoch
        self.elapsed_s += dt
        self.sums.loss = float(loss_sum)
        self.sums.wait_s += wait
        self.sums.time_s += dt
        self.progress.close()
        if status != "finished":
            self.save()  # mid-epoch: resume continues at micro_in_epoch
            return status
        self._end_epoch()
        return status

    def _bar_postfix(self, loss, lr, first_step, t_epoch):
        if self.progress.bar is None:
            return
        t = self.cfg.train
        rate = (self.step_no - first_step) * t.batch_size / max(time.perf_counter() - t_epoch, 1e-9)
        epochs = self.step_no / self.steps_per_epoch
        kw = {"loss": f"{loss.item():.4f}", "lr": f"{lr:.2e}", "img_s": f"{rate:.0f}",
              "pflops": f"{paper_compute_pflops(self.flops_fwd, self.data.n_train, epochs):.3g}"}
        if self.peak:
            kw["mfu"] = f"{self.export_model().estimate_mfu(rate, self.peak):.1%}"
        self.progress.postfix(**kw)

    def compute_pflops(self) -> tuple[float, float]:
        """(the paper's C for the epochs done, PFLOPs of the images actually processed)."""
        epochs = self.epoch + self.micro_in_epoch / max(1, self.micro_per_epoch)
        processed = self.flops_fwd * 3 * self.step_no * self.cfg.train.batch_size / 1e15
        return paper_compute_pflops(self.flops_fwd, self.data.n_train, epochs), processed

    def _end_epoch(self) -> None:
        t = self.cfg.train
        self.epoch += 1
        self.micro_in_epoch = 0
        compute, processed = self.compute_pflops()
        row = epoch_row(self.epoch, self.step_no, self.sums, t.batch_size, self.opt.param_groups[0]["lr"],
                        self.elapsed_s, compute, processed, self.export_model(), self.peak)
        last = self.epoch == t.epochs
        if self.epoch % t.eval_every == 0 or last:
            self.last_eval = self.evaluate()
            self.best_top1 = max(self.best_top1, self.last_eval["test_top1"])
            row.update(self.last_eval)
        self.log.log(row)
        if self.dist.main:
            self.progress.epoch_line(row, t.epochs)
        self.sums = EpochSums()
        if self.epoch % t.ckpt_every == 0 or last:
            self.save()
        if (t.keep_every and self.epoch % t.keep_every == 0) or self.epoch in t.keep_epochs:
            self.save(f"epoch_{self.epoch}.pt")

    def _finish(self, status: str) -> dict:
        t = self.cfg.train
        rows = read_rows(os.path.join(self.run_dir, "metrics.jsonl"))
        m = self.export_model()
        compute, processed = self.compute_pflops()
        summary = {
            "status": status,
            "signal": self.stop_signal,
            "run_dir": self.run_dir,
            "dataset": self.info.name,
            "arch": m.spec.name,
            "res": m.res,
            "num_classes": m.num_classes,
            "n_train": self.data.n_train,
            "epochs_done": self.epoch,
            "epochs": t.epochs,
            "steps": self.step_no,
            "batch_size": t.batch_size,
            "params": m.get_num_params(),
            "macs_per_forward": self.macs,
            "paper_flops_per_forward": self.flops_fwd,
            "compute_pflops": compute,
            "processed_pflops": processed,
            "img_per_s": statistics.median(r["img_per_s"] for r in rows) if rows else None,
            "data_wait_share": statistics.median(r["data_wait_share"] for r in rows) if rows else None,
            "elapsed_s": self.elapsed_s,
            "first_step_s": self.first_step_s,
            "device": self.rt.device_name(),
            "world_size": self.dist.world,
            "resident": self.data.resident,
            "stats": self.data.stats,
            **self.data.report,
            "best_test_top1": self.best_top1,
            **self.last_eval,
            **self.summary_extra(),
        }
        if self.dist.main:
            write_json_atomic(os.path.join(self.run_dir, "summary.json"), summary)
        return summary


# --- entry point ------------------------------------------------------------------------------

RUN_FILES = ("last.pt", "summary.json", "metrics.jsonl", "eval.json")


STASH = ".replaced"   # the old run's files while a replacing run has not started yet (--overwrite)


def prepare_run(cfg: Config, resume_dir: str | None, overwrite: bool, tool: str = "mlpscale-train"):
    """Lock the run folder (rank 0), after the checks that need no data (optional loggers, an existing
    run). Nothing of an existing run changes here: `--overwrite` moves its files aside (`start_run`
    removes them once the new run has started, `abandon_run` puts them back), and config.yaml is
    written by `start_run`. Returns (run_dir, lock or None)."""
    run_dir = resume_dir or os.path.join(cfg.run.out_dir, cfg.run.name)
    check_loggers(cfg)
    if int(os.environ.get("RANK", "0")) != 0:
        return run_dir, None
    lock = FolderLock(run_dir, "run", f"choose another run.name ({tool} --set run.name=NEW ...)").acquire()
    try:
        restore_stash(run_dir)  # a replacing run killed before it started: the old run is still the run
        if resume_dir:
            if not os.path.exists(os.path.join(run_dir, "last.pt")):
                raise UserError(f"{run_dir} has no last.pt to resume from (the run saved none yet); "
                                f"start it again without --resume")
            return run_dir, lock
        if os.path.exists(os.path.join(run_dir, "last.pt")) and not overwrite:
            raise UserError(f"{run_dir} already holds a run; continue it with `{tool} --resume {run_dir}`, "
                            f"or pass --overwrite, or choose another run.name")
        old = [n for n in os.listdir(run_dir) if n in RUN_FILES or n in ("config.yaml", "tb")
               or (n.startswith("epoch_") and n.endswith(".pt"))]
        if old:
            os.makedirs(os.path.join(run_dir, STASH))
            for name in old:
                os.rename(os.path.join(run_dir, name), os.path.join(run_dir, STASH, name))
    except BaseException:
        lock.release()
        raise
    return run_dir, lock


def restore_stash(run_dir: str) -> None:
    """Put the files `prepare_run` moved aside back in place (a run that did not start)."""
    stash = os.path.join(run_dir, STASH)
    if not os.path.isdir(stash):
        return
    for name in os.listdir(stash):
        dst = os.path.join(run_dir, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.replace(os.path.join(stash, name), dst)
    os.rmdir(stash)


def start_run(cfg: Config, run_dir: str) -> None:
    """The new run has started (its data, model and any checkpoint are in hand): only now is the resolved
    config written (with the --set given on resume) and a replaced run's old files removed."""
    save_config(cfg, os.path.join(run_dir, "config.yaml"))
    shutil.rmtree(os.path.join(run_dir, STASH), ignore_errors=True)


def check_loggers(cfg: Config) -> None:
    """The optional packages the config asks for, checked before any folder is made."""
    import importlib.util

    for on, module, name in ((cfg.run.tensorboard, "tensorboard", "tensorboard"), (cfg.run.wandb, "wandb", "wandb")):
        if on and importlib.util.find_spec(module) is None:
            raise UserError(f"run.{name} is on but {name} is not installed: pip install {name} "
                            f"(or --set run.{name}=false)")


def run(cfg: Config, resume_dir: str | None = None, overwrite: bool = False, trainer_cls=None,
        tool: str = "mlpscale-train") -> dict:
    new_folder = not resume_dir and not os.path.exists(os.path.join(cfg.run.out_dir, cfg.run.name))
    run_dir, lock = prepare_run(cfg, resume_dir, overwrite, tool)
    started = False
    try:
        trainer = (trainer_cls or Trainer)(cfg, run_dir, resume=resume_dir is not None)
        if lock is not None:
            start_run(cfg, run_dir)
        started = True
        return trainer.fit()
    except BaseException:
        if not started and lock is not None:  # refused before it started: the folder as it was
            abandon_run(run_dir, new_folder, resume_dir is not None)
        raise
    finally:
        shutdown()
        if lock is not None:
            lock.release()


def abandon_run(run_dir: str, new_folder: bool, resumed: bool) -> None:
    """Undo what a refused start wrote: a new folder goes; a replaced run's files come back."""
    if not resumed:
        for name in ("metrics.jsonl", "tb"):  # what the refused Trainer may have begun
            path = os.path.join(run_dir, name)
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    restore_stash(run_dir)
    if new_folder:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(run_dir, ".lock"))
        with contextlib.suppress(OSError):
            os.rmdir(run_dir)


def parse_args(prog: str, doc: str, argv, load=load_config, need_config: bool = True):
    """The command line shared by mlpscale-train and mlpscale-finetune -> (args, resolved Config)."""
    p = argparse.ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="YAML file, or a bare name from configs/ (e.g. bmlp12.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field, e.g. --set optim.lr=1e-4 (repeatable)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last.pt")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run of the same name")
    a = p.parse_args(argv)
    if a.resume:
        cfg_path = os.path.join(a.resume, "config.yaml")
        if not os.path.exists(cfg_path):
            raise UserError(f"{a.resume} is not a run folder (no config.yaml); pass the folder {prog} wrote")
        cfg = load(cfg_path, a.set)
    elif a.config or not need_config:
        cfg = load(a.config, a.set)
    else:
        raise UserError("pass --config FILE (e.g. --config configs/demo_digits.yaml) or --resume RUN_DIR")
    return a, cfg


def report(s: dict, tool: str) -> None:
    """Print the outcome and exit with the code that says what happened (module docstring)."""
    if int(os.environ.get("RANK", "0")) == 0:
        top1 = s.get("test_top1")
        print(f"{s['status']}: {s['arch']} on {s['dataset']} ({s['epochs_done']} epochs, {s['steps']} steps, "
              f"{s['compute_pflops']:.4g} PFLOPs)" + (f", test top-1 {top1:.2f}%" if top1 is not None else ""))
        print(f"results in {s['run_dir']}/ (summary.json, metrics.jsonl, last.pt)")
        if s["status"] == "interrupted":
            print(f"resume with: {tool} --resume {s['run_dir']}")
    sys.stdout.flush()
    if s["status"] == "interrupted":
        sys.exit(128 + int(s.get("signal") or signal.SIGINT))


@cli_entry
def main(argv=None):
    a, cfg = parse_args("mlpscale-train", __doc__, argv)
    report(run(cfg, a.resume, a.overwrite), "mlpscale-train")


if __name__ == "__main__":
    main()
