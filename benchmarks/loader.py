"""`loader` suite: uint8 batches from a beton - ours (StreamLoader, ResidentLoader) vs the paper's FFCV
loader and a plain torch DataLoader, per FFCV thread count."""
from __future__ import annotations

import os
import time

import torch

from mlpscale.errors import UserError
from mlpscale.layout import beton_path

from . import data as bdata
from . import reference as ref
from .common import Counter, Sizes, ffcv_missing, fresh, ref_loader, beton_root, stream_loader
from .timing import Comparison, Variant, compare


def loader_comparisons(s: Sizes, root: str, fmt: str, log=print) -> list[dict]:
    """uint8 batches from a beton: ours (StreamLoader; ResidentLoader) vs the paper's FFCV loader with
    CPU crop/flip/MixUp and a plain torch DataLoader over the decoded arrays, per FFCV thread count."""
    from mlpscale.loader import ResidentLoader, read_split

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
        sl = stream_loader(path, s.batch, dev, threads)
        variants = [Variant("mlpscale_stream", lambda c=Counter(sl): fresh(c, s.batches), "ours",
                            "StreamLoader: FFCV SimpleRGBImageDecoder -> uint8 NHWC on the device")]
        setup = {}
        if threads == max(s.threads):
            t0 = time.perf_counter()
            x_all, y_all = read_split(path, dev, threads)
            setup["mlpscale_resident"] = time.perf_counter() - t0
            rsl = ResidentLoader(x_all, y_all, s.batch, 0)
            variants.append(Variant("mlpscale_resident", lambda c=Counter(rsl): fresh(c, s.batches), "info",
                                    "ResidentLoader: split read once into device memory, randperm + gather"))
        rl = ref_loader(path, s.batch, s.res, dev, workers=threads)
        variants.append(Variant("reference_ffcv", lambda rl=rl: fresh(lambda: ref.iterate(rl), s.batches),
                                "baseline", "the paper's FFCV loader: RandomResizedCrop decode + flip + MixUp on "
                                            "the CPU, float32 NCHW on the device"))
        if fmt == "raw":
            xs, ys = (x_all.cpu(), y_all.cpu()) if x_all is not None else read_split(path, torch.device("cpu"))
            dl = _torch_dataloader(xs, ys, s.batch, threads)
            variants.append(Variant("torch_dataloader", lambda dl=dl: fresh(lambda: _dl_epoch(dl, dev), s.batches),
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
    miss = ffcv_missing("loader")
    if miss:
        return [miss]
    out = []
    with beton_root(s) as root:
        for fmt in s.formats:
            out += loader_comparisons(s, root, fmt, log)
    return out
