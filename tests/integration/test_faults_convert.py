"""Fault injection for `mlpscale-convert`: kills, concurrent runs, full and read-only disks, bad options.

A conversion is held mid-write deterministically by one source image that tests/hold/sitecustomize.py
makes wait when a worker opens it, until the test creates `<image>.go`, while the parent waits for that
task with its temp beton open. (A FIFO among the images would only be skipped.) Tests wait for states (a temp
file exists, processes are gone), not times.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from data_prep.cli import main
from mlpscale.beton import BetonWriter, open_beton
from mlpscale.errors import UserError
from mlpscale.io import is_temp_name
from mlpscale.layout import check_dataset

import convert_fixtures as fx
from util import TESTS

CONVERT = os.path.join(os.path.dirname(sys.executable), "mlpscale-convert")


# -- helpers -----------------------------------------------------------------------------------------
def wait_for(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()  # [state, ppid, ...]
    except OSError:
        return None


def children(pid: int) -> list[int]:
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and (_stat(int(d)) or [0, -1])[1] == str(pid)]


def alive(pid: int) -> bool:
    s = _stat(pid)
    return s is not None and s[0] not in ("Z", "X")  # a zombie has ended (its new parent may not reap it)


def temps(folder) -> list[str]:
    return sorted(f for f in os.listdir(folder) if is_temp_name(f)) if os.path.isdir(folder) else []


def digests(folder) -> dict[str, str]:
    return {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(folder)) if not f.startswith(".") and not is_temp_name(f)}


def one_sentence(err: str) -> str:
    err = err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


HOLD_DIR = os.path.join(TESTS, "hold")


def held_image(src) -> str:
    """Add the image a started conversion waits at (`start`), as the last train image: its path."""
    path = os.path.join(src, "train", "zebra", "zz_held.png")
    with open(path, "wb") as f:
        f.write(fx.image_bytes(fx.class_colour(2), fmt="PNG"))
    return path


def release(held: str) -> None:
    open(held + ".go", "w").close()


def blocking_tree(tmp_path) -> tuple[str, str]:
    """A folder-source tree whose last train image holds a started conversion: (src, held image)."""
    src = fx.make_folder(str(tmp_path / "dl"))
    return src, held_image(src)


def start(*argv) -> subprocess.Popen:
    """mlpscale-convert in a process that waits at the image named zz_held.png under --src until released."""
    src = argv[list(argv).index("--src") + 1] if "--src" in argv else ""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [HOLD_DIR, os.environ.get("PYTHONPATH")])),
               MLPSCALE_TEST_HOLD=os.path.join(src, "train", "zebra", "zz_held.png"))
    return subprocess.Popen([CONVERT, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def folder_args(src, out, *extra):
    return ["folder", "--src", src, "--dataset", "d", "--res", "8", "--root", out, "--workers", "2", "--quiet", *extra]


HINT = "mlpscale-convert folder --src SRC --dataset d --res 8 --root OUT"


# -- kills ---------------------------------------------------------------------------------------------
def test_kill_9_mid_write_leaves_no_worker_and_the_next_run_removes_its_temps(tmp_path):
    src, held = blocking_tree(tmp_path)
    out = str(tmp_path / "out")
    folder = os.path.join(out, "d")
    p, workers = start(*folder_args(src, out)), []
    try:
        wait_for(lambda: temps(folder), "the converter's temp beton")
        workers = children(p.pid)
        assert len(workers) == 2
        p.send_signal(signal.SIGKILL)
        p.wait()
        wait_for(lambda: not any(alive(w) for w in workers), "the workers to die with their parent", timeout=5)
    finally:
        for pid in [p.pid] + [w for w in workers if alive(w)]:  # no orphan of ours, even when failing
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert temps(folder)  # a kill -9 cannot clean up ...
    main(folder_args(src, out))  # ... the next run in that folder does, and succeeds
    assert temps(folder) == []
    check_dataset(out, "d", 8, ["train", "val"], HINT)


def test_kill_9_during_reconversion_leaves_the_old_dataset(tmp_path):
    src = fx.make_folder(str(tmp_path / "dl"))
    out = str(tmp_path / "out")
    folder = os.path.join(out, "d")
    main(folder_args(src, out))
    before = digests(folder)
    held_image(src)
    p = start(*folder_args(src, out))
    try:
        wait_for(lambda: temps(folder), "the re-conversion's temp beton")
        p.send_signal(signal.SIGKILL)
        p.wait()
    finally:
        p.kill()
    assert digests(folder) == before  # the encode phase never touches the published files
    old = check_dataset(out, "d", 8, ["train", "val"], HINT)
    assert old["train"].num_samples == 9


@pytest.mark.parametrize("crash_at", range(3))
def test_crash_while_publishing_is_refused_until_rerun(tmp_path, monkeypatch, crash_at):
    """A kill in the publish phase, after the old meta is gone and `crash_at` of its 3 renames
    (train, test, meta) are done: check_dataset refuses the folder, naming the command that
    repairs it; that command then does."""
    out = str(tmp_path / "out")
    argv = ["digits", "--res", "8", "--root", out, "--quiet", "--workers", "1"]
    main(argv)
    old = json.load(open(os.path.join(out, "digits", "meta_8.json")))["conversion_id"]
    real, done = os.replace, []

    def replace(a, b):
        if len(done) == crash_at:
            raise KeyboardInterrupt  # the process stops here
        done.append(b)
        real(a, b)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit):
        main(argv)
    monkeypatch.undo()
    hint = f"mlpscale-convert digits --res 8 --root {out}"
    with pytest.raises(UserError, match="re-run it: " + hint):
        check_dataset(out, "digits", 8, ["train", "test"], hint)
    main(argv)
    new = check_dataset(out, "digits", 8, ["train", "test"], hint)
    assert {b.conversion_id for b in new.values()} != {old}
    assert temps(os.path.join(out, "digits")) == []


def test_sigterm_cleans_up_at_once(tmp_path):
    src, held = blocking_tree(tmp_path)
    out = str(tmp_path / "out")
    folder = os.path.join(out, "d")
    p = start(*folder_args(src, out))
    try:
        wait_for(lambda: temps(folder), "the converter's temp beton")
        workers = children(p.pid)
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 128 + signal.SIGTERM
    finally:
        p.kill()
    assert temps(folder) == [] and not any(alive(w) for w in workers)


# -- two converters -------------------------------------------------------------------------------------
def test_second_converter_into_the_same_folder_gets_one_sentence(tmp_path):
    src, held = blocking_tree(tmp_path)
    out = str(tmp_path / "out")
    folder = os.path.join(out, "d")
    first = start(*folder_args(src, out))
    try:
        wait_for(lambda: temps(folder), "the first converter to start writing")
        second = subprocess.run([CONVERT, *folder_args(src, out)], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        err = one_sentence(second.stderr)
        assert "is in use by pid" in err and str(first.pid) in err
        release(held)  # let the first one finish
        assert first.wait(timeout=120) == 0, first.stderr.read()
    finally:
        first.kill()
    bets = check_dataset(out, "d", 8, ["train", "val"], HINT)
    assert bets["train"].num_samples == 10 and temps(folder) == []


# -- shards of every kind of source ------------------------------------------------------------------------
def _samples(path):
    x, y = fx.read_beton(path)
    return sorted(zip(y.tolist(), [i.tobytes() for i in x]))


@pytest.mark.parametrize("source", ["cifar10", "digits", "stl10"])
def test_shards_of_array_sources_combine_to_the_whole(tmp_path, source):
    src = {"cifar10": lambda: fx.make_cifar10(str(tmp_path / "dl"))[0],
           "stl10": lambda: fx.make_stl10(str(tmp_path / "dl"))[0], "digits": lambda: None}[source]()
    common = [source, "--res", "16", "--quiet", "--workers", "2"] + (["--src", src] if src else [])
    whole, sharded = str(tmp_path / "whole"), str(tmp_path / "sharded")
    main(common + ["--root", whole])
    for i in range(2):
        main(common + ["--root", sharded, "--shard", f"{i}/2"])
    main(["combine", "--dataset", source, "--res", "16", "--root", sharded, "--quiet"])
    a, b = (json.load(open(os.path.join(r, source, "meta_16.json"))) for r in (whole, sharded))
    assert a["counts"] == b["counts"] and a["classes"] == b["classes"]
    np.testing.assert_allclose(a["mean"], b["mean"])
    np.testing.assert_allclose(a["std"], b["std"])
    splits = list(a["counts"])
    check_dataset(sharded, source, 16, splits, "hint")
    for split in splits:
        assert _samples(os.path.join(whole, source, f"{split}_16.beton")) == \
            _samples(os.path.join(sharded, source, f"{split}_16.beton"))


# -- disks that refuse writes --------------------------------------------------------------------------------
class _Disk:
    """A file object whose writes fail with `err` once `budget` bytes have been written."""

    def __init__(self, f, budget: list, err: int):
        self._f, self._budget, self._err = f, budget, err

    def write(self, b):
        self._budget[0] -= len(b)
        if self._budget[0] < 0:
            raise OSError(self._err, os.strerror(self._err))
        return self._f.write(b)

    def __getattr__(self, name):
        return getattr(self._f, name)


@pytest.mark.parametrize("err,words,budget", [(errno.ENOSPC, "is full", 1 << 20), (errno.ENOSPC, "is full", 0),
                                              (errno.EROFS, "is not writable", 1 << 20)])
def test_failing_writes_end_in_one_sentence_and_keep_the_old_files(tmp_path, monkeypatch, capsys, err, words,
                                                                   budget):
    out = str(tmp_path / "out")
    argv = ["digits", "--res", "8", "--root", out, "--quiet", "--workers", "2"]
    main(argv)
    folder = os.path.join(out, "digits")
    before = digests(folder)
    capsys.readouterr()
    real, left = os.fdopen, [budget]
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: _Disk(real(*a, **k), left, err))
    with pytest.raises(SystemExit) as e:
        main(argv)
    monkeypatch.undo()
    assert e.value.code == 2
    assert words in one_sentence(capsys.readouterr().err)
    assert digests(folder) == before and temps(folder) == []
    check_dataset(out, "digits", 8, ["train", "test"], "hint")


def _mount_tmpfs(path, size: str):
    os.makedirs(path, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode})")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 6 MiB tmpfs under tmp_path (root and CAP_SYS_ADMIN only; skipped elsewhere)."""
    disk = tmp_path / "disk"
    _mount_tmpfs(disk, "6m")
    try:
        yield str(disk)
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_really_full_disk(tiny_disk, capsys):
    argv = ["digits", "--res", "8", "--root", tiny_disk, "--quiet", "--workers", "2"]
    main(argv)  # ~4.2 MiB of pages: fits once, not twice
    folder = os.path.join(tiny_disk, "digits")
    before = digests(folder)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2 and "is full" in one_sentence(capsys.readouterr().err)
    assert digests(folder) == before and temps(folder) == []
    check_dataset(tiny_disk, "digits", 8, ["train", "test"], "hint")


def test_really_read_only_disk(tiny_disk, capsys):
    main(["digits", "--res", "8", "--root", tiny_disk, "--quiet"])
    subprocess.run(["mount", "-o", "remount,ro", tiny_disk], check=True)
    for name in ("digits", "other"):  # an existing dataset folder, and a new one
        with pytest.raises(SystemExit) as e:
            main(["digits", "--res", "8", "--root", tiny_disk, "--dataset", name, "--quiet"])
        assert e.value.code == 2 and "Read-only file system" in one_sentence(capsys.readouterr().err)


@pytest.mark.parametrize("where", ["dataset folder", "out"])
def test_a_file_where_the_output_folder_should_be(tmp_path, capsys, where):
    out = tmp_path / "out"
    if where == "out":
        out.write_text("not a folder")
    else:
        out.mkdir()
        (out / "digits").write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        main(["digits", "--res", "8", "--root", str(out), "--quiet"])
    assert e.value.code == 2 and "is a file, not a folder" in one_sentence(capsys.readouterr().err)


# -- options and sources that cannot work -------------------------------------------------------------------
@pytest.mark.parametrize("res", ["100000", "0", "1025"])
def test_res_out_of_range(tmp_path, capsys, res):
    with pytest.raises(SystemExit) as e:
        main(["digits", "--res", res, "--root", str(tmp_path / "out"), "--quiet"])
    assert e.value.code == 2 and "--res must be between 1 and 1024" in one_sentence(capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_largest_res_fits_a_page(tmp_path):
    path = str(tmp_path / "big.beton")
    w = BetonWriter(path, capacity=2, max_payload=1024 * 1024 * 3)
    for i in range(2):
        w.add(bytes(1024 * 1024 * 3), 1, 1024, 1024, i)
    assert w.commit() == 2 and open_beton(path).resolution() == (1024, 1024)


def test_empty_train_class_is_an_error_unless_allowed(tmp_path, capsys):
    src = fx.make_folder(str(tmp_path / "dl"))
    os.makedirs(os.path.join(src, "train", "owl"))  # a class folder without images
    out = str(tmp_path / "out")
    with pytest.raises(SystemExit) as e:
        main(["folder", "--src", src, "--dataset", "d", "--res", "8", "--root", out, "--quiet"])
    err = one_sentence(capsys.readouterr().err)
    assert e.value.code == 2 and "class 'owl' has no training images" in err and "--allow-empty-classes" in err
    assert not os.path.exists(os.path.join(out, "d", "meta_8.json"))
    main(["folder", "--src", src, "--dataset", "d", "--res", "8", "--root", out, "--quiet", "--allow-empty-classes"])
    meta = json.load(open(os.path.join(out, "d", "meta_8.json")))
    assert meta["classes"] == ["cat", "dog", "owl", "zebra"] and meta["counts"]["train"] == 9


def test_class_whose_images_are_all_unreadable(tmp_path, capsys):
    src = fx.make_folder(str(tmp_path / "dl"))
    for i in range(3):
        fx.write(os.path.join(src, "train", "cat", f"img{i}.png"), b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(SystemExit) as e:
        main(["folder", "--src", src, "--dataset", "d", "--res", "8", "--root", str(tmp_path / "out"), "--quiet"])
    err = one_sentence(capsys.readouterr().err)
    assert e.value.code == 2 and "class 'cat' has no readable training image" in err
