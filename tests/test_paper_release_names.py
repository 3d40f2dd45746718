"""`mlpscale-import-paper FILE` reads the architecture, resolution, classes, dataset and epochs from the
authors' release file names (their `utils/download.py`); a fine-tuned release keeps its fine-tuning crops."""
from __future__ import annotations

import json
import os

import pytest
import torch

from mlpscale import checkpoint
from mlpscale.paper import main, release_from_name

# the authors' download table: file name -> (arch, res, classes, our dataset name, epochs)
RELEASES = {
    "B-12_Wi-1024_res_64_imagenet21_epochs_800": ("B_12-Wi_1024", 64, 11230, "imagenet21k", 800),
    "B-12_Wi-512_res_64_imagenet21_epochs_600": ("B_12-Wi_512", 64, 11230, "imagenet21k", 600),
    "B-6_Wi-1024_res_64_imagenet21_epochs_800": ("B_6-Wi_1024", 64, 11230, "imagenet21k", 800),
    "B-6_Wi-512_res_64_imagenet21_epochs_800": ("B_6-Wi_512", 64, 11230, "imagenet21k", 800),
    "B-12_Wi-1024_res_64_cifar10_epochs_20": ("B_12-Wi_1024", 64, 10, "cifar10", 20),
    "B-12_Wi-1024_res_64_cifar100_epochs_40": ("B_12-Wi_1024", 64, 100, "cifar100", 40),
    "B-12_Wi-1024_res_64_imagenet_epochs_50": ("B_12-Wi_1024", 64, 1000, "imagenet1k", 50),
    **{f"B-{d}_Wi-{w}_res_64_{ds}_epochs_20": (f"B_{d}-Wi_{w}", 64, n, ours, 20)
       for d, w in ((12, 512), (6, 512), (6, 1024))
       for ds, n, ours in (("cifar10", 10, "cifar10"), ("cifar100", 100, "cifar100"), ("imagenet", 1000, "imagenet1k"))},
}


def _authors_state_dict(depth: int, width: int, res: int, classes: int) -> dict:
    """A BottleneckMLP state dict under the authors' names with the right shapes. Each tensor is one
    value expanded to its shape, so a 124M-parameter file takes a few bytes on disk."""
    one = lambda *shape: torch.full((1,) * len(shape), 0.01).expand(*shape)  # noqa: E731
    sd = {"linear_in.weight": one(width, 3 * res * res), "linear_in.bias": one(width),
          "linear_out.weight": one(classes, width), "linear_out.bias": one(classes)}
    for i in range(depth):
        sd.update({f"blocks.{i}.block.0.weight": one(4 * width, width), f"blocks.{i}.block.0.bias": one(4 * width),
                   f"blocks.{i}.block.2.weight": one(width, 4 * width), f"blocks.{i}.block.2.bias": one(width),
                   f"layernorms.{i}.weight": one(width), f"layernorms.{i}.bias": one(width)})
    return sd


def test_the_download_table_has_sixteen_files():
    assert len(RELEASES) == 16


@pytest.mark.parametrize("name", sorted(RELEASES))
def test_import_by_release_name_needs_no_flags(name, tmp_path, capsys):
    arch, res, classes, dataset, epochs = RELEASES[name]
    depth, width = (int(v) for v in arch[2:].split("-Wi_"))
    path = tmp_path / f"{name}_weights"
    torch.save(_authors_state_dict(depth, width, res, classes), path)
    assert main([str(path), "--out", str(tmp_path / "run")]) == 0
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert (summary["arch"], summary["res"], summary["num_classes"], summary["dataset"]) == (arch, res, classes, dataset)
    assert summary["source"]["epochs"] == epochs
    fine_tuned = dataset != "imagenet21k"
    assert summary["source"]["fine_tuned"] is fine_tuned
    ck = checkpoint.load_checkpoint(str(tmp_path / "run" / "model.pt"))
    crops = (ck["config"]["aug"]["crop_scale"], ck["config"]["aug"]["crop_ratio"])
    # fine-tuned releases: the README's fine-tuning crops; pre-trained: the pre-training recipe's
    assert crops == (([0.4, 1.0], [1.0, 1.0]) if fine_tuned else ([0.08, 1.0], [0.75, 4 / 3]))
    assert f"{epochs} epochs" in capsys.readouterr().out


def test_flags_still_win_and_a_renamed_file_asks_for_the_architecture(tmp_path, capsys):
    sd = _authors_state_dict(2, 16, 8, 10)
    renamed = tmp_path / "my_model.pt"
    torch.save(sd, renamed)
    assert release_from_name(str(renamed)) is None
    with pytest.raises(SystemExit) as e:
        main([str(renamed), "--out", str(tmp_path / "a")])
    assert e.value.code == 2 and "pass --arch" in capsys.readouterr().err
    assert main([str(renamed), "--arch", "B_2-Wi_16", "--res", "8", "--dataset", "cifar10", "--out",
                 str(tmp_path / "b")]) == 0
    assert json.load(open(os.path.join(tmp_path, "b", "summary.json")))["num_classes"] == 10
