"""The inductive-bias controls: data.permute_pixels and the ResNet-18 baseline (the paper's Table 1)."""
import json
import os

import pytest
import torch

from mlpscale.augment import DeviceAugment, permute_pixels, pixel_permutation
from mlpscale.config import load_config
from mlpscale.data import arrays_data
from mlpscale.datasets import DatasetInfo
from mlpscale.filters import unpermute_columns
from mlpscale.errors import UserError
from mlpscale.models import MLP, build_model, parse_arch
from mlpscale.train import Trainer, run
from util import digits_arrays, run_cli, write_dataset

SEED = 7


def digits_info(res=8):
    return DatasetInfo("digits", 10, 1437, 360, res, (40.0,) * 3, (60.0,) * 3)


def data_fn(res=8):
    (x, y), (ex, ey) = digits_arrays(res)
    return arrays_data(torch.from_numpy(x), torch.from_numpy(y), digits_info(res),
                       torch.from_numpy(ex), torch.from_numpy(ey))


def small_cfg(out, name, *extra):
    return load_config(None, ["model.arch=B_2-Wi_32", "train.batch_size=64", "train.epochs=2", "aug.enabled=false",
                              "aug.mixup=0.0", "optim.name=sgd", "optim.lr=0.05", "optim.label_smoothing=0.0",
                              "train.precision=fp32", "train.device=cpu", "run.progress=false", "train.prefetch=off",
                              f"run.out_dir={out}", f"run.name={name}", *extra])


def test_permutation_is_one_fixed_shuffle_of_positions():
    perm = pixel_permutation(SEED, 4, 4)
    assert sorted(perm.tolist()) == list(range(16)) and torch.equal(perm, pixel_permutation(SEED, 4, 4))
    assert not torch.equal(perm, pixel_permutation(SEED + 1, 4, 4))
    x = torch.arange(2 * 16 * 3, dtype=torch.uint8).view(2, 4, 4, 3)
    p = permute_pixels(x, perm)
    # every image gets the same shuffle; the three channels of a pixel move together
    assert torch.equal(p.view(2, 16, 3), x.view(2, 16, 3)[:, perm])
    view = DeviceAugment((0.0,) * 3, (1.0,) * 3, 4, train=False, permute=SEED)
    assert torch.equal(view(x), p.float().reshape(2, -1))


def test_mlp_is_indifferent_to_a_permutation_of_its_inputs(tmp_path):
    """Without augmentation, an MLP on permuted images whose first layer's input columns are permuted the same
    way at initialisation trains to the same weights (up to float reassociation) and the same accuracy."""
    runs = {}
    for name, seed in (("plain", 0), ("permuted", SEED)):
        cfg = small_cfg(tmp_path, name, f"data.permute_pixels={seed}")
        os.makedirs(tmp_path / name)
        t = Trainer(cfg, str(tmp_path / name), data_fn=data_fn())
        if seed:
            perm = pixel_permutation(seed, 8, 8)
            w = t.model.linear_in.weight.data                     # (width, 8*8*3), HWC columns
            # column of position q <- column of the stored pixel perm[q]: W' x' = W x for every image
            w.copy_(w.view(w.shape[0], 64, 3)[:, perm].reshape(w.shape))
        runs[name] = (t.fit(), {k: v.clone() for k, v in t.model.state_dict().items()})
    (s0, w0), (s1, w1) = runs["plain"], runs["permuted"]
    back = unpermute_columns(w1["linear_in.weight"], pixel_permutation(SEED, 8, 8))
    assert torch.allclose(back, w0["linear_in.weight"], atol=1e-5)
    assert not torch.allclose(w1["linear_in.weight"], w0["linear_in.weight"], atol=1e-2)   # really permuted
    for k in w0:
        if k != "linear_in.weight":
            assert torch.allclose(w1[k], w0[k], atol=1e-5), k
    assert s1["test_top1"] == s0["test_top1"] and s0["test_top1"] > 80


def test_resnet18_is_the_standard_one():
    m = build_model("resnet18", 32, 10)
    assert parse_arch("resnet18").name == "resnet18" and m.spec.name == "resnet18"
    assert m.get_num_params() == 11_173_962                   # ResNet-18, CIFAR stem, 10 classes
    assert m.stem[0].kernel_size == (3, 3) and m.stem[0].stride == (1, 1)
    x = torch.randn(2, 32 * 32 * 3)
    assert m(x).shape == (2, 10) and m.features(x).shape == (2, 512)
    assert m.macs_per_forward() == pytest.approx(0.556e9, rel=0.01)   # the usual ~0.56 GMACs at 32px
    fvcore = pytest.importorskip("fvcore.nn")
    f = fvcore.FlopCountAnalysis(m.eval(), torch.randn(1, 32 * 32 * 3))
    f.unsupported_ops_warnings(False)
    f.uncalled_modules_warnings(False)
    assert m.paper_flops_per_forward() == f.total()                    # the paper's compute unit, as fvcore counts
    with pytest.raises(UserError, match="not an MLP"):
        MLP("resnet18", 32, 10)


@pytest.mark.slow  # two CPU training runs of each model (ResNet-18: minutes on 2 cores)
def test_permutation_hurts_resnet18_but_not_the_mlp(tmp_path):
    """The paper's point, in miniature: on pixel-permuted digits the convolutional baseline loses accuracy while
    the MLP keeps its own (direction only; the sizes are far from the paper's)."""
    top1 = {}
    for arch in ("resnet18", "B_2-Wi_64"):
        for seed in (0, SEED):
            name = f"{arch}_{seed}"
            cfg = small_cfg(tmp_path, name, f"model.arch={arch}", f"data.permute_pixels={seed}", "train.epochs=3")
            os.makedirs(tmp_path / name)
            top1[arch, seed] = Trainer(cfg, str(tmp_path / name), data_fn=data_fn(8)).fit()["test_top1"]
    resnet_drop = top1["resnet18", 0] - top1["resnet18", SEED]
    mlp_drop = top1["B_2-Wi_64", 0] - top1["B_2-Wi_64", SEED]
    # direction only: three epochs of a ResNet on permuted 8px digits are chaotic (the float order of a run
    # moves its accuracy by many points), while its unpermuted accuracy and the MLP's are steady
    assert top1["resnet18", 0] > 70, top1
    assert resnet_drop > mlp_drop + 3, top1
    assert abs(mlp_drop) < 6, top1


@pytest.mark.slow  # a short training process
def test_filters_of_a_permuted_run(tmp_path):
    root = write_dataset(tmp_path / "data", "digits", *digits_arrays(8))
    cfg = small_cfg(tmp_path, "perm", "data.permute_pixels=3", "data.dataset=digits", f"data.root={root}",
                    "data.res=8", "train.epochs=1")
    run(cfg)
    rd = str(tmp_path / "perm")
    r = run_cli("mlpscale-eval", rd, "--filters", str(tmp_path / "f.png"), "--no-eval")
    assert r.returncode == 0 and os.path.getsize(tmp_path / "f.png") > 0, r.stderr
    r = run_cli("mlpscale-eval", rd, "--filters", str(tmp_path / "u.png"), "--no-eval", "--unpermute")
    assert r.returncode == 0 and os.path.getsize(tmp_path / "u.png") > 0, r.stderr
    assert open(tmp_path / "f.png", "rb").read() != open(tmp_path / "u.png", "rb").read()
    r = run_cli("mlpscale-eval", rd, "--json")                           # evaluation sees the permuted pixels
    assert r.returncode == 0, r.stderr
    with open(os.path.join(rd, "summary.json")) as f:
        assert json.loads(r.stdout)["top1"] == pytest.approx(json.load(f)["test_top1"])
