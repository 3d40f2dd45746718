"""The trainer end to end on the digits betons (8x8), on the CPU."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlpscale.config import load_config
from mlpscale.errors import UserError
from mlpscale.loader import Shard, epoch_order
from mlpscale.subsets import balanced_subset
from mlpscale.train import TrainingDiverged, run
from util import ROOT, run_cli

SMALL = ["model.arch=B_2-Wi_64", "train.batch_size=64", "train.precision=fp32", "train.log_every=5",
         "optim.lr=1e-3", "optim.label_smoothing=0.0", "aug.mixup=0.2", "aug.flip=false",
         "aug.crop_scale=[0.6,1]", "run.progress=false"]


def cfg_for(root, out, name, *extra):
    return load_config("demo_digits.yaml", SMALL + [f"data.root={root}", "data.res=8", f"run.out_dir={out}",
                                                     f"run.name={name}", *extra])


def weights(run_dir):
    return torch.load(os.path.join(run_dir, "last.pt"), weights_only=True)["model"]


def test_short_run_learns_and_writes_run_folder(digits_root, tmp_path):
    s = run(cfg_for(digits_root, tmp_path, "short", "train.epochs=4", "train.eval_every=2"))
    d = tmp_path / "short"
    rows = [json.loads(ln) for ln in open(d / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    for key in ("epoch", "train_loss", "img_per_s", "lr", "elapsed_s", "compute_pflops", "data_wait_share"):
        assert key in rows[0]
    assert "test_top1" in rows[1] and "test_top1" not in rows[0] and "test_top5" in rows[3]
    assert s["test_top1"] > 60 and s["status"] == "finished"
    summary = json.load(open(d / "summary.json"))
    assert summary["test_top1"] == s["test_top1"] and summary["n_train"] == 1437
    assert (d / "config.yaml").exists() and (d / "last.pt").exists()
    # compute in the paper's unit: fvcore flops per forward x 3 x N x T; the images processed apart
    assert summary["compute_pflops"] == pytest.approx(summary["paper_flops_per_forward"] * 3 * 1437 * 4 / 1e15)
    assert summary["processed_pflops"] == pytest.approx(summary["paper_flops_per_forward"] * 3 * summary["steps"] * 64 / 1e15)
    assert rows[1]["compute_pflops"] == pytest.approx(summary["compute_pflops"] / 2)
    assert load_config(str(d / "config.yaml")).model.arch == "B_2-Wi_64"


def test_streaming_equals_resident(digits_root, tmp_path):
    a = run(cfg_for(digits_root, tmp_path, "res", "train.epochs=1", "data.resident=on"))
    b = run(cfg_for(digits_root, tmp_path, "str", "train.epochs=1", "data.resident=off", "data.workers=1"))
    assert a["resident"] and not b["resident"]
    wa, wb = weights(tmp_path / "res"), weights(tmp_path / "str")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same batches, same augmentation, same weights


@pytest.mark.parametrize("resident", ["on", "off"])
def test_resume_mid_epoch_is_exact(digits_root, tmp_path, resident):
    mode = [f"data.resident={resident}", "data.workers=1"]
    run(cfg_for(digits_root, tmp_path, "full", "train.epochs=3", *mode))
    part = run(cfg_for(digits_root, tmp_path, "part", "train.epochs=3", "train.max_steps=30", *mode))
    assert part["status"] == "max_steps" and part["steps"] == 30  # 22 steps/epoch: stopped inside epoch 2
    run(cfg_for(digits_root, tmp_path, "part", "train.epochs=3", *mode), resume_dir=str(tmp_path / "part"))
    wa, wb = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(ln) for ln in open(tmp_path / "part" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3]


def test_gradient_accumulation_matches_big_batch(digits_root, tmp_path):
    common = ["train.epochs=1", "aug.enabled=false", "optim.name=sgd", "optim.lr=0.05", "model.arch=B_1-Wi_32"]
    run(cfg_for(digits_root, tmp_path, "big", *common))
    run(cfg_for(digits_root, tmp_path, "acc", *common, "train.accum_steps=4"))
    wa, wb = weights(tmp_path / "big"), weights(tmp_path / "acc")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)



def test_nan_loss_stops_with_step(digits_root, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at optimizer step \d+"):
        run(cfg_for(digits_root, tmp_path, "nan", "train.epochs=3", "optim.name=sgd", "optim.lr=1e30",
                    "aug.enabled=false"))
    assert not (tmp_path / "nan" / "last.pt").exists()


def test_subset_is_balanced_and_deterministic():
    labels = np.repeat(np.arange(4), [100, 50, 30, 20])
    idx = balanced_subset(labels, 40, seed=0)
    assert len(idx) == 40 and len(set(idx)) == 40
    assert np.bincount(labels[idx]).tolist() == [20, 10, 6, 4]
    assert np.array_equal(idx, balanced_subset(labels, 40, seed=0))
    assert not np.array_equal(idx, balanced_subset(labels, 40, seed=1))
    assert balanced_subset(labels, 7, 0).size == 7  # rounding still gives exactly n
    with pytest.raises(UserError):
        balanced_subset(labels, 500)


@pytest.mark.parametrize("resident", ["on", "off"])
def test_trainer_uses_subset(digits_root, tmp_path, resident):
    s = run(cfg_for(digits_root, tmp_path, "sub", "train.epochs=1", "data.n_train=640",
                    f"data.resident={resident}", "data.workers=1"))
    assert s["n_train"] == 640 and s["steps"] == 10


def test_rank_slices_partition_global_batches():
    full = epoch_order(1000, 3, 5, 64)
    r0 = epoch_order(1000, 3, 5, 32, Shard(0, 2))
    r1 = epoch_order(1000, 3, 5, 32, Shard(1, 2))
    assert np.array_equal(np.stack([r0.reshape(-1, 32), r1.reshape(-1, 32)], 1).reshape(-1), full[:len(r0) * 2])


@pytest.mark.slow  # a training process
def test_missing_beton_message(tmp_path):
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml", "--set", f"data.root={tmp_path}",
                "--set", f"run.out_dir={tmp_path / 'runs'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"missing dataset file {tmp_path}/digits/train_16.beton" in r.stderr
    assert f"mlpscale-convert digits --res 16 --root {tmp_path}" in r.stderr


@pytest.mark.slow  # a training process
def test_bad_config_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    r = run_cli("mlpscale-train", "--config", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "unknown key 'train.epoch'" in r.stderr and "train.epochs" in r.stderr


def test_unknown_architecture(digits_root, tmp_path):
    with pytest.raises(UserError, match="unknown architecture 'MLP-Mixer'"):
        run(cfg_for(digits_root, tmp_path, "arch", "model.arch=MLP-Mixer"))


def test_resolution_mismatch_on_resume(digits_root, tmp_path):
    run(cfg_for(digits_root, tmp_path, "r8", "train.epochs=1"))
    with pytest.raises(UserError, match="trained at 8px but the data are 4px"):
        run(cfg_for(digits_root, tmp_path, "r8", "train.epochs=2", "data.crop_res=4"), resume_dir=str(tmp_path / "r8"))


def test_wrong_stored_resolution(digits_root, tmp_path):
    os.makedirs(tmp_path / "digits")
    os.symlink(os.path.join(digits_root, "digits", "train_8.beton"), tmp_path / "digits" / "train_16.beton")
    os.symlink(os.path.join(digits_root, "digits", "test_8.beton"), tmp_path / "digits" / "test_16.beton")
    with pytest.raises(UserError, match="holds 8x8 images but data.res=16"):
        run(cfg_for(tmp_path, tmp_path, "wr", "data.res=16"))


def test_existing_run_is_not_overwritten(digits_root, tmp_path):
    run(cfg_for(digits_root, tmp_path, "once", "train.epochs=1"))
    with pytest.raises(UserError, match="already holds a run.*--resume"):
        run(cfg_for(digits_root, tmp_path, "once", "train.epochs=1"))


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(digits_root, tmp_path):
    """torchrun, 2 ranks, gloo: the same weights as one process with the same global batch."""
    common = ["--set", f"data.root={digits_root}", "--set", "data.res=8", "--set", f"run.out_dir={tmp_path}",
              "--set", "train.epochs=2", "--set", "aug.enabled=false", "--set", "optim.name=sgd",
              "--set", "optim.lr=0.05", "--set", "train.batch_size=64", "--set", "train.precision=fp32",
              "--set", "model.arch=B_1-Wi_32", "--set", "run.progress=false"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "mlpscale.train", "--config", "demo_digits.yaml", *common, "--set", "run.name=ddp"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.load(open(tmp_path / "ddp" / "summary.json"))
    assert s["world_size"] == 2 and s["status"] == "finished"
    single = run(load_config("demo_digits.yaml", [c for c in common if c != "--set"] + ["run.name=one"]))
    wa, wb = weights(tmp_path / "ddp"), weights(single["run_dir"])
    diff = {k: (wa[k] - wb[k]).abs().max().item() for k in wa}
    assert max(diff.values()) < 1e-5, diff



def test_kept_checkpoints_and_grad_clip(digits_root, tmp_path):
    s = run(cfg_for(digits_root, tmp_path, "keep", "train.epochs=4", "train.keep_every=2", "optim.grad_clip=0.5"))
    assert s["status"] == "finished"
    d = tmp_path / "keep"
    assert (d / "epoch_2.pt").exists() and (d / "epoch_4.pt").exists() and not (d / "epoch_1.pt").exists()
    assert torch.load(d / "epoch_2.pt", weights_only=True)["epoch"] == 2


def test_optional_loggers_say_how_to_install(digits_root, tmp_path):
    try:
        import tensorboard  # noqa: F401 - only whether it is installed matters
    except ImportError:
        with pytest.raises(UserError, match="pip install tensorboard"):
            run(cfg_for(digits_root, tmp_path, "tb", "train.epochs=1", "run.tensorboard=true"))
    else:
        run(cfg_for(digits_root, tmp_path, "tb", "train.epochs=1", "run.tensorboard=true"))
        assert any((tmp_path / "tb" / "tb").iterdir())


def test_progress_bar_on_a_terminal(digits_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    s = run(cfg_for(digits_root, tmp_path, "bar", "train.epochs=1", "run.progress=true", "train.log_every=2"))
    assert s["status"] == "finished"


def test_epoch_lines_in_logs(digits_root, tmp_path, capsys):
    run(cfg_for(digits_root, tmp_path, "lines", "train.epochs=2", "run.progress=true"))
    out = capsys.readouterr().out
    assert "epoch 1/2 loss" in out and "epoch 2/2 loss" in out and "test_top1" in out


def test_trainer_on_arrays(tmp_path):
    from mlpscale.datasets import DatasetInfo
    from mlpscale.train import Trainer, arrays_data

    g = torch.Generator().manual_seed(0)
    y = torch.arange(256) % 2
    x = (y.view(-1, 1, 1, 1) * 200 + torch.randint(0, 40, (256, 4, 4, 3), generator=g)).to(torch.uint8)
    info = DatasetInfo("toy", 2, 256, 256, 4, (100.0,) * 3, (80.0,) * 3)
    cfg = load_config(None, ["model.arch=B_1-Wi_16", "train.batch_size=32", "train.epochs=2", "aug.enabled=false",
                             "optim.lr=1e-3", "run.progress=false"])
    os.makedirs(tmp_path / "toy")
    s = Trainer(cfg, str(tmp_path / "toy"), data_fn=arrays_data(x, y, info)).fit()
    assert s["test_top1"] == 100.0 and s["n_train"] == 256


@pytest.mark.slow
def test_demo_reaches_95_percent(tmp_path):
    """What `make demo` runs: digits at 16px, configs/demo_digits.yaml; the README promises >= 95%."""
    r = run_cli("mlpscale-convert", "digits", "--res", "16", "--out", str(tmp_path / "data"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml", "--set", f"data.root={tmp_path / 'data'}",
                "--set", f"run.out_dir={tmp_path / 'runs'}")
    assert r.returncode == 0, r.stderr
    s = json.load(open(tmp_path / "runs" / "demo_digits" / "summary.json"))
    assert s["test_top1"] >= 95.0 and s["status"] == "finished"


def test_a_run_refused_before_it_starts_leaves_no_folder(tmp_path):
    """Missing data: one sentence, and no half-made run folder (config.yaml, .lock) left to puzzle over."""
    cfg = load_config("demo_digits.yaml", [f"data.root={tmp_path / 'none'}", f"run.out_dir={tmp_path / 'runs'}"])
    with pytest.raises(UserError, match="missing dataset file"):
        run(cfg)
    assert os.listdir(tmp_path / "runs") == []
