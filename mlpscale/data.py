"""Which data a run sees and how it is served: dataset -> betons -> loaders, tiers, normalisation.

`build_data(cfg, rt, micro_batch, reserve_bytes)` opens the dataset named by `cfg.data`, checks that
its files belong together (`format.check_dataset`), picks the class-balanced subset (`data.n_train`),
the normalisation (`data.stats`) and the serving mode:

  resident (`data.resident: auto|on`) - the split is read once into memory: the device tier holds
      as much as the device budget allows (free device memory minus what the model, optimizer and
      activations were measured to need, or `data.resident_max_gb`), host memory the rest
      (`data.host_max_gb`, default most of the free RAM on GPU machines; on a CPU device the device
      tier already is host memory). Under DDP a split that needs the host tier is sharded: each
      rank holds 1/world of it.
  streamed (`data.resident: off`, or auto when the split exceeds both tiers) - FFCV reads the
      beton every epoch; the only way for betons of varying image sizes (the authors' own converter).

A paper-layout dataset (`mlpscale-convert --layout paper`, the default for ImageNet) is fixed-size:
each image sits top-left in a res x res canvas, its true (h, w) in the beton's `height`/`width`
fields; its loaders yield `(x_u8, y, hw)` and the crops are taken on the device (`augment`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field

import numpy as np
import torch

from .datasets import DatasetInfo, get_dataset, stats_for
from .distributed import all_reduce_min
from .errors import UserError
from .layout import check_dataset
from .loader import ResidentLoader, Shard, StreamLoader, load_images
from .runtime import Runtime, auto_on_off
from .subsets import balanced_subset

GB = 2 ** 30


@dataclass(kw_only=True)
class Data:
    info: DatasetInfo
    res: int                     # stored resolution (the longer side's maximum for varying sizes)
    crop_res: int                # resolution the model sees
    train: ResidentLoader | StreamLoader | None  # None: build_data(eval_only=True)
    eval: ResidentLoader | StreamLoader
    n_train: int                 # images per epoch (after any subset): the paper's N
    resident: bool
    mean: tuple                  # normalisation, 0..255 scale
    std: tuple
    stats: str = "paper"         # which statistics: paper | measured | given
    cropped_on_cpu: bool = False  # varying-size beton: FFCV already cropped to crop_res on the CPU
    paper_layout: bool = False   # canvases + true sizes: batches come as (x_u8, y, hw)
    report: dict = field(default_factory=dict)  # load times, decode rates, tier sizes (summary.json)


def _mem_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for ln in f:
                if ln.startswith("MemAvailable:"):
                    return int(ln.split()[1]) * 1024
    except OSError:
        pass
    return 8 * GB


def tier_budgets(rt: Runtime, d, reserve_bytes: int) -> tuple[int, int]:
    """(device tier bytes, host tier bytes) this run may fill with images."""
    if d.resident_max_gb > 0:
        dev = int(d.resident_max_gb * GB)
    elif rt.device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(rt.device)
        dev = max(0, free - reserve_bytes - GB)  # 1 GiB for the allocator's fragmentation and FFCV-free slack
    else:
        dev = _mem_available() // 2
    if d.host_max_gb > 0:
        host = int(d.host_max_gb * GB)
    elif rt.device.type == "cuda":
        host = max(0, int(_mem_available() * 0.85) - 4 * GB)
    else:
        host = 0
    return dev, host


def build_data(cfg, rt: Runtime, micro_batch: int, reserve_bytes: int = 0, eval_only: bool = False) -> Data:
    """The run's data; `eval_only` opens and loads the evaluation split alone (`train` is then None)."""
    d = cfg.data
    info = get_dataset(d.dataset, d.root, d.res or None)
    res = d.res or info.default_res
    splits = [info.eval_split] if eval_only else ["train", info.eval_split]
    betons = check_dataset(d.root, info.name, res, splits, info.convert_command(d.root, res))
    fixed = {s: b.resolution() for s, b in betons.items()}  # None: images of several sizes
    train_b, eval_b = betons.get("train"), betons[info.eval_split]
    indices, n_train = None, 0
    if train_b is not None:
        labels = train_b.labels
        if len(labels) and labels.max() >= info.num_classes:
            raise UserError(f"{train_b.path} has label {labels.max()} but {info.name} has {info.num_classes} "
                            f"classes; its meta_{res}.json does not belong to it: re-convert")
        indices = balanced_subset(labels, d.n_train, d.subset_seed) if d.n_train else None
        n_train = len(labels) if indices is None else len(indices)
        if n_train < cfg.train.batch_size:  # known from the file's index: refuse before reading any image
            fit = 1 << (max(1, n_train).bit_length() - 1)
            raise UserError(f"train.batch_size={cfg.train.batch_size} is larger than the {n_train} training images "
                            f"of {info.name}, so an epoch has no step; run with --set train.batch_size={fit}")
    crop_res = d.crop_res or res
    mean, std, which = stats_for(info, d.stats)
    shard, seed = Shard(rt.dist.rank, rt.dist.world), cfg.train.seed
    eval_batch = max(micro_batch, 256)
    varying = any(r is None for r in fixed.values())
    sizes = {s: b.image_sizes() for s, b in betons.items()}  # paper layout: true (h, w) per image
    paper = all(v is not None for v in sizes.values())

    mode = auto_on_off(d.resident)
    report = {}
    if varying and mode:
        raise UserError(f"{(train_b or eval_b).path} holds images of several sizes (the authors' converter wrote "
                        f"it); only streaming can serve it: set data.resident=off, or re-convert it with "
                        f"mlpscale-convert --layout paper (fixed-size canvases, resident and cropped on the device)")
    if not varying and mode is not False:
        # every rank decides alike (resident or streamed, sharded or not): the smallest budgets win
        dev_budget, host_budget = all_reduce_min(list(tier_budgets(rt, d, reserve_bytes)), rt.device)
        img = res * res * 3
        need_eval, need_train = eval_b.num_samples * img, n_train * img
        if need_eval + need_train <= dev_budget + host_budget:
            return _resident(cfg, rt, info, res, crop_res, train_b, eval_b, indices, n_train, micro_batch,
                             eval_batch, dev_budget, mean, std, which, paper)
        msg = (f"{info.name} at {res}px needs {(need_eval + need_train) / GB:.1f} GiB but the memory tiers "
               f"hold {dev_budget / GB:.1f} GiB (device) + {host_budget / GB:.1f} GiB (host)")
        if mode:
            raise UserError(msg + "; set data.resident=auto to stream it, or raise data.resident_max_gb / "
                                  "data.host_max_gb")
        print(f"note: {msg}; streaming it from disk with FFCV instead", file=sys.stderr)
        report["resident_fallback"] = msg
    aug = cfg.aug
    train_crop = eval_crop = None
    if varying:  # FFCV crops on the CPU, as the paper's loader does
        train_crop = (crop_res, aug.crop_scale, aug.crop_ratio) if aug.enabled else (crop_res, None, None)
        eval_crop = (crop_res, None, None)
    train = None if train_b is None else StreamLoader(train_b, micro_batch, seed, rt.device, shard, indices, True,
                                                      d.workers, d.os_cache, crop=train_crop)
    evl = StreamLoader(eval_b, eval_batch, seed, rt.device, shard, None, False, d.workers, d.os_cache,
                       crop=eval_crop)
    return Data(info=info, res=res, crop_res=crop_res, train=train, eval=evl, n_train=n_train, resident=False,
                mean=mean, std=std, stats=which, cropped_on_cpu=varying, report=report, paper_layout=paper)


def _sizes(b, rows, paper: bool, device) -> torch.Tensor | None:
    """The paper layout's true (h, w) of the beton rows `rows` (all: None), on the device; int16
    (sides <= 1024): 48 MB for ImageNet-21k's 12M images."""
    if not paper:
        return None
    hw = b.image_sizes()
    return torch.from_numpy((hw if rows is None else hw[rows]).astype(np.int16)).to(device)


def _resident(cfg, rt, info, res, crop_res, train_b, eval_b, indices, n_train, micro_batch, eval_batch,
              dev_budget, mean, std, which, paper: bool = False) -> Data:
    """Read both splits into tiers: the evaluation split first (small, on the device), then train (if any)."""
    d, seed = cfg.data, cfg.train.seed
    img = res * res * 3
    shard = Shard(rt.dist.rank, rt.dist.world)
    progress = rt.dist.main and cfg.run.progress
    eval_rows = eval_b.num_samples
    eval_store, es = load_images(eval_b, rt.device, device_rows=min(eval_rows, dev_budget // img),
                                 workers=d.workers, desc="eval", progress=progress)
    evl = ResidentLoader(eval_store, torch.from_numpy(eval_b.labels).to(rt.device), eval_batch, seed, shard,
                         train=False, sizes=_sizes(eval_b, None, paper, rt.device))
    if train_b is None:
        return Data(info=info, res=res, crop_res=crop_res, train=None, eval=evl, n_train=0, resident=True,
                    mean=mean, std=std, stats=which, report=es.as_dict("eval"), paper_layout=paper)
    left = max(0, dev_budget - eval_store.nbytes()[0])
    rows = np.arange(train_b.num_samples) if indices is None else np.asarray(indices)
    local = False
    if len(rows) * img > left and rt.dist.world > 1:
        # the host tier is needed: each rank holds 1/world of the split (equal shares), in its own order
        per = len(rows) // rt.dist.world
        rows, local = rows[rt.dist.rank::rt.dist.world][:per], True
    store, ts = load_images(train_b, rt.device, device_rows=left // img, rows=rows, workers=d.workers,
                            desc="train", progress=progress)
    labels = torch.from_numpy(train_b.labels[rows]).to(rt.device)
    train = ResidentLoader(store, labels, micro_batch, seed, shard, None, train=True, local=local,
                           sizes=_sizes(train_b, rows, paper, rt.device))
    report = {**ts.as_dict("train"), **es.as_dict("eval"), "train_sharded_by_rank": local}
    if progress:
        mib = 2 ** 20
        print(f"data: {len(rows)} train + {eval_rows} eval images resident ({ts.decoder}, "
              f"{ts.images / max(ts.seconds, 1e-9):,.0f} img/s): device {ts.device_bytes / mib:,.1f} MiB, "
              f"host {ts.host_bytes / mib:,.1f} MiB" + (", sharded by rank" if local else ""), flush=True)
    return Data(info=info, res=res, crop_res=crop_res, train=train, eval=evl, n_train=n_train, resident=True,
                mean=mean, std=std, stats=which, report=report, paper_layout=paper)


def arrays_data(images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo,
                eval_images: torch.Tensor | None = None, eval_labels: torch.Tensor | None = None):
    """A `data_fn` serving uint8 (N, H, W, 3) images and (N,) labels from device memory (benchmarks,
    the GPU check without FFCV, or a researcher's own arrays). Normalisation: info.mean/std."""

    def data_fn(cfg, rt: Runtime, micro_batch: int, reserve_bytes: int = 0) -> Data:
        shard, seed, res = Shard(rt.dist.rank, rt.dist.world), cfg.train.seed, images.shape[1]
        ex = images if eval_images is None else eval_images
        ey = labels if eval_labels is None else eval_labels
        return Data(info=info, res=res, crop_res=cfg.data.crop_res or res,
                    train=ResidentLoader(images.to(rt.device), labels.to(rt.device), micro_batch, seed, shard,
                                         train=True),
                    eval=ResidentLoader(ex.to(rt.device), ey.to(rt.device), max(micro_batch, 256), seed, shard,
                                        train=False),
                    n_train=len(images), resident=True, mean=tuple(info.mean), std=tuple(info.std), stats="given")

    data_fn.info = info  # the Trainer builds the model from it before reading any data
    return data_fn

