"""Fault injection on the trainer (issue 11): racing runs, kills, hostile or foreign checkpoints, full
disks and typos. Each case ends in the documented exit code and one sentence, loses nothing, leaves no
temporary file behind, and resumes bit-identically. Tests wait for states (a metrics row), never times."""
import errno
import json
import os
import pickle
import signal
import subprocess
import time

import pytest
import torch

from mlpscale.config import load_config
from mlpscale.errors import UserError
from mlpscale.train import run
from util import cli, run_cli

pytestmark = pytest.mark.slow  # these start whole training processes

BASE = ["model.arch=B_2-Wi_32", "train.batch_size=64", "train.precision=fp32", "run.progress=false",
        "optim.schedule=constant", "aug.mixup=0.2", "data.res=8"]


def args_for(root, out, name, *extra):
    sets = BASE + [f"data.root={root}", f"run.out_dir={out}", f"run.name={name}", *extra]
    return ["--config", "demo_digits.yaml"] + [a for kv in sets for a in ("--set", kv)]


def start(root, out, name, *extra):
    return subprocess.Popen([cli("mlpscale-train"), *args_for(root, out, name, *extra)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(out))


def wait_rows(proc, path, n=1):
    """Block until metrics.jsonl holds n rows (a state), or the process ended."""
    while proc.poll() is None and not (os.path.exists(path) and open(path).read().count("\n") >= n):
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def temps(folder):
    return [f for f in os.listdir(folder) if ".tmp-" in f]


def test_second_run_in_the_same_folder_is_refused(digits_root, tmp_path):
    a = start(digits_root, tmp_path, "race", "train.epochs=100000")
    try:
        wait_rows(a, tmp_path / "race" / "metrics.jsonl")
        b = run_cli("mlpscale-train", *args_for(digits_root, tmp_path, "race", "train.epochs=3"), "--overwrite")
        assert b.returncode == 2 and "Traceback" not in b.stderr and len(b.stderr.strip().splitlines()) == 1
        assert "is in use by pid" in b.stderr and str(a.pid) in b.stderr
        r = run_cli("mlpscale-train", "--resume", str(tmp_path / "race"))
        assert r.returncode == 2 and "is in use by pid" in r.stderr
    finally:
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=300)
    assert a.returncode == 143, err              # interrupted by SIGTERM after saving
    rows = [json.loads(ln) for ln in open(tmp_path / "race" / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))   # never interleaved or duplicated
    assert torch.load(tmp_path / "race" / "last.pt", weights_only=True)["step"] > 0


def test_kill_9_then_resume_is_exact_and_cleans_up(digits_root, tmp_path):
    a = start(digits_root, tmp_path, "k9", "train.epochs=100000")
    wait_rows(a, tmp_path / "k9" / "metrics.jsonl", 2)
    a.kill()  # SIGKILL: no handler runs
    a.wait()
    d = tmp_path / "k9"
    (d / "last.pt.tmp-999999-abcdef").write_bytes(b"x" * 1000)   # what a kill during torch.save leaves
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 99, "trunc')                            # a row torn by the kill
    epochs = torch.load(d / "last.pt", weights_only=True)["epoch"] + 1
    r = run_cli("mlpscale-train", "--resume", str(d), "--set", f"train.epochs={epochs}")
    assert r.returncode == 0, r.stderr
    assert temps(d) == []
    ref = run(load_config("demo_digits.yaml", BASE + [f"data.root={digits_root}", f"run.out_dir={tmp_path}",
                                                      "run.name=ref", f"train.epochs={epochs}"]))
    wa, wb = weights(d / "last.pt"), weights(os.path.join(ref["run_dir"], "last.pt"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    rows = [json.loads(ln) for ln in open(d / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == list(range(1, epochs + 1))


class Payload:
    """A pickle that would create a file when loaded by an unsafe torch.load."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("kind", ["code", "state_dict", "junk"])
def test_hostile_or_foreign_checkpoint_is_refused(digits_root, tmp_path, kind):
    r = run_cli("mlpscale-train", *args_for(digits_root, tmp_path, "ck", "train.epochs=1"))
    assert r.returncode == 0, r.stderr
    last = tmp_path / "ck" / "last.pt"
    marker = tmp_path / "pwned"
    if kind == "code":
        torch.save({"model": {}, "model_meta": Payload(str(marker))}, last)
        with open(tmp_path / "ck" / "raw.pt", "wb") as f:
            pickle.dump(Payload(str(marker)), f)
    elif kind == "state_dict":
        torch.save(weights(last), last)
    else:
        last.write_bytes(b"<html>Google Drive: file too large to scan</html>")
    r = run_cli("mlpscale-train", "--resume", str(tmp_path / "ck"), "--set", "train.epochs=2")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not marker.exists()  # nothing in the file ran
    expect = {"code": "objects other than tensors", "state_dict": "plain state dict",
              "junk": "damaged or not a checkpoint"}[kind]
    assert expect in r.stderr
    if kind == "code":
        r = run_cli("mlpscale-eval", str(tmp_path / "ck" / "raw.pt"))
        assert r.returncode == 2 and not marker.exists()


@pytest.mark.parametrize("setting, words", [
    ("optim.schedule=cosin", "choose one of constant, cosine"),
    ("optim.lr=-1e-3", "optim.lr=-0.001 must be > 0"),
    ("train.batch_size=0", "train.batch_size=0 must be >= 1"),
    ("optim.name=lyon", "choose one of lion, sgd, adamw"),
    ("model.act=swish", "choose one of gelu, relu"),
    ("model.arch=B_6-Width_512", "unknown architecture"),
    ("aug.crop_scale=[0.9,0.1]", "0 < low <= high <= 1"),
    ("data.res=100000", "between 1 and 1024"),
])
def test_config_mistakes_fail_before_any_data(tmp_path, setting, words):
    """Checked when the file is read: the data root does not even exist."""
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml", "--set", f"data.root={tmp_path / 'nowhere'}",
                "--set", f"run.out_dir={tmp_path}", "--set", setting)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert words in r.stderr and "nowhere" not in r.stderr
    assert not (tmp_path / "demo_digits").exists()


def test_full_disk_during_a_checkpoint_keeps_the_last_good_one(digits_root, tmp_path, monkeypatch):
    cfg = lambda e: load_config("demo_digits.yaml", BASE + [f"data.root={digits_root}", f"run.out_dir={tmp_path}",  # noqa: E731
                                                            "run.name=full", f"train.epochs={e}"])
    run(cfg(1))
    good = weights(tmp_path / "full" / "last.pt")

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(UserError, match="is full; free space there"):
        run(cfg(2), resume_dir=str(tmp_path / "full"))
    monkeypatch.undo()
    assert all(torch.equal(good[k], v) for k, v in weights(tmp_path / "full" / "last.pt").items())
    assert temps(tmp_path / "full") == []
    assert run(cfg(2), resume_dir=str(tmp_path / "full"))["status"] == "finished"
