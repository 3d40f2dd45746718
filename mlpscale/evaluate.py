"""Evaluation, one implementation for training, fine-tuning and `mlpscale-eval`.

    mlpscale-eval RUN_DIR|CHECKPOINT [--dataset NAME --root ROOT --res R] [--tta N [--tta-average logits|probs]
                  [--tta-scale LO HI] [--tta-ratio LO HI]] [--real] [--set KEY=VALUE] [--out DIR] [--json]
                  [--filters filters.png [--no-eval]]

One pass over the evaluation split computes, per batch:
  * the centre view (the stored image resized to the model's resolution, normalised): top-1, top-5,
    mean cross-entropy;
  * with `tta=N`: N random-resized crops + flips per image, drawn with the run's training crop ranges
    and generated on the device as one batch per chunk of images (the authors' code re-reads its
    loader N times instead); the view logits are averaged (`logits`, the paper's description) or the
    softmax probabilities (`probs`, the authors' code), seeded by (seed, batch, chunk): reproducible;
  * with ReaL labels (ImageNet-1k, Beyer et al. 2020): a top-1 prediction is right if it is in the
    image's set of ReaL labels; images whose set is empty are left out (`real_n_images` counts the rest).
Under DDP every rank evaluates its share and the sums are all-reduced.

Both scorings are always reported side by side (`EvalResult`): TTA with logits averaged
(`tta_top1_logits`, the paper's text) and with probabilities averaged (`tta_top1_probs`, the authors'
code, which the paper's Table 2 numbers came from), from the same views; ReaL over the images that have
ReaL labels (`real_top1`, Beyer et al.) and over all images (`real_top1_all_images`, the authors'
`real_acc`). A paper-layout split (canvases with true sizes, `hw`) draws its TTA crops inside each
image and its centre view is FFCV's centred square.

`mlpscale-eval` reads only the evaluation split and writes `eval.json` next to the checkpoint (or into
`--out DIR`): `top1`, `top5` (percent), `loss`, `n_images`; with `--tta`: the TTA scores above, `tta_top1`
(the `--tta-average` one), `tta_views`, `tta_scale`, `tta_ratio`; with `--real`: the ReaL scores and
`real_n_images`; and where the numbers come from: `checkpoint`, `arch`, `model_res`, `dataset`, `split`,
`res`. An earlier evaluation stays in the file: `evaluations` holds one entry per option set.
`--tta-scale LO HI --tta-ratio LO HI` replace the crop ranges TTA draws from (default: the run's, which
for an imported fine-tuned release are its fine-tuning crops). `--filters PNG` draws the first layer
from the weights alone; with `--no-eval` no data is read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import cli
from .augment import DeviceAugment, center_boxes, crop_resize, normalize_flatten, sample_boxes
from .checkpoint import find_checkpoint, load_checkpoint, model_from_checkpoint
from .config import MAX_RES, MAX_TTA
from .distributed import all_reduce_sum
from .errors import UserError, cli_entry, int_range
from .runtime import Runtime


@dataclass
class TTA:
    views: int = 100
    average: str = "logits"            # logits (the paper) | probs (the authors' code)
    scale: tuple = (0.08, 1.0)         # crop area range (the run's training range)
    ratio: tuple = (0.75, 4 / 3)
    flip: bool = True
    crop: bool = True
    seed: int = 0
    max_rows: int = 0                  # rows (views x images) per forward; 0 = by device (8192 GPU, 1 view CPU)

    @classmethod
    def of_run(cls, views: int, average: str, aug, seed: int, variable_size: bool, option: str,
               scale=None, ratio=None) -> "TTA | None":
        """The TTA of a run: `views` crops drawn with its training crop ranges (`aug`, an AugConfig;
        `scale`/`ratio` replace them), or None for views=0. `option` names the setting in the error for
        datasets of several image sizes."""
        if not views:
            return None
        if variable_size:
            raise UserError(f"{option} needs the crops on the device, but this dataset's images vary in size (the "
                            f"authors' converter wrote it) and FFCV crops them on the CPU; re-convert it with "
                            f"mlpscale-convert --layout paper (the same pixels, in fixed-size canvases)")
        return cls(views, average, tuple(scale or aug.crop_scale), tuple(ratio or aug.crop_ratio), aug.flip, seed=seed)

    def views_per_chunk(self, batch: int, device) -> int:
        """Views resampled and forwarded together for a batch of `batch` images (see _tta_logits)."""
        rows = self.max_rows or (8192 if torch.device(device).type == "cuda" else 1)
        return max(1, rows // max(1, batch))


def real_label_matrix(real: list, device) -> torch.Tensor:
    """ReaL label lists -> (N, L) int64, padded with -1 (L = the longest list; empty lists all -1)."""
    width = max(1, max((len(r) for r in real), default=1))
    m = np.full((len(real), width), -1, dtype=np.int64)
    for i, r in enumerate(real):
        m[i, :len(r)] = r
    return torch.from_numpy(m).to(device)


def real_hits(pred: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(hits, counted) for top-1 predictions (B,) against ReaL label rows (B, L): a hit is a prediction in
    its image's set; images with an empty set are not counted."""
    counted = (labels >= 0).any(dim=1)
    hit = (labels == pred[:, None]).any(dim=1) & counted
    return hit.sum(), counted.sum()


def _view_randomness(tta: TTA, batch_index: int, view: int, b: int, h, w, gen: torch.Generator, device):
    """Flip flags and crop boxes of one view of a batch: a pure function of (seed, batch, view), so the
    result does not depend on how views are chunked (or on the device's chunk size). `h`, `w`: ints, or
    (B,) tensors of the paper layout's true image sizes."""
    gen.manual_seed(int(np.random.SeedSequence([tta.seed, batch_index, view]).generate_state(1, np.uint64)[0] >> 1))
    flip = torch.rand(b, generator=gen, device=device) < 0.5 if tta.flip else None
    boxes = sample_boxes(b, h, w, tta.scale, tta.ratio, gen, device) if tta.crop else None
    return flip, boxes


def _tta_logits(model, x_u8: torch.Tensor, tta: TTA, mean, std, out_res: int, out_dtype, rt: Runtime,
                gen: torch.Generator, batch_index: int, hw: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean logits, mean softmax probabilities) over tta.views random views of each image of x_u8
    (B, H, W, 3): the paper's average and the authors' code's, from the same views and forwards.
    `hw` (B, 2): true image sizes of paper-layout canvases (crops stay inside each image).

    Views are resampled in chunks of about `tta.max_rows` rows (one batched grid_sample and forward per
    chunk): 8192 on GPUs; on CPUs one view per chunk, which keeps the intermediates in cache
    (faster per view than large chunks there)."""
    b, h, w, _ = x_u8.shape
    if hw is not None:
        h, w = hw[:, 0], hw[:, 1]
    x = x_u8.permute(0, 3, 1, 2).float()                          # (B, 3, H, W)
    per_chunk = tta.views_per_chunk(b, x.device)
    acc_logits = acc_probs = None
    for v0 in range(0, tta.views, per_chunk):
        nv = min(per_chunk, tta.views - v0)
        rnd = [_view_randomness(tta, batch_index, v, b, h, w, gen, x.device) for v in range(v0, v0 + nv)]
        xs = x if nv == 1 else x.repeat(nv, 1, 1, 1)              # (nv*B, 3, H, W), view-major
        flip = torch.cat([f for f, _ in rnd]) if tta.flip else None
        if tta.crop:
            xs = crop_resize(xs, torch.cat([bx for _, bx in rnd]), flip, out_res)
        elif hw is not None:  # flips of the centred square
            xs = crop_resize(xs, center_boxes(hw).repeat(nv, 1), flip, out_res)
        else:
            if flip is not None:
                xs = torch.where(flip[:, None, None, None], xs.flip(3), xs)
            if xs.shape[-1] != out_res:
                xs = F.interpolate(xs, size=(out_res, out_res), mode="bilinear", antialias=True, align_corners=False)
        with rt.autocast():
            logits = model(normalize_flatten(xs, mean, std).to(out_dtype)).float()
        part_l = logits.view(nv, b, -1).sum(0)
        part_p = logits.softmax(-1).view(nv, b, -1).sum(0)
        acc_logits = part_l if acc_logits is None else acc_logits + part_l
        acc_probs = part_p if acc_probs is None else acc_probs + part_p
    return acc_logits / tta.views, acc_probs / tta.views


@dataclass
class EvalResult:
    """The scores of one evaluation pass (percentages; `loss` is the mean cross-entropy).

    Both scorings side by side: tta_top1_logits / tta_top1_probs average the views' logits (the paper's
    text) / softmax probabilities (the authors' code); tta_top1 repeats the one `tta_average` names.
    real_top1 is Beyer et al.'s ReaL accuracy (images with an empty label set left out; real_n_images
    counts the rest); real_top1_all_images the authors' `real_acc` (every image counts, an empty set
    is a miss)."""
    top1: float
    top5: float
    loss: float
    n_images: int
    tta_top1: float | None = None      # with tta
    tta_top5: float | None = None
    tta_views: int | None = None
    tta_average: str | None = None
    tta_top1_logits: float | None = None
    tta_top5_logits: float | None = None
    tta_top1_probs: float | None = None
    tta_top5_probs: float | None = None
    real_top1: float | None = None     # with real
    real_top1_all_images: float | None = None
    real_n_images: int | None = None
    tta_real_top1: float | None = None  # with both
    tta_real_top1_logits: float | None = None
    tta_real_top1_probs: float | None = None
    tta_real_top1_logits_all_images: float | None = None
    tta_real_top1_probs_all_images: float | None = None

    def to_dict(self) -> dict:
        """The scores that were computed, as eval.json holds them."""
        return {k: v for k, v in asdict(self).items() if v is not None}


# the sums evaluate() accumulates on the device, all-reduced in one call
_SUMS = ("top1", "top5", "loss", "n", "real_hits", "real_n",
         "tta_top1_logits", "tta_top5_logits", "tta_top1_probs", "tta_top5_probs",
         "tta_real_hits_logits", "tta_real_hits_probs")


@torch.no_grad()
def evaluate(model, loader, view, *, rt: Runtime, tta: TTA | None = None,
             real: torch.Tensor | None = None) -> EvalResult:
    """Scores of `model` over one epoch of `loader` (see the module docstring).

    `view(x_u8[, gen, hw]) -> model input` makes the centre view (a DeviceAugment(train=False), or the
    identity for cached features); `tta` needs a DeviceAugment view, whose normalisation and resolution
    its views share. `real` is the (N, L) ReaL label matrix of the split, rows in sample order.
    """
    if tta is not None and not isinstance(view, DeviceAugment):
        raise TypeError("evaluate(tta=...) needs a DeviceAugment view (its mean, std and resolution)")
    was_training = model.training
    model.eval()
    sums = torch.zeros(len(_SUMS), device=rt.device, dtype=torch.float64)
    at = {k: i for i, k in enumerate(_SUMS)}
    order = torch.from_numpy(loader.order(0)) if real is not None else None
    gen = torch.Generator(device=rt.device)
    seen = 0
    for i, (x_u8, y, *hw) in enumerate(loader.epoch(0)):
        hw = hw[0] if hw else None  # paper layout: each image's true (h, w) in its canvas
        x = view(x_u8) if hw is None else view(x_u8, None, hw)
        with rt.autocast():
            logits = model(x).float()
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        sums[at["top1"]] += (top[:, 0] == y).sum()
        sums[at["top5"]] += (top == y[:, None]).any(dim=1).sum()
        sums[at["loss"]] += F.cross_entropy(logits, y, reduction="sum")
        sums[at["n"]] += len(y)
        if real is not None:
            rows = real[order[seen:seen + len(y)].to(rt.device)]
            h, n = real_hits(top[:, 0], rows)
            sums[at["real_hits"]] += h
            sums[at["real_n"]] += n
        if tta is not None:
            stored = view.stored(x_u8) if hasattr(view, "stored") else x_u8   # data.permute_pixels
            averages = _tta_logits(model, stored, tta, view.mean, view.std, view.out_res, x.dtype, rt, gen, i, hw)
            for avg, name in zip(averages, ("logits", "probs")):
                ttop = avg.topk(top.shape[1], dim=1).indices
                sums[at[f"tta_top1_{name}"]] += (ttop[:, 0] == y).sum()
                sums[at[f"tta_top5_{name}"]] += (ttop == y[:, None]).any(dim=1).sum()
                if real is not None:
                    sums[at[f"tta_real_hits_{name}"]] += real_hits(ttop[:, 0], rows)[0]
        seen += len(y)
    model.train(was_training)
    s = dict(zip(_SUMS, all_reduce_sum(sums).tolist()))
    n = max(1.0, s["n"])
    out = EvalResult(top1=100 * s["top1"] / n, top5=100 * s["top5"] / n, loss=s["loss"] / n, n_images=int(s["n"]))
    if tta is not None:
        for name in ("logits", "probs"):
            setattr(out, f"tta_top1_{name}", 100 * s[f"tta_top1_{name}"] / n)
            setattr(out, f"tta_top5_{name}", 100 * s[f"tta_top5_{name}"] / n)
        out.tta_top1, out.tta_top5 = getattr(out, f"tta_top1_{tta.average}"), getattr(out, f"tta_top5_{tta.average}")
        out.tta_views, out.tta_average = tta.views, tta.average
    if real is not None:
        rn = max(1.0, s["real_n"])
        out.real_top1, out.real_n_images = 100 * s["real_hits"] / rn, int(s["real_n"])
        out.real_top1_all_images = 100 * s["real_hits"] / n
        if tta is not None:
            for name in ("logits", "probs"):
                setattr(out, f"tta_real_top1_{name}", 100 * s[f"tta_real_hits_{name}"] / rn)
                setattr(out, f"tta_real_top1_{name}_all_images", 100 * s[f"tta_real_hits_{name}"] / n)
            out.tta_real_top1 = getattr(out, f"tta_real_top1_{tta.average}")
    return out


def option_key(r: dict) -> str:
    """The options an evaluation ran with, as one readable key of eval.json's `evaluations`."""
    key = f"{r.get('dataset')}/{r.get('split')} at {r.get('res', r.get('model_res'))}px"
    if "tta_views" in r:
        key += f", tta {r['tta_views']} scale {r.get('tta_scale')} ratio {r.get('tta_ratio')} seed {r.get('tta_seed')}"
    if "real_top1" in r:
        key += ", real"
    return key


def record_eval(path: str, r: dict) -> dict:
    """Write evaluation `r` to eval.json at `path` without losing earlier ones: the file's top level is
    the latest result, and `evaluations` keeps one entry per option set (`option_key`)."""
    from .io import write_json_atomic

    old = {}
    if os.path.exists(path):
        try:
            with open(path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = {}
    entries = dict(old.get("evaluations") or {}) if isinstance(old, dict) else {}
    if isinstance(old, dict) and "top1" in old and not entries:  # a file with one result and no list
        entries[option_key(old)] = old
    entries[option_key(r)] = {**r, "options": option_key(r)}
    out = {**r, "options": option_key(r), "evaluations": entries}
    write_json_atomic(path, out)
    return out


def load_real_labels(root: str, name: str, res: int, device) -> torch.Tensor:
    """The ReaL label matrix stored by `mlpscale-convert imagenet1k --real` next to the val beton."""
    from .layout import read_meta, sidecar_path

    meta = read_meta(root, name, res) or {}
    path = (os.path.join(root, name, meta["real_labels"]) if "real_labels" in meta
            else sidecar_path(root, name, "real_labels", res))
    if not os.path.exists(path):
        raise UserError(f"--real needs {path}: convert ImageNet-1k with `mlpscale-convert imagenet1k ... --real "
                        f"real.json` (the ReaL labels of Beyer et al. 2020)")
    with open(path) as f:
        return real_label_matrix(json.load(f), device)


# --- the CLI ------------------------------------------------------------------------------------------

def _filter_args(ck: dict, meta: dict, unpermute: bool, path: str) -> tuple:
    """(model, n, title, perm) for draw_filters; a pixel-permuted run is drawn as the model saw its pixels, or
    with `unpermute` in the images' own order."""
    from .augment import pixel_permutation

    model = model_from_checkpoint(ck, "cpu")
    if not hasattr(model, "linear_in"):
        raise UserError(f"--filters draws an MLP's first layer; {meta['arch']} has none")
    data = (ck.get("config") or {}).get("data") or {}
    seed = int(data.get("permute_pixels") or 0)
    title = f"{meta['arch']} first layer ({meta['res']}px)"
    if not seed:
        if unpermute:
            raise UserError(f"--unpermute: {path} was not trained on pixel-permuted images "
                            f"(data.permute_pixels is off)")
        return model, 64, title, None
    if not unpermute:
        return model, 64, title + f", pixels permuted (seed {seed}) as the model saw them", None
    stored = int(data.get("res") or 0) or meta["res"]
    if stored != meta["res"]:
        raise UserError(f"--unpermute needs the model to see the stored {stored}px images unresized; {path} takes "
                        f"{meta['res']}px inputs, so its first layer has no pixel-for-pixel order to map back")
    return model, 64, title + f", pixel permutation (seed {seed}) undone", pixel_permutation(seed, stored, stored)


WHAT = "Evaluate a trained or imported model on a converted dataset: top-1/top-5, TTA, ImageNet ReaL."
EXAMPLE = "mlpscale-eval runs/demo_digits --tta 10"
DETAILS = """\
Reads only the evaluation split and writes eval.json next to the checkpoint (or into --out DIR): top1,
top5 (percent), loss, n_images; with --tta both scorings, logits averaged (the paper's text) and
probabilities averaged (the authors' code), tta_top1 being the --tta-average one; real_top1 and
real_n_images with --real; and where the numbers come from (checkpoint, arch, dataset, split, res).
An earlier evaluation stays in the file, one entry per option set. The run's config says
where its data are; --dataset, --root, --res and --set change it (--set data.workers=4). The eval
section starts from its defaults: --tta, --tta-average and --real are the same as --set eval.tta=N,
eval.tta_average=... and eval.real=true. --filters PNG draws the first layer's units from the weights
alone; with --no-eval no data are read."""


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser("mlpscale-eval", WHAT, EXAMPLE, DETAILS)
    p.add_argument("source", metavar="RUN_DIR|CHECKPOINT", help="a run folder (last.pt / model.pt) or a .pt file")
    cli.add(p, "--dataset", "default: the run's data.dataset")
    cli.add(p, "--root", "default: the run's data.root")
    cli.add(p, "--res", "that of the stored images (default: the run's data.res)", type=int_range(1, MAX_RES))
    cli.add(p, "--set", "applied to the run's config")
    p.add_argument("--tta", type=int_range(0, MAX_TTA), default=None, metavar="N",
                   help=f"also score N random crops + flips per image (at most {MAX_TTA}; the paper: 100)")
    p.add_argument("--tta-average", choices=["logits", "probs"], default=None,
                   help="average logits (the paper) or probabilities (the authors' code); default logits")
    p.add_argument("--tta-seed", type=int, default=0, metavar="S",
                   help="seed of the TTA crops and flips: the same seed scores the same views (default 0)")
    p.add_argument("--tta-scale", type=float, nargs=2, metavar=("LO", "HI"),
                   help="crop area range of the TTA views (default: the run's aug.crop_scale)")
    p.add_argument("--tta-ratio", type=float, nargs=2, metavar=("LO", "HI"),
                   help="crop aspect-ratio range of the TTA views (default: the run's aug.crop_ratio)")
    p.add_argument("--real", action="store_true", default=None,
                   help="ImageNet ReaL accuracy (the converter's real_labels_<res>.json)")
    cli.add(p, "--batch-size", "default 512", type=int_range(1, 1 << 20), default=512)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    cli.add(p, "--out", "eval.json goes there (default: the checkpoint's folder)")
    cli.add(p, "--json", "eval.json is written either way")
    p.add_argument("--filters", metavar="PNG", help="also draw the first layer's largest-norm units into this image")
    p.add_argument("--no-eval", action="store_true", help="only draw --filters: read no data, write no eval.json")
    p.add_argument("--unpermute", action="store_true",
                   help="--filters of a run on pixel-permuted images (data.permute_pixels): draw each unit in the "
                        "images' own pixel order (default: the permuted order the model saw)")
    cli.deprecate(p, "--data", "--dataset")
    cli.deprecate(p, "--batch", "--batch-size")
    return p


def eval_json_path(out: str | None, checkpoint: str) -> str:
    """Where eval.json goes: into --out DIR, or next to the checkpoint. The previous release's
    `--out FILE.json` still names the file itself, with a note."""
    if out is None:
        return os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "eval.json")
    if out.endswith(".json") and not os.path.isdir(out):
        print(cli.deprecation_note("--out FILE.json", "--out DIR (eval.json is written inside it)"), file=sys.stderr)
        return out
    if os.path.exists(out) and not os.path.isdir(out):
        raise UserError(f"--out {out} is a file; pass a folder (eval.json is written inside it)")
    return os.path.join(out, "eval.json")


def eval_config(ck: dict, path: str, a):
    """The run's config with the command line applied: eval.* from their defaults, then --set, then the
    flags (--dataset, --root, --res, --tta, --tta-average, --real); checked like a config file."""
    from .config import Config, EvalConfig, apply_overrides, check, config_from_dict, from_dict, to_dict

    raw = to_dict(config_from_dict(ck["config"], where=path) if ck.get("config") else Config())
    raw["eval"] = to_dict(EvalConfig())
    given = apply_overrides(raw, a.set, {
        "data.dataset": ("--dataset", a.dataset), "data.root": ("--root", a.root), "data.res": ("--res", a.res),
        "eval.tta": ("--tta", a.tta), "eval.tta_average": ("--tta-average", a.tta_average),
        "eval.real": ("--real", a.real)})
    cfg = from_dict(Config, raw, path)
    check(cfg, path, given)
    return cfg


@cli_entry
def main(argv=None):
    from .data import build_data

    a = build_parser().parse_args(argv)
    if a.no_eval and not a.filters:
        raise UserError("--no-eval leaves nothing to do without --filters PNG")
    if a.unpermute and not a.filters:
        raise UserError("--unpermute changes how --filters draws the first layer; pass --filters PNG too")
    path = find_checkpoint(a.source)
    ck = load_checkpoint(path)
    meta = ck["model_meta"]
    if a.filters:  # the weights alone: drawn before (and without, with --no-eval) any data
        from .filters import draw_filters

        model, n, title, perm = _filter_args(ck, meta, a.unpermute, path)
        draw_filters(model, a.filters, n, title, perm)
        if a.no_eval:
            print(f"wrote {a.filters}")
            return
    cfg = eval_config(ck, path, a)
    cfg.data.crop_res = meta["res"]
    cfg.data.n_train = 0
    if meta.get("mean"):  # the checkpoint's own statistics are used (below): the run's data.stats cannot refuse
        cfg.data.stats = "auto"
    rt = Runtime.create(a.device, cfg.train.precision, "off")
    model = model_from_checkpoint(ck, rt.device)
    data = build_data(cfg, rt, a.batch_size, eval_only=True)
    if data.info.num_classes != meta["num_classes"]:
        raise UserError(f"{path} predicts {meta['num_classes']} classes but {data.info.name} has "
                        f"{data.info.num_classes}; fine-tune it on {data.info.name} first (mlpscale-finetune)")
    mean, std = (meta["mean"], meta["std"]) if meta.get("mean") else (data.mean, data.std)
    view = DeviceAugment(mean, std, meta["res"], train=False, out_dtype=rt.input_dtype, device=rt.device,
                         permute=cfg.data.permute_pixels)
    tta = TTA.of_run(cfg.eval.tta, cfg.eval.tta_average, cfg.aug, a.tta_seed, data.cropped_on_cpu, "--tta",
                     a.tta_scale, a.tta_ratio)
    real = load_real_labels(cfg.data.root, data.info.name, data.res, rt.device) if cfg.eval.real else None
    res = evaluate(model, data.eval, view, rt=rt, tta=tta, real=real).to_dict()
    res.update(checkpoint=os.path.abspath(path), dataset=data.info.name, split=data.info.eval_split,
               res=data.res, model_res=meta["res"], arch=meta["arch"])
    if tta is not None:
        res.update(tta_scale=list(tta.scale), tta_ratio=list(tta.ratio), tta_seed=tta.seed)
    out = eval_json_path(a.out, path)
    record_eval(out, res)
    if a.json:
        print(json.dumps(res))
    else:
        line = f"{meta['arch']} on {data.info.name}/{data.info.eval_split}: top-1 {res['top1']:.2f}%, " \
               f"top-5 {res['top5']:.2f}%, loss {res['loss']:.4f} ({res['n_images']} images)"
        if tta is not None:
            line += (f"; TTA x{tta.views} top-1 {res['tta_top1_logits']:.2f}% (logits averaged, the paper) / "
                     f"{res['tta_top1_probs']:.2f}% (probabilities averaged, the authors' code)")
        if real is not None:
            line += (f"; ReaL top-1 {res['real_top1']:.2f}% "
                     f"(Beyer et al.: {res['real_n_images']} images with labels) / "
                     f"{res['real_top1_all_images']:.2f}% (the authors' real_acc: all {res['n_images']} images)")
        print(line)
        print(f"wrote {out}" + (f" and {a.filters}" if a.filters else ""))


if __name__ == "__main__":
    main()
