"""`--layout paper`: images stored as the paper's authors' converter stores them (FFCV RGBImageField
with max_resolution): aspect kept, shrunk with an area filter only when the longer side exceeds res."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from data_prep.cli import main
from data_prep.engine import decode_image
from data_prep.resize import paper_size
from mlpscale.beton import open_beton
from mlpscale.layout import check_dataset

import convert_fixtures as fx

SIZES = [(500, 375), (375, 500), (500, 333), (640, 480), (64, 48), (30, 90), (64, 64), (1000, 1), (97, 65)]


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """Smooth photo-like content (so that different area filters agree closely)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)


def _jpeg(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, **kw)
    return buf.getvalue()


def test_paper_size_is_ffcvs_resizer():
    from ffcv.fields.rgb_image import resizer

    for w, h in SIZES[:-2] + [(1000, 999), (333, 1000), (65, 64), (4000, 3000)]:
        for res in (16, 32, 64, 224):
            expect = resizer(np.zeros((h, w, 3), np.uint8), res).shape
            assert paper_size(w, h, res) == (expect[1], expect[0]), (w, h, res)
    assert paper_size(1000, 1, 64) == (64, 1)  # FFCV would ask cv2 for a 0-pixel side and fail


def test_paper_layout_matches_the_authors_converter(tmp_path):
    """Same sizes as FFCV's DatasetWriter with RGBImageField(max_resolution=64) on fully decoded
    images (what the authors ran), pixels within JPEG-draft / box-filter differences."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    src = tmp_path / "dl" / "mydata"
    images = {}
    for i, (w, h) in enumerate(SIZES[:-2]):
        images[f"img{i}.jpg"] = _jpeg(_photo(w, h, i))
        for split in ("train", "val"):
            fx.write(str(src / split / "c0" / f"img{i}.jpg"), images[f"img{i}.jpg"])
    out = str(tmp_path / "out")
    main(["folder", "--src", str(src), "--dataset", "d", "--res", "64", "--root", out, "--layout", "paper", "--quiet"])
    meta = json.load(open(os.path.join(out, "d", "meta_64.json")))
    assert meta["layout"] == "paper" and meta["res"] == 64
    check_dataset(out, "d", 64, ["train", "val"], "hint")
    ours, _ = fx.read_images(os.path.join(out, "d", "train_64.beton"))

    class Authors:  # torchvision ImageFolder without transform: full decode, RGB
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return Image.open(io.BytesIO(images[f"img{i}.jpg"])).convert("RGB"), 0

    ref = str(tmp_path / "authors.beton")
    DatasetWriter(ref, {"image": RGBImageField(write_mode="raw", max_resolution=64), "label": IntField()},
                  num_workers=1).from_indexed_dataset(Authors())
    theirs, _ = fx.read_images(ref)
    assert [x.shape for x in ours] == [x.shape for x in theirs]
    b = open_beton(os.path.join(out, "d", "train_64.beton"))
    assert b.resolution() == (64, 64)  # fixed-size canvases, the true sizes beside them
    assert [tuple(s) for s in b.image_sizes()] == [x.shape[:2] for x in theirs]
    for a, b in zip(ours, theirs):
        assert np.abs(a.astype(int) - b.astype(int)).mean() < 1.5


def test_paper_layout_keeps_small_arrays_and_shrinks_large_ones(tmp_path):
    src, truth = fx.make_cifar10(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    main(["cifar10", "--src", src, "--res", "64", "--root", out, "--layout", "paper", "--quiet"])
    x, _ = fx.read_beton(os.path.join(out, "cifar10", "train_64.beton"))
    np.testing.assert_array_equal(x, truth["train"][0].transpose(0, 2, 3, 1))  # 32x32 kept, not enlarged
    main(["cifar10", "--src", src, "--res", "16", "--root", out, "--layout", "paper", "--quiet"])
    x, _ = fx.read_beton(os.path.join(out, "cifar10", "train_16.beton"))
    assert x.shape == (30, 16, 16, 3)


@pytest.mark.parametrize("orientation,shape", [(1, (48, 64, 3)), (6, (64, 48, 3))])
def test_paper_layout_honours_exif_orientation(orientation, shape):
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = _jpeg(_photo(640, 480, 0), exif=exif)
    assert decode_image(data, 64, "paper").shape == shape
    assert decode_image(data, 64, "square").shape == (64, 64, 3)
