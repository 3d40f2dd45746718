"""The benchmark suites. Each builds ours and its baselines, times them alternately (timing.compare)
and returns JSON-ready comparisons. Sizes come from `Sizes` (CI `--quick` or the recorded defaults)
and can be overridden from the command line.

Baselines (see reference.py): the paper's recipe - FFCV CPU crop/flip/MixUp, fp32 eager model on
CHW-flattened input, per-parameter Python LION; for loading also a plain torch DataLoader over
decoded arrays; for augmentation also kornia (the field's GPU augmentation library).
"""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import data as bdata
from . import ours as bours
from . import reference as ref
from .timing import Comparison, Variant, compare
from ..augment import DeviceAugment, mixup, mixup_lambda
from ..errors import UserError
from ..datasets import CIFAR_MEAN, CIFAR_STD, beton_path
from ..models import MLP

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
    e2e_stream: bool = True         # e2e: also time the Trainer streaming from the beton (data.resident=off)
    device: str = "auto"
    root: str = ""                  # where generated betons go; "" = a temporary folder

    @classmethod
    def quick(cls) -> "Sizes":
        return cls(arch="B_2-Wi_256", batch=256, n_train=4_096, n_test=512, steps=3, batches=8, reps=3, warmup=1,
                   tta_crops=4, threads=[max(1, len(os.sched_getaffinity(0)))], e2e_stream=False)

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
    from ..loader import StreamLoader

    key = ("stream", path, batch, str(dev), workers)
    if key not in _LOADERS:
        _LOADERS[key] = _keep(StreamLoader(path, batch, 0, dev, workers=workers))
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
    """One optimizer step, data already on the device: ours (Trainer._train_step on uint8 NHWC, device
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
                        f"Trainer._train_step: device crop/flip/MixUp, {s.prec()} autocast, "
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


# --- e2e ------------------------------------------------------------------------------------

def e2e_comparison(s: Sizes, root: str, run_dir: str, log=print) -> dict:
    """beton -> trained steps: ours (Trainer on the beton, resident; also streaming) vs the paper's recipe
    (FFCV loader with CPU crop/flip/MixUp -> fp32 eager step with Python LION)."""
    dev = s.dev()
    root = os.path.join(root, "raw")
    name = bdata.make_dataset(root, s.n_train, s.n_test, s.res, s.num_classes, "raw")
    variants, setup = [], {}
    t0 = time.perf_counter()
    cfg = bours.make_config(s.arch, s.res, s.batch, name, root, s.prec(), s.compile, str(dev), "on",
                            run_dir=run_dir)
    tr = bours.trainer_on_betons(cfg, os.path.join(run_dir, "resident"))
    setup["mlpscale"] = time.perf_counter() - t0  # read the beton once into device memory
    drv = bours.StepDriver(tr)
    variants.append(Variant("mlpscale", lambda: drv(s.steps), "ours",
                            "Trainer on the beton, read once into device memory (resident), device aug, "
                            f"{s.prec()}, compile={s.compile}, foreach LION"))
    if s.e2e_stream:
        cfg2 = bours.make_config(s.arch, s.res, s.batch, name, root, s.prec(), s.compile, str(dev), "off",
                                 run_dir=run_dir)
        t0 = time.perf_counter()
        tr2 = bours.trainer_on_betons(cfg2, os.path.join(run_dir, "stream"))
        setup["mlpscale_stream"] = time.perf_counter() - t0
        _keep(tr2)
        drv2 = bours.StepDriver(tr2)
        variants.append(Variant("mlpscale_stream", lambda: drv2(s.steps), "info",
                                "same Trainer, FFCV streaming uint8 batches (data.resident=off)"))
    t0 = time.perf_counter()
    rstep = ref.ReferenceStep(s.arch, s.res, s.num_classes, CIFAR_MEAN, CIFAR_STD, dev)
    rl = _ref_loader(beton_path(root, name, "train", s.res), s.batch, s.res, dev)
    setup["reference"] = time.perf_counter() - t0
    if s.steps > len(rl):
        raise UserError(f"--steps {s.steps} is more than one epoch ({len(rl)} batches); raise --n-train")

    def reference():
        it = ref.iterate(rl)
        n = 0
        try:
            for _ in range(s.steps):
                x, lab = next(it)
                rstep(x, lab)
                n += len(x)
        finally:
            it.close()
        return n

    variants.append(Variant("reference", reference, "baseline",
                            "FFCV Loader: RandomResizedCrop decode + flip + ImageMixup/LabelMixup on the CPU "
                            "threads -> fp32 eager CHW MLP -> mixed CE -> Python LION"))
    cmp = Comparison("e2e", f"{s.arch} {s.res}px batch {s.batch} n={s.n_train} on {dev.type}", "img/s",
                     f"{s.steps} optimizer steps from a fresh epoch iterator, batches fetched inside the timer, "
                     f"closed by a device sync",
                     {"arch": s.arch, "res": s.res, "batch": s.batch, "num_classes": s.num_classes,
                      "n_train": s.n_train, "format": "raw", "precision": s.prec(), "compile": s.compile,
                      "device": str(dev), "steps": s.steps, "ffcv_threads": os.cpu_count()},
                     variants, s.reps, s.warmup, setup_s=setup)
    return compare(cmp, dev, log).to_json()


def suite_e2e(s: Sizes, log=print) -> list[dict]:
    miss = _ffcv_missing("e2e")
    if miss:
        return [miss]
    with _root(s) as root, tempfile.TemporaryDirectory(prefix="mlpscale-bench-run-") as run_dir:
        return [e2e_comparison(s, root, run_dir, log)]


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


# --- eval (TTA) -----------------------------------------------------------------------------

@torch.no_grad()
def tta_probs(model, aug: DeviceAugment, x_u8: torch.Tensor, crops: int, gen, autocast_dtype=None,
              chunk: int = 65536) -> torch.Tensor:
    """Mean softmax over `crops` random crops+flips per image, the crops of many images batched together.
    x_u8 (B, H, W, 3) -> (B, classes)."""
    b = len(x_u8)
    per = max(1, chunk // b)                      # crops per forward pass
    total = None
    for c0 in range(0, crops, per):
        k = min(per, crops - c0)
        xs = aug(x_u8.repeat(k, 1, 1, 1), gen)    # (k*B, r*r*3)
        ctx = torch.autocast(xs.device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
        with ctx:
            p = model(xs).float().softmax(-1).view(k, b, -1).sum(0)
        total = p if total is None else total + p
    return total / crops


def eval_comparison(s: Sizes, root: str | None, log=print) -> dict:
    """Test-time augmentation over a whole test split (n_test images, `tta_crops` random crops each):
    ours (split resident, all crops of a batch in one device pass) vs the reference (one pass of the CPU
    crop/flip loader per crop, fp32 eager forward, softmax summed per image)."""
    dev = s.dev()
    x_test, _ = _uint8_batch(s.n_test, s.res, s.num_classes, dev)
    model = MLP(s.arch, s.res, s.num_classes).to(dev).eval()
    aug = DeviceAugment(CIFAR_MEAN, CIFAR_STD, s.res, train=True, device=dev,
                        out_dtype=torch.bfloat16 if s.prec() == "bf16" else torch.float32)
    gen = torch.Generator(device=dev).manual_seed(0)
    amp = torch.bfloat16 if s.prec() == "bf16" else None

    def ours():
        for i in range(0, s.n_test, s.batch):
            tta_probs(model, aug, x_test[i:i + s.batch], s.tta_crops, gen, amp)
        return s.n_test

    variants = [Variant("mlpscale", ours, "ours", f"test split resident; {s.tta_crops} crops per image batched "
                                                  f"on the device, {s.prec()} forward")]
    if root is not None and bdata.ffcv_status() is None:
        sub = os.path.join(root, "raw")
        name = bdata.make_dataset(sub, s.n_train, s.n_test, s.res, s.num_classes, "raw")
        rl = _ref_loader(beton_path(sub, name, "test", s.res), s.batch, s.res, dev, mixup_alpha=0.0,
                         drop_last=False, order_random=False)
        rmodel = ref.ReferenceStep(s.arch, s.res, s.num_classes, CIFAR_MEAN, CIFAR_STD, dev)
        rmodel.model.eval()
        probs = torch.zeros(s.n_test, s.num_classes, device=dev)

        def reference():
            for _ in range(s.tta_crops):
                i = 0
                for x, _ in ref.iterate(rl):
                    probs[i:i + len(x)] += rmodel.predict(x)
                    i += len(x)
            return s.n_test

        variants.append(Variant("reference", reference, "baseline",
                                "one pass of the paper's CPU crop/flip loader per crop, fp32 eager CHW forward"))
    else:
        variants.append(Variant("reference", lambda: 0, "baseline", "reference TTA", skipped="FFCV cannot load"))
    cmp = Comparison("eval", f"TTA {s.tta_crops} crops {s.arch} {s.res}px n={s.n_test} on {dev.type}",
                     "img/s", f"{s.n_test} test images x {s.tta_crops} crops each, closed by a device sync",
                     {"arch": s.arch, "res": s.res, "batch": s.batch, "n_test": s.n_test, "crops": s.tta_crops,
                      "precision": s.prec(), "device": str(dev)}, variants, s.reps, s.warmup)
    return compare(cmp, dev, log).to_json()


def suite_eval(s: Sizes, log=print) -> list[dict]:
    with _root(s) as root:
        return [eval_comparison(s, root, log)]


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


SUITES = ["convert", "loader", "augment", "step", "e2e", "eval"]


def run_suite(name: str, s: Sizes, quick: bool, log=print) -> list[dict]:
    if name == "convert":
        return suite_convert(s, quick, log)
    return {"loader": suite_loader, "augment": suite_augment, "step": suite_step, "e2e": suite_e2e,
            "eval": suite_eval}[name](s, log)
