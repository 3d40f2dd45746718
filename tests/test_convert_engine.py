"""The decode engine and the streaming beton writer: robustness, decoding rules, FFCV compatibility."""
from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

import convert_fixtures as fx
from data_prep.engine import Encoding, decode_image, write_split
from data_prep.records import ArrayRecords, FileRecords
from data_prep.workers import Workers
from mlpscale.beton import BetonWriter


def test_ffcv_loader_reads_our_betons_in_all_memory_modes(tmp_path):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (700, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(700) % 7
    path = str(tmp_path / "t.beton")
    with Workers(2) as pool:
        r = write_split(path, ArrayRecords(imgs, labels), Encoding(8), pool, batch=50, progress=False)
    assert r.count == 700 and r.kept.all()
    for os_cache, order in ((True, OrderOption.SEQUENTIAL), (False, OrderOption.SEQUENTIAL),
                            (False, OrderOption.QUASI_RANDOM)):
        loader = Loader(path, batch_size=128, num_workers=1, order=order, os_cache=os_cache, drop_last=False,
                        pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()]})
        xs, ys = zip(*[(np.array(x), np.array(y).ravel()) for x, y in loader])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if order == OrderOption.SEQUENTIAL:
            np.testing.assert_array_equal(x, imgs)
            np.testing.assert_array_equal(y, labels)
        else:
            assert sorted(y.tolist()) == sorted(labels.tolist())


def test_samples_never_straddle_pages(tmp_path):
    from ffcv.reader import Reader

    page = 1 << 21
    w = BetonWriter(str(tmp_path / "p.beton"), capacity=200, max_payload=200 * 200 * 3, page_size=page)
    payload = bytes(200 * 200 * 3)  # 120 kB: 17 per 2 MiB page, with a remainder
    for i in range(200):
        w.add(payload, 1, 200, 200, i)
    assert w.commit() == 200
    t = Reader(str(tmp_path / "p.beton")).alloc_table
    assert (t["ptr"] // page == (t["ptr"] + t["size"] - 1) // page).all()
    assert (t["ptr"][0] % page) == 0


def test_corrupt_files_are_skipped_and_listed(tmp_path):
    good = fx.image_bytes((10, 200, 30), (40, 30))
    blobs = [good, good[:60], b"not an image", fx.image_bytes((10, 200, 30), fmt="PNG"), b""]
    rec = FileRecords(np.arange(5), blobs=blobs, names=[f"f{i}" for i in range(5)])
    with Workers(2) as pool:
        r = write_split(str(tmp_path / "c.beton"), rec, Encoding(8), pool, batch=2, progress=False)
    assert r.count == 2 and r.kept.tolist() == [True, False, False, True, False]
    assert [s.split(":")[0] for s in r.skipped] == ["f1", "f2", "f4"]
    x, y = fx.read_beton(str(tmp_path / "c.beton"))
    assert y.tolist() == [0, 3]


def test_all_corrupt_is_a_user_error_and_leaves_no_file(tmp_path):
    from mlpscale.errors import UserError

    rec = FileRecords([0, 1], blobs=[b"x", b"y"], names=["a", "b"])
    with pytest.raises(UserError, match="no readable image"):
        write_split(str(tmp_path / "bad.beton"), rec, Encoding(8), progress=False)
    assert os.listdir(tmp_path) == []


def test_interrupted_write_leaves_no_complete_looking_file(tmp_path):
    """A crash mid-conversion (here: an exception from the record source) leaves nothing behind,
    and an existing good file of the same name is untouched until the new one is verified."""
    class Exploding(ArrayRecords):
        def task(self, a, b):
            if a >= 64:
                raise KeyboardInterrupt
            return super().task(a, b)

    imgs = np.zeros((200, 8, 8, 3), np.uint8)
    path = str(tmp_path / "train_8.beton")
    write_split(path, ArrayRecords(imgs, np.zeros(200)), Encoding(8), progress=False)
    before = open(path, "rb").read()
    with pytest.raises(KeyboardInterrupt):
        write_split(path, Exploding(imgs + 1, np.ones(200)), Encoding(8), batch=32, progress=False)
    assert os.listdir(tmp_path) == ["train_8.beton"]
    assert open(path, "rb").read() == before


def test_draft_decode_matches_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)  # smooth content: no aliasing either way
    big = Image.fromarray(small).resize((512, 384), Image.Resampling.BICUBIC)  # smooth content
    buf = io.BytesIO()
    big.save(buf, format="JPEG", quality=95)
    ours = decode_image(buf.getvalue(), 32).astype(int)
    from data_prep.resize import square_resize

    full = square_resize(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"), 32).astype(int)
    assert ours.shape == (32, 32, 3)
    assert np.abs(ours - full).mean() < 4.0  # libjpeg scaled IDCT vs box filter: ~1% of the range


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_modes_become_rgb_and_exif_orientation_is_honoured():
    red = (200, 20, 20)
    assert decode_image(_encoded(Image.new("L", (20, 10), 128), "JPEG"), 4)[0, 0].tolist() == [128] * 3
    cmyk = decode_image(_encoded(Image.new("RGB", (20, 10), red).convert("CMYK"), "JPEG"), 4)
    assert np.abs(cmyk.reshape(-1, 3).mean(0) - red).max() < 12
    pal = Image.new("RGB", (20, 10), red).convert("P", palette=Image.Palette.ADAPTIVE)
    assert decode_image(_encoded(pal, "PNG"), 4)[0, 0].tolist() == list(red)
    rgba = Image.new("RGBA", (20, 10), (0, 0, 0, 0))
    assert decode_image(_encoded(rgba, "PNG"), 4)[0, 0].tolist() == [255, 255, 255]  # on white
    # a wide image stored with "rotate 90" EXIF becomes tall: top half red, bottom half blue
    img = Image.new("RGB", (40, 20), red)
    img.paste((20, 20, 200), (20, 0, 40, 20))  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display: right half -> bottom half
    out = decode_image(_encoded(img, "JPEG", exif=exif, quality=95), 8)
    assert out[0, 4, 0] > 150 and out[7, 4, 2] > 150


def test_centre_crop_of_wide_image():
    img = Image.new("RGB", (90, 30), (0, 0, 255))
    img.paste((255, 0, 0), (30, 0, 60, 30))  # the middle third is red
    out = decode_image(_encoded(img, "PNG"), 10)
    assert out.shape == (10, 10, 3) and (out[..., 0] == 255).all()
