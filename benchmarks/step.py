"""`step` suite: one optimizer step, data already on the device - ours (Trainer.train_step) vs the
paper's recipe (fp32 eager, per-parameter Python LION)."""
from __future__ import annotations

import tempfile

from mlpscale.datasets import CIFAR_MEAN, CIFAR_STD

from . import ours as bours
from . import reference as ref
from .common import Sizes, uint8_batch
from .timing import Comparison, Variant, compare


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
    x_u8, y = uint8_batch(n, s.res, s.num_classes, dev)
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
