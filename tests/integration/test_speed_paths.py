"""The paths users run stay fast (issue 10): torch's thread count survives FFCV, augmentation overlaps the
step on CPU devices without changing results, a resident raw run never touches FFCV or numba, and
compute is the paper's fvcore count. (Speeds themselves are measured in benchmarks, not here.)"""
import json
import os
import subprocess
import sys

import pytest
import torch

from mlpscale.config import load_config
from mlpscale.models import MLP
from mlpscale.train import run

from util import ROOT

THREADS = """
import os, sys, torch
want = int(sys.argv[2])
if sys.argv[3] == "user":
    torch.set_num_threads(want)                    # the user's own setting
before = torch.get_num_threads()
from mlpscale.ffcv_compat import import_ffcv
import_ffcv()
after_import = torch.get_num_threads()
from mlpscale.loader import StreamLoader
loader = StreamLoader(sys.argv[1], 100, 0, torch.device("cpu"), workers=want + 1)  # FFCV sets torch to this
n = 0
for x, y in loader.epoch(0):                       # FFCV's epoch thread calls its thread setter again
    n += len(y)
print(before, after_import, torch.get_num_threads(), n)
"""


@pytest.mark.parametrize("how, want", [("default", len(os.sched_getaffinity(0))), ("user", 1), ("env", 1)])
def test_torch_threads_survive_ffcv(digits_root, how, want):
    """FFCV sets torch to 1 thread when imported and to its worker count on loader creation and in every
    epoch; torch must keep what it would have had without FFCV."""
    beton = os.path.join(digits_root, "digits", "train_8.beton")
    env = dict(os.environ, PYTHONPATH=ROOT)
    env.pop("OMP_NUM_THREADS", None)
    if how == "env":
        env["OMP_NUM_THREADS"] = str(want)
    out = subprocess.run([sys.executable, "-c", THREADS, beton, str(want), how], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    before, after_import, after_epoch, n = map(int, out.stdout.split())
    assert before == after_import == after_epoch == want and n == 1400




def test_resident_run_never_imports_ffcv(digits_root, tmp_path):
    """The first step of a resident raw run waits for no numba compile: FFCV is not even imported; and an
    eager LION run never imports torch._dynamo (optim.skip_dynamo_import: a third of a small run's start)."""
    code = ("import sys\nfrom mlpscale.train import main\n"
            "try:\n    main(sys.argv[1:])\nfinally:\n"
            "    print('IMPORTED', 'ffcv' in sys.modules, 'numba' in sys.modules, 'torch._dynamo' in sys.modules)")
    args = ["--config", "demo_digits.yaml", "--set", f"data.root={digits_root}", "--set", "data.res=8",
            "--set", f"run.out_dir={tmp_path}", "--set", "train.epochs=1", "--set", "run.progress=false"]
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PYTHONPATH=ROOT))
    assert out.returncode == 0, out.stderr
    assert "IMPORTED False False False" in out.stdout
    s = json.load(open(tmp_path / "demo_digits" / "summary.json"))
    assert s["resident"] is True
    # start-up as the user sees it is reported (a figure, recorded by `python -m benchmarks startup`, not asserted here)
    assert 0 < s["first_step_s"] < s["elapsed_s"] + 600




def test_info_reports_the_papers_compute():
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "mlpscale-info"), "B_12-Wi_1024", "--res",
                          "64", "--num-classes", "11230", "--n-train", "1000000", "--epochs", "50", "--json"],
                         capture_output=True, text=True, timeout=120)
    d = json.loads(out.stdout)
    assert d["compute_pflops"] == pytest.approx(d["paper_flops_per_forward"] * 3 * 1_000_000 * 50 / 1e15)
    assert d["paper_flops_per_forward"] > d["macs_per_forward"]  # LayerNorm counted as fvcore counts it




def _ffcv_written(root, name, res, n, seed, write_mode="smart"):
    """A beton written by FFCV's own DatasetWriter with max_resolution (images keep their aspect ratio and
    vary in size, as the paper's converter and FFCV's ImageNet example store them)."""
    import numpy as np

    from mlpscale.ffcv_compat import import_ffcv

    import_ffcv()
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    rng = np.random.default_rng(seed)
    shapes = [(12, 8), (8, 12), (10, 10), (16, 6), (6, 6)]

    class Images:
        def __len__(self):
            return n

        def __getitem__(self, i):
            h, w = shapes[i % len(shapes)]
            return rng.integers(0, 256, (h, w, 3), dtype=np.uint8), int(i % 10)

    for split in ("train", "test"):
        path = os.path.join(root, name, f"{split}_{res}.beton")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        DatasetWriter(path, {"image": RGBImageField(write_mode=write_mode, max_resolution=res), "label": IntField()},
                      num_workers=1).from_indexed_dataset(Images() if split == "train" else Images())


@pytest.mark.parametrize("write_mode", ["smart", "jpg"])  # raw pixels, or JPEG as FFCV's ImageNet example
def test_betons_of_varying_sizes_stream_with_cpu_crops(tmp_path, write_mode):
    """Betons written by FFCV's own writer at max_resolution (the paper's layout) train: FFCV takes the
    random-resized crop (or the centre crop) from each stored image on the CPU; resident mode says why not."""
    from mlpscale.beton import open_beton
    from mlpscale.errors import UserError

    _ffcv_written(str(tmp_path / "d"), "cifar10", 8, 256, 0, write_mode)
    assert open_beton(str(tmp_path / "d" / "cifar10" / "train_8.beton")).resolution() is None  # sizes vary
    common = [f"data.root={tmp_path / 'd'}", "data.dataset=cifar10", "data.res=8", "data.workers=1",
              "model.arch=B_1-Wi_16", "train.batch_size=32", "train.epochs=2", "train.precision=fp32",
              f"run.out_dir={tmp_path}", "run.progress=false"]
    s = run(load_config(None, common + ["run.name=var"]))
    assert s["status"] == "finished" and s["resident"] is False and s["res"] == 8 and s["n_train"] == 256
    with pytest.raises(UserError, match="several sizes.*data.resident=off"):
        run(load_config(None, common + ["run.name=var2", "data.resident=on"]))


def test_prefetching_changes_nothing(digits_root, tmp_path, monkeypatch):
    """Augmenting the next micro-batch on a worker thread gives the same weights as doing it inline."""
    common = [f"data.root={digits_root}", "data.res=8", f"run.out_dir={tmp_path}", "model.arch=B_2-Wi_32",
              "train.epochs=2", "train.batch_size=64", "train.accum_steps=2", "train.precision=fp32",
              "run.progress=false", "aug.mixup=0.5"]
    import threading

    from mlpscale.train import Trainer

    where = []
    prepare = Trainer.prepare

    def spy(self, *args):
        where.append(threading.current_thread().name)
        return prepare(self, *args)

    monkeypatch.setattr(Trainer, "prepare", spy)
    a = run(load_config("demo_digits.yaml", common + ["run.name=inline", "train.prefetch=off"]))
    inline, where[:] = set(where), []
    b = run(load_config("demo_digits.yaml", common + ["run.name=thread", "train.prefetch=on"]))
    assert inline == {threading.main_thread().name} and set(where) == {"mlpscale-prepare"}  # it did move
    wa = torch.load(tmp_path / "inline" / "last.pt", weights_only=True)["model"]
    wb = torch.load(tmp_path / "thread" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa) and a["test_top1"] == b["test_top1"]
    # the run's compute is the paper's C = fvcore flops x 3 x N x T; the images processed under their own name
    flops = MLP("B_2-Wi_32", 8, 10).paper_flops_per_forward()
    assert a["compute_pflops"] == pytest.approx(flops * 3 * a["n_train"] * 2 / 1e15, rel=1e-12)
    assert a["processed_pflops"] == pytest.approx(flops * 3 * a["steps"] * 64 / 1e15, rel=1e-12)
