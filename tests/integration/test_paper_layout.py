"""The paper layout at device speed: the authors' pixels (FFCV `RGBImageField(max_resolution=R)`) kept
in fixed R x R canvases with each image's true (h, w); random crops inside each image, FFCV's centre
view, a whole run with the data resident and TTA, and eval options refused before the first step."""
from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from data_prep.cli import main as convert
from mlpscale.augment import DeviceAugment, center_boxes, sample_boxes
from mlpscale.beton import open_beton, read_raw_images

from util import run_cli

# (w, h) of made photos: landscape, portrait, square, small, extreme
SIZES = [(500, 375), (375, 500), (500, 333), (640, 480), (64, 48), (30, 90), (64, 64), (97, 65), (200, 120)]


def _photo(w: int, h: int, seed: int) -> Image.Image:
    """Smooth photo-like content (so that different area filters agree closely)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _folder(root, sizes, per_class=1, classes=1, seed=0) -> str:
    """An image folder (train/ and val/, class folders c0.., PNG files) of made photos."""
    src = os.path.join(str(root), "dl", "photos")
    for split in ("train", "val"):
        for c in range(classes):
            for k in range(per_class):
                for i, (w, h) in enumerate(sizes):
                    img = _photo(w, h, seed + 1000 * c + i) if classes == 1 else _class_photo(w, h, c, i + 31 * k)
                    path = os.path.join(src, split, f"c{c}", f"img{k}_{i}.png")
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as f:
                        f.write(_png(img))
    return src


def _class_photo(w: int, h: int, c: int, seed: int) -> Image.Image:
    """A made photo whose colour says its class (three classes), with noise so no two are alike."""
    rng = np.random.default_rng(seed)
    colour = np.array([[220, 40, 40], [40, 200, 60], [50, 70, 230]][c], dtype=np.float64)
    base = np.clip(colour + rng.normal(0, 30, (6, 8, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC)


def _authors_beton(path: str, sizes, res: int, seed=0) -> None:
    """The authors' converter: FFCV's DatasetWriter with RGBImageField(max_resolution=res) on the
    decoded images (torchvision's ImageFolder without transform)."""
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    class Authors:
        def __len__(self):
            return len(sizes)

        def __getitem__(self, i):
            return _photo(*sizes[i], seed + i).convert("RGB"), 0

    DatasetWriter(path, {"image": RGBImageField(write_mode="raw", max_resolution=res), "label": IntField()},
                  num_workers=1).from_indexed_dataset(Authors())


def _ffcv_images(path: str, decoder, n: int) -> np.ndarray:
    """Every image of a beton through an FFCV decoder, (n, R, R, 3) uint8, in file order."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.loader import Loader, OrderOption
    from ffcv.transforms import ToTensor

    loader = Loader(path, batch_size=n, num_workers=1, order=OrderOption.SEQUENTIAL,
                    pipelines={"image": [decoder, ToTensor()], "label": [IntDecoder(), ToTensor()]})
    return np.concatenate([x.numpy() for x, _ in loader])


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """Our paper-layout conversion and the authors' beton of the same images, at R = 32."""
    tmp = tmp_path_factory.mktemp("paper")
    src = _folder(tmp, SIZES)
    out = str(tmp / "out")
    convert(["folder", "--src", src, "--dataset", "p", "--res", "32", "--root", out, "--layout", "paper",
             "--workers", "1", "--quiet"])
    ref = str(tmp / "authors.beton")
    _authors_beton(ref, SIZES, 32)
    return os.path.join(out, "p", "train_32.beton"), ref


def test_stored_pixels_are_the_authors_resize(converted):
    ours_path, ref = converted
    b = open_beton(ours_path)
    assert b.resolution() == (32, 32)  # fixed-size canvases: resident, tiered and sharded like square
    canvases, hw = read_raw_images(b), b.image_sizes()
    theirs = open_beton(ref)
    assert [tuple(s) for s in hw] == list(zip(theirs.images["height"], theirs.images["width"]))
    from convert_fixtures import read_images

    ref_images, _ = read_images(ref)
    for canvas, (h, w), img in zip(canvases, hw, ref_images):
        diff = np.abs(canvas[:h, :w].astype(int) - img.astype(int))
        assert diff.mean() < 1.0 and diff.max() <= 3  # same area filter; PNG, so no JPEG noise
        # the margin repeats the last row / column (what border sampling reads at the edge)
        np.testing.assert_array_equal(canvas[h:, :w], np.broadcast_to(canvas[h - 1:h, :w], canvas[h:, :w].shape))
        np.testing.assert_array_equal(canvas[:, w:], np.broadcast_to(canvas[:, w - 1:w], canvas[:, w:].shape))
    meta = json.load(open(os.path.join(os.path.dirname(ours_path), "meta_32.json")))
    assert meta["layout"] == "paper"


def test_device_centre_view_is_ffcvs_centre_crop(converted):
    from ffcv.fields.rgb_image import CenterCropRGBImageDecoder

    ours_path, ref = converted
    b = open_beton(ours_path)
    canvases, hw = torch.from_numpy(read_raw_images(b)), torch.from_numpy(b.image_sizes())
    theirs = _ffcv_images(ref, CenterCropRGBImageDecoder((32, 32), ratio=1.0), len(SIZES)).astype(np.float64)
    view = DeviceAugment((0, 0, 0), (1, 1, 1), 32, train=False)
    ours = view(canvases, None, hw).view(-1, 32, 32, 3).numpy()   # std clamped to 1: the 0..255 pixels
    err = np.abs(ours - theirs).mean(axis=(1, 2, 3))
    # FFCV resizes its crop with cv2's INTER_AREA, the device bilinearly: the same crop box, so ours is
    # cv2's bilinear resize of FFCV's crop, and differs from FFCV's view by no more than the two filters do
    import cv2

    from convert_fixtures import read_images

    for k, img in enumerate(read_images(ref)[0]):
        h, w = img.shape[:2]
        side = min(h, w)
        crop = img[(h - side) // 2:(h - side) // 2 + side, (w - side) // 2:(w - side) // 2 + side]
        linear = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_LINEAR).astype(np.float64)
        area = cv2.resize(crop, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
        np.testing.assert_allclose(area, theirs[k])              # that is FFCV's centre view
        assert np.abs(ours[k] - linear).mean() < 1.5, k
        assert err[k] <= np.abs(area - linear).mean() + 1.5, (k, err[k])
    square = view(canvases, None, torch.full_like(hw, 32)).view(-1, 32, 32, 3).numpy()
    landscape = [i for i, (h, w) in enumerate(hw.tolist()) if w > h * 1.2]
    # the whole canvas is not the centre view: FFCV's crop is what the device view reproduces
    assert np.abs(square[landscape] - theirs[landscape]).mean() > 3 * err[landscape].mean()


def test_centre_boxes_are_ffcvs_get_center_crop():
    from ffcv.fields.rgb_image import get_center_crop

    hw = torch.tensor([[24, 32], [32, 9], [32, 32], [1, 32], [31, 32]])
    for (h, w), box in zip(hw.tolist(), center_boxes(hw).tolist()):
        i, j, ch, cw = get_center_crop(h, w, None, 1.0)
        assert box == [j, i, cw, ch]


def test_random_boxes_stay_inside_each_image():
    g = torch.Generator().manual_seed(0)
    hw = torch.tensor([[64, 48], [48, 64], [64, 1], [1, 64], [64, 64], [10, 64], [64, 33]] * 300)
    for scale, ratio in [((0.08, 1.0), (3 / 4, 4 / 3)), ((0.4, 1.0), (1.0, 1.0)), ((0.9, 1.0), (3.0, 4.0))]:
        boxes = sample_boxes(len(hw), hw[:, 0], hw[:, 1], scale, ratio, g, "cpu")
        x0, y0, w, h = boxes.unbind(1)
        eps = 1e-4
        assert (x0 >= -eps).all() and (y0 >= -eps).all() and (w > 0).all() and (h > 0).all()
        assert (x0 + w <= hw[:, 1] + eps).all() and (y0 + h <= hw[:, 0] + eps).all()
    # one size for all (the square layout) still draws the same boxes as a per-image tensor of it
    a = sample_boxes(16, 32, 32, (0.08, 1), (3 / 4, 4 / 3), torch.Generator().manual_seed(1), "cpu")
    b = sample_boxes(16, torch.full((16,), 32), torch.full((16,), 32), (0.08, 1), (3 / 4, 4 / 3),
                     torch.Generator().manual_seed(1), "cpu")
    torch.testing.assert_close(a, b)


def test_crop_of_the_canvas_is_the_crop_of_the_image_alone():
    """The stored margin repeats the image's edge, so a box resampled from the canvas gives the pixels
    the same box gives on the image alone (grid_sample's border padding there)."""
    from data_prep.resize import canvas
    from mlpscale.augment import crop_resize

    rng = np.random.default_rng(0)
    for h, w in [(20, 12), (32, 9), (5, 32), (32, 32)]:
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        alone = torch.from_numpy(img).permute(2, 0, 1)[None].float().repeat(256, 1, 1, 1)
        big = torch.from_numpy(canvas(img, 32)).permute(2, 0, 1)[None].float().repeat(256, 1, 1, 1)
        boxes = sample_boxes(256, h, w, (0.08, 1.0), (3 / 4, 4 / 3), torch.Generator().manual_seed(h), "cpu")
        boxes = torch.cat([boxes, center_boxes(torch.tensor([[h, w]]))])  # and the centre view
        flip = torch.arange(257) % 2 == 0
        a = crop_resize(torch.cat([alone, alone[:1]]), boxes, flip, 16)
        b = crop_resize(torch.cat([big, big[:1]]), boxes, flip, 16)
        torch.testing.assert_close(a, b, atol=1e-3, rtol=0)


RUN_YAML = """
data: {{dataset: photos, root: {root}, res: 16, resident: "on"}}
model: {{arch: B_2-Wi_64}}
aug: {{enabled: true, crop_scale: [0.4, 1.0], crop_ratio: [0.75, 1.3333], mixup: 0.0}}
optim: {{name: adamw, lr: 3.0e-3, weight_decay: 0.0, warmup_epochs: 0, label_smoothing: 0.0}}
train: {{epochs: 3, batch_size: 16, precision: fp32, eval_every: 3, log_every: 1, compile: "off"}}
eval: {{tta: 4}}
run: {{out_dir: {out}, name: paper, progress: false}}
"""


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Three classes of made photos of many aspect ratios, converted with --layout paper at 16px."""
    tmp = tmp_path_factory.mktemp("photos")
    sizes = [(60, 40), (40, 60), (50, 50), (90, 30), (30, 80), (64, 48), (20, 20), (70, 35)]
    src = _folder(tmp, sizes, per_class=3, classes=3)
    root = str(tmp / "data")
    convert(["folder", "--src", src, "--dataset", "photos", "--res", "16", "--root", root, "--layout", "paper",
             "--workers", "1", "--quiet"])
    return root


def _config(tmp_path, root, **extra) -> str:
    text = RUN_YAML.format(root=root, out=tmp_path / "runs")
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return str(path)


def test_paper_layout_run_resident_with_tta(photos, tmp_path):
    cfg = _config(tmp_path, photos)
    r = run_cli("mlpscale-train", "--config", cfg)
    assert r.returncode == 0, r.stderr
    run_dir = tmp_path / "runs" / "paper"
    summary = json.load(open(run_dir / "summary.json"))
    assert summary["status"] == "finished" and summary["resident"] is True
    assert summary["layout"] == "paper"
    ev = json.load(open(run_dir / "eval.json"))
    for key in ("tta_top1_logits", "tta_top1_probs", "tta_top5_logits", "tta_top5_probs"):
        assert 0.0 <= ev[key] <= 100.0
    assert ev["tta_views"] == 4 and ev["tta_top1"] == ev["tta_top1_logits"]
    assert ev["n_images"] == 72
    # mlpscale-eval with other crops adds its entry and keeps the run's own
    r = run_cli("mlpscale-eval", str(run_dir), "--tta", "2", "--tta-scale", "0.5", "1", "--tta-ratio", "1", "1")
    assert r.returncode == 0, r.stderr
    assert "probabilities averaged" in r.stdout
    ev = json.load(open(run_dir / "eval.json"))
    assert ev["tta_scale"] == [0.5, 1.0] and ev["tta_ratio"] == [1.0, 1.0] and ev["tta_views"] == 2
    assert sorted(e["tta_views"] for e in ev["evaluations"].values()) == [2, 4]


def test_unservable_eval_option_is_refused_before_the_first_step(photos, tmp_path):
    """eval.real on data without ReaL labels: exit 2 at start, no run folder left behind."""
    cfg = _config(tmp_path, photos)
    r = run_cli("mlpscale-train", "--config", cfg, "--set", "eval.real=true")
    assert r.returncode == 2, r.stderr
    assert "ReaL" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs" / "paper").exists()


def test_tta_on_the_authors_variable_size_betons_is_refused_at_start(tmp_path):
    """Betons the authors' converter wrote stream (FFCV crops them on the CPU): eval.tta is refused at
    once, with the re-conversion that serves it."""
    root = tmp_path / "data" / "authors"
    root.mkdir(parents=True)
    for split in ("train", "test"):
        _authors_beton(str(root / f"{split}_16.beton"), SIZES * 2, 16)
    (root / "meta_16.json").write_text(json.dumps({"name": "authors", "res": 16, "num_classes": 1,
                                                   "eval_split": "test", "mean": [120] * 3, "std": [60] * 3}))
    cfg = _config(tmp_path, str(tmp_path / "data"))
    text = open(cfg).read().replace("dataset: photos", "dataset: authors").replace('resident: "on"', 'resident: "off"')
    open(cfg, "w").write(text)
    r = run_cli("mlpscale-train", "--config", cfg)
    assert r.returncode == 2, r.stderr
    assert "--layout paper" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "runs" / "paper").exists()


def test_streamed_paper_layout_yields_what_the_resident_store_does(photos):
    """data.resident=off streams the same canvases and true sizes through FFCV (crops stay on the device)."""
    from mlpscale.config import load_config
    from mlpscale.data import build_data
    from mlpscale.runtime import Runtime

    rt = Runtime.create("cpu", "fp32", "off")
    got = {}
    for mode in ("on", "off"):
        cfg = load_config(None, [f"data.root={photos}", "data.dataset=photos", "data.res=16",
                                 f"data.resident={mode}", "train.batch_size=16"])
        d = build_data(cfg, rt, 16, eval_only=True)
        assert d.paper_layout and not d.cropped_on_cpu
        got[mode] = [torch.cat(parts) for parts in zip(*d.eval.epoch(0))]
    for a, b in zip(got["on"], got["off"]):
        torch.testing.assert_close(a, b)
    assert got["on"][2].min() >= 1 and got["on"][2].max() == 16 and (got["on"][2] < 16).any()


def test_imagenet_sources_default_to_the_paper_layout():
    from data_prep.cli import build_parser

    p = build_parser()
    for source, layout in (("imagenet1k", "paper"), ("imagenet21k", "paper"), ("cifar10", "square"),
                           ("stl10", "square"), ("tinyimagenet", "square"), ("folder", "square")):
        assert p.parse_args([source, "--root", "x"]).layout == layout, source


def test_combining_shards_keeps_each_images_true_size(tmp_path):
    from data_prep.combine import copy_samples
    from mlpscale.beton import write_arrays

    rng = np.random.default_rng(0)
    parts = []
    for k in range(2):
        x = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
        hw = rng.integers(1, 9, (5, 2))
        path = str(tmp_path / f"shard{k}.beton")
        write_arrays(path, x, np.arange(5), sizes=hw)
        parts.append((path, x, hw))
    dst = str(tmp_path / "all.beton")
    copy_samples(dst, [(parts[0][0], None), (parts[1][0], np.array([4, 1]))], None)
    b = open_beton(dst)
    np.testing.assert_array_equal(b.image_sizes(), np.concatenate([parts[0][2], parts[1][2][[4, 1]]]))
    np.testing.assert_array_equal(read_raw_images(b), np.concatenate([parts[0][1], parts[1][1][[4, 1]]]))
