"""`mlpscale-train --config X.yaml [--set section.field=value ...] [--resume RUN_DIR] [--overwrite]`.

The hot path per optimizer step:  loader (uint8 NHWC on the device) -> `prepare` (augmentation:
crop, flip, normalise, HWC flatten; MixUp) -> `step` (model under bf16 autocast, soft-target
cross-entropy, backward accumulated over micro-batches and DDP-synchronised on the last, clip,
optimizer update). No host sync per step: losses and the NaN check stay on the device until a log
point. `train.prefetch` can run `prepare` one micro-batch ahead on a worker thread, overlapping
augmentation with the step; `auto` does so on a CPU device only when torch leaves a core free (with
every core busy with GEMMs, the thread would steal one of them). On GPUs kernels are asynchronous anyway.

A run folder holds config.yaml (resolved), metrics.jsonl (one object per epoch), last.pt and
summary.json, and belongs to one process at a time (`.lock`). `--resume RUN_DIR` continues from
last.pt and ends with the same weights as a run that was never interrupted.

Exit codes: 0 finished (or stopped at train.max_steps), 2 a user error (one sentence on stderr),
130 / 143 interrupted by SIGINT / SIGTERM after saving last.pt.

`Trainer` is also the loop of fine-tuning (`mlpscale.finetune.Finetuner` extends its build steps,
see the class) and of the benchmarks (`prepare`, `step` and `train_step` are public).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import cli
from .augment import DeviceAugment, mixup, mixup_lambda
from .checkpoint import check_compatible, load_checkpoint, model_meta, save_checkpoint
from .config import Config, load_config, to_dict
from .data import Data, arrays_data, build_data  # noqa: F401 (arrays_data: public via train)
from .datasets import DatasetInfo, get_dataset
from .distributed import barrier, shutdown
from .errors import UserError, cli_entry
from .evaluate import TTA, evaluate, load_real_labels, record_eval
from .hardware import peak_flops, software_versions
from .io import write_json_atomic
from .loader import Prefetch
from .loss import soft_target_cross_entropy
from .metrics import (  # noqa: F401 - re-exported
    EpochSums,
    FiniteGuard,
    MetricsLog,
    Progress,
    TrainingDiverged,
    epoch_row,
    paper_compute_pflops,
    process_age_s,
    read_rows,
)
from .models import MLP, build_model
from .optim import STATE_PER_PARAM, build_optimizer
from .rundir import abandon_run, check_loggers, lock_run, prepare_run, report, start_run
from .runtime import Runtime, auto_on_off
from .schedule import lr_at


@dataclass
class Batch:
    """One prepared micro-batch: model inputs (b, D), labels (b,), MixUp partner labels and lambda."""
    x: torch.Tensor
    y: torch.Tensor
    y2: torch.Tensor | None
    lam: float


def dataset_info(cfg: Config, data_fn=None) -> DatasetInfo:
    """The dataset a run trains on: the one `data_fn` carries, else the one cfg.data names."""
    if data_fn is not None:
        return data_fn.info
    return get_dataset(cfg.data.dataset, cfg.data.root, cfg.data.res or None)


def augment_views(cfg: Config, rt: Runtime, data: Data, res: int) -> tuple[DeviceAugment, DeviceAugment]:
    """(train view, eval view): uint8 image batch -> model input of `res` px, on the device."""
    a, perm = cfg.aug, cfg.data.permute_pixels
    crop = a.enabled and not data.cropped_on_cpu
    if perm and data.cropped_on_cpu:
        raise UserError("data.permute_pixels needs images of one size; this dataset holds images of several "
                        "sizes (re-convert it with the default --layout square)")
    train = DeviceAugment(data.mean, data.std, res, train=True, crop=crop, flip=a.enabled and a.flip,
                          scale=a.crop_scale, ratio=a.crop_ratio, out_dtype=rt.input_dtype, device=rt.device,
                          permute=perm)
    evl = DeviceAugment(data.mean, data.std, res, train=False, out_dtype=rt.input_dtype, device=rt.device,
                        permute=perm)
    return train, evl


class Trainer:
    """One training run, built in a plain order: model -> optimizer -> data -> views -> position.

    `data_fn(cfg, rt, micro_batch, reserve_bytes) -> Data` supplies the data (the default opens the
    betons named by cfg.data; `data.arrays_data(...)` serves tensors and carries the dataset's `info`).
    `model` is the whole MLP to train (default: a new one as cfg.model describes); `checkpoint` the
    training state to continue from (last.pt, read once by `run`).

    A subclass extends the steps through the hooks below (fine-tuning: `trained_module`,
    `param_groups`, `build_data`, `build_views`, `train_module`); each runs once, in that order, and
    none replaces what an earlier step built. `resolve(cfg, checkpoint)` runs before the run folder is
    prepared and returns more constructor arguments (fine-tuning: the source model).
    """

    def __init__(self, cfg: Config, run_dir: str, data_fn=None, *, model: MLP | None = None,
                 checkpoint: dict | None = None):
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
        self.info = dataset_info(cfg, data_fn)
        # model -> optimizer -> data (whose device share depends on what training itself needs) -> views
        self.full = (model if model is not None else self.build_model(self.info)).to(self.device)
        self.model = self.trained_module(self.full)
        self.opt = build_optimizer(cfg.optim, self.param_groups(), self.device)
        self.data = self.build_data(self.measure_reserve())
        self.real = self.check_eval()
        self.train_view, self.eval_view = self.build_views(self.data)
        self.forward, self.ddp = rt.wrap(self.train_module())
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
        self.flops_fwd = self.full.paper_flops_per_forward()      # the paper's compute unit
        self.macs = self.full.macs_per_forward()
        self.peak = peak_flops(self.device, t.peak_tflops)

        # position in training; replaced by the checkpoint on resume
        self.epoch, self.micro_in_epoch, self.step_no = 0, 0, 0
        self.sums = EpochSums()
        self.elapsed_s, self.best_top1, self.last_eval = 0.0, 0.0, {}
        resume = checkpoint is not None
        if resume:
            self._restore(checkpoint)
        self.log = MetricsLog(run_dir, cfg, resume_epoch=self.epoch if resume else None, enabled=self.dist.main)
        self.progress = Progress(self.dist.main and cfg.run.progress)
        self.stop_signal = None
        self.first_step_s = None    # process start -> end of this process's first optimizer step

    @classmethod
    def resolve(cls, cfg: Config, checkpoint: dict | None) -> dict:
        """More constructor arguments, worked out before the run folder is prepared (and may complete
        `cfg`, which config.yaml then records); `checkpoint` is the state a resumed run continues from."""
        return {}

    # --- hooks (fine-tuning overrides them) ------------------------------------------------------
    def build_model(self, info: DatasetInfo) -> MLP:
        m = self.cfg.model
        return build_model(m.arch, self.cfg.data.crop_res or self.cfg.data.res or info.default_res, info.num_classes,
                           act=m.act, norm=m.norm, dropout=m.dropout)

    def trained_module(self, full: MLP) -> torch.nn.Module:
        """The module the optimizer trains, around the whole model (a frozen-body probe, for instance)."""
        return full

    def param_groups(self) -> list[dict]:
        """Optimizer parameter groups; `lr_mult` scales the scheduled learning rate per group."""
        return [{"params": [p for p in self.model.parameters() if p.requires_grad], "lr_mult": 1.0}]

    def build_data(self, reserve_bytes: int) -> Data:
        fn = self.data_fn or build_data
        return fn(self.cfg, self.rt, self.micro_batch, reserve_bytes)

    def build_views(self, data: Data):
        """(train view, eval view): uint8 batch -> model input, on the device."""
        return augment_views(self.cfg, self.rt, data, self.model_res())

    def train_module(self) -> torch.nn.Module:
        """What the train view's output is fed to (wrapped for DDP / compile); `self.model` by default."""
        return self.model

    def export_model(self) -> MLP:
        """The whole model: what checkpoints hold and evaluation scores."""
        return self.full

    def summary_extra(self) -> dict:
        """More fields for summary.json (fine-tuning adds its source and mode)."""
        return {}

    def model_res(self) -> int:
        return self.full.res

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
        state = STATE_PER_PARAM[self.cfg.optim.name] * params
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

    def prepare(self, x_u8: torch.Tensor, y: torch.Tensor, micro_index: int, hw: torch.Tensor | None = None) -> Batch:
        """Augment one micro-batch (b, H, W, 3) uint8 into model inputs (b, r*r*3), MixUp included;
        `hw` (b, 2): the true image sizes of a paper-layout batch."""
        rng = self._rngs(micro_index)
        x = self.train_view(x_u8, self.gen, hw)
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
        r = evaluate(self.eval_module(), self.data.eval, self.eval_view, rt=self.rt)
        return {"test_top1": r.top1, "test_top5": r.top5, "test_loss": r.loss}

    def check_eval(self) -> torch.Tensor | None:
        """Refuse, before the first step, every eval.* option this run's data cannot serve; returns the
        ReaL label matrix when eval.real asks for it."""
        e = self.cfg.eval
        TTA.of_run(e.tta, e.tta_average, self.cfg.aug, self.cfg.train.seed, self.data.cropped_on_cpu, "eval.tta")
        if not e.real:
            return None
        real = load_real_labels(self.cfg.data.root, self.info.name, self.data.res, self.device)
        if len(real) != self.data.eval.n:
            raise UserError(f"the ReaL labels of {self.info.name} list {len(real)} images but its evaluation split "
                            f"holds {self.data.eval.n}; re-convert it with --real, or set eval.real=false")
        return real

    def final_eval(self) -> dict:
        """The run's last evaluation with the extra scores of cfg.eval (TTA, ReaL); also written to eval.json."""
        e = self.cfg.eval
        tta = TTA.of_run(e.tta, e.tta_average, self.cfg.aug, self.cfg.train.seed, self.data.cropped_on_cpu, "eval.tta")
        r = evaluate(self.eval_module(), self.data.eval, self.eval_view, rt=self.rt, tta=tta, real=self.real).to_dict()
        r.update(dataset=self.info.name, split=self.info.eval_split, arch=self.export_model().spec.name,
                 checkpoint=os.path.abspath(os.path.join(self.run_dir, "last.pt")), res=self.data.res,
                 model_res=self.model_res())
        if tta is not None:
            r.update(tta_scale=list(tta.scale), tta_ratio=list(tta.ratio), tta_seed=tta.seed)
        if self.dist.main:
            record_eval(os.path.join(self.run_dir, "eval.json"), r)
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
        for i, (x_u8, y, *hw) in enumerate(batches):
            yield self.prepare(x_u8, y, first_micro + i, *hw)

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
            "versions": software_versions(),
            "resident": self.data.resident,
            "layout": "paper" if self.data.paper_layout else "varying sizes" if self.data.cropped_on_cpu else "square",
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

def run(cfg: Config, resume_dir: str | None = None, overwrite: bool = False, trainer_cls=None,
        tool: str = "mlpscale-train") -> dict:
    """Check what needs no data, lock the run folder, read the state to resume (last.pt, once), resolve what
    the trainer class needs from it and the config, set an old run aside (--overwrite), build the trainer;
    only then write config.yaml and drop the old run (`start_run`), and train."""
    cls = trainer_cls or Trainer
    run_dir = resume_dir or os.path.join(cfg.run.out_dir, cfg.run.name)
    new_folder = not resume_dir and not os.path.exists(run_dir)
    check_loggers(cfg)
    lock = lock_run(run_dir, resume_dir is not None, overwrite, tool)
    started = False
    try:
        checkpoint = load_checkpoint(os.path.join(run_dir, "last.pt")) if resume_dir else None
        extra = cls.resolve(cfg, checkpoint)
        prepare_run(cfg, run_dir, resume_dir is not None)
        trainer = cls(cfg, run_dir, checkpoint=checkpoint, **extra)
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


WHAT = "Train an MLP on a converted dataset, as one YAML config describes it."
EXAMPLE = "mlpscale-train --config demo_digits.yaml --set optim.lr=1e-4 --set run.name=demo_lr1e-4"
DETAILS = """\
The run folder is run.out_dir/run.name: runs/<the config's file name> unless run.name is set. It holds
config.yaml (resolved), metrics.jsonl (one object per epoch), last.pt and summary.json, and belongs to
one process at a time. A second run into a folder that holds a run is refused: continue it with
--resume, replace it with --overwrite, or choose another run.name. Every config field and its meaning:
mlpscale/config.py.

Exit codes: 0 finished (or stopped at train.max_steps), 2 a user error (one sentence on stderr),
130 / 143 interrupted by SIGINT / SIGTERM after saving last.pt (--resume RUN_DIR continues it)."""


def build_parser(prog: str = "mlpscale-train", what: str = WHAT, example: str = EXAMPLE,
                 details: str = DETAILS) -> argparse.ArgumentParser:
    """The command line shared by mlpscale-train and mlpscale-finetune."""
    p = cli.command_parser(prog, what, example, details)
    cli.add(p, "--config")
    cli.add(p, "--set")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its last.pt, with its own config.yaml (no --config)")
    cli.add(p, "--overwrite", "a run folder that already holds a run is cleared first")
    return p


def parse_args(parser: argparse.ArgumentParser, argv, load=load_config, need_config: bool = True):
    """-> (args, resolved Config) of mlpscale-train / mlpscale-finetune."""
    a = parser.parse_args(argv)
    if a.resume:
        if a.config:
            raise UserError(f"--resume continues with the run's own config.yaml, so --config {a.config} would be "
                            f"ignored; drop --config (use --set to change a field), or start a new run without "
                            f"--resume")
        cfg_path = os.path.join(a.resume, "config.yaml")
        if not os.path.exists(cfg_path):
            raise UserError(f"{a.resume} is not a run folder (no config.yaml); pass the folder {parser.prog} wrote")
        cfg = load(cfg_path, a.set)
    elif a.config or not need_config:
        cfg = load(a.config, a.set)
    else:
        raise UserError("pass --config FILE (e.g. --config configs/demo_digits.yaml) or --resume RUN_DIR")
    return a, cfg


@cli_entry
def main(argv=None):
    a, cfg = parse_args(build_parser(), argv)
    code = report(run(cfg, a.resume, a.overwrite), "mlpscale-train")
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
