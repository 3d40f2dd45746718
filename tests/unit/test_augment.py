import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mlpscale.augment import DeviceAugment, crop_resize, mixup, mixup_lambda, normalize_flatten, sample_boxes


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_crop_boxes_follow_scale_and_ratio():
    b = sample_boxes(20000, 64, 64, (0.08, 1.0), (3 / 4, 4 / 3), gen(), "cpu")
    x0, y0, w, h = b.unbind(1)
    area = w * h / 64**2
    assert area.min() >= 0.08 - 1e-4 and area.max() <= 1 + 1e-4
    ratio = w / h
    assert ratio.min() >= 0.75 - 1e-4 and ratio.max() <= 4 / 3 + 1e-4
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + w <= 64 + 1e-3).all() and (y0 + h <= 64 + 1e-3).all()
    # log-ratio ~ uniform on (log 3/4, log 4/3): its mean is ~0
    assert abs(torch.log(ratio).mean().item()) < 0.01
    # area ~ U(0.08, 1) except rejected large boxes: the mean lies a little below 0.54
    assert 0.45 < area.mean().item() < 0.55
    # box positions are uniform over the free space: centres average to the image centre
    assert abs((x0 + w / 2).mean().item() - 32) < 0.5


def test_crop_fallback_when_no_try_fits():
    b = sample_boxes(100, 32, 32, (2.0, 3.0), (1.0, 1.0), gen(), "cpu")  # every try is too big
    assert torch.allclose(b, torch.tensor([0.0, 0.0, 32.0, 32.0]).expand(100, 4))


def test_full_box_is_identity_and_flip_mirrors():
    x = torch.randint(0, 256, (3, 3, 8, 8)).float()
    box = torch.tensor([[0.0, 0.0, 8.0, 8.0]]).repeat(3, 1)
    assert torch.allclose(crop_resize(x, box, None, 8), x, atol=1e-4)
    flip = torch.tensor([True, False, True])
    out = crop_resize(x, box, flip, 8)
    assert torch.allclose(out[0], x[0].flip(-1), atol=1e-4) and torch.allclose(out[1], x[1], atol=1e-4)


def test_crop_of_a_quadrant():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = crop_resize(x, torch.tensor([[2.0, 0.0, 2.0, 2.0]]), None, 2)  # top-right 2x2, same size
    assert torch.allclose(out, x[..., :2, 2:], atol=1e-4)


def test_normalize_flatten_is_hwc():
    x = torch.rand(2, 3, 4, 5) * 255  # (B, C, H, W)
    mean, std = torch.tensor([10.0, 20.0, 30.0]), torch.tensor([2.0, 4.0, 8.0])
    out = normalize_flatten(x, mean, std)
    assert out.shape == (2, 4 * 5 * 3)
    b, i, j, c = 1, 2, 3, 2
    assert out[b, (i * 5 + j) * 3 + c] == pytest.approx(((x[b, c, i, j] - mean[c]) / std[c]).item(), rel=1e-5)


def test_flip_probability_and_determinism():
    x = torch.randint(0, 256, (4000, 4, 4, 3), dtype=torch.uint8)
    aug = DeviceAugment((0, 0, 0), (1, 1, 1), 4, train=True, crop=False, flip=True)
    out = aug(x, gen(1)).view(4000, 4, 4, 3)
    flipped = (out == x.flip(2).float()).all(dim=(1, 2, 3)) & ~(out == x.float()).all(dim=(1, 2, 3))
    assert 0.46 < flipped.float().mean().item() < 0.54
    assert torch.equal(aug(x, gen(1)), out.view(4000, -1))  # same seed, same batch
    assert not torch.equal(aug(x, gen(2)), out.view(4000, -1))


def test_eval_pipeline_resizes_and_normalises():
    x = torch.full((2, 8, 8, 3), 100, dtype=torch.uint8)
    aug = DeviceAugment((50, 50, 50), (25, 25, 25), 4, train=False)
    out = aug(x)
    assert out.shape == (2, 48) and torch.allclose(out, torch.full_like(out, 2.0))


def test_mixup_pairs_and_lambda_distribution():
    x = torch.arange(4.0).view(4, 1)
    y = torch.tensor([0, 1, 2, 3])
    xm, y2 = mixup(x, y, 0.75)
    assert torch.allclose(xm.view(-1), 0.75 * torch.arange(4.0) + 0.25 * torch.arange(4.0).flip(0))
    assert torch.equal(y2, y.flip(0))
    rng = np.random.default_rng(0)
    lams = np.array([mixup_lambda(0.8, rng) for _ in range(20000)])
    assert abs(lams.mean() - 0.5) < 0.01  # Beta(a, a) is symmetric
    assert abs(lams.var() - 1 / (4 * (2 * 0.8 + 1))) < 0.005  # Var Beta(a,a) = 1 / (4(2a+1))
    assert mixup_lambda(0.0, rng) == 1.0


def test_mixup_loss_equals_soft_target_cross_entropy():
    logits = torch.randn(6, 5)
    y = torch.randint(0, 5, (6,))
    lam, ls = 0.3, 0.1
    _, y2 = mixup(torch.zeros(6, 1), y, lam)
    mixed = (lam * F.cross_entropy(logits, y, label_smoothing=ls)
             + (1 - lam) * F.cross_entropy(logits, y2, label_smoothing=ls))
    soft = lam * F.one_hot(y, 5).float() + (1 - lam) * F.one_hot(y2, 5).float()
    soft = soft * (1 - ls) + ls / 5
    assert mixed.item() == pytest.approx(-(soft * logits.log_softmax(1)).sum(1).mean().item(), rel=1e-5)


def test_train_output_shape_dtype():
    aug = DeviceAugment((0, 0, 0), (1, 1, 1), 6, train=True, out_dtype=torch.bfloat16)
    out = aug(torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8), gen())
    assert out.shape == (5, 6 * 6 * 3) and out.dtype == torch.bfloat16 and math.isfinite(out.float().sum().item())


