"""The fast paths checked in-process: compute is fvcore's count, the normalisation follows data.stats."""
import json
import os

import pytest
import torch

from mlpscale.config import load_config
from mlpscale.models import MLP


@pytest.mark.parametrize("arch", ["B_2-Wi_32", "S_3-Wi_32", "B_1-Wi_16-E_8"])
@pytest.mark.parametrize("res", [4, 8])
@pytest.mark.parametrize("norm", ["layer", "none", "batch"])
def test_paper_flops_equal_fvcore(arch, res, norm):
    """compute_pflops uses fvcore's count of one forward (the paper's get_compute), checked against fvcore."""
    fvcore = pytest.importorskip("fvcore.nn")
    model = MLP(arch, res, 7, norm=norm).eval()
    fca = fvcore.FlopCountAnalysis(model, torch.randn(1, res * res * 3))
    fca.unsupported_ops_warnings(False)
    fca.uncalled_modules_warnings(False)
    assert model.paper_flops_per_forward() == fca.total()



def test_data_stats_switches_the_normalisation(digits_root, tmp_path):
    from mlpscale.datasets import get_dataset

    base = [f"data.root={digits_root}", "data.res=8", "data.dataset=cifar10", "train.batch_size=64"]
    # a built-in dataset's paper constants vs the converter's measured ones (digits' meta posing as cifar10's)
    os.makedirs(tmp_path / "cifar10")
    meta = json.load(open(os.path.join(digits_root, "digits", "meta_8.json")))
    for f in ("train_8.beton", "test_8.beton"):
        os.symlink(os.path.join(digits_root, "digits", f), tmp_path / "cifar10" / f)
    json.dump(meta, open(tmp_path / "cifar10" / "meta_8.json", "w"))
    from mlpscale.data import build_data
    from mlpscale.runtime import Runtime

    rt = Runtime.create("cpu", "fp32", "off")
    paper = build_data(load_config(None, base + [f"data.root={tmp_path}"]), rt, 64)
    measured = build_data(load_config(None, base + [f"data.root={tmp_path}", "data.stats=measured"]), rt, 64)
    info = get_dataset("cifar10")
    assert paper.stats == "paper" and paper.mean == info.mean and paper.std == info.std
    assert measured.stats == "measured" and measured.mean == tuple(meta["mean"])
    # and the trainer normalises with them (its views, and the stats a checkpoint carries)
    from mlpscale.train import Trainer

    for name, d in (("paper", paper), ("measured", measured)):
        cfg = load_config(None, base + [f"data.root={tmp_path}", f"data.stats={name}", "train.precision=fp32",
                                        "train.batch_size=64", "model.arch=B_1-Wi_16", "run.progress=false"])
        os.makedirs(tmp_path / name)
        tr = Trainer(cfg, str(tmp_path / name))
        for view in (tr.train_view, tr.eval_view):
            assert torch.equal(view.mean, torch.tensor(d.mean, dtype=torch.float32))
        assert tr.data.stats == name
