"""ImageNet-21k scale: subsets by one sort, the beton index read once per load, batch decode,
copies by ranges, cheap tar counting, compact records. Correctness only; times are in
benchmarks/bench_scale.py."""
import numpy as np
import pytest

from mlpscale.subsets import balanced_subset


def per_class_subset(labels, n, seed=0):
    """The per-class reference (`labels == c` once per class): the indices every existing subset,
    sweep and `subset` file was made with."""
    labels = np.asarray(labels)
    total = len(labels)
    if n == total:
        return np.arange(total)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n / total)
    take = np.floor(quota).astype(np.int64)
    short = n - int(take.sum())
    order = np.lexsort((classes, -(quota - take)))
    take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = []
    for c, k in zip(classes, take):
        if k:
            members = np.flatnonzero(labels == c)
            picked.append(members[rng.permutation(len(members))[:k]])
    return np.sort(np.concatenate(picked))


@pytest.mark.parametrize("kind", ["dense", "sparse_ids", "negative", "skewed"])
def test_subset_by_one_sort_equals_per_class(kind):
    rng = np.random.default_rng(3)
    if kind == "dense":
        labels = rng.integers(0, 300, 40_000)
    elif kind == "sparse_ids":           # ids far apart: ranked through np.unique
        labels = rng.integers(0, 50, 20_000) * 10_000_019
    elif kind == "negative":
        labels = rng.integers(-20, 20, 10_000)
    else:                                # a few huge classes, many tiny ones, sorted input
        labels = np.sort(np.concatenate([np.zeros(5000, int), rng.integers(1, 2000, 3000)]))
    for n in (1, 13, len(labels) // 7, len(labels) - 1, len(labels)):
        for seed in (0, 11):
            np.testing.assert_array_equal(balanced_subset(labels, n, seed), per_class_subset(labels, n, seed))


def test_subset_with_more_classes_than_16_bits():
    labels = np.repeat(np.arange(70_000), 2)[::-1]
    idx = balanced_subset(labels, 70_000, seed=1)
    assert np.array_equal(np.sort(labels[idx]), np.arange(70_000))  # one of each class


# --- the beton index: scanned once per open, whatever the number of chunks -------------------------

@pytest.fixture(scope="module")
def betons(tmp_path_factory):
    from mlpscale.format import write_arrays
    from util import digits_arrays

    d = tmp_path_factory.mktemp("scale")
    (x, y), _ = digits_arrays(8)
    out = {}
    for fmt in ("raw", "jpg"):
        out[fmt] = str(d / f"train_{fmt}.beton")
        write_arrays(out[fmt], x, y, fmt)
    return out


@pytest.mark.parametrize("fmt", ["raw", "jpg"])
def test_chunked_load_scans_the_index_once(betons, fmt, monkeypatch):
    import torch

    from mlpscale import format as fmt_mod
    from mlpscale.loader import load_images

    scans = []
    real = fmt_mod._scan_index
    monkeypatch.setattr(fmt_mod, "_scan_index", lambda b: scans.append(b.path) or real(b))
    b = fmt_mod.open_beton(betons[fmt])
    whole, _ = load_images(b, torch.device("cpu"))
    assert len(scans) == 1
    b = fmt_mod.open_beton(betons[fmt])
    rows = np.arange(b.num_samples)[::-1].copy()
    chunked, _ = load_images(b, torch.device("cpu"), rows=rows, chunk=100)   # 15 chunks
    assert len(scans) == 2                                                    # one more open, one more scan
    assert torch.equal(chunked.dev, whole.dev.flip(0))


def test_batch_decode_equals_per_image_decode(betons):
    from mlpscale.format import open_beton
    from mlpscale.loader import decode_images

    b = open_beton(betons["jpg"])
    rows = np.random.default_rng(0).permutation(b.num_samples)
    batch, single = (np.empty((len(rows), 8, 8, 3), np.uint8) for _ in range(2))
    assert "batch nogil" in decode_images(b, rows, batch, workers=2, batch=True)
    assert "batch nogil" not in decode_images(b, rows, single, workers=2, batch=False)
    np.testing.assert_array_equal(batch, single)


def test_batch_decode_names_a_damaged_image(betons, tmp_path):
    import shutil

    from mlpscale.errors import UserError
    from mlpscale.format import open_beton
    from mlpscale.loader import decode_images

    bad = tmp_path / "bad.beton"
    shutil.copy(betons["jpg"], bad)
    b = open_beton(str(bad))
    p = int(b.data_ptrs()[7])
    with open(bad, "r+b") as f:               # overwrite image 7's JPEG header
        f.seek(p)
        f.write(b"\0" * 16)
    with pytest.raises(UserError, match="image 7 does not decode"):
        decode_images(open_beton(str(bad)), np.arange(20), np.empty((20, 8, 8, 3), np.uint8), batch=True)
