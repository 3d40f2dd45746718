"""Fault injection, second round (issue 20): a hostile but realistic user on a fresh clone after `make demo`,
56 fault and bad-input cases across the nine commands. Nothing is lost on a refused command, nothing is
orphaned, nothing hangs, every user error ends in one sentence.

The 56 cases and the test that holds each (36 held on the first try, 20 were fixed here, marked *):
  resume bit-identical (training, cached linear probe) ... test_faults_train (kill -9 / SIGINT), test_transfer
  exit codes 130 / 143 ................................... test_faults_train (SIGINT, two runs in one folder)
  checkpoints and CIFAR pickles load as data only ........ test_faults_train (hostile checkpoint), test_convert_sources
  conversions atomic, workers die with them .............. test_faults_convert (kill -9, SIGTERM, publish crash)
  run and dataset folders locked ......................... test_faults_train, test_faults_convert (two writers)
  28 bad --set values, one sentence each ................. test_config, test_faults_train (config mistakes)
  * --overwrite refused (missing data, batch > dataset) .. test_refused_overwrite_leaves_the_old_run_byte_identical
  * --resume --set model.arch=OTHER rewrote config.yaml .. test_refused_resume_set_leaves_config_yaml_unchanged
  * symlink loop in a class folder (x40 images) .......... test_symlink_loop_converts_exactly_its_real_images
  * lock deleted a user's notes.tmp-2024.txt ............. test_locking_removes_only_our_own_temp_files
  * sweep killed (kill -9, SIGHUP) left its run going .... test_killed_sweep_leaves_no_live_train_and_reruns_to_0
  *   ... and the re-run blamed the locked folder ........ test_rerun_names_a_live_orphan
  * a FIFO x.jpg blocked the converter forever ........... test_fifo_among_the_images_is_skipped_within_seconds
  * eval --tta 1e9 / --batch 0, -4; info out of range .... test_numeric_arguments_are_range_checked_at_parse_time
  * info B_999999-Wi_999999 ran for minutes .............. test_numeric_arguments_are_range_checked_at_parse_time
  * a model larger than memory: allocator traceback ...... test_model_larger_than_memory_is_refused_with_its_size
  * disk full in torch.save (RuntimeError) ............... test_disk_full_in_torch_save_is_one_sentence_and_resumable
  * truncated cifar-10-python.tar.gz: EOFError ........... test_truncated_cifar_archive_is_one_sentence
  * non-UTF-8 config / sweep spec / last.pt as --config .. test_non_utf8_files_are_one_sentence
  * eval --tta -1: TypeError ............................. test_numeric_arguments_are_range_checked_at_parse_time
  * Ctrl-C during start-up (imports) ..................... test_ctrl_c_during_start_up_is_one_sentence
  * crafted pickle: raw torch UserWarning first .......... test_crafted_pickle_gets_our_sentence_and_no_warning
  * NaN stop named a last.pt that did not exist .......... test_nan_stop_names_only_a_checkpoint_that_exists
  * 16px asked, 32px converted: "unknown dataset" ........ test_missing_resolution_names_the_converted_ones
  * finetune suggested import-paper's flags; import-paper
    of our own state dict suggested a failing --arch ..... test_suggested_flags_belong_to_the_command_that_runs
  * eval advised data.stats=measured (no such option) .... test_eval_uses_the_checkpoint_statistics
  * degenerate study: "only 1 points ... add budgets" .... test_study_whose_errors_do_not_fall_says_so
  * refused conversion left ROOT/<name>/ holding .lock ... test_refused_conversion_leaves_no_folder
  * tensorboard missing left runs/<name>/ ................ test_missing_tensorboard_leaves_no_run_folder
Tests wait for states (a metrics row, a pid gone), not times; a time only bounds a hang.
"""
import contextlib
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml

from data_prep.cli import main as convert
from mlpscale.config import load_config
from mlpscale.errors import UserError
from mlpscale.io import FolderLock
from mlpscale.train import run

import convert_fixtures as fx
from util import cli, run_cli

BASE = ["model.arch=B_2-Wi_32", "train.batch_size=64", "train.precision=fp32", "run.progress=false",
        "optim.schedule=constant", "aug.mixup=0.2", "data.res=8"]


def cfg_for(root, out, name, *extra):
    return load_config("demo_digits.yaml", BASE + [f"data.root={root}", f"run.out_dir={out}", f"run.name={name}",
                                                   *extra])


def digests(folder) -> dict:
    """Every file under `folder` (the lock file aside) -> sha256."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            if f != ".lock":
                p = os.path.join(d, f)
                out[os.path.relpath(p, folder)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def one_line(r) -> str:
    err = r.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_for(cond, what: str, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- data lost or silently wrong -----------------------------------------------------------------

@pytest.mark.parametrize("mistake, words", [
    ("data.root={tmp}/nowhere", "digits"),                 # the data are missing
    ("data.n_train=10", "larger than the 10 training images"),  # the batch is larger than the dataset
])
def test_refused_overwrite_leaves_the_old_run_byte_identical(digits_root, tmp_path, mistake, words):
    run(cfg_for(digits_root, tmp_path, "old", "train.epochs=1"))
    d = tmp_path / "old"
    (d / "notes.txt").write_text("mine")
    before = digests(d)
    assert {"last.pt", "metrics.jsonl", "summary.json", "config.yaml"} <= set(before)
    with pytest.raises(UserError, match=words):
        run(cfg_for(digits_root, tmp_path, "old", "train.epochs=2", mistake.format(tmp=tmp_path)), overwrite=True)
    assert digests(d) == before
    assert sorted(os.listdir(d)) == sorted([".lock", *before])       # nothing set aside is left behind
    s = run(cfg_for(digits_root, tmp_path, "old", "train.epochs=2"), resume_dir=str(d))  # still the old run
    assert s["status"] == "finished" and s["epochs_done"] == 2
    s = run(cfg_for(digits_root, tmp_path, "old", "train.epochs=1"), overwrite=True)     # a valid overwrite replaces
    assert s["epochs_done"] == 1 and len(open(d / "metrics.jsonl").readlines()) == 1


def test_overwrite_killed_before_it_started_leaves_the_old_run(digits_root, tmp_path):
    """A replacing run that died with the old files set aside: the next run in the folder puts them back."""
    run(cfg_for(digits_root, tmp_path, "old", "train.epochs=1"))
    d = tmp_path / "old"
    before = digests(d)
    os.makedirs(d / ".replaced")
    for name in ("last.pt", "summary.json", "config.yaml"):
        os.rename(d / name, d / ".replaced" / name)
    s = run(cfg_for(digits_root, tmp_path, "old", "train.epochs=2"), resume_dir=str(d))
    assert s["epochs_done"] == 2 and not (d / ".replaced").exists()
    assert set(before) <= set(digests(d))


def test_refused_resume_set_leaves_config_yaml_unchanged(digits_root, tmp_path):
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml",
                *[a for kv in BASE + [f"data.root={digits_root}", f"run.out_dir={tmp_path}", "run.name=r",
                                      "train.epochs=1"] for a in ("--set", kv)])
    assert r.returncode == 0, r.stderr
    d = tmp_path / "r"
    before = digests(d)
    r = run_cli("mlpscale-train", "--resume", str(d), "--set", "model.arch=B_2-Wi_64", "--set", "train.epochs=2")
    assert r.returncode == 2 and "B_2-Wi_32" in one_line(r)
    assert digests(d) == before
    r = run_cli("mlpscale-train", "--resume", str(d), "--set", "train.epochs=2")   # a plain resume still works
    assert r.returncode == 0, r.stderr
    assert yaml.safe_load(open(d / "config.yaml"))["train"]["epochs"] == 2        # an accepted --set is kept


@pytest.mark.parametrize("link", ["loop", "sub/up", "out"])
def test_symlink_loop_converts_exactly_its_real_images(tmp_path, link):
    src = fx.make_folder(str(tmp_path / "dl"))
    cls = sorted(os.listdir(os.path.join(src, "train")))[0]
    fx.write(os.path.join(src, "train", cls, "sub", "deep.png"), fx.image_bytes(fx.class_colour(5), fmt="PNG"))
    out = str(tmp_path / "out")
    convert(["folder", "--src", src, "--dataset", "ref", "--res", "8", "--root", out, "--workers", "1", "--quiet"])
    target = {"loop": "..",                           # train/<class>/loop -> train/ (the case)
              "sub/up": "..",                         # back to the class folder, already walked
              "out": os.path.join(src, "val")}[link]  # a link out of the class folder
    os.symlink(target, os.path.join(src, "train", cls, link))
    convert(["folder", "--src", src, "--dataset", "d", "--res", "8", "--root", out, "--workers", "1", "--quiet"])
    a, b = (json.load(open(os.path.join(out, n, "meta_8.json"))) for n in ("ref", "d"))
    assert a["counts"] == b["counts"]
    xa, ya = fx.read_beton(os.path.join(out, "ref", "train_8.beton"))
    xb, yb = fx.read_beton(os.path.join(out, "d", "train_8.beton"))
    assert np.array_equal(ya, yb) and np.array_equal(xa, xb)


def test_locking_removes_only_our_own_temp_files(tmp_path):
    mine = ["notes.tmp-2024.txt", "data.tmp-old", "a.tmp-12-xyz.csv"]
    ours = ["last.pt.tmp-4242-ab12cd_9", "d.tmp-77-qq9z0k1l.old"]
    for n in mine + ours:
        (tmp_path / n).write_text("x")
    with FolderLock(str(tmp_path), "run"):
        pass
    assert sorted(os.listdir(tmp_path)) == sorted(mine + [".lock"])


# --- orphans and hangs ---------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGHUP])
def test_killed_sweep_leaves_no_live_train_and_reruns_to_0(digits_root, tmp_path, sig):
    """The run is long (an orphan would outlive the test by far); once the sweep is killed its run must end
    within a minute, having saved last.pt; the sweep run again (its grid shortened to one epoch past that
    checkpoint, the same unit folder: epochs are not part of the names) resumes it and exits 0."""
    spec = tmp_path / "s.yaml"

    def write(epochs):
        spec.write_text(yaml.safe_dump({
            "name": f"k{int(sig)}", "base": "demo_digits.yaml", "local": {"jobs": 1, "threads": 1},
            "set": {"data.root": digits_root, "data.res": 8, "data.n_train": 200, "train.batch_size": 64,
                    "train.precision": "fp32", "optim.lr": 1.0e-3, "train.eval_every": 100000},
            "grid": {"model.arch": ["B_1-Wi_16"], "train.epochs": [epochs]}, "names": {"train.epochs": False}}))
    write(100000)
    out = tmp_path / "sw"
    argv = [str(spec), "--out", str(out)]
    sweep = subprocess.Popen([cli("mlpscale-sweep"), *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, cwd=tmp_path)
    trains = []
    try:
        wait_for(lambda: any("metrics.jsonl" in f for _, _, f in os.walk(out)), "the sweep's run to start")
        trains = [int(d) for d in os.listdir("/proc") if d.isdigit() and alive(int(d)) and
                  open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()[1] == str(sweep.pid)]
        assert trains, "the sweep has no child"
        sweep.send_signal(sig)
        sweep.communicate(timeout=120)
        wait_for(lambda: not any(alive(p) for p in trains), "the sweep's run to end with it", timeout=60)
    finally:
        for p in [sweep.pid] + [t for t in trains if alive(t)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
    assert sweep.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + signal.SIGHUP)
    last = [os.path.join(d, "last.pt") for d, _, f in os.walk(out) if "last.pt" in f]
    write(torch.load(last[0], weights_only=True)["epoch"] + 1 if last else 1)
    r = run_cli("mlpscale-sweep", *argv, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 points (1 finished)" in r.stdout and "exit code" not in r.stdout
    assert ("resumed from last.pt" in r.stdout) == bool(last)


def test_rerun_names_a_live_orphan(digits_root, tmp_path, capsys):
    from mlpscale import sweep as sw

    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "orphan", "base": "demo_digits.yaml", "local": {"jobs": 1, "threads": 1},
        "set": {"data.root": digits_root, "data.res": 8, "data.n_train": 200, "train.batch_size": 64,
                "train.precision": "fp32"},
        "grid": {"model.arch": ["B_1-Wi_16"], "train.epochs": [1]}}))
    plan = sw.plan(sw.read_spec(str(spec)), str(tmp_path / "sw"))
    unit = plan.units[0]
    with FolderLock(plan.unit_dir(unit), "run"):  # what a run left by a killed sweep holds
        sw.main([str(spec), "--out", str(tmp_path / "sw")])   # returns: nothing failed
        out = capsys.readouterr().out
    assert f"still in use by pid {os.getpid()}" in out and "exit code" not in out


def test_fifo_among_the_images_is_skipped_within_seconds(tmp_path):
    src = fx.make_folder(str(tmp_path / "dl"))
    cls = sorted(os.listdir(os.path.join(src, "train")))[0]
    fifo = os.path.join(src, "train", cls, "x.jpg")
    os.mkfifo(fifo)
    out = str(tmp_path / "out")
    r = run_cli("mlpscale-convert", "folder", "--src", src, "--dataset", "d", "--res", "8", "--root", out,
                "--workers", "2", "--quiet", timeout=120)   # a hang is a failure, not a stuck test run
    assert r.returncode == 0, r.stderr
    meta = json.load(open(os.path.join(out, "d", "meta_8.json")))
    skipped = [s for s in meta["skipped"]["train"] if s.startswith(fifo)]
    assert skipped == [f"{fifo}: OSError: not a regular file (a FIFO)"]
    assert meta["counts"]["train"] == 9                 # the 9 real images (broken.png is skipped as before)


@pytest.mark.parametrize("argv, words", [
    (["mlpscale-eval", "RUN", "--tta", "1000000000"], "--tta: must be between 0 and 1,000"),
    (["mlpscale-eval", "RUN", "--tta", "-1"], "--tta: must be between 0 and 1,000, got -1"),
    (["mlpscale-eval", "RUN", "--batch", "0"], "--batch: must be between 1 and"),
    (["mlpscale-eval", "RUN", "--batch", "-4"], "--batch: must be between 1 and"),
    (["mlpscale-info", "B_2-Wi_64", "--res", "-3"], "--res: must be between 1 and 1,024, got -3"),
    (["mlpscale-info", "B_2-Wi_64", "--num-classes", "0"], "--num-classes: must be between 1 and"),
    (["mlpscale-info", "B_2-Wi_64", "--n-train", "-5"], "--n-train: must be between 0 and"),
    (["mlpscale-info", "B_2-Wi_64", "--epochs", "-1"], "--epochs: must be between 0 and"),
    (["mlpscale-info", "B_999999-Wi_999999"], "depth at most 1024"),
    (["mlpscale-scaling", "RUN", "--out", "RUN", "--epochs", "0"], "--epochs: must be between 1 and"),
    (["mlpscale-import-paper", "RUN", "--arch", "B_2-Wi_16", "--out", "RUN", "--res", "0"], "--res: must be between 1"),
])
def test_numeric_arguments_are_range_checked_at_parse_time(tmp_path, argv, words):
    r = run_cli(*[str(tmp_path / "no_run") if a == "RUN" else a for a in argv], timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr and words in r.stderr, r.stderr
    assert not (tmp_path / "no_run").exists()


def test_model_larger_than_memory_is_refused_with_its_size():
    from mlpscale.models import MLP

    with pytest.raises(UserError, match=r"B_64-Wi_131072 .* has 8,796\.\d+B parameters \(.* GiB in fp32\), more "
                                        r"than this machine's"):
        MLP("B_64-Wi_131072", 8, 10)
    with torch.device("meta"):                          # mlpscale-info sizes it without allocating
        assert MLP("B_64-Wi_131072", 8, 10).get_num_params() > 8e12


# --- tracebacks instead of one sentence ---------------------------------------------------------

def test_disk_full_in_torch_save_is_one_sentence_and_resumable(digits_root, tmp_path, monkeypatch):
    d = tmp_path / "full"
    run(cfg_for(digits_root, tmp_path, "full", "train.epochs=1"))
    good = open(d / "last.pt", "rb").read()
    real = torch.save

    def full_disk(obj, f, *a, **k):  # what torch's C++ writer raises when the disk fills under it
        raise RuntimeError("[enforce fail at inline_container.cc:595] . PytorchStreamWriter failed writing file "
                           "data/3: file write failed")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(UserError) as e:
        run(cfg_for(digits_root, tmp_path, "full", "train.epochs=2"), resume_dir=str(d))
    msg = str(e.value)
    assert "\n" not in msg and str(d / "last.pt") in msg and "is full (" in msg and "MiB free" in msg
    monkeypatch.setattr(torch, "save", real)
    assert open(d / "last.pt", "rb").read() == good
    assert [n for n in os.listdir(d) if ".tmp-" in n] == []
    assert run(cfg_for(digits_root, tmp_path, "full", "train.epochs=2"), resume_dir=str(d))["epochs_done"] == 2


def test_other_save_failures_name_the_path_and_the_free_space(tmp_path):
    from mlpscale.io import save_torch_atomic

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("unexpected pos 4096 vs 0")
    with pytest.raises(UserError, match=r"cannot write .*x\.pt: unexpected pos 4096 vs 0 \(.* MiB free\)"):
        save_torch_atomic(str(tmp_path / "x.pt"), {"a": Unsaveable()})
    assert os.listdir(tmp_path) == []


def test_truncated_cifar_archive_is_one_sentence(tmp_path, capsys):
    tar, _ = fx.make_cifar10(str(tmp_path / "dl"))
    tar = tar if tar.endswith(".tar.gz") else os.path.join(tar, "cifar-10-python.tar.gz")
    data = open(tar, "rb").read()
    if not data.startswith(b"\x1f\x8b"):  # the fixture may write an uncompressed tar: compress it
        data = gzip.compress(data)
    cut = str(tmp_path / "cifar-10-python.tar.gz")
    open(cut, "wb").write(data[: len(data) // 2])      # an interrupted download
    with pytest.raises(SystemExit):
        convert(["cifar10", "--src", cut, "--res", "8", "--root", str(tmp_path / "out"), "--quiet", "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is truncated or damaged (an interrupted download?); download it again" in err
    assert not (tmp_path / "out" / "cifar10").exists()


def test_non_utf8_files_are_one_sentence(digits_root, tmp_path):
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("# r\xe9glages\nmodel:\n  arch: B_2-Wi_32\n".encode("latin-1"))
    for path in (latin, ):
        r = run_cli("mlpscale-train", "--config", str(path))
        assert r.returncode == 2 and "is not UTF-8 text (byte 3 is 0xe9)" in one_line(r)
    run(cfg_for(digits_root, tmp_path, "r", "train.epochs=1"))
    r = run_cli("mlpscale-train", "--config", str(tmp_path / "r" / "last.pt"))
    assert r.returncode == 2 and "last.pt is not UTF-8 text" in one_line(r)
    spec = tmp_path / "s.yaml"
    spec.write_bytes("# \xe9tude\nbase: demo_digits.yaml\n".encode("latin-1"))
    r = run_cli("mlpscale-sweep", str(spec))
    assert r.returncode == 2 and "s.yaml is not UTF-8 text" in one_line(r)


def test_ctrl_c_during_start_up_is_one_sentence(tmp_path):
    """SIGINT once torch's library is being loaded (a state seen in /proc/PID/maps): still importing."""
    p = subprocess.Popen([cli("mlpscale-info"), "B_2-Wi_64"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        def importing():
            with contextlib.suppress(OSError):
                return "libtorch" in open(f"/proc/{p.pid}/maps").read()
            return p.poll() is not None
        wait_for(importing, "torch to start loading", timeout=60)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        p.kill()
    if out:  # start-up finished first (a very fast machine): the command ran, nothing to check
        pytest.skip("the command started before the signal arrived")
    assert p.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted" in err


def test_crafted_pickle_gets_our_sentence_and_no_warning(tmp_path):
    marker = tmp_path / "pwned"
    (tmp_path / "evil.pt").write_bytes(
        b"\x80\x04cposix\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")   # protocol 4: torch warns
    r = run_cli("mlpscale-eval", str(tmp_path / "evil.pt"))
    err = one_line(r)
    assert r.returncode == 2 and err.startswith("error: ") and "possibly code" in err and not marker.exists()


# --- messages that mislead ---------------------------------------------------------------------------

def test_nan_stop_names_only_a_checkpoint_that_exists(tmp_path):
    from mlpscale.metrics import FiniteGuard, TrainingDiverged

    g = FiniteGuard(torch.device("cpu"))
    g.update(torch.tensor(float("nan")), 3)
    with pytest.raises(TrainingDiverged) as e:
        g.check(1, str(tmp_path / "last.pt"))
    assert "last.pt" not in str(e.value) and "no checkpoint was saved before it" in str(e.value)
    (tmp_path / "last.pt").write_bytes(b"x")
    with pytest.raises(TrainingDiverged, match="last good state: .*last.pt"):
        g.check(1, str(tmp_path / "last.pt"))


def test_missing_resolution_names_the_converted_ones(digits_root, tmp_path):
    r = run_cli("mlpscale-train", "--config", "demo_digits.yaml", "--set", f"data.root={digits_root}",
                "--set", "data.res=16", "--set", f"run.out_dir={tmp_path}")
    err = one_line(r)
    assert r.returncode == 2 and "converted at 8px, not 16px" in err and "--set data.res=8" in err
    assert f"(mlpscale-convert digits --res 16 --root {digits_root} " in err   # the command that wrote it, at 16px
    assert not (tmp_path / "demo_digits").exists()


def test_suggested_flags_belong_to_the_command_that_runs(tmp_path):
    from mlpscale.finetune import load_source
    from mlpscale.models import MLP
    from mlpscale.paper import main as import_paper

    theirs = {"linear_in.weight": torch.zeros(16, 192), "linear_in.bias": torch.zeros(16),
              "linear_out.weight": torch.zeros(10, 16), "linear_out.bias": torch.zeros(10),
              **{f"blocks.{i}.block.{j}.{w}": torch.zeros(*((64, 16) if j == 0 else (16, 64)) if w == "weight"
                                                           else ((64,) if j == 0 else (16,)))
                 for i in range(2) for j in (0, 2) for w in ("weight", "bias")},
              **{f"layernorms.{i}.{w}": torch.ones(16) for i in range(2) for w in ("weight", "bias")}}
    torch.save(theirs, tmp_path / "theirs.pt")
    cfg = load_config(None, ["model.arch=B_6-Wi_16", f"finetune.from={tmp_path / 'theirs.pt'}",
                             "finetune.source_res=8", "finetune.source_classes=10"])
    with pytest.raises(UserError) as e:
        load_source(cfg)
    assert "--set model.arch=B_2-Wi_16" in str(e.value) and "--arch" not in str(e.value)

    torch.save(MLP("B_2-Wi_16", 8, 10).state_dict(), tmp_path / "ours.pt")
    with pytest.raises(SystemExit):
        import_paper([str(tmp_path / "ours.pt"), "--arch", "B_2-Wi_16", "--res", "8", "--num-classes", "10",
                      "--out", str(tmp_path / "imp")])
    r = run_cli("mlpscale-import-paper", str(tmp_path / "ours.pt"), "--arch", "B_2-Wi_16", "--res", "8",
                "--num-classes", "10", "--out", str(tmp_path / "imp"))
    err = one_line(r)
    assert r.returncode == 2 and "state dict of an mlpscale MLP" in err and "--arch" not in err


def test_eval_uses_the_checkpoint_statistics(digits_root, tmp_path):
    """A run whose config asks for the paper's constants, evaluated where the paper has none: the
    checkpoint's own statistics are used, and no data.stats (an option eval lacks) is advised."""
    from mlpscale.checkpoint import load_checkpoint, save_checkpoint

    run(cfg_for(digits_root, tmp_path, "r", "train.epochs=1"))
    path = str(tmp_path / "r" / "last.pt")
    ck = load_checkpoint(path)
    ck["config"]["data"]["stats"] = "paper"                     # digits has no paper constants
    save_checkpoint(path, {k: v for k, v in ck.items() if k not in ("format", "kind")})
    r = run_cli("mlpscale-eval", path, "--json")
    assert r.returncode == 0, r.stderr
    assert "data.stats" not in r.stderr and json.loads(r.stdout)["n_images"] == 360


def test_study_whose_errors_do_not_fall_says_so():
    from mlpscale.scaling import analyse

    points = [{"compute_pflops": float(c), "error": 0.5 + 0.01 * i, "name": f"p{i}", "params": 1000 * (i + 1),
               "n_train": 100, "epochs": 1} for i, c in enumerate(np.geomspace(1e-6, 1e-3, 12))]
    with pytest.raises(UserError, match="do not fall with compute: of its 12 compute budgets only 1 lower"):
        analyse(points)


def test_refused_conversion_leaves_no_folder(tmp_path):
    out = tmp_path / "out"
    for argv in (["folder", "--dataset", "d"], ["folder", "--dataset", "d", "--src", str(tmp_path / "nowhere")]):
        with pytest.raises(SystemExit):
            convert([*argv, "--res", "8", "--root", str(out), "--quiet", "--workers", "1"])
        assert not (out / "d").exists()
    os.makedirs(out / "kept")
    (out / "kept" / "mine.txt").write_text("x")
    with pytest.raises(SystemExit):
        convert(["folder", "--dataset", "kept", "--res", "8", "--root", str(out), "--quiet", "--workers", "1"])
    assert (out / "kept" / "mine.txt").read_text() == "x"    # a folder that was there stays


def test_missing_tensorboard_leaves_no_run_folder(digits_root, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)    # as if it were not installed
    with pytest.raises(UserError, match="tensorboard is not installed: pip install tensorboard"):
        run(cfg_for(digits_root, tmp_path, "tb", "train.epochs=1", "run.tensorboard=true"))
    assert not (tmp_path / "tb").exists()
