"""Resident tiers seen from fresh processes: a raw split is read without FFCV, and DDP ranks shard the host tier."""
import torch

from mlpscale.layout import beton_path
from mlpscale.loader import read_split

from util import ROOT


def test_read_split_is_ffcv_free_for_raw(digits_root):
    import subprocess
    import sys

    raw = beton_path(digits_root, "digits", "train", 8)   # the converter's default format: raw
    code = ("import sys, torch; from mlpscale.loader import read_split; "
            f"x, y = read_split({raw!r}, 'cpu'); "
            "print(x.shape[0], 'ffcv' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1437", "False", "False"]  # a resident raw split is a copy of pages: no FFCV, no numba
    x, _ = read_split(raw, torch.device("cpu"))
    assert x.dtype == torch.uint8 and x.shape == (1437, 8, 8, 3)



def test_ddp_shards_a_split_that_needs_the_host_tier(digits_root, tmp_path):
    """torchrun, 2 ranks: when the split exceeds the device tier, each rank holds only its half."""
    import json
    import os
    import subprocess
    import sys

    sets = [f"data.root={digits_root}", "data.res=8", f"run.out_dir={tmp_path}", "train.epochs=2",
            "model.arch=B_1-Wi_32", "train.batch_size=64", "data.resident_max_gb=0.0001", "data.host_max_gb=1",
            "run.progress=false", "train.precision=fp32"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
           "-m", "mlpscale.train", "--config", "demo_digits.yaml"] + [a for kv in sets for a in ("--set", kv)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=str(tmp_path),
                       env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT))
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.load(open(tmp_path / "demo_digits" / "summary.json"))
    assert s["status"] == "finished" and s["world_size"] == 2 and s["train_sharded_by_rank"]
    assert s["train_device_bytes"] + s["train_host_bytes"] == (1437 // 2) * 8 * 8 * 3  # this rank's half
    assert s["steps"] == 2 * ((1437 // 2) // 32)
