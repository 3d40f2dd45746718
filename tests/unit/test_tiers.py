"""Resident data in two memory tiers (issue 12): decoded once, same batches as every other path."""
import pytest
import torch

from mlpscale.beton import open_beton
from mlpscale.config import load_config
from mlpscale.data import build_data
from mlpscale.errors import UserError
from mlpscale.loader import ResidentLoader, StreamLoader, load_images
from mlpscale.runtime import Runtime

from util import digits_arrays, write_dataset

CPU = torch.device("cpu")


def batches(loader, epoch, start=0):
    return [(x.clone(), y.clone()) for x, y in loader.epoch(epoch, start_batch=start)]


def same(a, b):
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb) for (xa, ya), (xb, yb) in zip(a, b))


@pytest.mark.parametrize("fmt", ["raw", "jpg"])
def test_two_tiers_equal_one_tier_and_streaming(betons, fmt):
    b = open_beton(betons[fmt])
    labels = torch.from_numpy(b.labels)
    one, _ = load_images(b, CPU)                        # everything in the device tier
    two, stats = load_images(b, CPU, device_rows=500)   # rows 500.. in the host tier
    assert not one.tiered and two.tiered and two.k == 500 and stats.images == 1437
    if fmt == "jpg":
        assert "libffcv" in stats.decoder  # FFCV's own decoder: the same pixels as its streaming loader
    assert torch.equal(torch.cat([two.dev, two.host]), one.dev)
    r1 = ResidentLoader(one, labels, 64, 3)
    r2 = ResidentLoader(two, labels, 64, 3)
    st = StreamLoader(b, 64, 3, CPU, workers=1)
    for e in (0, 1):
        a = batches(r1, e)
        assert same(a, batches(r2, e)), "two tiers differ from one"
        assert same(a, batches(st, e)), "resident differs from FFCV streaming"
    # resume mid-epoch: the tail of an epoch from batch 7 is the same batches
    assert same(batches(r1, 4)[7:], batches(r2, 4, start=7))


def test_tier_budget_is_honoured_and_overflow_streams(tmp_path, capsys):
    (x, y), (xe, ye) = digits_arrays(8)
    write_dataset(tmp_path, "dg", (x, y), (xe, ye))
    rt = Runtime.create("cpu", "fp32", "off")
    img = 8 * 8 * 3
    gb = 2 ** 30
    dev_gb, host_gb = (360 + 400) * img / gb, 1100 * img / gb
    cfg = load_config(None, [f"data.root={tmp_path}", "data.dataset=dg", "data.res=8", "train.batch_size=64",
                             f"data.resident_max_gb={dev_gb}", f"data.host_max_gb={host_gb}"])
    d = build_data(cfg, rt, 64)
    assert d.resident and d.eval.store.k == 360 and not d.eval.store.tiered   # eval split first, on the device
    assert d.train.store.k == 400 and d.train.store.tiered and d.train.store.n == 1437
    assert d.report["train_host_bytes"] == 1037 * img and d.report["train_device_bytes"] == 400 * img
    # bigger than both tiers: one sentence, then FFCV streaming (auto), or an error (on)
    small = load_config(None, [f"data.root={tmp_path}", "data.dataset=dg", "data.res=8", "train.batch_size=64",
                               "data.resident_max_gb=1e-6", "data.host_max_gb=1e-6", "data.workers=1"])
    d = build_data(small, rt, 64)
    assert not d.resident and isinstance(d.train, StreamLoader)
    err = capsys.readouterr().err
    assert "needs" in err and "streaming it from disk with FFCV instead" in err and len(err.strip().splitlines()) == 1
    small.data.resident = "on"
    with pytest.raises(UserError, match="memory tiers hold"):
        build_data(small, rt, 64)


def test_subset_rows_only_are_loaded(tmp_path):
    (x, y), (xe, ye) = digits_arrays(8)
    write_dataset(tmp_path, "dg", (x, y), (xe, ye))
    rt = Runtime.create("cpu", "fp32", "off")
    cfg = load_config(None, [f"data.root={tmp_path}", "data.dataset=dg", "data.res=8", "data.n_train=300",
                             "train.batch_size=50"])
    res = build_data(cfg, rt, 50)
    cfg.data.resident = "off"
    cfg.data.workers = 1
    stream = build_data(cfg, rt, 50)
    assert res.train.store.n == 300 and res.n_train == stream.n_train == 300
    assert same(batches(res.train, 2), batches(stream.train, 2))  # same subset, same order




def test_damaged_jpeg_is_one_sentence(tmp_path, betons):
    import shutil

    bad = tmp_path / "bad.beton"
    shutil.copy(betons["jpg"], bad)
    b = open_beton(str(bad))
    with open(bad, "r+b") as f:  # scribble over the first image's JPEG data
        f.seek(int(b.images["data_ptr"][0]))
        f.write(b"\0" * 64)
    with pytest.raises(UserError, match="does not decode; the file is damaged"):
        load_images(open_beton(str(bad)), CPU)


def test_a_tiered_jpeg_run_reports_decode_tiers_and_wait(tmp_path, capsys):
    """A training run over a JPEG beton decoded once into two tiers: summary.json says how (decoder,
    rate, bytes per tier, data wait), and a log that is not a terminal gets progress lines."""
    import json

    from mlpscale.train import run

    (x, y), (xe, ye) = digits_arrays(8)
    write_dataset(tmp_path, "dj", (x, y), (xe, ye), fmt="jpg")
    img = 8 * 8 * 3
    cfg = load_config(None, [f"data.root={tmp_path}", "data.dataset=dj", "data.res=8", "train.batch_size=64",
                             f"data.resident_max_gb={(360 + 500) * img / 2 ** 30}", "data.host_max_gb=1",
                             "model.arch=B_1-Wi_16", "train.epochs=2", "train.precision=fp32", "run.progress=true",
                             f"run.out_dir={tmp_path}", "run.name=tiered"])
    s = run(cfg)
    assert s["status"] == "finished"
    on_disk = json.load(open(tmp_path / "tiered" / "summary.json"))
    assert on_disk["train_device_bytes"] == 500 * img and on_disk["train_host_bytes"] == 937 * img
    assert "libffcv" in on_disk["train_decoder"] and on_disk["train_load_img_per_s"] > 0
    assert 0 <= on_disk["data_wait_share"] <= 1
    err = capsys.readouterr().err
    assert "decoding train: 1,437/1,437 images" in err   # the last of the ~10% lines


