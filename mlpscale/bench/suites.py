"""The benchmark suites. Each builds ours and its baselines, times them alternately (timing.compare)
and returns JSON-ready comparisons. Sizes come from `Sizes` (CI `--quick` or the recorded defaults)
and can be overridden from the command line.

In this module: step, loader, augment (in-process comparisons) and convert (benchmarks/bench_convert.py).
Elsewhere: e2e (e2e.py: every variant a separate process, worker.py), eval (tta.py: TTA through
`mlpscale.evaluate`), tiered (tiered.py: JPEG decoded once into two memory tiers vs FFCV streaming).

Baselines (see reference.py): the paper's recipe - FFCV CPU crop/flip/MixUp, fp32 eager model on
CHW-flattened input, per-parameter Python LION; for loading also a plain torch DataLoader over
decoded arrays; for augmentation also kornia (the field's GPU augmentation library).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..augment import DeviceAugment, mixup, mixup_lambda
from ..datasets import CIFAR_MEAN, CIFAR_STD
from ..errors import UserError
from ..layout import beton_path
from . import data as bdata
from . import ours as bours
from . import reference as ref
from .timing import Comparison, Variant, compare

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Sizes:
    """Everything a suite's size depends on. `quick()` is CI's; the defaults are the recorded CPU run
    (issue 4's comparison: CIFAR-sized 32px beton, B_6-Wi_512, batch 512, augmentation on)."""
    arch: str = "B_6-Wi_512"
    res: int = 32
    batch: int = 512
    num_classes: int = 10
    n_train: int = 50_000           # CIFAR-sized
    n_test: int = 2_048
    precision: str = "auto"         # ours: bf16 on CUDA; fp32 on the CPU (bf16 autocast without AVX512-BF16/AMX
                                    # measured ~12x slower than fp32 on the 2-core EPYC, see benchmarks/README.md)
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
def _root(s: Sizes):
    if s.root:
        os.makedirs(s.root, exist_ok=True)
        yield s.root
    else:
        with tempfile.TemporaryDirectory(prefix="mlpscale-bench-") as d:
            yield d


def _uint8_batch(batch: int, res: int, num_classes: int, device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (batch, res, res, 3), generator=g, dtype=torch.uint8)
    y = torch.randint(0, num_classes, (batch,), generator=g)
    return x.to(device), y.to(device)


def _ffcv_missing(suite: str) -> dict | None:
    why = bdata.ffcv_status()
    return None if why is None else {"suite": suite, "skipped": f"FFCV cannot load ({why})"}


_KEEP = []  # FFCV loaders stay alive until exit: freeing them makes numba's finalizer print spurious KeyErrors
_LOADERS = {}  # one FFCV loader per configuration per process: each new one costs a numba compile (5-25 s)


def _keep(loader):
    _KEEP.append(loader)
    return loader


def _ref_loader(path, batch, res, dev, workers=0, mixup_alpha=0.8, drop_last=True, order_random=None):
    key = ("ref", path, batch, res, str(dev), workers, mixup_alpha, drop_last, order_random)
    if key not in _LOADERS:
        _LOADERS[key] = _keep(ref.reference_loader(path, batch, res, dev, workers=workers, mixup_alpha=mixup_alpha,
                                                   drop_last=drop_last, order_random=order_random))
    return _LOADERS[key]


def _stream_loader(path, batch, dev, workers):
    from ..beton import open_beton
    from ..loader import StreamLoader

    key = ("stream", path, batch, str(dev), workers)
    if key not in _LOADERS:
        _LOADERS[key] = _keep(StreamLoader(open_beton(path), batch, 0, dev, workers=workers))
    return _LOADERS[key]


def _fresh(make_iter, n: int) -> int:
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


class _Counter:
    """make_iter factory for loaders whose `epoch(e)` wants a new epoch number each time."""

    def __init__(self, loader):
        self.loader, self.e = loader, 0

    def __call__(self):
        self.e += 1
        return self.loader.epoch(self.e)


# --- step -----------------------------------------------------------------------------------

def reference_steps(s: Sizes, dev):
    """A callable running s.steps reference optimizer steps on one float batch; returns images."""
    rstep = ref.ReferenceStep(s.arch, s.res, s.num_classes, CIFAR_MEAN, CIFAR_STD, dev)
    rx, rl = ref.fake_mixed_batch(s.batch, s.res, s.num_classes, dev)

    def run() -> int:
        for _ in range(s.steps):
            rstep(rx, rl)
        return s.steps * s.batch

    return run


def step_comparison(s: Sizes, run_dir: str, peak_flops: float | None = None, suite: str = "step",
                    with_reference: bool = True, log=print) -> dict:
    """One optimizer step, data already on the device: ours (Trainer.train_step on uint8 NHWC, device
    augmentation + MixUp included) vs the reference step (fp32 eager, Python LION) on the float batch
    its CPU loader would hand over (augmentation already done on the CPU, not timed here)."""
    dev = s.dev()
    n = max(s.batch, 1)
    x_u8, y = _uint8_batch(n, s.res, s.num_classes, dev)
    cfg = bours.make_config(s.arch, s.res, s.batch, precision=s.prec(), compile=s.compile, device=str(dev),
                            run_dir=run_dir)
    trainer = bours.trainer_on_arrays(cfg, run_dir, x_u8, y, s.num_classes)
    ours = bours.FixedBatchDriver(trainer)
    variants = [Variant("mlpscale", lambda: ours(s.steps), "ours",
                        f"Trainer.train_step: device crop/flip/MixUp, {s.prec()} autocast, "
                        f"compile={s.compile}, foreach LION")]
    if with_reference:
        variants.append(Variant("reference", reference_steps(s, dev), "baseline",
                                "normalise + fp32 eager MLP on CHW flatten + mixed CE + per-parameter Python LION"))
    model = trainer.model
    cmp = Comparison(suite, f"{s.arch} {s.res}px batch {s.batch} {s.prec()} compile={s.compile} on {dev.type}",
                     "img/s", f"{s.steps} optimizer steps on one resident batch, closed by a device sync",
                     {"arch": s.arch, "res": s.res, "batch": s.batch, "num_classes": s.num_classes,
                      "precision": s.prec(), "compile": s.compile, "device": str(dev), "steps": s.steps,
                      "params": model.get_num_params(), "macs_per_forward": model.macs_per_forward()},
                     variants, s.reps, s.warmup)
    out = compare(cmp, dev, log).to_json()
    if peak_flops:
        out["peak_tflops"] = peak_flops / 1e12
        out["mfu"] = {k: model.estimate_mfu(v["median"], peak_flops) for k, v in out["variants"].items()
                      if "median" in v}
        if log:
            log("  MFU: " + ", ".join(f"{k} {v:.1%}" for k, v in out["mfu"].items()))
    return out


def suite_step(s: Sizes, log=print) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-run-") as run_dir:
        return [step_comparison(s, run_dir, log=log)]


# --- loader ---------------------------------------------------------------------------------

def loader_comparisons(s: Sizes, root: str, fmt: str, log=print) -> list[dict]:
    """uint8 batches from a beton: ours (StreamLoader; ResidentLoader) vs the paper's FFCV loader with
    CPU crop/flip/MixUp and a plain torch DataLoader over the decoded arrays, per FFCV thread count."""
    from ..loader import ResidentLoader, read_split

    dev = s.dev()
    sub = os.path.join(root, fmt)
    name = bdata.make_dataset(sub, s.n_train, s.n_test, s.res, s.num_classes, fmt)
    path = beton_path(sub, name, "train", s.res)
    per_epoch = s.n_train // s.batch
    if s.batches > per_epoch:
        raise UserError(f"--batches {s.batches} is more than one epoch ({per_epoch}); raise --n-train")
    out = []
    x_all = y_all = None
    for threads in s.threads:
        sl = _stream_loader(path, s.batch, dev, threads)
        variants = [Variant("mlpscale_stream", lambda c=_Counter(sl): _fresh(c, s.batches), "ours",
                            "StreamLoader: FFCV SimpleRGBImageDecoder -> uint8 NHWC on the device")]
        setup = {}
        if threads == max(s.threads):
            t0 = time.perf_counter()
            x_all, y_all = read_split(path, dev, threads)
            setup["mlpscale_resident"] = time.perf_counter() - t0
            rsl = ResidentLoader(x_all, y_all, s.batch, 0)
            variants.append(Variant("mlpscale_resident", lambda c=_Counter(rsl): _fresh(c, s.batches), "info",
                                    "ResidentLoader: split read once into device memory, randperm + gather"))
        rl = _ref_loader(path, s.batch, s.res, dev, workers=threads)
        variants.append(Variant("reference_ffcv", lambda rl=rl: _fresh(lambda: ref.iterate(rl), s.batches),
                                "baseline", "the paper's FFCV loader: RandomResizedCrop decode + flip + MixUp on "
                                            "the CPU, float32 NCHW on the device"))
        if fmt == "raw":
            xs, ys = (x_all.cpu(), y_all.cpu()) if x_all is not None else read_split(path, torch.device("cpu"))
            dl = _torch_dataloader(xs, ys, s.batch, threads)
            variants.append(Variant("torch_dataloader", lambda dl=dl: _fresh(lambda: _dl_epoch(dl, dev), s.batches),
                                    "baseline", f"torch DataLoader over decoded uint8 arrays, shuffle, "
                                                f"num_workers={0 if threads == 1 else threads}, default collate"))
        cmp = Comparison("loader", f"{fmt} {s.res}px batch {s.batch} threads={threads} on {dev.type}", "img/s",
                         f"{s.batches} batches from a fresh epoch iterator, on the device",
                         {"format": fmt, "res": s.res, "batch": s.batch, "n_train": s.n_train,
                          "threads": threads, "device": str(dev), "batches": s.batches},
                         variants, s.reps, s.warmup, setup_s=setup)
        out.append(compare(cmp, dev, log).to_json())
    return out


def _torch_dataloader(x: torch.Tensor, y: torch.Tensor, batch: int, threads: int):
    from torch.utils.data import DataLoader, TensorDataset

    workers = 0 if threads == 1 else threads
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=torch.cuda.is_available())


def _dl_epoch(dl, dev):
    for x, y in dl:
        yield x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)


def suite_loader(s: Sizes, log=print) -> list[dict]:
    miss = _ffcv_missing("loader")
    if miss:
        return [miss]
    out = []
    with _root(s) as root:
        for fmt in s.formats:
            out += loader_comparisons(s, root, fmt, log)
    return out


# --- augment --------------------------------------------------------------------------------

def augment_comparison(s: Sizes, root: str | None, log=print) -> dict:
    """Batched augmentation: ours (DeviceAugment + MixUp on a resident uint8 batch) vs kornia on the
    same device, and vs the reference recipe's CPU augmentation (FFCV crop/flip/MixUp decode of a raw
    beton from the page cache, which also covers its memcpy)."""
    dev = s.dev()
    x_u8, y = _uint8_batch(s.batch, s.res, s.num_classes, dev)
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
        rl = _ref_loader(beton_path(sub, name, "train", s.res), s.batch, s.res, dev)
        n = min(s.batches, len(rl))
        variants.append(Variant("reference_ffcv_cpu", lambda: _fresh(lambda: ref.iterate(rl), n), "baseline",
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
    with _root(s) as root:
        return [augment_comparison(s, root, log)]


# --- convert (owned by benchmarks/bench_convert.py) ------------------------------------------

def suite_convert(s: Sizes, quick: bool, log=print) -> list[dict]:
    """Runs benchmarks/bench_convert.py (the converter's own benchmark) and embeds its JSON."""
    script = os.path.join(REPO, "benchmarks", "bench_convert.py")
    if not os.path.exists(script):
        return [{"suite": "convert", "skipped": f"{script} not found (the converter benchmark lives there)"}]
    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-convert-") as d:
        out = os.path.join(d, "convert.json")
        cmd = [sys.executable, script] + (["--quick"] if quick else []) + ["--json", out]
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if log:
            log(proc.stdout.rstrip())
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return [{"suite": "convert", "external": json.load(f), "command": " ".join(cmd[1:])}]


def suite_e2e(s: Sizes, log=print, inject: str = "") -> list[dict]:
    from .e2e import e2e_comparison

    with _root(s) as root:
        return [e2e_comparison(s.for_e2e(), root, log, inject=inject)]


SUITES = ["convert", "startup", "loader", "augment", "step", "e2e", "eval", "tiered"]


def run_suite(name: str, s: Sizes, quick: bool, log=print, inject: str = "") -> list[dict]:
    if name == "convert":
        return suite_convert(s, quick, log)
    if name == "e2e":
        return suite_e2e(s, log, inject)
    if name == "eval":
        from .tta import suite_eval

        return suite_eval(s, log)
    if name == "startup":
        from .startup import suite_startup

        return suite_startup(2 if quick else s.reps, log)
    if name == "tiered":
        from .tiered import suite_tiered

        return suite_tiered(s, log)
    return {"loader": suite_loader, "augment": suite_augment, "step": suite_step}[name](s, log)
