import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mlpscale.errors import UserError
from mlpscale.info import describe
from mlpscale.info import main as info_main
from mlpscale.models import MLP, parse_arch

# Table 5 of the paper: parameters at 64x64 with 11,230 classes (ImageNet-21k), in millions (truncated)
TABLE5 = {"B_6-Wi_256": 9, "B_12-Wi_256": 12, "B_6-Wi_512": 24, "B_12-Wi_512": 37,
          "B_6-Wi_1024": 74, "B_12-Wi_1024": 124}


@pytest.mark.parametrize("arch,millions", TABLE5.items())
def test_table5_parameter_counts(arch, millions):
    d = describe(arch, 64, 11230)
    assert math.floor(d["params"] / 1e6) == millions


def test_param_count_matches_formula():
    # B-12/Wi-1024: input layer + 12 blocks (LN, expand, contract) + head
    w, e, d_in, k = 1024, 4, 64 * 64 * 3, 11230
    block = 2 * w + (w * e * w + e * w) + (e * w * w + w)
    expected = (d_in * w + w) + 12 * block + (w * k + k)
    assert describe("B_12-Wi_1024", 64, 11230)["params"] == expected


@pytest.mark.parametrize("arch,res,k", [("B_2-Wi_64", 8, 10), ("B_3-Wi_32-E_8", 4, 7), ("S_4-Wi_48", 8, 5),
                                        ("S_1-Wi_16", 4, 3)])
def test_macs_match_torch_flop_counter(arch, res, k):
    model = MLP(arch, res, k)
    x = torch.randn(2, res * res * 3)
    with FlopCounterMode(display=False) as fc:
        model(x)
    assert fc.get_total_flops() == 2 * 2 * model.macs_per_forward()  # 2 FLOPs per MAC, batch of 2
    assert model.train_flops_per_image() == 6 * model.macs_per_forward()


def test_paper_train_flops_b12_wi1024():
    # the figure: ~749 MFLOP per trained image at 64px, 11,230 classes
    assert describe("B_12-Wi_1024", 64, 11230)["train_flops_per_image"] == pytest.approx(749e6, rel=0.01)


@pytest.mark.parametrize("norm", ["layer", "batch", "none"])
@pytest.mark.parametrize("act", ["gelu", "relu"])
def test_forward_shapes_and_options(norm, act):
    model = MLP("B_2-Wi_32", 8, 10, act=act, norm=norm, dropout=0.1)
    out = model(torch.randn(4, 8 * 8 * 3))
    assert out.shape == (4, 10)
    s = MLP("S_3-Wi_32", 8, 10, act=act, norm=norm)
    assert s(torch.randn(4, 192)).shape == (4, 10)
    assert len(s.blocks) == 2  # depth counts the input layer, as the paper's S-MLP


def test_bottleneck_block_is_residual():
    model = MLP("B_1-Wi_16", 4, 3)
    blk = model.blocks[0]
    torch.nn.init.zeros_(blk.contract.weight)
    torch.nn.init.zeros_(blk.contract.bias)
    z = torch.randn(5, 16)
    assert torch.equal(blk(z), z)


def test_arch_names():
    assert parse_arch("B_12-Wi_1024").expansion == 4
    assert parse_arch("B_6-Wi_512-E_8").expansion == 8
    assert parse_arch("S_6-Wi_1024").kind == "S"
    for bad in ["B12-Wi1024", "X_6-Wi_512", "B_0-Wi_4", "resnet50"]:
        with pytest.raises(UserError, match="architecture"):
            parse_arch(bad)


def test_info_cli_json(capsys):
    info_main(["B_12-Wi_1024", "--res", "64", "--num-classes", "11230", "--json"])
    import json

    d = json.loads(capsys.readouterr().out)
    assert set(d) >= {"params", "macs_per_forward", "train_flops_per_image"}
    assert d["params"] // 10**6 == 124


def test_info_cli_bad_arch(capsys):
    with pytest.raises(SystemExit) as e:
        info_main(["B-12"])
    assert e.value.code == 2
    assert "unknown architecture" in capsys.readouterr().err
