"""The files one conversion writes into ROOT/<name>/, made visible together.

A dataset folder is consistent or refused (`mlpscale.layout.check_dataset`, which the trainer
calls). `OutputFolder` keeps the rules every writer of data_prep follows (convert, combine):

  1. It holds the folder's lock (`FolderLock`) from start to end: a second converter into the
     same folder gets one sentence, and temp files of dead converters are removed when the lock
     is taken (the kernel drops a dead process's lock, so a temp file found then has no owner).
  2. The conversion has a fresh id, stamped into every beton it writes and recorded in
     `meta_<res>.json` with the per-split counts (`counts`) and file names (`files`).
  3. Every file is first written to a verified temp file (`stage_*`). The encode phase, which is
     long, therefore never touches the previous dataset: a kill there leaves it as it was.
  4. `publish(meta)`: the new meta is staged too (a full disk fails here, still before anything
     is touched); then the old meta is removed, all staged files are renamed into place, and the
     new meta is renamed last. A kill during these few renames leaves betons without a meta (or
     with another conversion's), which `check_dataset` refuses, naming the command to re-run.
"""
from __future__ import annotations

import contextlib
import os
import re

from mlpscale.errors import UserError
from mlpscale.io import FolderLock, disk_error, publish_staged, remove_temps, write_json_staged
from mlpscale.layout import beton_path, dataset_dir, meta_path, new_conversion_id, sidecar_path

SHARD_RE = re.compile(r"\.shard-(\d+)-of-(\d+)")


def shard_suffix(shard: tuple[int, int] | None) -> str:
    """File name suffix of shard I of K (`--shard I/K`): '.shard-I-of-K'; '' for a whole dataset."""
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


class OutputFolder:
    """`with OutputFolder(root, name, res) as out:` stage files, then `out.publish(meta)`.

    Leaving the block without publishing (an error, Ctrl-C) removes the staged temp files and
    leaves the folder as it was. Leaving it in any way removes every temp file of the folder: while
    we hold the lock, each is ours or a dead writer's (e.g. of a writer that failed while opening).
    """

    def __init__(self, root: str, name: str, res: int, suffix: str = "", what: str = "mlpscale-convert",
                 advice: str = "write into another --root"):
        self.root, self.name, self.res, self.suffix = root, name, res, suffix
        self.folder = dataset_dir(root, name)
        self.conversion_id = new_conversion_id()
        self.lock = FolderLock(self.folder, what, advice)
        self.staged: list[tuple[str, str]] = []   # (verified temp file, final path), renamed in order
        self.files: dict[str, str] = {}           # split -> beton file name, for meta["files"]

    def __enter__(self) -> "OutputFolder":
        existing = os.path.abspath(self.folder)
        while not os.path.exists(existing) and os.path.dirname(existing) != existing:
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing):  # os.makedirs would only say "File exists"
            raise UserError(f"cannot write into {self.folder}: {existing} is a file, not a folder; "
                            "choose another --root or --dataset")
        self.created = existing   # the folders below this one are ours, made by the lock
        self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        unused = False
        try:
            self.discard()
            remove_temps(self.folder)
            unused = os.listdir(self.folder) == [".lock"]
            if unused:  # a refused conversion leaves no folder holding only `.lock`
                os.remove(os.path.join(self.folder, ".lock"))  # while held: FolderLock re-checks the file
        finally:
            self.lock.release()
        if unused:
            with contextlib.suppress(OSError):
                folder = os.path.abspath(self.folder)
                while folder != self.created:
                    os.rmdir(folder)   # only while empty: another writer's folder stays
                    folder = os.path.dirname(folder)

    # -- paths of this output (with the shard suffix, if any) --------------------------------------
    def beton_path(self, split: str) -> str:
        return beton_path(self.root, self.name, split, self.res, self.suffix)

    def meta_path(self) -> str:
        return meta_path(self.root, self.name, self.res, self.suffix)

    def sidecar_path(self, key: str) -> str:
        return sidecar_path(self.root, self.name, key, self.res, self.suffix)

    # -- staging ------------------------------------------------------------------------------------
    def stage_beton(self, split: str, tmp: str) -> None:
        """Take over a verified temp beton (`write_split(..., rename=False)`) of `split`."""
        path = self.beton_path(split)
        self.staged.append((tmp, path))
        self.files[split] = os.path.basename(path)

    def stage_json(self, path: str, obj) -> None:
        self.staged.append((write_json_staged(path, obj), path))

    def discard(self) -> None:
        """Remove the staged temp files (no-op after `publish`)."""
        for tmp, _ in self.staged:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
        self.staged = []

    # -- publishing ---------------------------------------------------------------------------------
    def publish(self, meta: dict) -> dict:
        """Make the staged files and `meta` (plus conversion_id and files) the dataset; returns meta."""
        meta = {**meta, "conversion_id": self.conversion_id, "files": dict(self.files)}
        mpath = self.meta_path()
        self.stage_json(mpath, meta)  # last in self.staged: renamed last
        try:
            with contextlib.suppress(FileNotFoundError):
                os.remove(mpath)  # from here until the last rename, check_dataset refuses the folder
        except OSError as e:
            raise disk_error(e, mpath) from None
        publish_staged(self.staged)
        self.staged = []
        return meta
