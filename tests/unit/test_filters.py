"""The first-layer weight figure."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mlpscale.filters import draw_filters, filter_images
from mlpscale.models import MLP


def test_filter_images_pick_and_scale():
    w = torch.zeros(5, 2 * 2 * 3)
    w[3, 0] = 4.0    # largest norm; pixel (0, 0), red
    w[1, 5] = -2.0   # second; pixel (0, 1), blue, negative
    imgs, idx = filter_images(w, res=2, channels=3, n=2)
    assert list(idx) == [3, 1] and imgs.shape == (2, 2, 2, 3)
    assert imgs.min() >= 0 and imgs.max() <= 1
    assert imgs[0, 0, 0, 0] == 1.0 and imgs[1, 0, 1, 2] == 0.0   # extremes map to 1 / 0
    assert imgs[0, 1, 1, 1] == 0.5                               # zero is mid grey
    with pytest.raises(ValueError):
        filter_images(w, res=3)


def test_draw_filters_png(tmp_path):
    torch.manual_seed(0)
    model = MLP("B_2-Wi_32", 8, 10)
    with torch.no_grad():  # a few local blobs, so the picture shows structure
        yy, xx = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
        for u in range(12):
            cy, cx = u % 8, (3 * u) % 8
            blob = torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 2)
            img = torch.stack([blob, -blob, blob * (u % 2)], dim=-1) * (3 + u)   # (H, W, C)
            model.linear_in.weight[u] = img.reshape(-1)
    out = tmp_path / "figs" / "filters.png"
    assert draw_filters(model, str(out), n=16) == str(out)
    with Image.open(out) as im:
        assert im.format == "PNG" and im.mode in ("RGB", "RGBA")
        assert im.width >= 300 and im.height >= 300
        arr = np.asarray(im.convert("RGB"))
    assert arr.std() > 10   # not a blank page
    assert not [p for p in out.parent.iterdir() if ".tmp" in p.name]


def test_draw_filters_more_than_width(tmp_path):
    model = MLP("S_2-Wi_5", 4, 3)
    p = draw_filters(model, str(tmp_path / "f.png"), n=64, title="S_2-Wi_5, 4x4")
    with Image.open(p) as im:
        assert im.format == "PNG"


def test_imported_units_are_the_authors_images():
    """A unit of an imported model shows the authors' CHW weight row as the same (H, W, C) picture."""
    res, width = 4, 8
    theirs = {"linear_in.weight": torch.randn(width, 3 * res * res), "linear_in.bias": torch.randn(width),
              "linear_out.weight": torch.randn(5, width), "linear_out.bias": torch.randn(5)}
    from mlpscale.paper import from_paper_checkpoint

    ours = from_paper_checkpoint(theirs, "S_1-Wi_8", res, 5)
    imgs, idx = filter_images(ours.linear_in.weight, res, n=3)
    for img, u in zip(imgs, idx):
        row = theirs["linear_in.weight"][u].reshape(3, res, res).permute(1, 2, 0)   # CHW -> HWC
        expect = 0.5 + 0.5 * row / row.abs().max()
        assert np.allclose(img, expect.numpy(), atol=1e-6)
