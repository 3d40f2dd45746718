"""ImageNet-21k scale: subsets by one sort, the beton index read once per load, batch decode,
copies by ranges, cheap tar counting, compact records. Correctness only; times are in
benchmarks/bench_scale.py."""
import os

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

@pytest.mark.parametrize("fmt", ["raw", "jpg"])
def test_chunked_load_scans_the_index_once(betons, fmt, monkeypatch):
    import torch

    from mlpscale import beton as fmt_mod
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
    from mlpscale.beton import open_beton
    from mlpscale.decode import decode_images

    b = open_beton(betons["jpg"])
    rows = np.random.default_rng(0).permutation(b.num_samples)
    batch, single = (np.empty((len(rows), 8, 8, 3), np.uint8) for _ in range(2))
    assert "batch nogil" in decode_images(b, rows, batch, workers=2, batch=True)
    assert "batch nogil" not in decode_images(b, rows, single, workers=2, batch=False)
    np.testing.assert_array_equal(batch, single)


def test_batch_decode_names_a_damaged_image(betons, tmp_path):
    import shutil

    from mlpscale.beton import open_beton
    from mlpscale.decode import decode_images
    from mlpscale.errors import UserError

    bad = tmp_path / "bad.beton"
    shutil.copy(betons["jpg"], bad)
    b = open_beton(str(bad))
    p = int(b.data_ptrs()[7])
    with open(bad, "r+b") as f:               # overwrite image 7's JPEG header
        f.seek(p)
        f.write(b"\0" * 16)
    with pytest.raises(UserError, match="image 7 does not decode"):
        decode_images(open_beton(str(bad)), np.arange(20), np.empty((20, 8, 8, 3), np.uint8), batch=True)


# --- compact records: one path array, numpy labels ------------------------------------------------

def test_path_array_round_trips_and_gathers(tmp_path):
    from data_prep.records import PathArray

    names = [["a/1.jpg", "a/ü ß.png"], [], ["b/" + "x" * 300 + ".jpg", "b/\udcff.jpg"]]  # non-UTF-8 byte too
    pa = PathArray.from_lists(names)
    flat = [p for part in names for p in part]
    assert len(pa) == 4 and list(pa) == flat and pa[1:3] == flat[1:3] and pa[-1] == flat[-1]
    keep = np.array([3, 0, 0])
    assert list(pa.take(keep)) == [flat[i] for i in keep]
    assert len(pa.take(np.array([], int))) == 0
    assert pa.buf.nbytes == sum(len(os.fsencode(p)) for p in flat)


def test_folder_records_hold_no_python_object_per_image(tmp_path):
    from PIL import Image

    from data_prep.records import PathArray
    from data_prep.scan import RecordBuilder, add_indexed, index_entries

    for c in ("cat", "dog"):
        (tmp_path / c).mkdir()
        for i in range(3):
            Image.new("RGB", (4, 4)).save(tmp_path / c / f"{i}.png")
    b = RecordBuilder()
    entries = [str(tmp_path / c) for c in ("cat", "dog")]
    for label, (e, ix) in enumerate(zip(entries, index_entries(entries))):
        add_indexed(b, e, ix, label)
    r = b.build()
    assert isinstance(r.paths, PathArray) and r.labels.dtype == np.int64 and r.labels.tolist() == [0] * 3 + [1] * 3
    sub = r.subset(np.array([1, 4]))
    assert list(sub.paths) == [str(tmp_path / "cat" / "1.png"), str(tmp_path / "dog" / "1.png")]
    assert sub.task(0, 2) == ("files", list(sub.paths))


# --- ImageNet-21k: tar members counted from headers, dropped classes never indexed --------------------

@pytest.mark.parametrize("fmt", ["ustar", "gnu", "pax"])
def test_tar_header_count_equals_the_full_index(tmp_path, fmt):
    import io
    import tarfile

    from data_prep.scan import count_tar_images, index_tar

    path = tmp_path / f"{fmt}.tar"
    tf_fmt = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}[fmt]
    with tarfile.open(path, "w", format=tf_fmt) as tf:
        def add(name, data=b"x" * 700, kind=tarfile.REGTYPE):
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(data) if kind == tarfile.REGTYPE else 0
            tf.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        add("n01/a.JPEG")
        add("n01/readme.txt")
        add("n01/sub", kind=tarfile.DIRTYPE)
        add("n01/" + "d" * 120 + "/long.jpg")          # > 100 bytes: ustar prefix, GNU 'L' or pax path
        add("n01/" + "e" * 90 + ".txt")
        add("n01/empty.png", b"")
    assert count_tar_images(str(path)) == len(index_tar(str(path))[0]) == 3


def test_imagenet21k_indexes_only_the_classes_it_keeps(tmp_path, monkeypatch):
    import argparse
    import tarfile

    from data_prep import scan
    from data_prep.sources import imagenet21k

    src = tmp_path / "src"
    src.mkdir()
    for wnid, n in (("n001", 6), ("n002", 2), ("n003", 5)):
        with tarfile.open(src / f"{wnid}.tar", "w") as tf:
            for i in range(n):
                info = tarfile.TarInfo(f"{wnid}_{i}.JPEG")
                info.size = 0
                tf.addfile(info)
    indexed = []
    real = scan._index_one
    monkeypatch.setattr(scan, "_index_one", lambda e: indexed.append(os.path.basename(e)) or real(e))
    args = argparse.Namespace(src=str(src), source="imagenet21k", class_list=None, min_images=5, val_per_class=1,
                              seed=0, words=None)
    data = imagenet21k.load(args)
    assert data.classes == ["n001", "n003"] and sorted(indexed) == ["n001.tar", "n003.tar"]
    assert len(data.splits["train"]) == 5 + 4 and len(data.splits["val"]) == 2


# --- combine / subset --beton: copies by ranges and gathers, the same bytes as per-sample adds ---------

def _per_sample_copy(dst, b, idx, page_size):
    from mlpscale.beton import BetonWriter, iter_payloads

    w = BetonWriter(dst, len(idx), int(b.sizes().max()), page_size=page_size)
    for payload, mode, h, wd, label in iter_payloads(b, idx):
        w.add(payload, mode, h, wd, label)
    w.commit()


@pytest.mark.parametrize("pick", ["all", "scattered", "runs"])
def test_range_copy_writes_the_bytes_a_per_sample_copy_writes(betons, tmp_path, pick):
    from data_prep.combine import payload_chunks
    from mlpscale.beton import BetonWriter, open_beton

    b = open_beton(betons["jpg"])
    n = b.num_samples
    idx = {"all": np.arange(n), "scattered": np.sort(np.random.default_rng(0).choice(n, n // 3, replace=False)),
           "runs": np.concatenate([np.arange(0, 200), np.arange(500, 900), [1000, 1436]])}[pick]
    ref, ours = str(tmp_path / "ref.beton"), str(tmp_path / "ours.beton")
    _per_sample_copy(ref, b, idx, page_size=8192)          # small pages: many page breaks
    w = BetonWriter(ours, len(idx), int(b.sizes().max()), page_size=8192)
    chunks = list(payload_chunks(b, None if pick == "all" else idx, max_bytes=20_000))
    assert len(chunks) > 5
    for c in chunks:
        w.add_many(*c)
    w.commit()
    assert open(ours, "rb").read() == open(ref, "rb").read()


def test_subset_beton_equals_its_indices(digits_root, tmp_path):
    import shutil

    from data_prep.cli import main
    from mlpscale.beton import iter_payloads, open_beton

    root = tmp_path / "d"
    shutil.copytree(digits_root, root)
    main(["subset", "--dataset", "digits", "--res", "8", "--root", str(root), "--n", "500", "--beton", "--quiet"])
    idx = np.load(root / "digits" / "train_8_n500.idx.npy")
    full = open_beton(str(root / "digits" / "train_8.beton"))
    sub = open_beton(str(root / "digits" / "train_8_n500.beton"))
    assert sub.conversion_id == full.conversion_id
    assert list(iter_payloads(sub)) == list(iter_payloads(full, idx))


def test_an_image_pointing_outside_the_allocation_table_is_refused_once(betons, tmp_path):
    import shutil

    import torch

    from mlpscale.beton import FIELD_DESC, HEADER, open_beton
    from mlpscale.errors import UserError
    from mlpscale.loader import load_images

    bad = tmp_path / "bad.beton"
    shutil.copy(betons["jpg"], bad)
    b = open_beton(str(bad))
    row = b.metadata.dtype.itemsize
    ptr_at = HEADER.itemsize + 2 * FIELD_DESC.itemsize + 5 * row + b.metadata.dtype["f0"].fields["data_ptr"][1]
    with open(bad, "r+b") as f:                 # image 5's payload pointer moved by 3 bytes
        f.seek(ptr_at)
        f.write(np.array([int(b.data_ptrs()[5]) + 3], "<u8").tobytes())
    with pytest.raises(UserError, match="points outside its allocation table"):
        load_images(open_beton(str(bad)), torch.device("cpu"))
