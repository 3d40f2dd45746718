import pytest
import torch

from mlpscale.optim import ForeachLion
from mlpscale.schedule import lr_at


def test_warmup_then_cosine():
    total, warm, base = 100, 10, 1e-3
    lrs = [lr_at(s, total, base, warm, "cosine") for s in range(total)]
    assert lrs[0] == pytest.approx(base / 10) and lrs[9] == pytest.approx(base)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))           # warmup rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))            # cosine falls
    assert lrs[10] == pytest.approx(base) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    assert lr_at(55, total, base, 10, "cosine") == pytest.approx(base / 2, rel=0.05)


def test_constant_and_min_lr():
    assert [lr_at(s, 10, 0.1, 0, "constant") for s in range(10)] == [0.1] * 10
    assert lr_at(9, 10, 0.1, 0, "cosine", min_lr=0.01) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        lr_at(0, 10, 0.1, 0, "step")


def test_foreach_lion_matches_lion_pytorch():
    from lion_pytorch import Lion

    torch.manual_seed(0)
    a = [torch.randn(5, 3, requires_grad=True), torch.randn(7, requires_grad=True)]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    oa = ForeachLion(a, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    ob = Lion(b, lr=1e-2, betas=(0.9, 0.99), weight_decay=0.1)
    for step in range(5):
        g = [torch.randn_like(p) for p in a]
        for p, q, gg in zip(a, b, g):
            p.grad, q.grad = gg.clone(), gg.clone()
        for group in oa.param_groups + ob.param_groups:
            group["lr"] = 1e-2 / (step + 1)  # a schedule changes lr between steps
        oa.step()
        ob.step()
    for p, q in zip(a, b):
        assert torch.allclose(p, q, atol=1e-7)
