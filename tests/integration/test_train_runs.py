"""Whole training runs: mlpscale-train's one-sentence errors as a process, DDP with torchrun, the demo's promised
accuracy, and the exactness of streaming and of resuming mid-epoch (several epochs each)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from mlpscale.config import load_config
from mlpscale.train import run

from util import ROOT, run_cli, weights


def test_missing_beton_message(tmp_path):
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml", "--set", f"data.root={tmp_path}",
                "--set", f"run.out_dir={tmp_path / 'runs'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"missing dataset file {tmp_path}/digits/train_16.beton" in r.stderr
    assert f"mlpscale-convert digits --res 16 --root {tmp_path}" in r.stderr



def test_bad_config_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  epoch: 3\n")
    r = run_cli("mlpscale-train", "--config", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "unknown key 'train.epoch'" in r.stderr and "train.epochs" in r.stderr



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



def test_demo_reaches_95_percent(tmp_path):
    """What `make demo` runs: digits at 16px, configs/demo_digits.yaml; the README promises >= 95%."""
    r = run_cli("mlpscale-convert", "digits", "--res", "16", "--root", str(tmp_path / "data"), "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml", "--set", f"data.root={tmp_path / 'data'}",
                "--set", f"run.out_dir={tmp_path / 'runs'}")
    assert r.returncode == 0, r.stderr
    s = json.load(open(tmp_path / "runs" / "demo_digits" / "summary.json"))
    assert s["test_top1"] >= 95.0 and s["status"] == "finished"


def test_streaming_equals_resident(tiny_config, tmp_path):
    a = run(tiny_config("res", "train.epochs=1", "data.resident=on"))
    b = run(tiny_config("str", "train.epochs=1", "data.resident=off", "data.workers=1"))
    assert a["resident"] and not b["resident"]
    wa, wb = weights(tmp_path / "res"), weights(tmp_path / "str")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)  # same batches, same augmentation, same weights


@pytest.mark.parametrize("resident", ["on", "off"])
def test_resume_mid_epoch_is_exact(tiny_config, tmp_path, resident):
    mode = [f"data.resident={resident}", "data.workers=1"]
    run(tiny_config("full", "train.epochs=3", *mode))
    part = run(tiny_config("part", "train.epochs=3", "train.max_steps=30", *mode))
    assert part["status"] == "max_steps" and part["steps"] == 30  # 22 steps/epoch: stopped inside epoch 2
    run(tiny_config("part", "train.epochs=3", *mode), resume_dir=str(tmp_path / "part"))
    wa, wb = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(ln) for ln in open(tmp_path / "part" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
