"""Batches of uint8 NHWC images and int64 labels, on the device, from `.beton` files.

Two ways, one interface (`for x_u8, y in loader.epoch(e, start_batch)`, x_u8 (B, H, W, 3) uint8 on
the device; a paper-layout split, whose images sit top-left in H x W canvases, yields `(x_u8, y, hw)`
with hw (B, 2) int16 each image's true (height, width), for the crops on the device):

* `ResidentLoader` - the split is read once (`load_images`: a vectorised copy of a raw beton's pages,
  or one parallel JPEG decode of a jpg beton) into an `ImageStore`; an epoch is a seeded permutation
  and index gathers. The store has two tiers: as many images as the device-memory budget allows
  on the device, the rest in host memory; a batch gathers its host part on a background thread
  into a pinned buffer and copies it non-blocking on a side stream, overlapped with the step
  (airbench's technique, extended to datasets bigger than the device: ImageNet-21k at 64px). The
  host tier itself stays pageable: only the buffer a copy reads from must be pinned, torch's pinned
  allocator rounds every block up to a power of two (a 70 GiB tier would lock 128 GiB), and
  page-locking most of the RAM starves the OS.
* `StreamLoader` - FFCV streams the beton each epoch (memcpy or JPEG decode on its CPU threads) and
  moves each batch to the device. For betons of varying image sizes (written by the paper's own
  converter) FFCV also takes the random-resized crop (or the centre crop) on the CPU, as the paper's
  loader does.

Both draw an epoch's order from (seed, epoch) alone and can start mid-epoch (`start_batch`), so a
resumed run sees exactly the batches an uninterrupted run would. Under DDP each rank takes a
disjoint, equally long slice of every global batch; a sharded store (`local` rows only, used when
the split does not fit one device) permutes its own rows with (seed, epoch, rank) instead.

FFCV pitfalls guarded here: an exception in its pipeline thread would hang `next()` forever (we
poll and raise); an abandoned iterator leaks its thread (we close it); its thread-count setter
also changed torch's (`ffcv_compat`); QUASI_RANDOM is unsupported with `distributed=True` (we never
use it: the order is ours).
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import torch

from .beton import Beton, open_beton, read_raw_images
from .decode import decode_images
from .errors import UserError
from .ffcv_compat import import_ffcv


@dataclass
class Shard:
    rank: int = 0
    world: int = 1


def epoch_order(n: int, seed, epoch: int, batch_size: int, shard: Shard = Shard(),
                drop_last: bool = True, shuffle: bool = True) -> np.ndarray:
    """The sample indices this rank visits in `epoch`, in order (numpy int64).

    A pure function of its arguments: the permutation comes from (seed, epoch) only (`seed` an int, or
    a tuple such as (seed, rank) for a rank's own rows). Training
    (drop_last) cuts the permutation into global batches of `batch_size * world` and gives rank r
    the r-th slice of each, so a global batch holds the same images whatever the number of ranks.
    Evaluation (no drop_last) deals samples round-robin and keeps them all.
    """
    key = [*seed, epoch] if isinstance(seed, (list, tuple)) else [seed, epoch]
    perm = np.random.default_rng(key).permutation(n) if shuffle else np.arange(n)
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


# --- background stages ---------------------------------------------------------------------------

class Prefetch:
    """Run an iterator on a worker thread, `depth` items ahead (torch ops release the GIL).

    Exceptions reach the consumer at the item where they happened; `close()` (or leaving a `with`)
    stops the worker, also when the consumer abandons the iterator early.
    """
    _DONE = object()

    def __init__(self, it, depth: int = 1, name: str = "mlpscale-prefetch"):
        self.q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self.stop = threading.Event()
        self.it = it
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for item in self.it:
                while not self.stop.is_set():
                    try:
                        self.q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if self.stop.is_set():
                    return
            self._put((self._DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((None, e))
        finally:
            close = getattr(self.it, "close", None)
            if close is not None:
                close()

    def _put(self, item):
        while not self.stop.is_set():
            try:
                self.q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self):
        return self

    def __next__(self):
        item, err = self.q.get()
        if err is not None:
            self.close()
            raise err
        if item is self._DONE:
            self.close()
            raise StopIteration
        return item

    def close(self):
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.q.get_nowait()
            except queue.Empty:
                self.thread.join(timeout=0.05)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- the resident store ----------------------------------------------------------------------------

class ImageStore:
    """uint8 images (N, H, W, 3): rows [0, k) in device memory, rows [k, N) in host memory.

    On CUDA a batch's host-tier rows are gathered into a pinned buffer (small, reused by torch's
    caching host allocator), so they copy to the device asynchronously. On the CPU both tiers are
    host memory (the tests force two tiers to check the gather logic).
    """

    def __init__(self, device_part: torch.Tensor, host_part: torch.Tensor | None, device: torch.device):
        self.dev, self.host, self.device = device_part, host_part, device
        self.k = len(device_part)
        self.n = self.k + (0 if host_part is None else len(host_part))
        self.shape = tuple((device_part if self.k else host_part).shape[1:])
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" and self.tiered else None

    @property
    def tiered(self) -> bool:
        return self.host is not None and len(self.host) > 0

    def nbytes(self) -> tuple[int, int]:
        return self.dev.numel(), 0 if self.host is None else self.host.numel()

    def stage(self, idx: np.ndarray):
        """Host side of one batch (may run on a worker thread): move the indices to the device and,
        for a tiered store, gather the host-tier rows into a pinned buffer and start their copy."""
        idx_t = torch.from_numpy(idx)
        idx_dev = idx_t.to(self.device, non_blocking=True)
        if not self.tiered:
            return idx_dev, None
        on_host = idx_t >= self.k
        host_pos, dev_pos = on_host.nonzero().squeeze(1), (~on_host).nonzero().squeeze(1)
        rows = idx_t[host_pos] - self.k
        buf = torch.empty((len(rows), *self.shape), dtype=torch.uint8, pin_memory=self.device.type == "cuda")
        torch.index_select(self.host, 0, rows, out=buf)
        event = None
        if self.stream is not None:
            with torch.cuda.stream(self.stream):
                host_rows = buf.to(self.device, non_blocking=True)
                event = self.stream.record_event()
        else:
            host_rows = buf
        # the batch is [device rows, host rows] reordered by one gather: inv[j] = where sample j sits
        inv = torch.empty(len(idx_t), dtype=torch.int64)
        inv[torch.cat([dev_pos, host_pos])] = torch.arange(len(idx_t))
        to_dev = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
        return idx_dev, (to_dev(idx_t[dev_pos]), to_dev(inv), host_rows, event)

    def assemble(self, staged) -> torch.Tensor:
        """Device side of one batch (the consumer's thread): (B, H, W, 3) uint8 in the order of `idx`."""
        # gathers only (index_select): on CPUs advanced indexing and index_copy_ of uint8 are slower
        idx_dev, tiered = staged
        if tiered is None:
            return torch.index_select(self.dev, 0, idx_dev)
        dev_rows, inv, host_rows, event = tiered
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
            host_rows.record_stream(torch.cuda.current_stream(self.device))
        both = torch.cat([torch.index_select(self.dev, 0, dev_rows), host_rows])   # (B, H, W, 3)
        return torch.index_select(both, 0, inv)


class ResidentLoader:
    """The split lives in an ImageStore; an epoch is a permutation and index gathers.

    `indices` restricts the epoch to a subset of the store's rows (the scaling study's N); `local`
    means the store holds this rank's rows only (see the module docstring).
    """

    def __init__(self, store: ImageStore | torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 shard: Shard = Shard(), indices: np.ndarray | None = None, train: bool = True,
                 local: bool = False, sizes: torch.Tensor | None = None):
        if isinstance(store, torch.Tensor):
            store = ImageStore(store, None, store.device)
        self.store, self.labels, self.sizes = store, labels, sizes  # sizes: (N, 2) true (h, w), paper layout
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.n = store.n if indices is None else len(self.indices)
        self.batch_size, self.seed, self.shard, self.train, self.local = batch_size, seed, shard, train, local

    def batches_per_epoch(self) -> int:
        return -(-len(self.order(0)) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices (rows of the store / of the beton) this rank visits in `epoch`, in order."""
        if self.local:  # this rank's own rows, its own permutation
            seed = [self.seed, self.shard.rank]
            order = epoch_order(self.n, seed, epoch, self.batch_size, Shard(), self.train, self.train)
        else:
            order = epoch_order(self.n, self.seed, epoch, self.batch_size, self.shard,
                                drop_last=self.train, shuffle=self.train)
        return order if self.indices is None else self.indices[order]

    def _staged(self, order: np.ndarray, start: int):
        if not self.store.tiered:  # one upload of the epoch's order, then slices of it
            order_dev = torch.from_numpy(order).to(self.store.device)
            for s in range(start, len(order), self.batch_size):
                yield order_dev[s:s + self.batch_size], None
            return
        for s in range(start, len(order), self.batch_size):
            yield self.store.stage(order[s:s + self.batch_size])

    def epoch(self, epoch: int, start_batch: int = 0):
        staged = self._staged(self.order(epoch), start_batch * self.batch_size)
        if self.store.tiered:  # host-tier gathers run two batches ahead on a worker thread
            staged = Prefetch(staged, depth=2, name="mlpscale-host-tier")
        try:
            for st in staged:
                x, y = self.store.assemble(st), torch.index_select(self.labels, 0, st[0])
                yield (x, y) if self.sizes is None else (x, y, torch.index_select(self.sizes, 0, st[0]))
        finally:
            if isinstance(staged, Prefetch):
                staged.close()


# --- reading a whole split -------------------------------------------------------------------------

@dataclass
class LoadStats:
    seconds: float = 0.0
    images: int = 0
    decoder: str = "memcpy"
    device_bytes: int = 0
    host_bytes: int = 0

    def as_dict(self, prefix: str) -> dict:
        return {f"{prefix}_load_s": round(self.seconds, 3),
                f"{prefix}_load_img_per_s": round(self.images / self.seconds, 1) if self.seconds > 0 else None,
                f"{prefix}_decoder": self.decoder,
                f"{prefix}_device_bytes": self.device_bytes,
                f"{prefix}_host_bytes": self.host_bytes}


class _LogLines:
    """tqdm's update/close for logs that are not a terminal: one line per ~10% of the work."""

    def __init__(self, total: int, desc: str):
        self.total, self.desc, self.done, self.next = total, desc, 0, total / 10
        self.t0 = time.perf_counter()

    def update(self, n: int) -> None:
        self.done += n
        if self.done >= self.next or self.done == self.total:
            rate = self.done / max(time.perf_counter() - self.t0, 1e-9)
            print(f"{self.desc}: {self.done:,}/{self.total:,} images ({rate:,.0f} img/s)", file=sys.stderr,
                  flush=True)
            self.next += self.total / 10

    def close(self) -> None:
        pass


def _progress(total: int, desc: str):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, unit="img", unit_scale=True, leave=False)
    return _LogLines(total, desc)


def load_images(b: Beton, device: torch.device, device_rows: int | None = None, rows: np.ndarray | None = None,
                workers: int = 0, chunk: int = 1 << 15, desc: str = "", progress: bool = False
                ) -> tuple[ImageStore, LoadStats]:
    """Read the images `rows` (default: all) of a fixed-size beton into a two-tier ImageStore:
    the first `device_rows` (default: all) on `device`, the rest in (pageable) host memory.
    JPEG betons are decoded in parallel; `progress` shows a bar on a terminal, else a line per ~10%."""
    res = b.resolution()
    if res is None:
        raise UserError(f"{b.path} holds images of several sizes (the authors' converter wrote it); only "
                        f"streaming can serve it: set data.resident=off, or re-convert it with mlpscale-convert "
                        f"--layout paper (fixed-size canvases)")
    rows = np.arange(b.num_samples) if rows is None else np.asarray(rows, dtype=np.int64)
    n = len(rows)
    k = n if device_rows is None else max(0, min(n, int(device_rows)))
    shape = (res[0], res[1], 3)
    raw = b.all_raw()
    t0 = time.perf_counter()
    dev = torch.empty((k, *shape), dtype=torch.uint8, device=device)
    host = torch.empty((n - k, *shape), dtype=torch.uint8) if n > k else None
    bar = None
    if progress and not raw:
        bar = _progress(n, f"decoding {desc or os.path.basename(b.path)}")
    decoder = "memcpy (raw pages)"
    stage = np.empty((min(chunk, n), *shape), dtype=np.uint8)
    for s in range(0, n, chunk):
        part = rows[s:s + chunk]
        e = s + len(part)
        staged = False
        if s >= k:                                  # host tier: fill in place
            target = host[s - k:e - k].numpy()
        elif e <= k and device.type == "cpu":       # the device tier is host memory: fill in place
            target = dev[s:e].numpy()
        else:                                       # GPU tier, or a chunk straddling the tiers: stage
            target, staged = stage[:len(part)], True
        if raw:
            read_raw_images(b, part, out=target)
        else:
            decoder = decode_images(b, part, target, workers, bar.update if bar is not None else None)
        if staged:
            m = min(e, k) - s
            dev[s:s + m].copy_(torch.from_numpy(target[:m]))
            if e > k:
                host[:e - k].copy_(torch.from_numpy(target[m:]))
    if bar is not None:
        bar.close()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    stats = LoadStats(time.perf_counter() - t0, n, decoder, dev.numel(), 0 if host is None else host.numel())
    return ImageStore(dev, host, device), stats


def read_split(path: str, device, workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A whole fixed-size beton in device memory: images (N, H, W, 3) uint8 and labels (N,) int64."""
    b = open_beton(path)
    store, _ = load_images(b, torch.device(device), workers=workers)
    return store.dev, torch.from_numpy(b.labels).to(device)


# --- FFCV streaming ---------------------------------------------------------------------------------

def _ffcv_loader(path: str, batch_size: int, workers: int, order_indices, os_cache: bool, device,
                 crop: tuple | None = None, sizes: bool = False):
    """An FFCV Loader yielding (uint8 NHWC, int64 labels) for the given index sequence.

    `crop=None`: images as stored (fixed size). `crop=(res, scale, ratio)`: FFCV's random-resized crop
    to res x res on the CPU; `crop=(res, None, None)`: FFCV's centre crop (ratio 1) to res x res.
    `sizes`: also the paper layout's `height` and `width` fields."""
    import_ffcv()
    from ffcv.fields.basics import IntDecoder
    from ffcv.fields.rgb_image import (CenterCropRGBImageDecoder, RandomResizedCropRGBImageDecoder,
                                       SimpleRGBImageDecoder)
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import Squeeze, ToDevice, ToTensor

    if crop is None:
        decoder = SimpleRGBImageDecoder()
    elif crop[1] is None:
        decoder = CenterCropRGBImageDecoder((crop[0], crop[0]), ratio=1.0)
    else:
        decoder = RandomResizedCropRGBImageDecoder((crop[0], crop[0]), scale=tuple(crop[1]), ratio=tuple(crop[2]))
    image = [decoder, ToTensor()]
    label = [IntDecoder(), ToTensor(), Squeeze()]
    pipelines = {"image": image, "label": label}
    if sizes:
        pipelines.update(height=[IntDecoder(), ToTensor(), Squeeze()], width=[IntDecoder(), ToTensor(), Squeeze()])
    for pipe in pipelines.values():
        if device.type == "cuda":
            pipe.append(ToDevice(device, non_blocking=True))
    return Loader(path, batch_size=batch_size, num_workers=workers or len(os.sched_getaffinity(0)),
                  order=OrderOption.SEQUENTIAL, indices=order_indices, os_cache=os_cache,
                  drop_last=False, pipelines=pipelines, batches_ahead=3)


def iterate_ffcv(loader, poll_s: float = 5.0):
    """Iterate one epoch of an FFCV loader without its hazards (hang on error, leaked thread)."""
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


class StreamLoader:
    """FFCV streams the split from disk each epoch; batches arrive on the device as uint8 NHWC.

    `crop` as in `_ffcv_loader`: set for betons of varying image sizes, where FFCV crops on the CPU
    (its random crops come from its own generator, so such runs are not bit-reproducible)."""

    def __init__(self, beton: Beton | str, batch_size: int, seed: int, device, shard: Shard = Shard(),
                 indices: np.ndarray | None = None, train: bool = True, workers: int = 0, os_cache: bool = True,
                 crop: tuple | None = None):
        beton = open_beton(beton) if isinstance(beton, str) else beton
        self.path, self.batch_size, self.seed, self.device = beton.path, batch_size, seed, device
        self.shard, self.train, self.workers, self.os_cache, self.crop = shard, train, workers, os_cache, crop
        self.base = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.n = beton.num_samples if indices is None else len(indices)
        self.sizes = crop is None and beton.image_sizes() is not None  # paper layout: yield (x, y, hw)
        self._loader = None

    def batches_per_epoch(self) -> int:
        return -(-len(self.order(0)) // self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """The sample indices (rows of the store / of the beton) this rank visits in `epoch`, in order."""
        order = epoch_order(self.n, self.seed, epoch, self.batch_size, self.shard,
                            drop_last=self.train, shuffle=self.train)
        return order if self.base is None else self.base[order]

    def epoch(self, epoch: int, start_batch: int = 0):
        full = self.order(epoch)
        if self._loader is None:
            # compile FFCV's pipeline once per run; later epochs only swap the index order. Created with
            # a whole epoch's order: FFCV fixes its __len__ (which truncates every later order) then.
            self._loader = _ffcv_loader(self.path, self.batch_size, self.workers, full, self.os_cache,
                                        self.device, self.crop, self.sizes)
        order = full[start_batch * self.batch_size:]  # a resumed run starts mid-epoch
        self._loader.indices = order
        self._loader.traversal_order.indices = order
        for x, y, *hw in iterate_ffcv(self._loader):
            # FFCV hands out views of a ring of batches_ahead + 2 buffers that it refills; a copy
            # (cheap next to a training step) lets callers hold several batches (accumulation)
            x, y = x.to(self.device, copy=True), y.to(self.device, dtype=torch.int64, copy=True).view(-1)
            if not hw:
                yield x, y
            else:
                yield x, y, torch.stack([t.to(self.device, dtype=torch.int16).view(-1) for t in hw], 1)
