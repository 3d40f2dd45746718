"""The eval suite: test-time augmentation over a whole test split.

    mlpscale          `mlpscale.evaluate.evaluate(..., tta=TTA(N))` - the one implementation that
                      training, fine-tuning and `mlpscale-eval` use: the split resident, per batch the
                      centre view plus N random-resized crops + flips generated on the device and
                      scored in chunks of `TTA.views_per_chunk` views
    reference         the authors' `test_time_aug`: N passes over their augmenting FFCV test loader
                      (per-image CPU crop + flip), fp32 eager forward on the CHW flatten, softmax
                      moved to the host and summed per image
    bare_forward      (info) our model's forward + softmax over the same number of views per image
                      (N + the centre), already in memory: the ceiling of any TTA implementation
    reference_bare_forward  (info) the same for the reference model (fp32 eager, CHW; N views)

The unit is test images scored per second, each with N views (views/s = img/s x N). Ours also
computes the centre view's metrics in the same pass (the authors need a separate pass for those),
so ours does N + 1 forwards per image against the reference's N. Pipeline efficiency = TTA img/s /
bare-forward img/s, per recipe.
"""
from __future__ import annotations

import os

import torch

from mlpscale.augment import DeviceAugment
from mlpscale.beton import open_beton
from mlpscale.datasets import CIFAR_MEAN, CIFAR_STD
from mlpscale.evaluate import TTA, evaluate
from mlpscale.layout import beton_path
from mlpscale.loader import ResidentLoader, load_images
from mlpscale.models import MLP
from mlpscale.runtime import Runtime
from . import data as bdata
from . import reference as ref
from .common import beton_root, ref_loader
from .e2e import efficiency
from .timing import Comparison, Variant, compare, format_comparison


def tta_comparison(s, root: str | None, log=print, reference: bool | None = None) -> dict:
    dev = s.dev()
    sub = os.path.join(root, "raw")
    name = bdata.make_dataset(sub, s.n_train, s.n_test, s.res, s.num_classes, "raw")
    test_path = beton_path(sub, name, "test", s.res)
    rt = Runtime.create(str(dev), s.prec(), "off")
    b = open_beton(test_path)
    store, _ = load_images(b, dev)
    labels = torch.from_numpy(b.labels).to(dev)
    loader = ResidentLoader(store, labels, s.batch, 0, train=False)
    n, views = b.num_samples, s.tta_crops
    model = MLP(s.arch, s.res, s.num_classes).to(dev).eval()
    view = DeviceAugment(CIFAR_MEAN, CIFAR_STD, s.res, train=False, out_dtype=rt.input_dtype, device=dev)
    tta = TTA(views, average="probs", seed=0)
    torch.manual_seed(0)

    def ours() -> int:
        evaluate(model, loader, view, rt=rt, tta=tta)
        return n

    # the bare forward: the same number of forwards per image, on views already in memory, in chunks of
    # the size evaluate uses (TTA.views_per_chunk views per forward)
    chunk_rows = min(tta.views_per_chunk(s.batch, dev) * s.batch, n * (views + 1))
    g = torch.Generator().manual_seed(0)
    x_chunk = torch.randn((chunk_rows, model.dim_in), generator=g).to(dev, rt.input_dtype)

    @torch.no_grad()
    def forward_rows(fn, x, rows: int) -> None:
        acc = torch.zeros(s.num_classes, device=dev)
        for r0 in range(0, rows, len(x)):
            k = min(len(x), rows - r0)
            acc += fn(x[:k]).sum(0)

    def our_forward(x):
        with rt.autocast():
            return model(x).float().softmax(-1)

    def bare() -> int:
        forward_rows(our_forward, x_chunk, n * (views + 1))
        return n

    variants = [Variant("mlpscale", ours, "ours",
                        f"evaluate(tta=TTA({views})): split resident, centre + {views} crop/flip views per image "
                        f"made on the device, {s.prec()} forward, softmax averaged"),
                Variant("bare_forward", bare, "info",
                        f"our model's forward + softmax of {views + 1} in-memory views per image, chunks of "
                        f"{chunk_rows} rows")]
    if reference is None:
        reference = root is not None and bdata.ffcv_status() is None
    rstep = ref.ReferenceStep(s.arch, s.res, s.num_classes, CIFAR_MEAN, CIFAR_STD, dev)
    rstep.model.eval()
    if reference:
        # their test loader with augment=True (crop + flip, no MixUp outside training), made once and
        # iterated N times, as their test_time_aug does

        rl = ref_loader(test_path, s.batch, s.res, dev, mixup_alpha=0.0, drop_last=False, order_random=False)

        def reference_fn() -> int:
            probs = torch.zeros(n, s.num_classes)
            for _ in range(views):
                i = 0
                for x, _y in ref.iterate(rl):
                    probs[i:i + len(x)] += rstep.predict(x).cpu()
                    i += len(x)
            return n

        variants.append(Variant("reference", reference_fn, "baseline",
                                f"{views} passes of the authors' augmenting FFCV test loader (CPU crop + flip "
                                f"per image), fp32 eager CHW forward, softmax summed on the host"))
    else:
        variants.append(Variant("reference", lambda: 0, "baseline", "the authors' TTA",
                                skipped=f"FFCV cannot load ({bdata.ffcv_status()})"))
    xr = torch.randn((s.batch, 3, s.res, s.res), generator=g).mul(60).add(120).to(dev)

    def reference_bare() -> int:
        with torch.no_grad():
            for _ in range(views):
                for i in range(0, n, s.batch):
                    rstep.predict(xr[:min(s.batch, n - i)]).cpu()
        return n

    variants.append(Variant("reference_bare_forward", reference_bare, "info",
                            f"the reference model's forward + softmax of {views} in-memory batches per image"))
    cmp = Comparison("eval", f"TTA {views} views {s.arch} {s.res}px n={n} on {dev.type}", "img/s",
                     f"{n} test images x {views} views each (ours: + the centre view), closed by a device sync",
                     {"arch": s.arch, "res": s.res, "batch": s.batch, "n_test": n, "views": views,
                      "precision": s.prec(), "device": str(dev), "average": tta.average,
                      "max_rows": tta.max_rows, "views_per_s_factor": views},
                     variants, s.reps, s.warmup)
    out = compare(cmp, dev, None).to_json()
    vals = {k: v["values"] for k, v in out["variants"].items() if "values" in v}
    eff = {}
    if "bare_forward" in vals:
        eff["ours"] = efficiency(vals["mlpscale"], vals["bare_forward"])
    if "reference" in vals:
        eff["baseline"] = efficiency(vals["reference"], vals["reference_bare_forward"])
    out["pipeline_efficiency"] = {k: v["median"] for k, v in eff.items()}
    out["pipeline_efficiency_rounds"] = eff
    if log:
        log(format_comparison(out))
        log("  pipeline efficiency (TTA / bare forward): " + ", ".join(
            f"{k} {v['median']:.2f} (rounds {v['min']:.2f}-{v['max']:.2f})" for k, v in eff.items()))
        log("  views/s: " + ", ".join(f"{k} {v['median'] * views:,.0f}" for k, v in out["variants"].items()
                                       if "median" in v))
    return out


def suite_eval(s, log=print) -> list[dict]:

    with beton_root(s) as root:
        return [tta_comparison(s, root, log)]

