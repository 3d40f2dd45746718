import json

import pytest

from mlpscale.datasets import BUILTIN, get_dataset, stats_for
from mlpscale.errors import UserError
from mlpscale.layout import beton_path, meta_path


def test_builtin_paper_numbers():
    assert get_dataset("imagenet21k").num_classes == 11230
    assert get_dataset("imagenet1k").train_samples == 1_281_167
    assert get_dataset("cifar100").default_res == 32 and get_dataset("cifar100").num_classes == 100
    assert get_dataset("tinyimagenet").eval_split == "val"
    for info in BUILTIN.values():  # the authors' constants, except for our demo dataset
        assert info.name == "digits" or (len(info.mean) == 3 and len(info.std) == 3)
    assert get_dataset("cifar100").mean == get_dataset("cifar10").mean  # the authors reuse CIFAR-10's


def test_paths_and_convert_hint():
    info = get_dataset("cifar10")
    assert info.beton_path("/d", "train") == beton_path("/d", "cifar10", "train", 32) == "/d/cifar10/train_32.beton"
    assert info.convert_command("/d") == "mlpscale-convert cifar10 --res 32 --root /d --src PATH_TO_DOWNLOADED_FILES"


def test_meta_json_teaches_a_new_dataset(tmp_path):
    (tmp_path / "flowers").mkdir()
    meta = {"num_classes": 3, "classes": ["a", "b", "c"], "counts": {"train": 30, "val": 9}, "eval_split": "val",
            "res": 32, "mean": [1, 2, 3], "std": [4, 5, 6]}
    (tmp_path / "flowers" / "meta_32.json").write_text(json.dumps(meta))
    info = get_dataset("flowers", str(tmp_path), 32)
    assert (info.num_classes, info.train_samples, info.eval_samples, info.eval_split) == (3, 30, 9, "val")
    assert info.measured_mean == (1, 2, 3) and info.class_names == ("a", "b", "c")
    assert stats_for(info, "auto") == ((1, 2, 3), (4, 5, 6), "measured")  # no paper constants for own data
    with pytest.raises(UserError, match="no normalisation constants"):
        stats_for(info, "paper")
    assert meta_path(str(tmp_path), "flowers", 32).endswith("flowers/meta_32.json")


def test_meta_overrides_builtin(tmp_path):
    (tmp_path / "cifar10").mkdir()
    (tmp_path / "cifar10" / "meta_32.json").write_text(json.dumps({"num_classes": 10, "counts": {"train": 500},
                                                                   "mean": [9, 9, 9], "std": [2, 2, 2]}))
    info = get_dataset("cifar10", str(tmp_path), 32)
    assert info.train_samples == 500 and info.mean == BUILTIN["cifar10"].mean
    # data.stats: the authors' constants by default for a built-in dataset, the converter's on request
    assert stats_for(info, "auto")[0] == BUILTIN["cifar10"].mean
    assert stats_for(info, "measured") == ((9, 9, 9), (2, 2, 2), "measured")


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset 'foo'.*mlpscale-convert folder"):
        get_dataset("foo", "/nonexistent", 64)
