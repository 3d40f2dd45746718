"""Every `mlpscale-convert` source on small files in the real download formats."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from data_prep.cli import main
from mlpscale.errors import UserError
from mlpscale.io import is_temp_name
from mlpscale.layout import beton_path, check_dataset

import convert_fixtures as fx
from util import tree


def convert(*argv) -> dict:
    """Run the converter; check that the folder is consistent (betons stamped with the meta's id and
    holding its counts, no temp file left); return the meta."""
    main([*argv, "--quiet", "--workers", "2"])
    args = list(argv)
    out, name = args[args.index("--root") + 1], (args[args.index("--dataset") + 1] if "--dataset" in args else args[0])
    res = args[args.index("--res") + 1]
    with open(os.path.join(out, name, f"meta_{res}.json")) as f:
        meta = json.load(f)
    bets = check_dataset(out, name, int(res), list(meta["counts"]), "hint")
    assert {b.conversion_id for b in bets.values()} == {meta["conversion_id"]}
    assert meta["files"] == {s: f"{s}_{res}.beton" for s in meta["counts"]}
    # ImageNet is stored as the authors store it (aspect kept); the other sources are square already
    layout = "paper" if name in ("imagenet1k", "imagenet21k") else "square"
    assert meta["layout"] == layout and meta["startup_s"] >= 0
    assert not [f for f in os.listdir(os.path.join(out, name)) if is_temp_name(f)]
    return meta


def assert_common_meta(meta, counts, eval_split, num_classes):
    assert meta["counts"] == counts
    assert meta["eval_split"] == eval_split
    assert meta["num_classes"] == num_classes == len(meta["classes"])
    assert len(meta["mean"]) == len(meta["std"]) == 3
    assert meta["tool"].startswith("mlpscale ")
    assert meta["format"] in ("raw", "jpg")


@pytest.mark.parametrize("archive", [True, False])
def test_cifar10_from_archive_and_folder(tmp_path, archive):
    src, truth = fx.make_cifar10(str(tmp_path / "dl"), archive=archive)
    out = str(tmp_path / "out")
    meta = convert("cifar10", "--src", src, "--res", "32", "--root", out)
    assert_common_meta(meta, {"train": 30, "test": 6}, "test", 10)
    assert meta["classes"][:2] == ["airplane", "automobile"]
    for split in ("train", "test"):
        x, y = fx.read_beton(beton_path(out, "cifar10", split, 32))
        np.testing.assert_array_equal(x, truth[split][0].transpose(0, 2, 3, 1))  # exact at native res
        np.testing.assert_array_equal(y, truth[split][1])
    x = truth["train"][0].transpose(0, 2, 3, 1).reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(meta["mean"], x.mean(0), rtol=1e-9)
    np.testing.assert_allclose(meta["std"], x.std(0), rtol=1e-9)


def test_cifar10_upscaled_to_64(tmp_path):
    src, truth = fx.make_cifar10(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    meta = convert("cifar10", "--src", src, "--res", "64", "--root", out)
    x, _ = fx.read_beton(beton_path(out, "cifar10", "train", 64))
    assert x.shape == (30, 64, 64, 3) and meta["res"] == 64
    from data_prep.resize import square_resize

    expect = square_resize(Image.fromarray(truth["train"][0][0].transpose(1, 2, 0)), 64)
    np.testing.assert_array_equal(x[0], expect)  # antialiased resize of the original pixels


@pytest.mark.parametrize("label_type,classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_fine_and_coarse(tmp_path, label_type, classes):
    src, truth = fx.make_cifar100(str(tmp_path / "dl"), archive=label_type == "fine")
    out = str(tmp_path / "out")
    # 12 images cannot cover 100 (or 20) classes
    meta = convert("cifar100", "--src", src, "--res", "32", "--root", out, "--label-type", label_type,
                   "--allow-empty-classes")
    assert_common_meta(meta, {"train": 12, "test": 12}, "test", classes)
    assert meta["classes"][3] == f"{label_type}3" and meta["label_type"] == label_type
    _, y = fx.read_beton(beton_path(out, "cifar100", "test", 32))
    np.testing.assert_array_equal(y, truth["test"][1 if label_type == "fine" else 2])


def test_stl10_column_major_and_labels(tmp_path):
    src, truth = fx.make_stl10(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    meta = convert("stl10", "--src", src, "--res", "96", "--root", out)
    assert_common_meta(meta, {"train": 10, "test": 4}, "test", 10)
    assert meta["classes"][7] == "monkey"
    x, y = fx.read_beton(beton_path(out, "stl10", "train", 96))
    np.testing.assert_array_equal(x, truth["train"][0])
    np.testing.assert_array_equal(y, truth["train"][1])
    meta = convert("stl10", "--src", os.path.join(src, "stl10_binary"), "--res", "64", "--root", out)
    x, _ = fx.read_beton(beton_path(out, "stl10", "test", 64))
    expect = np.asarray(Image.fromarray(truth["test"][0][1]).resize((64, 64), Image.Resampling.BOX))
    assert np.abs(x[1].astype(int) - expect).max() <= 2


def test_tinyimagenet(tmp_path):
    src = fx.make_tinyimagenet(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    meta = convert("tinyimagenet", "--src", str(tmp_path / "dl"), "--res", "64", "--root", out)
    assert_common_meta(meta, {"train": 15, "val": 10}, "val", 5)
    assert meta["classes"] == sorted(fx.WNIDS)
    assert meta["class_names"][0] == "thing 537, other"
    for split in ("train", "val"):
        x, y = fx.read_beton(beton_path(out, "tinyimagenet", split, 64))
        for img, label in zip(x, y):
            colour = fx.class_colour(fx.WNIDS.index(meta["classes"][label]))
            assert np.abs(img.reshape(-1, 3).mean(0) - colour).max() < 4
    assert os.path.isdir(src)


@pytest.mark.parametrize("tars,flat_val", [(True, True), (False, False)])
def test_imagenet1k_layouts_corrupt_and_real(tmp_path, tars, flat_val):
    src, truth, real = fx.make_imagenet1k(str(tmp_path / "dl"), tars=tars, flat_val=flat_val)
    out = str(tmp_path / "out")
    meta = convert("imagenet1k", "--src", src, "--res", "16", "--root", out,
                   "--real", str(tmp_path / "dl" / "real.json"))
    assert_common_meta(meta, {"train": 20, "val": 10}, "val", 5)
    assert meta["classes"] == sorted(fx.WNIDS)
    assert meta["num_skipped"]["train"] == 1 and "n01629819_4.JPEG" in meta["skipped"]["train"][0]
    x, y = fx.read_images(beton_path(out, "imagenet1k", "val", 16))
    np.testing.assert_array_equal(y, [c for _, c in truth])  # file order, labels via the csv / folders
    for img, label in zip(x, y):
        assert np.abs(img.reshape(-1, 3).mean(0) - fx.class_colour(label)).max() < 4
    assert meta["real_labels"] == "real_labels_16.json"
    with open(os.path.join(out, "imagenet1k", meta["real_labels"])) as f:
        assert json.load(f) == real
    _, ytr = fx.read_images(beton_path(out, "imagenet1k", "train", 16))
    assert np.bincount(ytr).tolist() == [4] * 5


def test_imagenet1k_flat_val_without_ground_truth_is_one_sentence(tmp_path):
    src, _, _ = fx.make_imagenet1k(str(tmp_path / "dl"))
    os.remove(os.path.join(src, "LOC_val_solution.csv"))
    with pytest.raises(SystemExit) as e:
        main(["imagenet1k", "--src", src, "--res", "16", "--root", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2


def test_imagenet21k_tars_filter_holdout_and_corrupt_member(tmp_path):
    src = fx.make_imagenet21k(str(tmp_path / "dl"), sizes=(12, 3, 9, 10))
    out = str(tmp_path / "out")
    meta = convert("imagenet21k", "--src", src, "--res", "16", "--root", out,
                   "--min-images", "9", "--val-per-class", "2", "--format", "jpg")
    # class 1 (3 images) is dropped; 12 + 9 + 10 = 31 images, 2 per class held out, 1 corrupt member
    assert meta["classes"] == [fx.WNIDS[0], fx.WNIDS[2], fx.WNIDS[3]]
    assert meta["preprocessing"]["classes_in_src"] == 4 and meta["preprocessing"]["classes_kept"] == 3
    assert sum(meta["counts"].values()) == 30 and meta["counts"]["val"] + meta["num_skipped"]["val"] == 6
    skipped = meta["skipped"]["train"] + meta["skipped"]["val"]
    assert len(skipped) == 1 and f"{fx.WNIDS[0]}.tar:{fx.WNIDS[0]}_5.JPEG" in skipped[0]
    for split in ("train", "val"):
        x, y = fx.read_images(beton_path(out, "imagenet21k", split, 16))
        for img, label in zip(x, y):
            colour = fx.class_colour(fx.WNIDS.index(meta["classes"][label]))
            assert np.abs(img.reshape(-1, 3).mean(0) - colour).max() < 6  # jpg round trip
    # the same class list reused (e.g. for another resolution) gives the same split
    meta2 = convert("imagenet21k", "--src", src, "--res", "8", "--root", out,
                    "--classes", os.path.join(out, "imagenet21k", "meta_16.json"), "--val-per-class", "2")
    assert meta2["classes"] == meta["classes"] and meta2["counts"] == meta["counts"]


def test_folder_source_own_dataset(tmp_path):
    src = fx.make_folder(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    meta = convert("folder", "--src", src, "--dataset", "mydata", "--res", "8", "--root", out)
    assert_common_meta(meta, {"train": 9, "val": 3}, "val", 3)
    assert meta["classes"] == ["cat", "dog", "zebra"]
    assert meta["num_skipped"] == {"train": 1, "val": 0} and "broken.png" in meta["skipped"]["train"][0]
    x, y = fx.read_beton(beton_path(out, "mydata", "train", 8))
    assert y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    for img, label in zip(x, y):
        np.testing.assert_array_equal(img.reshape(-1, 3), np.tile(fx.class_colour(label), (64, 1)))
    from mlpscale.datasets import get_dataset

    info = get_dataset("mydata", out, 8)
    assert (info.num_classes, info.train_samples, info.eval_samples, info.eval_split) == (3, 9, 3, "val")
    assert info.class_names == ("cat", "dog", "zebra")


@pytest.mark.parametrize("source,make", [
    ("cifar10", lambda d: os.path.join(d, "nothing-here")),
    ("stl10", lambda d: d),
    ("tinyimagenet", lambda d: d),
    ("imagenet21k", lambda d: d),
    ("folder", lambda d: d),
])
def test_wrong_src_layout_is_one_sentence(tmp_path, capsys, source, make):
    d = tmp_path / "empty"
    d.mkdir()
    with pytest.raises(SystemExit) as e:
        main([source, "--src", make(str(d)), "--res", "8", "--root", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "expected" in err and "\n" not in err and "Traceback" not in err


def test_source_load_raises_user_error_directly(tmp_path):
    from types import SimpleNamespace

    from data_prep.sources import imagenet1k

    with pytest.raises(UserError):
        imagenet1k.load(SimpleNamespace(src=str(tmp_path), source="imagenet1k", workers=1,
                                        val_labels=None, real=None, words=None))


class _RunsCode:
    """Unpickling this calls open(marker, "w"): what a hostile "CIFAR batch" could do instead."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return open, (self.marker, "w")


def test_cifar_pickle_that_would_run_code_is_refused(tmp_path, capsys):
    import pickle

    src, _ = fx.make_cifar10(str(tmp_path / "dl"), archive=False)
    marker = tmp_path / "marker"
    batch = os.path.join(src, "cifar-10-batches-py", "data_batch_1")
    with open(batch, "wb") as f:
        pickle.dump({b"data": _RunsCode(str(marker)), b"labels": [0]}, f)
    with pytest.raises(SystemExit) as e:
        main(["cifar10", "--src", src, "--res", "32", "--root", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and err.startswith("error: ") and "\n" not in err
    assert "data_batch_1 is not a CIFAR batch" in err
    assert not marker.exists()


@pytest.mark.parametrize("error,raised", [(OSError(28, "No space left on device"), UserError),
                                          (KeyboardInterrupt(), KeyboardInterrupt)])
def test_digits_export_keeps_the_previous_export_until_complete(tmp_path, monkeypatch, error, raised):
    from PIL import Image as PILImage

    from data_prep.sources.digits import export_folders

    out = tmp_path / "pairs"
    export_folders(str(out), {0: "a", 1: "b"})
    before = tree(out)
    assert sorted(os.listdir(out / "train")) == ["a", "b"] and len(before) > 300
    real, calls = PILImage.Image.save, []

    def save(self, *a, **k):
        calls.append(1)
        if len(calls) == 100:
            raise error
        return real(self, *a, **k)

    monkeypatch.setattr(PILImage.Image, "save", save)
    with pytest.raises(raised):
        export_folders(str(out), {7: "c"})
    monkeypatch.undo()
    assert tree(out) == before and os.listdir(tmp_path) == ["pairs"]  # no temp folder left
    export_folders(str(out), {7: "c"})  # a complete export replaces the old one whole
    assert sorted(os.listdir(out / "train")) == ["c"] and os.listdir(tmp_path) == ["pairs"]
