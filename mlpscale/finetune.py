"""`mlpscale-finetune [--config X.yaml] --set finetune.from=SOURCE [--set ...] [--resume RUN_DIR] [--overwrite]`.

Transfer a pre-trained MLP to another dataset with the training loop of `mlpscale-train` (same
config system, run folder, metrics, checkpoints, `--resume`, DDP, speed paths). `finetune.from` is
a run folder, one of our checkpoints, or a paper checkpoint file (`model.arch` names its
architecture; `finetune.source_res` / `source_classes` its input size and head). The head is
replaced by a fresh one for the target dataset, and the model always sees the checkpoint's
resolution: smaller target images (CIFAR's 32px for a 64px model) are upsampled on the device
inside the augmentation, once per batch.

Two modes:
  full   all weights train; the head at optim.lr, the body at optim.lr x finetune.body_lr_mult.
         Defaults (RECIPES) are the authors' recipe: SGD momentum 0.9, lr 0.01, body
         x0.1, 100 epochs, batch 2048, crop scale (0.4, 1) ratio (1, 1) + flip, label smoothing 0.3,
         gradient clipping 1.0, no MixUp, constant learning rate.
  linear a linear probe: the body is frozen (eval mode, no gradients; its weights end bit-identical)
         and only the head trains. Defaults: the paper's probe, LION lr 1e-5 for 50 epochs, batch
         2048, augmentation off. Two ways to run it:
           - cached features (`finetune.cache_features: auto` picks it when augmentation is off and
             the data are resident): the body runs once over each split on the device, and the head
             trains on the stored (N, width) features with the same batches, order and updates: the
             same result as the other way (up to float rounding), and orders of magnitude faster;
           - forward every epoch (augmentation on): the body runs forward-only under no_grad on
             every augmented batch, the head trains on its output.
         `finetune.solver: lbfgs` fits the head exactly instead, as the field's standard linear
         evaluation does: multinomial logistic regression by full-batch L-BFGS on the cached
         features, its L2 strength picked from `LBFGS_L2` on a held-out 20% of the training split,
         then refitted on all of it (no learning rate, no epochs). The paper's recipe stays
         `solver: paper`; on small data it can end near chance, and a probe within 2 points of the
         majority-class rate prints a warning (and `probe_warning` in summary.json).
A target stored above the checkpoint's resolution is shrunk to it on the device: said in the run's
first line and in summary.json (`target_res_shrunk`).
A config file sets anything else, and `--set` overrides both.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from . import train
from .checkpoint import PlainStateDict, find_checkpoint, load_checkpoint, model_from_checkpoint, model_meta
from .config import Config
from .data import Data
from .datasets import IMAGENET_MEAN, IMAGENET_STD
from .errors import UserError, cli_entry
from .loader import ImageStore, ResidentLoader
from .models import MLP
from .runtime import auto_on_off
from .train import Trainer, augment_views, dataset_info, parse_args, report, run

RECIPES = {
    "full": {"optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 0.0, "schedule": "constant",
                       "label_smoothing": 0.3, "grad_clip": 1.0},
             "aug": {"enabled": True, "crop_scale": [0.4, 1.0], "crop_ratio": [1.0, 1.0], "flip": True, "mixup": 0.0},
             "train": {"epochs": 100, "batch_size": 2048}},
    "linear": {"optim": {"name": "lion", "lr": 1e-5, "weight_decay": 0.0, "schedule": "constant",
                         "label_smoothing": 0.3, "grad_clip": 1.0},
               "aug": {"enabled": False, "mixup": 0.0},
               "train": {"epochs": 50, "batch_size": 2048}},
}


LBFGS_L2 = tuple(10.0 ** k for k in range(-6, 2))  # L2 strengths tried (mean loss + l2/2 |W|^2)
LBFGS_HELD_OUT = 0.2


def fit_logistic(x: torch.Tensor, y: torch.Tensor, num_classes: int, l2: float, max_iter: int = 500):
    """Multinomial logistic regression: argmin_W,b mean CE(x W^T + b, y) + l2/2 |W|^2 by full-batch
    L-BFGS (strong Wolfe line search). The same objective as scikit-learn's LogisticRegression with
    C = 1 / (l2 * N). Returns (W (C, D), b (C,)), float32."""
    x = x.float()
    w = torch.zeros((num_classes, x.shape[1]), device=x.device, requires_grad=True)
    b = torch.zeros(num_classes, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, history_size=20, tolerance_grad=1e-6,
                            tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(torch.addmm(b, x, w.t()), y) + 0.5 * l2 * w.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    return w.detach(), b.detach()


def lbfgs_probe(x: torch.Tensor, y: torch.Tensor, num_classes: int,
                seed: int) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Pick the L2 strength on a held-out part of (x, y), refit on all of it: (W, b, report)."""
    n = len(y)
    perm = torch.from_numpy(np.random.default_rng([seed, 1]).permutation(n)).to(x.device)
    k = max(1, int(round(n * LBFGS_HELD_OUT)))
    held, fit_rows = perm[:k], perm[k:]
    scores = {}
    for l2 in LBFGS_L2:
        w, b = fit_logistic(x[fit_rows], y[fit_rows], num_classes, l2)
        pred = torch.addmm(b, x[held].float(), w.t()).argmax(1)
        scores[l2] = float((pred == y[held]).float().mean()) * 100
    best = max(scores.values())
    l2 = max(v for v, s in scores.items() if s == best)  # ties: the stronger regularisation
    w, b = fit_logistic(x, y, num_classes, l2)
    return w, b, {"probe_solver": "lbfgs", "probe_l2": l2, "probe_held_out_top1": scores,
                  "probe_held_out_images": k}


def recipe(raw: dict) -> dict:
    """The defaults of the mode the file (or --set) asks for (config.load_config's `recipe`)."""
    mode = ((raw.get("finetune") or {}).get("mode")) or "full"
    return {**RECIPES.get(mode, RECIPES["full"]), "run": {"name": f"finetune_{mode}"}}


def load_source(cfg: Config) -> tuple[MLP, dict]:
    """The pre-trained model named by finetune.from, and its model_meta (input contract, statistics)."""
    f = cfg.finetune
    if not f.from_:
        raise UserError("fine-tuning needs a starting point: set finetune.from to a run folder, a checkpoint, or a "
                        "paper checkpoint file (e.g. --set finetune.from=runs/bmlp12)")
    path = find_checkpoint(f.from_)
    try:
        ck = load_checkpoint(path)
        return model_from_checkpoint(ck, "cpu"), ck["model_meta"]
    except PlainStateDict:
        from .paper import FINETUNE_FLAGS, from_paper_checkpoint

        model = from_paper_checkpoint(path, cfg.model.arch, f.source_res, f.source_classes, FINETUNE_FLAGS)
        return model, model_meta(model, "gelu", model.norm_kind, "imagenet21k", IMAGENET_MEAN, IMAGENET_STD)


@dataclass
class Source:
    """The model a fine-tuning run trains (the pre-trained body with the target's head) and the
    model_meta of the checkpoint it came from."""
    model: MLP
    meta: dict


def resolve_source(cfg: Config, checkpoint: dict | None, data_fn=None) -> Source:
    """The model to fine-tune, before the run folder is prepared: from the run's own last.pt on resume
    (`checkpoint`), else finetune.from with a new head for the target dataset. Completes `cfg` with what
    the checkpoint fixes (model.arch, act, norm; data.crop_res), so config.yaml records it."""
    if checkpoint is not None:
        model, meta = model_from_checkpoint(checkpoint, "cpu"), checkpoint["model_meta"]
    else:
        torch.manual_seed(cfg.train.seed)  # the new head, like a model the trainer builds, starts from the seed
        model, meta = load_source(cfg)
        model.replace_head(dataset_info(cfg, data_fn).num_classes)
    if cfg.data.crop_res and cfg.data.crop_res != model.res:
        raise UserError(f"the checkpoint takes {model.res}px inputs; leave data.crop_res unset "
                        f"(smaller images are upsampled to {model.res}px on the device)")
    cfg.data.crop_res = model.res
    cfg.model.arch, cfg.model.act, cfg.model.norm = model.spec.name, meta.get("act", "gelu"), meta.get("norm", "layer")
    shrunk = shrunk_target(cfg, model.res, data_fn)
    if shrunk and int(os.environ.get("RANK", "0")) == 0:  # the run's first line: the images lose resolution
        print(f"note: {shrunk} on the device (the model sees no more)", flush=True)
    return Source(model, meta)


def shrunk_target(cfg: Config, model_res: int, data_fn=None) -> str | None:
    """Says so when the target dataset is stored above the checkpoint's resolution (None otherwise)."""
    info = dataset_info(cfg, data_fn)
    stored = cfg.data.res or info.default_res
    if not stored or stored <= model_res:
        return None
    return (f"{info.name} is stored at {stored}px, above the checkpoint's {model_res}px: every image is shrunk to "
            f"{model_res}px")


class Probe(nn.Module):
    """A frozen body (always in eval mode, run under no_grad) feeding a trainable linear head."""

    def __init__(self, model: MLP):
        super().__init__()
        self.model = model
        for name, p in model.named_parameters():
            p.requires_grad = name.startswith("linear_out.")
        self.train()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = self.model.features(x)                 # (B, width)
        return self.model.linear_out(z)

    def train(self, mode: bool = True):
        super().train(mode)
        for name, m in self.model.named_children():   # the body (batch-norm statistics stay as they were)
            if name != "linear_out":
                m.eval()
        return self


class Finetuner(Trainer):
    """The training loop with a pre-trained body, a new head and the mode's parameters and data.

    Built in the trainer's order: the source model (resolved before the run folder, `resolve`) ->
    the trained module (the model, or a frozen-body `Probe`) -> optimizer (head, and body at its own
    rate) -> data (then, for a linear probe whose inputs do not change, the body's features of every
    image, once: `cache_features`) -> views (the identity on cached features) -> the module the train
    view feeds (the head alone on cached features).
    """

    def __init__(self, cfg: Config, run_dir: str, data_fn=None, *, checkpoint: dict | None = None,
                 source: Source | None = None):
        if source is None:
            source = resolve_source(cfg, checkpoint, data_fn)
        super().__init__(cfg, run_dir, data_fn, model=source.model, checkpoint=checkpoint)
        self.source_meta = source.meta

    @classmethod
    def resolve(cls, cfg: Config, checkpoint: dict | None) -> dict:
        return {"source": resolve_source(cfg, checkpoint)}

    def trained_module(self, full: MLP) -> nn.Module:
        return full if self.cfg.finetune.mode == "full" else Probe(full)

    def param_groups(self) -> list[dict]:
        head = [p for n, p in self.full.named_parameters() if n.startswith("linear_out.")]
        if self.cfg.finetune.mode == "linear":
            return [{"params": head, "lr_mult": 1.0}]
        body = [p for n, p in self.full.named_parameters() if not n.startswith("linear_out.")]
        return [{"params": head, "lr_mult": 1.0}, {"params": body, "lr_mult": self.cfg.finetune.body_lr_mult}]

    def build_data(self, reserve_bytes: int) -> Data:
        data = super().build_data(reserve_bytes)
        self.cached = self.use_cached_features(data)
        if self.cfg.finetune.solver == "lbfgs" and not self.cached:
            raise UserError("finetune.solver=lbfgs fits the head on cached body features, which need "
                            "finetune.mode=linear, aug.enabled=false, eval.tta=0 and the data in memory "
                            "(data.resident=auto or on); change those, or use finetune.solver=paper")
        return self.cache_features(data) if self.cached else data

    def use_cached_features(self, data: Data) -> bool:
        """Whether the head trains on stored body features (finetune.cache_features; module docstring)."""
        cfg = self.cfg
        want = auto_on_off(cfg.finetune.cache_features)
        aug_off = not cfg.aug.enabled
        if cfg.finetune.mode != "linear" or want is False or (want is None and not (aug_off and data.resident)):
            return False
        if not aug_off:
            raise UserError("finetune.cache_features=on needs aug.enabled=false (features of augmented images "
                            "change every epoch); use auto or off")
        if not data.resident:
            raise UserError("finetune.cache_features=on needs the data in memory (data.resident=auto or on)")
        if cfg.eval.tta:
            if want:
                raise UserError("eval.tta scores random crops of images, which cached features cannot give; "
                                "set finetune.cache_features=off (or auto)")
            return False
        return True

    @torch.no_grad()
    def _features(self, loader: ResidentLoader, view) -> torch.Tensor:
        """Body features (N, width) of every row of a resident loader's store, in row order."""
        body = self.full.eval()
        store, chunk = loader.store, 4096
        out = torch.empty((store.n, self.full.spec.width), device=self.device, dtype=torch.float32)
        for s in range(0, store.n, chunk):
            x_u8 = store.assemble(store.stage(np.arange(s, min(store.n, s + chunk))))
            hw = None if loader.sizes is None else loader.sizes[s:s + len(x_u8)]  # paper layout: true sizes
            with self.rt.autocast():
                out[s:s + len(x_u8)] = body.features(view(x_u8, None, hw)).float()
        return out

    def cache_features(self, data: Data) -> Data:
        """The same loaders (order, batches, ranks) over stored body features instead of images: the
        body runs once over each split, through the eval view of the images."""
        _, eval_view = augment_views(self.cfg, self.rt, data, self.model_res())
        tr, ev = data.train, data.eval
        feats_tr, feats_ev = self._features(tr, eval_view), self._features(ev, eval_view)
        train = ResidentLoader(ImageStore(feats_tr, None, self.device), tr.labels, tr.batch_size, tr.seed, tr.shard,
                               tr.indices, train=True, local=tr.local)
        evl = ResidentLoader(ImageStore(feats_ev, None, self.device), ev.labels, ev.batch_size, ev.seed, ev.shard,
                             ev.indices, train=False, local=ev.local)
        report = {**data.report, "features_cached": True, "feature_dim": self.full.spec.width}
        return replace(data, train=train, eval=evl, resident=True, cropped_on_cpu=False, report=report)

    def build_views(self, data: Data):
        if not self.cached:
            return super().build_views(data)
        as_input = (lambda x, gen=None, hw=None: x.to(self.rt.input_dtype))  # noqa: E731 - features are the inputs
        return as_input, as_input

    def train_module(self) -> nn.Module:
        """The head alone on cached features; else the Probe (body frozen) or the whole model."""
        return self.full.linear_out if self.cached else self.model

    def eval_module(self) -> nn.Module:
        return self.train_module()

    def fit(self) -> dict:
        if self.cfg.finetune.solver != "lbfgs":
            return super().fit()
        try:
            return self._fit_lbfgs()
        finally:
            self.log.close()

    def _fit_lbfgs(self) -> dict:
        """The exact probe: one fit on the cached training features replaces the optimizer loop."""
        x = self.data.train.store.dev
        y = self.data.train.labels
        rows = self.data.train.indices
        if rows is not None:
            rows_t = torch.from_numpy(rows).to(self.device)
            x, y = x[rows_t], y[rows_t]
        w, b, self.probe_report = lbfgs_probe(x, y, self.info.num_classes, self.cfg.train.seed)
        with torch.no_grad():
            self.full.linear_out.weight.copy_(w)
            self.full.linear_out.bias.copy_(b)
        self.epoch = self.cfg.train.epochs
        self.last_eval = self.evaluate()
        self.best_top1 = self.last_eval["test_top1"]
        if self.cfg.eval.real:
            self.last_eval.update(self.final_eval())
        self.save()
        return self._finish("finished")

    def summary_extra(self) -> dict:
        out = {"finetune_from": self.cfg.finetune.from_, "mode": self.cfg.finetune.mode,
               "features_cached": self.cached, "source_arch": self.source_meta.get("arch"),
               "source_dataset": self.source_meta.get("dataset"), "source_res": self.full.res,
               **getattr(self, "probe_report", {})}
        if self.cfg.finetune.mode == "linear":
            out["solver"] = self.cfg.finetune.solver
            warning = self._near_majority()
            if warning:
                out["probe_warning"] = warning
        shrunk = shrunk_target(self.cfg, self.full.res, self.data_fn)
        if shrunk:
            out["target_res_shrunk"] = shrunk
        return out

    def _near_majority(self) -> str | None:
        """A warning when the probe's test top-1 is within 2 points of always answering the commonest class."""
        labels = getattr(self.data.eval, "labels", None)
        top1 = self.last_eval.get("test_top1")
        if labels is None or top1 is None or not len(labels):
            return None
        majority = 100.0 * float(torch.bincount(labels).max()) / len(labels)
        if top1 > majority + 2.0:
            return None
        msg = (f"the linear probe's test top-1 {top1:.2f}% is within 2 points of the majority-class rate "
               f"{majority:.2f}%: it learned next to nothing")
        if self.cfg.finetune.solver == "paper":
            msg += "; the paper's recipe (LION 1e-5) is slow on small data: try --set finetune.solver=lbfgs"
        if self.dist.main:
            print(f"warning: {msg}", file=sys.stderr, flush=True)
        return msg



WHAT = "Fine-tune a pre-trained MLP on another dataset, or train a linear probe on its features."
EXAMPLE = "mlpscale-finetune --config table2_b12_da_cifar100.yaml --set finetune.from=runs/bmlp12"
DETAILS = """\
finetune.from is a run folder, one of our checkpoints, or a weights file of the paper's authors
(model.arch names its architecture). finetune.mode: full trains every weight with the authors'
recipe (SGD momentum 0.9, lr 0.01, body x0.1, 100 epochs, batch 2048, crop scale (0.4, 1) ratio (1, 1)
+ flip, smoothing 0.3, clip 1.0); linear trains the head only, the paper's probe (LION 1e-5, 50 epochs,
no augmentation). A config file or --set changes anything. The run folder is run.out_dir/run.name
(default runs/finetune_<mode>, or runs/<config name> with --config), as mlpscale-train's."""


def build_parser():
    return train.build_parser("mlpscale-finetune", WHAT, EXAMPLE, DETAILS)


@cli_entry
def main(argv=None):
    from .config import load_config

    a, cfg = parse_args(build_parser(), argv, load=lambda path, sets: load_config(path, sets, recipe),
                        need_config=False)
    code = report(run(cfg, a.resume, a.overwrite, trainer_cls=Finetuner, tool="mlpscale-finetune"), "mlpscale-finetune")
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
