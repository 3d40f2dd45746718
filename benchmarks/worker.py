"""One training recipe in its own process, timed over a steady-state window (the e2e suite's unit).

    python -m mlpscale.bench.worker RECIPE MODE --json OUT [--root ROOT --dataset NAME] [sizes]

RECIPE x MODE:
  ours e2e        `mlpscale-train`'s own code: `train.run(cfg)` (the function the CLI calls) on the
                  generated beton, `train.max_steps` = warm-up + timed steps; the Trainer reads the
                  beton itself (resident, or streamed with --resident off) and runs its own loop
                  (`train.prefetch`: a prefetch thread, or inline where `auto` finds no free core;
                  progress, NaN guard). The timer covers the loop between
                  the end of warm-up step W and the end of step W+N: batch fetching, augmentation,
                  MixUp, step, bookkeeping.
  ours bare       `Trainer.step` on one prepared micro-batch (model + loss + backward + optimizer;
                  no data, no augmentation) - the ceiling `ours e2e` is measured against.
  reference e2e   the authors' recipe as their train.py runs it: FFCV Loader with per-image CPU
                  RandomResizedCrop + flip + ImageMixup/LabelMixup -> fp32 eager MLP on the CHW
                  flatten -> mixed cross-entropy -> per-parameter Python LION, and the per-step
                  top-k accuracy and `loss.item()` of their loop.
  reference bare  the same step on one float batch already in memory.

Each process warms up (JIT, FFCV's numba compile, torch.compile, first batches), then times N
steps closed by a device sync and writes one JSON object: img_per_s, the window's seconds, the torch
thread count seen inside the window, one-off setup seconds, and the share of the window spent
outside the optimizer step (CPU: data wait + loop overhead). A process measures itself only; the
parent (e2e.e2e_comparison) alternates processes over repeats and takes medians.

`--inject` (hidden; tests, demonstrations of the CI gate, diagnostics) changes ours' e2e process on
purpose: `threads=N` sets torch's thread count after the Trainer is built (the FFCV bug this suite
exists to catch), `stall=F` idles F x the step's duration after every step, `prep_threads=N` sets
the thread count of the thread that runs `Trainer.prepare` (the prefetch thread, when there is one).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

from mlpscale.io import write_json_atomic

T_START = time.perf_counter()


class Window:
    """Counts finished steps; times steps warmup+1 .. warmup+steps, closed by a device sync."""

    def __init__(self, warmup: int, steps: int, device: torch.device):
        self.warmup, self.steps, self.device = warmup, steps, device
        self.done = 0
        self.t0 = self.t1 = None
        self.images = 0
        self.in_step = 0.0
        self.threads = None
        self._step_start = None

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def timing(self) -> bool:
        return self.t0 is not None and self.t1 is None

    def start_step(self) -> None:
        self._step_start = time.perf_counter()

    def end_step(self, images: int) -> None:
        now = time.perf_counter()
        if self.timing:
            self.images += images
            self.in_step += now - self._step_start
            self.threads = torch.get_num_threads()
        self.done += 1
        if self.done == self.warmup:
            self.sync()
            self.t0 = time.perf_counter()
        elif self.done == self.warmup + self.steps:
            self.sync()
            self.t1 = time.perf_counter()

    @property
    def complete(self) -> bool:
        return self.t1 is not None

    def result(self) -> dict:
        if not self.complete:
            raise RuntimeError(f"only {self.done} of {self.warmup + self.steps} steps ran")
        dt = self.t1 - self.t0
        return {"img_per_s": self.images / dt, "seconds": dt, "steps": self.steps, "warmup": self.warmup,
                "images": self.images, "torch_threads": self.threads,
                "outside_step_share": max(0.0, 1.0 - self.in_step / dt) if self.device.type == "cpu" else None}


def _inject(spec: str) -> dict:
    out = {}
    for part in filter(None, (spec or "").split(",")):
        k, _, v = part.partition("=")
        if k not in ("threads", "stall", "prep_threads"):
            raise SystemExit(f"unknown --inject '{k}' (threads=N, stall=F, prep_threads=N)")
        out[k] = float(v)
    return out


# --- ours -----------------------------------------------------------------------------------------

def _config(a):
    """The config a user would write for this run (make_config: progress bar off, else defaults), with
    the `--set key=value` overrides of mlpscale-train's command line."""
    import yaml

    from mlpscale.config import config_from_dict, to_dict
    from .ours import make_config

    cfg = make_config(a.arch, a.res, a.batch, a.dataset, a.root, a.precision, a.compile, a.device, a.resident,
                      a.workers)
    if not a.set:
        return cfg
    d = to_dict(cfg)
    for ov in a.set:
        key, _, val = ov.partition("=")
        section, _, fld = key.strip().partition(".")
        d.setdefault(section, {})[fld] = yaml.safe_load(val)
    return config_from_dict(d, "--set")


class TimedLoader:
    """A training loader whose batches are clocked (on whichever thread takes them: the training
    thread, or the prefetch thread when train.prefetch is on) while the window is open."""

    def __init__(self, loader, window: Window):
        self.loader, self.window, self.seconds = loader, window, 0.0

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def epoch(self, epoch: int, start_batch: int = 0):
        it = self.loader.epoch(epoch, start_batch)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                if self.window.timing:
                    self.seconds += time.perf_counter() - t0
                yield item
        finally:
            it.close()


def timed_run(cfg, warmup: int, steps: int, data_fn=None, inject: dict | None = None,
              t_start: float | None = None) -> dict:
    """`train.run(cfg)` - what `mlpscale-train` calls - with a clock around `Trainer.step`: steps
    warmup+1 .. warmup+steps are timed (cfg.train.max_steps is set to warmup+steps). The loop, loader,
    prefetching and augmentation are the Trainer's own; `data_fn` replaces the betons (Trainer's hook).
    Returns the window's figures plus where its time went (shares of the window):
      loader_share   time inside the loader's next() (on the training thread: a data wait; on the
                     prefetch thread, when there is one: gather time overlapped with the step)
      prepare_share  time in Trainer.prepare (augmentation + MixUp; on whichever thread runs it)
      outside_step_share  (CPU) time of the training thread outside Trainer.step: waiting for the next
                     prepared batch + loop bookkeeping."""
    from mlpscale import train as train_mod

    inject = inject or {}
    box = {}

    class TimedTrainer(train_mod.Trainer):
        """The Trainer, unchanged, plus clocks (the loop around `step` is the Trainer's)."""

        def __init__(self, *args, **kw):
            super().__init__(*args, data_fn=data_fn, **kw)
            box["setup_s"] = time.perf_counter() - (T_START if t_start is None else t_start)
            box["report"] = dict(self.data.report)
            box["prefetch"] = bool(self.prefetch)
            self.window = box["window"] = Window(warmup, steps, self.device)
            self.prepare_s = 0.0
            box["trainer"] = self
            if self.steps_per_epoch < warmup + steps:
                raise RuntimeError(f"{warmup + steps} steps need more than one epoch "
                                   f"({self.steps_per_epoch} steps); generate more images")
            self.data.train = box["loader"] = TimedLoader(self.data.train, self.window)
            if "threads" in inject:
                torch.set_num_threads(int(inject["threads"]))

        def prepare(self, x_u8, y, micro_index):
            if "prep_threads" in inject:  # diagnostic: the preparing thread's own torch thread count
                torch.set_num_threads(int(inject["prep_threads"]))
            t0 = time.perf_counter()
            b = super().prepare(x_u8, y, micro_index)
            if self.window.timing:
                self.prepare_s += time.perf_counter() - t0
            return b

        def step(self, batches):
            self.window.start_step()
            t0 = time.perf_counter()
            loss = super().step(batches)
            if "stall" in inject and self.window.timing:
                self.window.sync()
                time.sleep(inject["stall"] * (time.perf_counter() - t0))
            self.window.end_step(sum(len(b.y) for b in batches))
            return loss

        def save(self, name: str = "last.pt") -> None:
            pass  # after the timed window; a benchmark keeps no checkpoint

    cfg.train.max_steps = warmup + steps
    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-worker-") as run_root:
        cfg.run.out_dir, cfg.run.name = run_root, "run"
        summary = train_mod.run(cfg, trainer_cls=TimedTrainer)
    w = box["window"]
    out = w.result()
    tr = box["trainer"]
    dt = out["seconds"]
    out.update(setup_s=box["setup_s"], prefetch=box["prefetch"], status=summary["status"],
               resident=summary["resident"], load=box["report"], loader_share=box["loader"].seconds / dt,
               prepare_share=tr.prepare_s / dt, params=tr.export_model().get_num_params(),
               train_flops_per_image=tr.export_model().train_flops_per_image())
    return out


def ours_e2e(a) -> dict:
    return timed_run(_config(a), a.warmup, a.steps, inject=_inject(a.inject))


def ours_bare(a) -> dict:
    from mlpscale import train as train_mod

    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-worker-") as run_root:
        tr = train_mod.Trainer(_config(a), os.path.join(run_root, "run"))
        setup = time.perf_counter() - T_START
        it = tr.data.train.epoch(0)
        x_u8, y = next(it)
        it.close()
        batch = tr.prepare(x_u8, y, 0)            # augmented once, outside the timer
        w = Window(a.warmup, a.steps, tr.device)
        while not w.complete:
            w.start_step()
            tr.step([batch])
            w.end_step(len(y))
    out = w.result()
    out["setup_s"] = setup
    return out


# --- reference ----------------------------------------------------------------------------------

def _reference_step(a):
    from mlpscale.datasets import CIFAR_MEAN, CIFAR_STD
    from .reference import ReferenceStep

    return ReferenceStep(a.arch, a.res, a.num_classes, CIFAR_MEAN, CIFAR_STD, a.device_t, bookkeeping=True)


def reference_e2e(a) -> dict:
    from mlpscale.layout import beton_path
    from .reference import iterate, reference_loader

    rstep = _reference_step(a)
    loader = reference_loader(beton_path(a.root, a.dataset, "train", a.res), a.batch, a.res, a.device_t,
                              workers=a.workers)
    if len(loader) < a.warmup + a.steps:
        raise SystemExit(f"{a.warmup + a.steps} steps need more than one epoch ({len(loader)} batches)")
    setup = time.perf_counter() - T_START
    w = Window(a.warmup, a.steps, a.device_t)
    it = iterate(loader)
    try:
        while not w.complete:
            x, labels = next(it)          # the batch wait counts as outside the step, as in ours
            w.start_step()
            rstep(x, labels)
            w.end_step(len(x))
    finally:
        it.close()
    out = w.result()
    out["setup_s"] = setup
    return out


def reference_bare(a) -> dict:
    from .reference import fake_mixed_batch

    rstep = _reference_step(a)
    x, labels = fake_mixed_batch(a.batch, a.res, a.num_classes, a.device_t)
    setup = time.perf_counter() - T_START
    w = Window(a.warmup, a.steps, a.device_t)
    while not w.complete:
        w.start_step()
        rstep(x, labels)
        w.end_step(len(x))
    out = w.result()
    out["setup_s"] = setup
    return out


RUNNERS = {("ours", "e2e"): ours_e2e, ("ours", "bare"): ours_bare,
           ("reference", "e2e"): reference_e2e, ("reference", "bare"): reference_bare}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m mlpscale.bench.worker", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("recipe", choices=["ours", "reference"])
    p.add_argument("mode", choices=["e2e", "bare"])
    p.add_argument("--json", required=True, help="where to write the result object")
    p.add_argument("--root", default="data", help="folder of the generated dataset")
    p.add_argument("--dataset", default="benchsynth")
    p.add_argument("--arch", default="B_6-Wi_512")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--classes", type=int, default=10, dest="num_classes")
    p.add_argument("--precision", default="auto")
    p.add_argument("--compile", default="auto")
    p.add_argument("--device", default="auto")
    p.add_argument("--resident", default="on", help="ours: data.resident (on: read once; off: FFCV streaming)")
    p.add_argument("--workers", type=int, default=0, help="FFCV / decode threads; 0 = all cores")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="ours: override a config field, as mlpscale-train --set (e.g. train.prefetch=off)")
    p.add_argument("--inject", default=os.environ.get("MLPSCALE_BENCH_INJECT", ""), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.warmup < 1 or a.steps < 1:
        p.error("--warmup and --steps must be >= 1")
    dev = a.device if a.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    a.device_t = torch.device(dev)
    a.device = dev
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    threads_at_start = torch.get_num_threads()
    out = RUNNERS[(a.recipe, a.mode)](a)
    out.update(recipe=a.recipe, mode=a.mode, batch=a.batch, arch=a.arch, res=a.res, device=a.device,
               torch_threads_at_start=threads_at_start, pid=os.getpid(),
               process_s=time.perf_counter() - T_START, load_avg_1m=round(os.getloadavg()[0], 2))
    write_json_atomic(a.json, out, indent=None)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # FFCV / numba threads can abort interpreter teardown after the result is written
