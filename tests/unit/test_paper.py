"""Importing the authors' checkpoints: same logits as their model, clear errors, a loadable run folder."""
from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from torch import nn

from mlpscale import checkpoint, config
from mlpscale.errors import UserError
from mlpscale.models import MLP
from mlpscale.paper import from_paper_checkpoint, import_paper, main

# --- reference modules laid out like the authors' (parameter names, order of operations, CHW input) ----

class RefBottleneck(nn.Module):
    """Their BottleneckMLP: linear_in, blocks.{i}.block = [Linear, GELU, Linear], layernorms.{i}, linear_out."""

    def __init__(self, dim_in, width, depth, classes, expansion=4, norm=nn.LayerNorm):
        super().__init__()
        self.linear_in = nn.Linear(dim_in, width)
        self.blocks = nn.ModuleList(
            nn.ModuleDict({"block": nn.Sequential(nn.Linear(width, expansion * width), nn.GELU(),
                                                  nn.Linear(expansion * width, width))})
            for _ in range(depth))
        self.layernorms = nn.ModuleList(norm(width) for _ in range(depth))
        self.linear_out = nn.Linear(width, classes)

    def forward(self, x):  # x: (B, C*H*W)
        z = self.linear_in(x)
        for blk, norm in zip(self.blocks, self.layernorms):
            z = z + blk["block"](norm(z))
        return self.linear_out(z)


class RefStandard(nn.Module):
    """Their StandardMLP: linear_in, layers.{i}, layernorms.{i}, linear_out; z = layer(GELU(norm(z)))."""

    def __init__(self, dim_in, width, depth, classes):
        super().__init__()
        self.linear_in = nn.Linear(dim_in, width)
        self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.layernorms = nn.ModuleList(nn.LayerNorm(width) for _ in range(depth - 1))
        self.linear_out = nn.Linear(width, classes)

    def forward(self, x):
        z = self.linear_in(x)
        for layer, norm in zip(self.layers, self.layernorms):
            z = layer(nn.functional.gelu(norm(z)))
        return self.linear_out(z)


def _randomise(m: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():  # norms too, so a wrong mapping of their affine parameters shows
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return m.eval()


RES, CLASSES = 4, 7


@pytest.fixture
def ref_b():
    return _randomise(RefBottleneck(3 * RES * RES, 16, 2, CLASSES), 0)


@pytest.fixture
def ref_s():
    return _randomise(RefStandard(3 * RES * RES, 16, 3, CLASSES), 1)


def _images(n=5):
    return torch.rand(n, 3, RES, RES, generator=torch.Generator().manual_seed(2)) * 4 - 2  # NCHW, normalised


def _same_logits(ref, ours):
    x = _images()
    with torch.no_grad():
        theirs = ref(x.reshape(len(x), -1))                    # CHW flatten
        mine = ours(x.permute(0, 2, 3, 1).reshape(len(x), -1))  # HWC flatten
    assert mine.shape == theirs.shape == (len(x), CLASSES)
    assert torch.allclose(mine, theirs, rtol=1e-5, atol=1e-5), (mine - theirs).abs().max()


def test_bottleneck_same_logits(ref_b, tmp_path):
    p = tmp_path / "B-2_Wi-16_weights"
    torch.save(ref_b.state_dict(), p)
    ours = from_paper_checkpoint(str(p), "B_2-Wi_16", RES, CLASSES)
    assert isinstance(ours, MLP) and not ours.training
    assert next(ours.parameters()).device.type == "cpu" and next(ours.parameters()).requires_grad
    _same_logits(ref_b, ours)
    # a loaded state dict works too, and the model does not alias the caller's tensors
    sd = ref_b.state_dict()
    ours2 = from_paper_checkpoint(sd, "B_2-Wi_16", RES, CLASSES)
    _same_logits(ref_b, ours2)
    with torch.no_grad():
        ours2.linear_out.weight.zero_()
    assert sd["linear_out.weight"].abs().sum() > 0


def test_standard_same_logits(ref_s, tmp_path):
    import mlpscale

    p = tmp_path / "s.pt"
    torch.save(ref_s.state_dict(), p)
    _same_logits(ref_s, mlpscale.from_paper_checkpoint(str(p), "S_3-Wi_16", RES, CLASSES))  # the public name
    assert mlpscale.from_paper_checkpoint is from_paper_checkpoint and mlpscale.MLP is MLP


def test_permutation_is_the_flatten_order(ref_b):
    """Column c*H*W + h*W + w of theirs is column h*W*C + w*C + c of ours."""
    ours = from_paper_checkpoint(ref_b.state_dict(), "B_2-Wi_16", RES, CLASSES)
    W, C, H = RES, 3, RES
    for c, h, w in [(0, 0, 0), (2, 1, 3), (1, 3, 2)]:
        assert torch.equal(ours.linear_in.weight[:, h * W * C + w * C + c],
                           ref_b.linear_in.weight[:, c * H * W + h * W + w])


@pytest.mark.parametrize("prefix", ["module.", "_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_prefixes_and_wrappers(ref_b, tmp_path, prefix):
    sd = {prefix + k: v for k, v in ref_b.state_dict().items()}
    p = tmp_path / "w.pt"
    torch.save({"state_dict": sd, "epoch": 3}, p)
    _same_logits(ref_b, from_paper_checkpoint(str(p), "B_2-Wi_16", RES, CLASSES))
    torch.save({"model": sd}, p)
    _same_logits(ref_b, from_paper_checkpoint(str(p), "B_2-Wi_16", RES, CLASSES))


def test_batch_norm_variant():
    """Their --normalization batch: BatchNorm1d with running statistics (eval mode)."""
    ref = _randomise(RefBottleneck(3 * RES * RES, 16, 2, CLASSES, norm=nn.BatchNorm1d), 3)
    for bn in ref.layernorms:
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2)
    ours = from_paper_checkpoint(ref.state_dict(), "B_2-Wi_16", RES, CLASSES)
    assert isinstance(ours.blocks[0].norm, nn.BatchNorm1d)
    _same_logits(ref, ours)


def test_layer_norms_alias(ref_s):
    sd = {k.replace("layernorms.", "layer_norms."): v for k, v in ref_s.state_dict().items()}
    _same_logits(ref_s, from_paper_checkpoint(sd, "S_3-Wi_16", RES, CLASSES))


# --- errors ---------------------------------------------------------------------------------------

def _err(fn, *a) -> str:
    with pytest.raises(UserError) as e:
        fn(*a)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_wrong_arch(ref_b, ref_s):
    sd = ref_b.state_dict()
    msg = _err(from_paper_checkpoint, sd, "B_6-Wi_16", RES, CLASSES)
    assert "B_2-Wi_16" in msg and "--arch B_2-Wi_16" in msg
    assert "B_2-Wi_16" in _err(from_paper_checkpoint, sd, "B_2-Wi_32", RES, CLASSES)
    assert "B_2-Wi_16" in _err(from_paper_checkpoint, sd, "B_2-Wi_16-E_8", RES, CLASSES)
    assert "B_2-Wi_16" in _err(from_paper_checkpoint, sd, "S_3-Wi_16", RES, CLASSES)
    assert "S_3-Wi_16" in _err(from_paper_checkpoint, ref_s.state_dict(), "B_2-Wi_16", RES, CLASSES)


def test_wrong_classes(ref_b):
    msg = _err(from_paper_checkpoint, ref_b.state_dict(), "B_2-Wi_16", RES, 11230)
    assert "7 classes" in msg and "--num-classes 7" in msg


def test_wrong_res(ref_b):
    msg = _err(from_paper_checkpoint, ref_b.state_dict(), "B_2-Wi_16", 64, CLASSES)
    assert "48 input features" in msg and "--res 4" in msg


def test_incomplete_state_dict(ref_b):
    sd = dict(ref_b.state_dict())
    del sd["layernorms.1.bias"]
    msg = _err(from_paper_checkpoint, sd, "B_2-Wi_16", RES, CLASSES)
    assert "lacks 1 tensors" in msg and "blocks.1.norm.bias" in msg
    sd = {**ref_b.state_dict(), "extra.weight": torch.zeros(2)}
    assert "extra.weight" in _err(from_paper_checkpoint, sd, "B_2-Wi_16", RES, CLASSES)
    assert "linear_in" in _err(from_paper_checkpoint, {"foo": torch.zeros(1)}, "B_2-Wi_16", RES, CLASSES)


def test_damaged_weights(ref_b):
    sd = dict(ref_b.state_dict())
    sd["blocks.0.block.0.weight"] = sd["blocks.0.block.0.weight"].clone()
    sd["blocks.0.block.0.weight"][0, 0] = float("nan")
    assert "NaN" in _err(from_paper_checkpoint, sd, "B_2-Wi_16", RES, CLASSES)


def test_bad_files(ref_b, tmp_path):
    html = tmp_path / "B-12_Wi-1024_res_64_imagenet21_epochs_800_weights"
    html.write_text("<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head></html>")
    assert "HTML" in _err(from_paper_checkpoint, str(html), "B_2-Wi_16", RES, CLASSES)
    assert "not found" in _err(from_paper_checkpoint, str(tmp_path / "nope.pt"), "B_2-Wi_16", RES, CLASSES)
    assert "folder" in _err(from_paper_checkpoint, str(tmp_path), "B_2-Wi_16", RES, CLASSES)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    assert "empty" in _err(from_paper_checkpoint, str(empty), "B_2-Wi_16", RES, CLASSES)
    good = tmp_path / "good.pt"
    torch.save(ref_b.state_dict(), good)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert "truncated" in _err(from_paper_checkpoint, str(cut), "B_2-Wi_16", RES, CLASSES)
    legacy = tmp_path / "legacy.pt"
    torch.save(ref_b.state_dict(), legacy, _use_new_zipfile_serialization=False)
    _same_logits(ref_b, from_paper_checkpoint(str(legacy), "B_2-Wi_16", RES, CLASSES))
    legacy.write_bytes(legacy.read_bytes()[:-100])
    assert "truncated" in _err(from_paper_checkpoint, str(legacy), "B_2-Wi_16", RES, CLASSES)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    assert "not a PyTorch" in _err(from_paper_checkpoint, str(junk), "B_2-Wi_16", RES, CLASSES)
    lst = tmp_path / "list.pt"
    torch.save([1, 2], lst)
    assert "not a state dict" in _err(from_paper_checkpoint, str(lst), "B_2-Wi_16", RES, CLASSES)


class _Payload:
    """Unpickling this would create a marker file (what a malicious checkpoint could do)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("writer", ["torch", "pickle"])
def test_code_in_file_is_not_run(ref_b, tmp_path, writer):
    marker = tmp_path / "MARKER"
    p = tmp_path / "evil.pt"
    obj = {**ref_b.state_dict(), "x": _Payload(str(marker))}
    if writer == "torch":
        torch.save(obj, p)
    else:
        with open(p, "wb") as f:
            pickle.dump(obj, f, protocol=2)
    msg = _err(from_paper_checkpoint, str(p), "B_2-Wi_16", RES, CLASSES)
    assert not marker.exists()
    assert "nothing in it ran" in msg or "not a PyTorch" in msg


# --- the run folder ---------------------------------------------------------------------------------

def test_import_writes_a_loadable_run_folder(ref_b, tmp_path, capsys):
    src = tmp_path / "B-2_Wi-16_weights"
    torch.save({"module." + k: v for k, v in ref_b.state_dict().items()}, src)
    out = tmp_path / "runs" / "paper_b2"
    # 7 classes fit no paper dataset: the head check names the default dataset's count
    with pytest.raises(SystemExit) as e:
        main([str(src), "--arch", "B_2-Wi_16", "--res", str(RES), "--num-classes", str(CLASSES), "--out", str(out)])
    assert e.value.code == 2 and "imagenet21k has 11230 classes" in capsys.readouterr().err
    assert not (out / "model.pt").exists()

    # a head of 10 classes, as the CIFAR-10 fine-tuned files
    ref10 = _randomise(RefBottleneck(3 * RES * RES, 16, 2, 10), 5)
    src10 = tmp_path / "B-2_Wi-16_cifar10_weights"
    torch.save(ref10.state_dict(), src10)
    path = import_paper(str(src10), "B_2-Wi_16", RES, 10, str(out), dataset="cifar10")
    assert path == str(out / "model.pt")
    assert {"model.pt", "config.yaml", "summary.json"} <= set(os.listdir(out))
    assert not [n for n in os.listdir(out) if ".tmp" in n]

    ck = checkpoint.load_checkpoint(path)
    meta = ck["model_meta"]
    assert ck["kind"] == "model" and meta["arch"] == "B_2-Wi_16" and meta["res"] == RES
    assert meta["num_classes"] == 10 and meta["flatten"] == "hwc" and meta["dataset"] == "cifar10"
    assert meta["mean"] == pytest.approx([0.49139968 * 255, 0.48215827 * 255, 0.44653124 * 255])
    assert ck["source"]["file"] == src10.name and len(ck["source"]["sha256"]) == 64
    rebuilt = MLP(meta["arch"], meta["res"], meta["num_classes"], act=meta["act"], norm=meta["norm"]).eval()
    rebuilt.load_state_dict(ck["model"])
    x = _images()
    with torch.no_grad():
        assert torch.allclose(rebuilt(x.permute(0, 2, 3, 1).reshape(len(x), -1)), ref10(x.reshape(len(x), -1)),
                              rtol=1e-5, atol=1e-5)

    cfg = config.load_config(str(out / "config.yaml"))
    assert (cfg.model.arch, cfg.data.dataset, cfg.data.res) == ("B_2-Wi_16", "cifar10", RES)
    assert ck["config"]["model"]["arch"] == "B_2-Wi_16"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] == rebuilt.get_num_params() and summary["num_classes"] == 10
    assert summary["source"]["file"] == src10.name

    # same file again: fine; another file into the same folder: refused unless forced
    import_paper(str(src10), "B_2-Wi_16", RES, 10, str(out), dataset="cifar10")
    ref10b = _randomise(RefBottleneck(3 * RES * RES, 16, 2, 10), 6)
    other = tmp_path / "other"
    torch.save(ref10b.state_dict(), other)
    assert "--overwrite" in _err(import_paper, str(other), "B_2-Wi_16", RES, 10, str(out), "cifar10")
    import_paper(str(other), "B_2-Wi_16", RES, 10, str(out), "cifar10", True)


def test_import_cli(tmp_path, capsys):
    ref10 = _randomise(RefStandard(3 * RES * RES, 16, 3, 100), 7)
    src = tmp_path / "S_weights"
    torch.save({"_orig_mod." + k: v for k, v in ref10.state_dict().items()}, src)
    out = tmp_path / "imported"
    # --num-classes defaults to the dataset's
    assert main([str(src), "--arch", "S_3-Wi_16", "--res", str(RES), "--out", str(out), "--dataset", "cifar100"]) == 0
    text = capsys.readouterr().out
    assert "model.pt" in text and f"finetune.from={out}" in text and f"mlpscale-eval {out}" in text
    assert checkpoint.load_checkpoint(str(out / "model.pt"))["model_meta"]["arch"] == "S_3-Wi_16"
    with pytest.raises(SystemExit) as e:
        main([str(src), "--arch", "S_3-Wi_16", "--res", str(RES), "--out", str(out / "x"), "--dataset", "mnist"])
    assert e.value.code == 2 and "unknown dataset 'mnist'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(src), "--arch", "S_3-Wi_16", "--res", str(RES), "--out", str(out / "y")])
    err = capsys.readouterr().err
    assert "100 classes" in err and "--dataset cifar100" in err


def test_released_sizes_match_table5():
    """Shapes only (meta device): the four released B-MLPs at 64px with 11,230 classes."""
    with torch.device("meta"):
        got = {a: MLP(a, 64, 11230).get_num_params() / 1e6 for a in
               ("B_6-Wi_512", "B_12-Wi_512", "B_6-Wi_1024", "B_12-Wi_1024")}
    assert [int(v) for v in got.values()] == [24, 37, 74, 124]  # Table 5 (truncated)
