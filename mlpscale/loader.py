"""Batches of uint8 NHWC images and int64 labels, on the device, from `.beton` files.

Two ways, one interface (`for x_u8, y in loader.epoch(e)`, x_u8 (B, H, W, 3) uint8 on the device):

* `ResidentLoader` - the airbench technique: the whole split is read from its beton once into
  device memory; an epoch is a seeded `randperm` and index gathers. No workers, no host copies.
* `StreamLoader` - FFCV streams the beton (raw memcpy or JPEG decode on the CPU threads, nothing
  else) and moves each batch to the device non-blocking.

Both draw the epoch's order from (seed, epoch) alone and can start mid-epoch (`start_batch`), so a
resumed run sees exactly the batches an uninterrupted run would. Under DDP each rank takes a
disjoint, equally long slice of the same permutation.

FFCV pitfalls guarded here: an exception in its pipeline thread would hang `next()` forever (we
poll and raise); an abandoned iterator leaks its thread (we close it); `Compiler.set_num_threads`
silently changes torch's global thread count (we restore it); QUASI_RANDOM is unsupported with
`distributed=True` (we never use it: the order is ours).
"""
from __future__ import annotations

import contextlib
import os
import queue
import time
from dataclasses import dataclass

import numpy as np
import torch

from .errors import UserError


@dataclass
class Shard:
    rank: int = 0
    world: int = 1


def epoch_order(n: int, seed: int, epoch: int, batch_size: int, shard: Shard = Shard(),
                drop_last: bool = True, shuffle: bool = True) -> np.ndarray:
    """The sample indices this rank visits in `epoch`, in order (numpy int64).

    A pure function of its arguments: the permutation comes from (seed, epoch) only. Training
    (drop_last) cuts the permutation into global batches of `batch_size * world` and gives rank r
    the r-th slice of each, so a global batch holds the same images whatever the number of ranks.
    Evaluation (no drop_last) deals samples round-robin and keeps them all.
    """
    perm = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
    if not drop_last:
        return perm[shard.rank::shard.world]
    global_batches = n // (batch_size * shard.world)
    if global_batches == 0:
        raise UserError(
            f"batch size {batch_size} x {shard.world} rank(s) is larger than the {n} training images; "
            f"lower train.batch_size"
        )
    perm = perm[:global_batches * batch_size * shard.world].reshape(global_batches, shard.world, batch_size)
    return perm[:, shard.rank].reshape(-1)


def check_beton(path: str, hint: str) -> None:
    if not os.path.exists(path):
        raise UserError(f"missing dataset file {path}; create it with: {hint}")


@contextlib.contextmanager
def keep_torch_threads():
    """FFCV's Compiler.set_num_threads (on Loader creation and in its epoch thread) also calls
    torch.set_num_threads; put torch's thread count back to what it was."""
    n = torch.get_num_threads()
    try:
        yield n
    finally:
        if torch.get_num_threads() != n:
            torch.set_num_threads(n)


def open_reader(path: str):
    """FFCV's Reader for `path`, or one clear error when the file is not a readable beton."""
    from ffcv.reader import Reader

    try:
        return Reader(path)
    except Exception as e:  # noqa: BLE001 - FFCV raises assorted errors on damaged or foreign files
        raise UserError(f"cannot read {path} as an FFCV beton ({type(e).__name__}: {e}); "
                        f"re-convert it with mlpscale-convert") from None


def _ffcv_loader(path: str, batch_size: int, workers: int, order_indices, os_cache: bool, device):
    """An FFCV Loader that yields (uint8 NHWC, int64 labels) for the given index sequence."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import Squeeze, ToDevice, ToTensor

    image = [SimpleRGBImageDecoder(), ToTensor()]
    label = [IntDecoder(), ToTensor(), Squeeze()]
    if device.type == "cuda":
        image.append(ToDevice(device, non_blocking=True))
        label.append(ToDevice(device, non_blocking=True))
    open_reader(path)  # a clear error for a damaged file before FFCV's own
    with keep_torch_threads():
        return Loader(path, batch_size=batch_size, num_workers=workers or os.cpu_count() or 1,
                      order=OrderOption.SEQUENTIAL, indices=order_indices, os_cache=os_cache,
                      drop_last=False, pipelines={"image": image, "label": label}, batches_ahead=3)


def iterate_ffcv(loader, poll_s: float = 5.0):
    """Iterate one epoch of an FFCV loader without its hazards (hang on error, leaked thread,
    changed torch thread count)."""
    with keep_torch_threads() as threads:
        it = iter(loader)
    try:
        while True:
            try:
                item = it.output_queue.get(timeout=poll_s)
            except queue.Empty:
                if not it.is_alive():
                    raise UserError(
                        f"FFCV's loader thread for {loader.fname} stopped with an error (printed above); "
                        f"the file may be damaged: re-convert it with mlpscale-convert"
                    ) from None
                continue
            if item is None:
                return
            slot, result = item
            if torch.get_num_threads() != threads:  # the epoch thread has called Compiler.set_num_threads
                torch.set_num_threads(threads)
            if getattr(it, "current_stream", None) is not None:  # CUDA: wait for FFCV's copy stream
                it.current_stream.wait_stream(it.cuda_streams[slot])
            yield result
    finally:
        _stop(it)


def _stop(it, timeout_s: float = 60.0) -> None:
    """Stop FFCV's epoch thread and wait for it: it only notices the stop request while blocked on
    a full queue, so drain the queue until it exits. A thread left running inside numba's parallel
    code when Python exits aborts the process ("terminate called without an active exception")."""
    it.close()
    deadline = time.monotonic() + timeout_s
    while it.is_alive() and time.monotonic() < deadline:
        try:
            it.output_queue.get(timeout=0.1)
        except queue.Empty:
            pass
    it.join(timeout=max(0.0, deadline - time.monotonic()))


def read_split(path: str, device, workers: int = 0, batch_size: int = 4096) -> tuple[torch.Tensor, torch.Tensor]:
    """Read a whole beton once: images (N, H, W, 3) uint8 and labels (N,) int64, on `device`."""
    loader = _ffcv_loader(path, batch_size, workers, None, True, torch.device("cpu"))
    n = loader.reader.num_samples
    images = labels = None
    i = 0
    for x, y in iterate_ffcv(loader):
        if images is None:  # allocate once on the device; copy chunk by chunk (bounded host memory)
            images = torch.empty((n, *x.shape[1:]), dtype=torch.uint8, device=device)
            labels = torch.empty((n,), dtype=torch.int64, device=device)
        b = len(x)
        images[i:i + b].copy_(x, non_blocking=False)
        labels[i:i + b].copy_(y.long().view(-1))
        i += b
    assert i == n, f"read {i} of {n} samples from {path}"
    return images, labels


def beton_fields(path: str) -> dict:
    """Per-sample metadata of a beton, by field name: labels and image sizes come without decoding."""
    r = open_reader(path)
    return {name: r.metadata[f"f{i}"] for i, name in enumerate(r.field_names)}


def read_labels(path: str) -> np.ndarray:
    """All labels of a beton (int64), from its metadata table."""
    return np.asarray(beton_fields(path)["label"], dtype=np.int64)


def beton_resolution(path: str) -> tuple[int, int]:
    """(height, width) of the images in a beton; raises if they are not all the same size."""
    img = beton_fields(path)["image"]
    h, w = np.unique(img["height"]), np.unique(img["width"])
    if len(h) != 1 or len(w) != 1:
        raise UserError(f"{path} holds images of several sizes; convert with mlpscale-convert (fixed square size)")
    return int(h[0]), int(w[0])


class ResidentLoader:
    """The split lives on the device; an epoch is a permutation and index gathers."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 shard: Shard = Shard(), indices: np.ndarray | None = None, train: bool = True):
        self.images, self.labels = images, labels
        self.indices = None if indices is None else torch.as_tensor(indices, device=images.device)
        self.n = len(images) if indices is None else len(indices)
        self.batch_size, self.seed, self.shard, self.train = batch_size, seed, shard, train

    def batches_per_epoch(self) -> int:
        return -(-len(self._order(0)) // self.batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        return epoch_order(self.n, self.seed, epoch, self.batch_size, self.shard,
                           drop_last=self.train, shuffle=self.train)

    def epoch(self, epoch: int, start_batch: int = 0):
        order = torch.from_numpy(self._order(epoch)).to(self.images.device)
        if self.indices is not None:
            order = self.indices[order]
        for s in range(start_batch * self.batch_size, len(order), self.batch_size):
            idx = order[s:s + self.batch_size]
            yield self.images[idx], self.labels[idx]


class StreamLoader:
    """FFCV streams the split from disk each epoch; batches arrive on the device as uint8 NHWC."""

    def __init__(self, path: str, batch_size: int, seed: int, device, shard: Shard = Shard(),
                 indices: np.ndarray | None = None, train: bool = True, workers: int = 0, os_cache: bool = True):
        self.path, self.batch_size, self.seed, self.device = path, batch_size, seed, device
        self.shard, self.train, self.workers, self.os_cache = shard, train, workers, os_cache
        self.base = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.n = int(open_reader(path).num_samples) if indices is None else len(indices)
        self._loader = None

    def batches_per_epoch(self) -> int:
        return -(-len(self._order(0)) // self.batch_size)

    def _order(self, epoch: int) -> np.ndarray:
        order = epoch_order(self.n, self.seed, epoch, self.batch_size, self.shard,
                            drop_last=self.train, shuffle=self.train)
        return order if self.base is None else self.base[order]

    def epoch(self, epoch: int, start_batch: int = 0):
        full = self._order(epoch)
        if self._loader is None:
            # compile FFCV's pipeline once; later epochs only swap the index order. Created with a
            # whole epoch's order: FFCV fixes its __len__ (which truncates every later order) then.
            self._loader = _ffcv_loader(self.path, self.batch_size, self.workers, full, self.os_cache, self.device)
        order = full[start_batch * self.batch_size:]  # a resumed run starts mid-epoch
        self._loader.indices = order
        self._loader.traversal_order.indices = order
        for x, y in iterate_ffcv(self._loader):
            # FFCV hands out views of a ring of batches_ahead + 2 buffers that it refills; a copy
            # (cheap next to a training step) lets callers hold several batches (accumulation)
            yield x.to(self.device, copy=True), y.to(self.device, dtype=torch.int64, copy=True).view(-1)
