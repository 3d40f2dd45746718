"""Both scorings side by side: TTA with logits and with probabilities averaged (one set of views and
forwards), ReaL with Beyer et al.'s denominator and with the authors' (all images)."""
from __future__ import annotations

import json

import torch
from torch import nn

from mlpscale.augment import DeviceAugment
from mlpscale.evaluate import TTA, evaluate, real_label_matrix, record_eval
from mlpscale.loader import ResidentLoader
from mlpscale.runtime import Runtime


class Scripted(nn.Module):
    """Returns the next (B, C) logits of a script at each call, and counts its forwards."""

    def __init__(self, script):
        super().__init__()
        self.script, self.calls = [torch.tensor(s, dtype=torch.float32) for s in script], 0

    def forward(self, x):
        out = self.script[self.calls]
        self.calls += 1
        return out.expand(len(x), -1) if out.dim() == 1 else out


def _rt():
    return Runtime.create("cpu", "fp32", "off")


def test_real_both_denominators_on_a_hand_made_case():
    # 5 images; ReaL sets: {1, 2}, {}, {3}, {}, {0}; predictions 1, 0, 5, 0, 0
    logits = torch.tensor([[0, 9, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 9],
                           [9, 0, 0, 0, 0, 0], [9, 0, 0, 0, 0, 0]], dtype=torch.float32)
    labels = torch.tensor([1, 0, 3, 4, 0])
    real = real_label_matrix([[1, 2], [], [3], [], [0]], "cpu")
    loader = ResidentLoader(logits, labels, 2, seed=0, train=False)
    r = evaluate(nn.Identity(), loader, lambda x: x, rt=_rt(), real=real).to_dict()
    assert r["real_n_images"] == 3 and r["n_images"] == 5
    assert abs(r["real_top1"] - 100 * 2 / 3) < 1e-9             # Beyer et al.: empty sets left out
    assert abs(r["real_top1_all_images"] - 100 * 2 / 5) < 1e-9  # the authors' real_acc: all images
    assert abs(r["top1"] - 100 * 3 / 5) < 1e-9


def test_both_tta_averages_come_from_one_pass():
    """Three views whose mean logits pick class 1 and whose mean probabilities pick class 0."""
    views = [[5.0, 0.0], [5.0, 0.0], [-20.0, 0.0]]
    model = Scripted([[0.0, 1.0]] + views)        # the centre view, then the TTA views in order
    x = torch.full((1, 8, 8, 3), 100, dtype=torch.uint8)
    loader = ResidentLoader(x, torch.tensor([1]), 1, seed=0, train=False)
    view = DeviceAugment((0, 0, 0), (1, 1, 1), 8, train=False)
    tta = TTA(3, "probs", max_rows=1)
    real = real_label_matrix([[0]], "cpu")
    r = evaluate(model, loader, view, rt=_rt(), tta=tta, real=real).to_dict()
    assert model.calls == 1 + 3                   # one forward per view serves both averages
    assert r["tta_top1_logits"] == 100.0 and r["tta_top1_probs"] == 0.0
    assert r["tta_top1"] == r["tta_top1_probs"]   # tta_average names the one repeated as tta_top1
    assert r["tta_real_top1_logits"] == 0.0 and r["tta_real_top1_probs"] == 100.0
    assert r["tta_real_top1_probs_all_images"] == 100.0


def test_eval_json_keeps_earlier_evaluations(tmp_path):
    path = str(tmp_path / "eval.json")
    a = {"top1": 50.0, "dataset": "d", "split": "test", "res": 16}
    b = {"top1": 50.0, "dataset": "d", "split": "test", "res": 16, "tta_views": 4, "tta_top1": 60.0,
         "tta_scale": [0.4, 1.0], "tta_ratio": [1.0, 1.0], "tta_seed": 0}
    record_eval(path, a)
    record_eval(path, b)
    record_eval(path, dict(b, tta_scale=[0.08, 1.0], tta_top1=55.0))
    out = json.load(open(path))
    assert out["tta_top1"] == 55.0 and len(out["evaluations"]) == 3
    assert sorted(e["top1"] for e in out["evaluations"].values()) == [50.0, 50.0, 50.0]
    assert sorted(e.get("tta_top1", 0) for e in out["evaluations"].values()) == [0, 55.0, 60.0]
