"""Loader guards around FFCV's failure modes, and both loaders' contracts."""
import os
import shutil
import time

import numpy as np
import pytest
import torch

from mlpscale.errors import UserError
from mlpscale.layout import beton_path
from mlpscale.loader import ResidentLoader, Shard, StreamLoader, epoch_order, read_split


def test_stream_epochs_cover_the_data_once(digits_root):
    loader = StreamLoader(beton_path(digits_root, "digits", "train", 8), 100, 7, torch.device("cpu"), workers=1)
    seen = [y for _, y in loader.epoch(3)]
    assert sum(len(y) for y in seen) == 1400  # 14 full batches; the last partial one is dropped
    x, y = read_split(beton_path(digits_root, "digits", "train", 8), torch.device("cpu"))
    expected = y[torch.from_numpy(epoch_order(1437, 7, 3, 100))]
    assert torch.equal(torch.cat(seen), expected)


def test_abandoned_epoch_does_not_leak_threads(digits_root):
    import threading

    loader = StreamLoader(beton_path(digits_root, "digits", "train", 8), 50, 0, torch.device("cpu"), workers=1)
    base = threading.active_count()
    for e in range(5):
        it = loader.epoch(e)
        next(it)
        it.close()  # what the trainer does when it stops mid-epoch
    deadline = time.monotonic() + 60  # bounds a hang only: the test waits for the threads to end (a state)
    while threading.active_count() > base + 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() <= base + 1, [t.name for t in threading.enumerate()]


def test_resident_start_batch_skips_exactly(digits_root):
    x, y = read_split(beton_path(digits_root, "digits", "train", 8), torch.device("cpu"))
    r = ResidentLoader(x, y, 64, 1)
    full = [b for _, b in r.epoch(2)]
    tail = [b for _, b in r.epoch(2, start_batch=5)]
    assert len(full) == 22 and all(torch.equal(a, b) for a, b in zip(full[5:], tail))


def test_damaged_beton_fails_fast(digits_root, tmp_path):
    bad = tmp_path / "bad.beton"
    shutil.copy(beton_path(digits_root, "digits", "train", 8), bad)
    with open(bad, "r+b") as f:  # keep the header, cut the data region
        f.truncate(os.path.getsize(bad) // 3)
    with pytest.raises((UserError, RuntimeError)):  # an error, not a silent short epoch
        loader = StreamLoader(str(bad), 100, 0, torch.device("cpu"), workers=1)
        for _ in loader.epoch(0):
            pass


def test_not_a_beton(tmp_path):
    junk = tmp_path / "junk.beton"
    junk.write_bytes(b"this is not an ffcv file" * 100)
    with pytest.raises(UserError, match="cannot read .* as an FFCV beton"):
        StreamLoader(str(junk), 10, 0, torch.device("cpu"))


def test_batch_larger_than_dataset():
    with pytest.raises(UserError, match="larger than the 100 training images"):
        epoch_order(100, 0, 0, 64, Shard(0, 2))


def test_eval_order_keeps_everything_across_ranks():
    parts = [epoch_order(10, 0, 0, 4, Shard(r, 3), drop_last=False, shuffle=False) for r in range(3)]
    assert sorted(np.concatenate(parts).tolist()) == list(range(10))
