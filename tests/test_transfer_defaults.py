"""Transfer defaults that fit the user's data: `finetune.solver: lbfgs`, the exact linear probe
(multinomial logistic regression by L-BFGS on cached features, L2 strength chosen on a held-out part of
train) beside the paper's recipe (`solver: paper`); a batch larger than the data refused before any image
is read; a target stored above the model's resolution said first and in summary.json."""
from __future__ import annotations

import json
import os

import pytest
import torch

from mlpscale import checkpoint
from mlpscale.config import load_config
from mlpscale.finetune import Finetuner, recipe
from mlpscale.models import MLP
from mlpscale.train import run
from util import digits_arrays, write_dataset


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The digits at 8px and a randomly initialised B-MLP body as the 'pre-trained' source."""
    root = tmp_path_factory.mktemp("probe")
    (xt, yt), (xe, ye) = digits_arrays(8)
    write_dataset(root, "dg", (xt, yt), (xe, ye))
    torch.manual_seed(0)
    model = MLP("B_2-Wi_64", 8, 10)
    src = str(root / "source.pt")
    checkpoint.save_checkpoint(src, {"model": model.state_dict(),
                                     "model_meta": checkpoint.model_meta(model, "gelu", "layer", "dg",
                                                                         [120.0] * 3, [80.0] * 3)}, kind="model")
    return str(root), src


def _cfg(root, src, out, solver, *extra):
    return load_config(None, ["train.precision=fp32", "run.progress=false", f"data.root={root}", "data.dataset=dg",
                              "data.res=8", f"finetune.from={src}", "finetune.mode=linear",
                              f"finetune.solver={solver}", "train.epochs=10", "train.batch_size=64",
                              f"run.out_dir={out}", f"run.name={solver}", *extra], recipe=recipe)


def test_lbfgs_beats_the_paper_recipe_and_matches_scikit_learn(setup, tmp_path, capsys):
    from sklearn.linear_model import LogisticRegression

    root, src = setup
    paper = run(_cfg(root, src, tmp_path, "paper"), trainer_cls=Finetuner)
    assert "probe_warning" in paper and "finetune.solver=lbfgs" in capsys.readouterr().err  # near chance
    ft = Finetuner(_cfg(root, src, tmp_path, "lbfgs"), str(tmp_path / "lbfgs"))
    x_tr, y_tr = ft.data.train.store.dev.numpy(), ft.data.train.labels.numpy()  # the cached features
    x_ev, y_ev = ft.data.eval.store.dev.numpy(), ft.data.eval.labels.numpy()
    ours = ft.fit()
    assert ours["solver"] == "lbfgs" and "probe_warning" not in ours
    assert ours["test_top1"] > paper["test_top1"] + 20, (ours["test_top1"], paper["test_top1"])
    # the same objective in scikit-learn: C = 1 / (l2 * N)
    sk = LogisticRegression(C=1.0 / (ours["probe_l2"] * len(y_tr)), max_iter=2000, tol=1e-6)
    sk.fit(x_tr, y_tr)
    sk_top1 = 100.0 * float((sk.predict(x_ev) == y_ev).mean())
    assert abs(ours["test_top1"] - sk_top1) <= 1.0, (ours["test_top1"], sk_top1)
    summary = json.load(open(os.path.join(tmp_path, "lbfgs", "summary.json")))
    assert summary["probe_l2"] in [10.0 ** k for k in range(-6, 2)] and len(summary["probe_held_out_top1"]) == 8


def test_lbfgs_needs_cached_features(setup, tmp_path):
    from mlpscale.errors import UserError

    root, src = setup
    with pytest.raises(UserError, match="finetune.solver=lbfgs"):
        run(_cfg(root, src, tmp_path, "lbfgs", "aug.enabled=true"), trainer_cls=Finetuner)
    assert not os.path.exists(tmp_path / "lbfgs")


def test_batch_larger_than_the_data_is_refused_before_loading(setup, tmp_path, monkeypatch):
    import mlpscale.data
    from mlpscale.errors import UserError

    def no_loading(*a, **kw):
        raise AssertionError("images were read before the batch size was checked")

    monkeypatch.setattr(mlpscale.data, "load_images", no_loading)
    root, src = setup
    with pytest.raises(UserError, match=r"--set train.batch_size=1024"):
        run(_cfg(root, src, tmp_path, "paper", "train.batch_size=2048"), trainer_cls=Finetuner)
    assert not os.path.exists(tmp_path / "paper")


def test_target_above_the_models_resolution_is_said(setup, tmp_path, capsys):
    root, src = setup
    (xt, yt), (xe, ye) = digits_arrays(16)
    write_dataset(tmp_path / "data", "dg", (xt, yt), (xe, ye))
    s = run(_cfg(str(tmp_path / "data"), src, tmp_path, "lbfgs", "data.res=16"), trainer_cls=Finetuner)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("note:") and "16px" in first and "8px" in first
    assert "16px" in s["target_res_shrunk"] and "8px" in s["target_res_shrunk"]
