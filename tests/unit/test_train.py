"""The trainer end to end on the digits betons (8x8), on the CPU."""
import json
import os
import sys

import numpy as np
import pytest
import torch

from mlpscale.config import load_config
from mlpscale.errors import UserError
from mlpscale.loader import Shard, epoch_order
from mlpscale.subsets import balanced_subset
from mlpscale.train import TrainingDiverged, run

from util import weights


def test_short_run_learns_and_writes_run_folder(tiny_config, tmp_path):
    s = run(tiny_config("short", "train.epochs=4", "train.eval_every=2"))
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
    processed = summary["paper_flops_per_forward"] * 3 * summary["steps"] * 64 / 1e15
    assert summary["processed_pflops"] == pytest.approx(processed)
    assert rows[1]["compute_pflops"] == pytest.approx(summary["compute_pflops"] / 2)
    assert load_config(str(d / "config.yaml")).model.arch == "B_2-Wi_32"






def test_gradient_accumulation_matches_big_batch(tiny_config, tmp_path):
    common = ["train.epochs=1", "aug.enabled=false", "optim.name=sgd", "optim.lr=0.05", "model.arch=B_1-Wi_32"]
    run(tiny_config("big", *common))
    run(tiny_config("acc", *common, "train.accum_steps=4"))
    wa, wb = weights(tmp_path / "big"), weights(tmp_path / "acc")
    assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa)



def test_nan_loss_stops_with_step(tiny_config, tmp_path):
    with pytest.raises(TrainingDiverged, match=r"NaN/inf at optimizer step \d+"):
        run(tiny_config("nan", "train.epochs=3", "optim.name=sgd", "optim.lr=1e30",
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
def test_trainer_uses_subset(tiny_config, resident):
    s = run(tiny_config("sub", "train.epochs=1", "data.n_train=640",
                    f"data.resident={resident}", "data.workers=1"))
    assert s["n_train"] == 640 and s["steps"] == 10


def test_rank_slices_partition_global_batches():
    full = epoch_order(1000, 3, 5, 64)
    r0 = epoch_order(1000, 3, 5, 32, Shard(0, 2))
    r1 = epoch_order(1000, 3, 5, 32, Shard(1, 2))
    assert np.array_equal(np.stack([r0.reshape(-1, 32), r1.reshape(-1, 32)], 1).reshape(-1), full[:len(r0) * 2])






def test_unknown_architecture(tiny_config):
    with pytest.raises(UserError, match="unknown architecture 'MLP-Mixer'"):
        run(tiny_config("arch", "model.arch=MLP-Mixer"))


def test_resolution_mismatch_on_resume(tiny_config, tmp_path):
    run(tiny_config("r8", "train.epochs=1"))
    with pytest.raises(UserError, match="trained at 8px but the data are 4px"):
        run(tiny_config("r8", "train.epochs=2", "data.crop_res=4"), resume_dir=str(tmp_path / "r8"))


def test_wrong_stored_resolution(tiny_config, digits_root, tmp_path):
    os.makedirs(tmp_path / "digits")
    os.symlink(os.path.join(digits_root, "digits", "train_8.beton"), tmp_path / "digits" / "train_16.beton")
    os.symlink(os.path.join(digits_root, "digits", "test_8.beton"), tmp_path / "digits" / "test_16.beton")
    with pytest.raises(UserError, match="holds 8x8 images but data.res=16"):
        run(tiny_config("wr", "data.res=16", root=tmp_path))


def test_existing_run_is_not_overwritten(tiny_config):
    run(tiny_config("once", "train.epochs=1"))
    with pytest.raises(UserError, match="already holds a run.*--resume"):
        run(tiny_config("once", "train.epochs=1"))





def test_kept_checkpoints_and_grad_clip(tiny_config, tmp_path):
    s = run(tiny_config("keep", "train.epochs=4", "train.keep_every=2", "optim.grad_clip=0.5"))
    assert s["status"] == "finished"
    d = tmp_path / "keep"
    assert (d / "epoch_2.pt").exists() and (d / "epoch_4.pt").exists() and not (d / "epoch_1.pt").exists()
    assert torch.load(d / "epoch_2.pt", weights_only=True)["epoch"] == 2


def test_optional_loggers_say_how_to_install(tiny_config, tmp_path):
    try:
        import tensorboard  # noqa: F401 - only whether it is installed matters
    except ImportError:
        with pytest.raises(UserError, match="pip install tensorboard"):
            run(tiny_config("tb", "train.epochs=1", "run.tensorboard=true"))
    else:
        run(tiny_config("tb", "train.epochs=1", "run.tensorboard=true"))
        assert any((tmp_path / "tb" / "tb").iterdir())


def test_progress_bar_on_a_terminal(tiny_config, monkeypatch, capsys):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    s = run(tiny_config("bar", "train.epochs=1", "run.progress=true", "train.log_every=2"))
    assert s["status"] == "finished"
    out, err = capsys.readouterr()
    assert "epoch 1/1" in err and "22/22" in err   # tqdm's bar (on stderr) counted the epoch's 22 steps
    assert "epoch 1/1 loss" not in out             # the log lines are for logs, not for a terminal


def test_epoch_lines_in_logs(tiny_config, capsys):
    run(tiny_config("lines", "train.epochs=2", "run.progress=true"))
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




def test_a_run_refused_before_it_starts_leaves_no_folder(tmp_path):
    """Missing data: one sentence, and no half-made run folder (config.yaml, .lock) left to puzzle over."""
    cfg = load_config("demo_digits.yaml", [f"data.root={tmp_path / 'none'}", f"run.out_dir={tmp_path / 'runs'}"])
    with pytest.raises(UserError, match="missing dataset file"):
        run(cfg)
    assert os.listdir(tmp_path / "runs") == []
