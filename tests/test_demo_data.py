"""The digits source: the real dataset behind `make demo`."""
import json
import os

import numpy as np
import torch

from mlpscale.beton import open_beton
from mlpscale.datasets import get_dataset, stats_for
from mlpscale.loader import read_split


def test_digits_betons(digits_root):
    d = os.path.join(digits_root, "digits")
    assert open_beton(os.path.join(d, "train_8.beton")).num_samples == 1437
    assert open_beton(os.path.join(d, "test_8.beton")).num_samples == 360
    assert open_beton(os.path.join(d, "train_8.beton")).resolution() == (8, 8)
    meta = json.load(open(os.path.join(d, "meta_8.json")))
    assert meta["num_classes"] == 10 and meta["counts"] == {"train": 1437, "test": 360} and meta["res"] == 8
    assert not [f for f in os.listdir(d) if ".tmp" in f]  # no temporary files left behind


def test_digits_pixels_and_labels_match_sklearn(digits_root):
    from sklearn.datasets import load_digits

    sk = load_digits()
    x, y = read_split(os.path.join(digits_root, "digits", "test_8.beton"), torch.device("cpu"))
    assert x.shape == (360, 8, 8, 3) and x.dtype == torch.uint8
    assert np.array_equal(y.numpy(), sk.target[1437:])
    assert np.array_equal(open_beton(os.path.join(digits_root, "digits", "train_8.beton")).labels, sk.target[:1437])
    # at 8px the image is the scan itself, scaled from 0..16 to 0..255 and replicated to RGB
    expected = np.clip(sk.images[1437:] * (255 / 16), 0, 255).astype(np.uint8)
    assert np.abs(x[..., 0].numpy().astype(int) - expected).max() <= 1
    assert torch.equal(x[..., 0], x[..., 2])


def test_registry_learns_digits_stats(digits_root):
    info = get_dataset("digits", digits_root, 8)
    assert info.train_samples == 1437 and info.eval_split == "test"
    mean, std, which = stats_for(info, "auto")  # the paper has no constants for digits: measured ones
    assert which == "measured" and 40 < mean[0] < 120 and std[0] > 50
