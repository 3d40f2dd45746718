"""The tiered suite: a JPEG split decoded once into two memory tiers vs FFCV decoding it every epoch
(the path ImageNet-21k at 64px takes when it does not fit device memory).

    mlpscale          `load_images` (one parallel JPEG decode) into an ImageStore whose device tier is
                      forced to a share of the split (`tiered_device_share`), so batches straddle the
                      device tier and the host tier (batches staged through a pinned buffer on CUDA); then `ResidentLoader` epochs:
                      permutation, device gather + host-tier gather on its worker thread, one copy
    mlpscale_one_tier (info) the same decoded split entirely in the device tier
    ffcv_stream       `StreamLoader`: FFCV reads and decodes the JPEG beton every epoch on all cores

The timer covers one whole epoch of uint8 batches on the device (fresh epoch iterator, closed by a
device sync); img/s x epoch length gives the epoch time. The one-time decode is reported beside it
(`decode`), with the number of epochs after which decoding once has paid for itself.
"""
from __future__ import annotations

import os
import statistics
import time

import torch

from mlpscale.beton import open_beton
from mlpscale.loader import ResidentLoader, load_images
from . import data as bdata
from .common import beton_root, stream_loader
from .timing import Comparison, Variant, compare, format_comparison


def tiered_beton(root: str, n: int, res: int, num_classes: int) -> str:
    path = os.path.join(root, f"jpg{res}", f"tiered_{n}_{num_classes}.beton")
    if not os.path.exists(path):
        bdata.write_jpeg_beton(path, n, res, num_classes, distinct=min(n, 16384))
    return path


def _epochs(loader, dev):
    """One-repetition callable: a fresh epoch of `loader`, every batch taken; returns images."""
    state = {"e": 0}

    def run() -> int:
        state["e"] += 1
        images = 0
        it = loader.epoch(state["e"])
        try:
            for x, _ in it:
                images += len(x)
        finally:
            it.close()
        return images

    return run


def tiered_comparison(s, root: str, log=print, stream: bool | None = None) -> dict:

    dev = s.dev()
    res, n = s.tiered_res, s.tiered_n
    path = tiered_beton(root, n, res, s.num_classes)
    b = open_beton(path)
    device_rows = int(n * s.tiered_device_share)
    t0 = time.perf_counter()
    store, st = load_images(b, dev, device_rows=device_rows)
    decode_s = time.perf_counter() - t0
    labels = torch.from_numpy(b.labels).to(dev)
    tiered = ResidentLoader(store, labels, s.batch, 0, train=True)
    full = torch.cat([store.dev, store.host.to(dev)]) if store.tiered else store.dev
    one_tier = ResidentLoader(full, labels, s.batch, 0, train=True)
    variants = [
        Variant("mlpscale", _epochs(tiered, dev), "ours",
                f"ResidentLoader over a two-tier ImageStore ({device_rows:,} rows device, {n - device_rows:,} "
                f"rows host), decoded once by load_images"),
        Variant("mlpscale_one_tier", _epochs(one_tier, dev), "info",
                "ResidentLoader with the whole decoded split in the device tier"),
    ]
    why = bdata.ffcv_status()
    if stream is None:
        stream = why is None
    threads = len(os.sched_getaffinity(0))
    if stream:
        sl = stream_loader(path, s.batch, dev, threads)
        variants.append(Variant("ffcv_stream", _epochs(sl, dev), "baseline",
                                f"StreamLoader: FFCV reads and JPEG-decodes the beton every epoch ({threads} threads)"))
    else:
        variants.append(Variant("ffcv_stream", lambda: 0, "baseline", "FFCV streaming",
                                skipped=f"FFCV cannot load ({why})" if why else "not requested"))
    cmp = Comparison("tiered", f"jpg {res}px n={n} batch {s.batch} device tier {s.tiered_device_share:.0%} "
                               f"on {dev.type}", "img/s",
                     "one whole epoch of uint8 batches on the device from a fresh epoch iterator, closed by a "
                     "device sync",
                     {"format": "jpg", "res": res, "n": n, "batch": s.batch, "device": str(dev),
                      "device_rows": device_rows, "host_rows": n - device_rows, "threads": threads,
                      "beton_mb": round(os.path.getsize(path) / 2**20, 1)},
                     variants, s.reps, s.warmup, setup_s={"mlpscale": decode_s})
    out = compare(cmp, dev, None).to_json()
    epoch_s = {k: n / v["median"] for k, v in out["variants"].items() if "median" in v}
    out["epoch_s"] = epoch_s
    out["decode"] = {"img_per_s": n / decode_s, "seconds": decode_s, "decoder": st.decoder,
                     "device_bytes": st.device_bytes, "host_bytes": st.host_bytes}
    if "ffcv_stream" in epoch_s and epoch_s["ffcv_stream"] > epoch_s["mlpscale"]:
        out["decode"]["break_even_epochs"] = decode_s / (epoch_s["ffcv_stream"] - epoch_s["mlpscale"])
    if log:
        log(format_comparison(out))
        d = out["decode"]
        log("  epoch: " + ", ".join(f"{k} {v:.2f} s" for k, v in epoch_s.items())
            + f"; one-time decode {d['seconds']:.1f} s = {d['img_per_s']:,.0f} img/s ({d['decoder']})"
            + (f", paid back after {d['break_even_epochs']:.1f} epochs" if "break_even_epochs" in d else ""))
    del full
    return out


def suite_tiered(s, log=print) -> list[dict]:

    with beton_root(s) as root:
        return [tiered_comparison(s, root, log)]


# --- training from the tiers (the GPU check's figure; ImageNet-21k's path) ------------------------

def tiered_data_fn(store, labels, info, res: int, eval_rows: int = 4096):
    """A Trainer `data_fn` serving an ImageStore (tiered or not) that was decoded once already."""
    import numpy as np

    from mlpscale.data import Data
    from mlpscale.loader import Shard

    def data_fn(cfg, rt, micro_batch: int, reserve_bytes: int = 0) -> Data:
        shard, seed = Shard(rt.dist.rank, rt.dist.world), cfg.train.seed
        train = ResidentLoader(store, labels, micro_batch, seed, shard, train=True)
        evl = ResidentLoader(store, labels, max(micro_batch, 256), seed, shard,
                             np.arange(min(store.n, eval_rows)), train=False)
        return Data(info=info, res=res, crop_res=res, train=train, eval=evl, n_train=store.n, resident=True, mean=tuple(info.mean), std=tuple(info.std), stats="given")  # noqa: E501

    data_fn.info = info
    return data_fn


def tiered_training(s, root: str, peak_flops: float | None = None, log=print) -> list[dict]:
    """A JPEG beton decoded once into two tiers (device share forced to s.tiered_device_share), then
    s.arch training steps through the Trainer (`worker.timed_run`, a data_fn over the store): img/s, MFU
    and the training thread's wait inside the loader, next to the same split wholly in device memory.
    Returns [decode figure, training comparison]."""
    from mlpscale.datasets import IMAGENET_MEAN, IMAGENET_STD, DatasetInfo
    from mlpscale.loader import ImageStore
    from .ours import make_config
    from .worker import timed_run

    dev = s.dev()
    res, n = s.tiered_res, s.tiered_n
    t0 = time.perf_counter()
    path = tiered_beton(root, n, res, s.num_classes)
    write_s = time.perf_counter() - t0
    b = open_beton(path)
    device_rows = int(n * s.tiered_device_share)
    t0 = time.perf_counter()
    store, st = load_images(b, dev, device_rows=device_rows)
    decode_s = time.perf_counter() - t0
    decode = {"suite": "tiered", "name": f"one-time JPEG decode {res}px n={n} into two tiers on {dev.type}",
              "value": n / decode_s, "unit": "img/s", "seconds": decode_s, "decoder": st.decoder,
              "device_bytes": st.device_bytes, "host_bytes": st.host_bytes,
              "threads": len(os.sched_getaffinity(0)), "beton_gb": round(os.path.getsize(path) / 2**30, 3),
              "beton_write_s": round(write_s, 1),
              "timer": "load_images: read + parallel JPEG decode + copy into the tiers, closed by a device sync"}
    if log:
        log(f"[tiered] decoded {n:,} {res}px JPEGs once in {decode_s:.1f} s = {n / decode_s:,.0f} img/s "
            f"({st.decoder}); tiers: {st.device_bytes / 2**30:.2f} GiB device, {st.host_bytes / 2**30:.2f} GiB host")
    labels = torch.from_numpy(b.labels).to(dev)
    info = DatasetInfo("tiered-synth", s.num_classes, n, min(n, 4096), res, IMAGENET_MEAN, IMAGENET_STD)
    results = {}

    def run(name: str, st_) -> float:
        cfg = make_config(s.arch, res, s.batch, precision=s.prec(), compile=s.compile, device=str(dev))
        r = timed_run(cfg, s.e2e_warmup, s.e2e_steps, data_fn=tiered_data_fn(st_, labels, info, res),
                      t_start=time.perf_counter())
        results.setdefault(name, []).append(r)
        if log:
            log(f"  {name:<18} {r['img_per_s']:>10,.0f} img/s, loader wait {r['loader_share']:.1%} of the window")
        return r["img_per_s"]

    full = {}

    def resident() -> float:
        if "store" not in full:  # the same decoded images, all in the device tier
            full["store"] = ImageStore(torch.cat([store.dev, store.host.to(dev)]) if store.tiered else store.dev,
                                       None, dev)
        return run("device_resident", full["store"])

    variants = [Variant("tiered", lambda: run("tiered", store), "ours",
                        f"Trainer over the two-tier store ({device_rows:,} rows device, {n - device_rows:,} rows "
                        f"host)", self_timed=True),
                Variant("device_resident", resident, "info", "Trainer over the same images all in device memory",
                        self_timed=True)]
    cmp = Comparison("tiered", f"train {s.arch} {res}px batch {s.batch} from a decoded JPEG split n={n}, device "
                               f"tier {s.tiered_device_share:.0%}, on {dev.type}", "img/s",
                     f"Trainer loop (train.run with a data_fn over the store): {s.e2e_steps} optimizer steps after "
                     f"{s.e2e_warmup} warm-up, closed by a device sync",
                     {"arch": s.arch, "res": res, "batch": s.batch, "n": n, "num_classes": s.num_classes,
                      "device_rows": device_rows, "precision": s.prec(), "compile": s.compile, "device": str(dev),
                      "steps": s.e2e_steps, "warmup_steps": s.e2e_warmup},
                     variants, s.reps, 0, setup_s={"tiered": decode_s})
    out = compare(cmp, dev, None).to_json()
    full.clear()
    out["loader_wait_share"] = {k: statistics.median(r["loader_share"] for r in v) for k, v in results.items()}
    out["tier_efficiency"] = out["variants"]["tiered"]["median"] / out["variants"]["device_resident"]["median"]
    if peak_flops:
        flops = results["tiered"][0]["train_flops_per_image"]
        out["peak_tflops"] = peak_flops / 1e12
        out["mfu"] = {k: v["median"] * flops / peak_flops for k, v in out["variants"].items() if "median" in v}
    if log:
        log(format_comparison(out))
        log(f"  tiered / device-resident = {out['tier_efficiency']:.2f}; loader wait: "
            + ", ".join(f"{k} {v:.1%}" for k, v in out["loader_wait_share"].items())
            + ("; MFU: " + ", ".join(f"{k} {v:.1%}" for k, v in out["mfu"].items()) if peak_flops else ""))
    return [decode, out]
