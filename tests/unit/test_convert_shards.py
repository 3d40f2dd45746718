"""Sharded conversion + combine, and class-balanced subsets."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from data_prep.cli import main
from mlpscale.beton import open_beton
from mlpscale.layout import check_dataset
from mlpscale.subsets import balanced_subset

import convert_fixtures as fx


def _meta(out, name, res, suffix=""):
    with open(os.path.join(out, name, f"meta_{res}{suffix}.json")) as f:
        return json.load(f)


def test_shards_combine_to_the_unsharded_result(tmp_path):
    src = fx.make_imagenet21k(str(tmp_path / "dl"), sizes=(12, 11, 9, 10))
    common = ["imagenet21k", "--src", src, "--res", "8", "--min-images", "9", "--val-per-class", "2",
              "--quiet", "--workers", "1"]
    whole, sharded = str(tmp_path / "whole"), str(tmp_path / "sharded")
    main(common + ["--root", whole])
    for i in range(3):
        main(common + ["--root", sharded, "--shard", f"{i}/3"])
    with pytest.raises(SystemExit):  # nothing to combine for another name
        main(["combine", "--dataset", "other", "--res", "8", "--root", sharded, "--quiet"])
    main(["combine", "--dataset", "imagenet21k", "--res", "8", "--root", sharded, "--quiet", "--delete-shards"])
    a, b = _meta(whole, "imagenet21k", 8), _meta(sharded, "imagenet21k", 8)
    assert a["classes"] == b["classes"] and a["counts"] == b["counts"]
    np.testing.assert_allclose(a["mean"], b["mean"])
    np.testing.assert_allclose(a["std"], b["std"])
    assert sorted(a["skipped"]["train"] + a["skipped"]["val"]) == sorted(b["skipped"]["train"] + b["skipped"]["val"])
    assert sorted(os.listdir(os.path.join(sharded, "imagenet21k"))) == [".lock", "meta_8.json", "train_8.beton",
                                                                        "val_8.beton"]
    assert b["conversion_id"] not in (a["conversion_id"], None) and b["files"] == {"train": "train_8.beton",
                                                                                   "val": "val_8.beton"}
    check_dataset(sharded, "imagenet21k", 8, ["train", "val"], "hint")  # stamped with the combined id
    for split in ("train", "val"):
        # images at their true sizes: ImageNet-21k is stored in the paper layout (sizes differ)
        xa, ya = fx.read_images(os.path.join(whole, "imagenet21k", f"{split}_8.beton"))
        xb, yb = fx.read_images(os.path.join(sharded, "imagenet21k", f"{split}_8.beton"))
        # same samples, grouped by shard instead of by class
        a, b = (sorted(zip(y.tolist(), [(i.shape, i.tobytes()) for i in x])) for x, y in ((xa, ya), (xb, yb)))
        assert a == b


def test_combine_refuses_missing_shard(tmp_path, capsys):
    src = fx.make_folder(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    main(["folder", "--src", src, "--dataset", "d", "--res", "8", "--root", out, "--shard", "0/2", "--quiet"])
    with pytest.raises(SystemExit):
        main(["combine", "--dataset", "d", "--res", "8", "--root", out, "--quiet"])
    assert "shards [1] of 2 are missing" in capsys.readouterr().err


def test_quiet_prints_nothing_but_errors(tmp_path, capsys):
    """--quiet silences progress bars and 'wrote' lines of convert, combine and subset, not warnings
    (the fixture holds a corrupt image) or errors."""
    src = fx.make_folder(str(tmp_path / "dl"))
    common = ["--dataset", "d", "--res", "8", "--root", str(tmp_path / "out")]
    for argv in (["folder", "--src", src, *common, "--workers", "1", "--shard", "0/2"],
                 ["folder", "--src", src, *common, "--workers", "1", "--shard", "1/2"],
                 ["combine", *common],
                 ["subset", *common, "--n", "3", "--beton"]):
        main([*argv, "--quiet"])
        out, err = capsys.readouterr()
        assert out == "" and all(line.startswith("skipped ") for line in err.splitlines()), argv
    main(["folder", "--src", src, *common, "--workers", "1"])
    assert capsys.readouterr().out.count("wrote ") == 3  # train, val, meta
    with pytest.raises(SystemExit):
        main(["folder", "--src", str(tmp_path / "missing"), *common, "--quiet"])
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ")


def test_subset_index_file_and_beton(tmp_path):
    out = str(tmp_path / "out")
    main(["digits", "--res", "8", "--root", out, "--quiet"])
    main(["subset", "--dataset", "digits", "--res", "8", "--root", out, "--n", "100", "--seed", "3", "--beton",
          "--quiet"])
    idx = np.load(os.path.join(out, "digits", "train_8_n100.idx.npy"))
    x, y = fx.read_beton(os.path.join(out, "digits", "train_8.beton"))
    np.testing.assert_array_equal(idx, balanced_subset(y, 100, 3))
    assert idx.dtype == np.int64 and len(idx) == 100
    xs, ys = fx.read_beton(os.path.join(out, "digits", "train_8_n100.beton"))
    np.testing.assert_array_equal(ys, y[idx])
    np.testing.assert_array_equal(xs, x[idx])
    counts = np.bincount(ys, minlength=10)
    assert counts.max() - counts.min() <= 2  # class-balanced
    # the subset belongs to its dataset's conversion
    train = check_dataset(out, "digits", 8, ["train"], "hint")["train"]
    assert open_beton(os.path.join(out, "digits", "train_8_n100.beton")).conversion_id == train.conversion_id


def test_combine_refuses_a_shard_beton_of_another_conversion(tmp_path, capsys):
    """A shard re-converted half-way (its beton from one run, its meta from another) is not merged."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    for i in range(2):
        main(["digits", "--res", "8", "--root", a, "--shard", f"{i}/2", "--quiet"])
    main(["digits", "--res", "8", "--root", b, "--shard", "0/2", "--quiet"])
    name = "train_8.shard-0-of-2.beton"
    shutil.copy(os.path.join(b, "digits", name), os.path.join(a, "digits", name))
    with pytest.raises(SystemExit) as e:
        main(["combine", "--dataset", "digits", "--res", "8", "--root", a, "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "does not belong to its meta file" in err and "--shard 0/2" in err
    assert not os.path.exists(os.path.join(a, "digits", "meta_8.json"))


def test_subset_refuses_an_inconsistent_dataset(tmp_path, capsys):
    out = str(tmp_path / "out")
    main(["digits", "--res", "8", "--root", out, "--quiet"])
    meta_file = os.path.join(out, "digits", "meta_8.json")
    meta = _meta(out, "digits", 8)
    with open(meta_file, "w") as f:  # as if the betons came from an interrupted re-conversion
        json.dump({**meta, "conversion_id": "00000000-0000-0000-0000-000000000000"}, f)
    with pytest.raises(SystemExit) as e:
        main(["subset", "--dataset", "digits", "--res", "8", "--root", out, "--n", "100", "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "different conversions" in err and meta["command"] in err
