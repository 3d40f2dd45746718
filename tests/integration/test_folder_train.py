"""A user's own class-folder dataset: convert it, then train on it without touching code."""
import json

from convert_fixtures import make_folder
from util import run_cli


def test_convert_folder_then_train(tmp_path):
    src = make_folder(str(tmp_path / "src"), classes=("cat", "dog", "zebra", "owl"), per_class=40, fmt="JPEG")
    r = run_cli("mlpscale-convert", "folder", "--src", src, "--dataset", "mydata", "--res", "8",
                "--root", str(tmp_path / "data"), "--workers", "1", "--quiet")
    assert r.returncode == 0, r.stderr
    cfg = tmp_path / "mydata.yaml"
    cfg.write_text(
        f"data:\n  dataset: mydata\n  root: {tmp_path / 'data'}\n  res: 8\n"
        "model:\n  arch: B_1-Wi_32\naug:\n  enabled: false\n  mixup: 0.0\n"
        "optim:\n  lr: 1.0e-3\n  label_smoothing: 0.0\n"
        f"train:\n  epochs: 15\n  batch_size: 32\n  precision: fp32\nrun:\n  out_dir: {tmp_path / 'runs'}\n"
    )
    r = run_cli("mlpscale-train", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    s = json.load(open(tmp_path / "runs" / "mydata" / "summary.json"))
    assert s["dataset"] == "mydata" and s["num_classes"] == 4 and s["n_train"] == 160
    assert s["test_top1"] == 100.0  # four solid colours are easy to tell apart
