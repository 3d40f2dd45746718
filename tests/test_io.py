"""mlpscale.io's atomic writes: files, staged files made visible together, whole folders."""
from __future__ import annotations

import os

import pytest

from mlpscale import io as fmt
from mlpscale.errors import UserError


def _tree(folder) -> dict[str, str]:
    return {os.path.relpath(os.path.join(d, f), folder): open(os.path.join(d, f)).read()
            for d, _, files in os.walk(folder) for f in files}


def _fill(folder, files: dict[str, str]) -> None:
    for rel, text in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
        with open(os.path.join(folder, rel), "w") as f:
            f.write(text)


@pytest.fixture
def synced(monkeypatch):
    """Every os.replace / os.rename and fsync (by name) of mlpscale.io, in order."""
    events, replace, rename, fsync = [], os.replace, os.rename, fmt.fsync_path
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("rename", b)), replace(a, b)))
    monkeypatch.setattr(os, "rename", lambda a, b: (events.append(("rename", b)), rename(a, b)))
    monkeypatch.setattr(fmt, "fsync_path", lambda p: (events.append(("fsync", p)), fsync(p)))
    return events


def test_atomic_file_fsyncs_its_folder_after_the_rename(tmp_path, synced):
    path = str(tmp_path / "a.json")
    fmt.write_json_atomic(path, {"x": 1})
    assert synced == [("rename", path), ("fsync", str(tmp_path))]
    assert os.listdir(tmp_path) == ["a.json"]


def test_publish_staged_renames_in_order_then_fsyncs_the_folder_once(tmp_path, synced):
    paths = [str(tmp_path / n) for n in ("b.json", "meta.json")]
    staged = [(fmt.write_json_staged(p, i), p) for i, p in enumerate(paths)]
    assert all(fmt.is_temp_name(os.path.basename(t)) for t, _ in staged)
    fmt.publish_staged(staged)
    assert synced == [("rename", paths[0]), ("rename", paths[1]), ("fsync", str(tmp_path))]
    assert sorted(os.listdir(tmp_path)) == ["b.json", "meta.json"]


def test_publish_staged_failure_is_one_sentence(tmp_path):
    with pytest.raises(UserError, match=r"cannot write .*b\.json: .*; the previous version"):
        fmt.publish_staged([(str(tmp_path / "gone.tmp-1-x"), str(tmp_path / "b.json"))])


@pytest.mark.parametrize("can_swap", [True, False])
def test_atomic_folder_replaces_the_old_folder_whole(tmp_path, monkeypatch, can_swap):
    if not can_swap:  # e.g. NFS: two renames instead of one exchange
        monkeypatch.setattr(fmt, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    _fill(out, {"old/1.txt": "old", "keep.txt": "old"})
    with fmt.atomic_folder(str(out)) as tmp:
        assert fmt.is_temp_name(os.path.basename(tmp)) and os.path.dirname(tmp) == str(tmp_path)
        _fill(tmp, {"new/1.txt": "new", "keep.txt": "new"})
        assert _tree(out) == {"old/1.txt": "old", "keep.txt": "old"}  # untouched while filling
    assert _tree(out) == {"new/1.txt": "new", "keep.txt": "new"}
    assert os.listdir(tmp_path) == ["out"] and oct(os.stat(out).st_mode & 0o777) == "0o755"


def test_atomic_folder_creates_a_new_folder(tmp_path):
    with fmt.atomic_folder(str(tmp_path / "a" / "out")) as tmp:
        _fill(tmp, {"x.txt": "x"})
    assert _tree(tmp_path) == {"a/out/x.txt": "x"}


def test_atomic_folder_failure_leaves_the_old_folder(tmp_path):
    out = tmp_path / "out"
    _fill(out, {"1.txt": "old"})
    with pytest.raises(KeyboardInterrupt), fmt.atomic_folder(str(out)) as tmp:
        _fill(tmp, {"1.txt": "new"})
        raise KeyboardInterrupt
    with pytest.raises(UserError, match="is full"), fmt.atomic_folder(str(out)) as tmp:
        raise OSError(28, "No space left on device")
    assert _tree(out) == {"1.txt": "old"} and os.listdir(tmp_path) == ["out"]


def test_atomic_folder_without_exchange_puts_the_old_folder_back_when_the_second_rename_fails(
        tmp_path, monkeypatch):
    monkeypatch.setattr(fmt, "_exchange", lambda a, b: False)
    out = tmp_path / "out"
    _fill(out, {"1.txt": "old"})
    real = os.rename

    def rename(a, b):
        if b == str(out) and not a.endswith(".old"):  # the new folder into place
            raise OSError(28, "No space left on device")
        real(a, b)

    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(UserError), fmt.atomic_folder(str(out)) as tmp:
        _fill(tmp, {"1.txt": "new"})
    assert _tree(out) == {"1.txt": "old"} and os.listdir(tmp_path) == ["out"]
