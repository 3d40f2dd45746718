"""Atomic writes and folder ownership.

Every file is written atomically: to `<path>.tmp-<pid>-<random>` in the same folder, flushed,
fsynced and renamed, and the folder is fsynced after the rename (`atomic_file`; files made visible
together: `publish_staged`; a whole folder tree: `atomic_folder`). A process that writes into a
folder holds its `.lock` (`FolderLock`), which the kernel releases when the process dies however it
dies; so whoever next takes the lock knows that any temp file left there belongs to a dead process
and removes it.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import sys
import tempfile

from .errors import UserError

def open_temp(path: str, extra: str = ""):
    """A new temp file next to `path`, named `<base><extra>.tmp-<pid>-<random>`."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{os.path.basename(path)}{extra}.tmp-{os.getpid()}-", dir=folder)
    except OSError as e:
        raise disk_error(e, path) from None
    return os.fdopen(fd, "w+b"), tmp


def fsync_close(f) -> None:
    f.flush()
    os.fsync(f.fileno())
    f.close()


def fsync_path(path: str) -> None:
    """fsync a file or folder by name (a folder: so that the renames in it survive a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def free_space(folder: str) -> str:
    try:
        st = os.statvfs(folder)
    except OSError:
        return "unknown"
    return f"{st.f_bavail * st.f_frsize / 2**20:,.1f} MiB"


def disk_error(e: BaseException, path: str) -> UserError:
    """One sentence for any failure of a write (full disk, read-only or missing folder, rights; torch.save's
    RuntimeError from its C++ writer), naming the path and the space left where it was written."""
    folder = os.path.dirname(os.path.abspath(path))
    err = getattr(e, "errno", None) if isinstance(e, OSError) else None
    if err is None and ("No space left" in str(e) or "file write failed" in str(e)):
        err = errno.ENOSPC   # torch's inline_container.cc reports a short write, not an errno
    if err == errno.ENOSPC or err == errno.EDQUOT:
        why = (f"the disk holding {folder} is full ({free_space(folder)} free); free space there (or write "
               f"elsewhere) and run again")
    elif err in (errno.EROFS, errno.EACCES, errno.EPERM):
        why = f"{folder} is not writable ({os.strerror(err)}); choose a writable folder"
    else:
        detail = os.strerror(err) if err else str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        why = f"{detail} ({free_space(folder)} free); check the folder {folder}"
    return UserError(f"cannot write {path}: {why}; the previous version of the file, if any, is untouched")


@contextlib.contextmanager
def atomic_file(path: str, mode: str = "wb"):
    """`with atomic_file(p) as f: f.write(...)`: the file appears complete under `path` or not at all."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError as e:
        raise disk_error(e, path) from None
    f, tmp = open_temp(path)
    ok = False
    try:
        if "b" not in mode:
            import io

            f = io.TextIOWrapper(f, encoding="utf-8")
        yield f
        fsync_close(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
        fsync_path(os.path.dirname(os.path.abspath(path)))
        ok = True
    except OSError as e:
        raise disk_error(e, path) from None
    finally:
        if not f.closed:
            f.close()
        if not ok:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)


def write_json_atomic(path: str, obj, indent: int | None = 1) -> None:
    with atomic_file(path, "w") as f:
        json.dump(obj, f, indent=indent)


def write_json_staged(path: str, obj, indent: int | None = 1) -> str:
    """Write `obj` for `path` into a fsynced temp file next to it and return the temp's name, for
    `publish_staged` to rename into place together with other files of one conversion (the
    JSON counterpart of `BetonWriter.commit(rename=False)`)."""
    f, tmp = open_temp(path)
    try:
        f.write(json.dumps(obj, indent=indent).encode("utf-8"))
        fsync_close(f)
        os.chmod(tmp, 0o644)
        return tmp
    except OSError as e:
        f.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise disk_error(e, path) from None


def publish_staged(staged: list[tuple[str, str]]) -> None:
    """Rename staged temp files into place, in order: `(temp, final path)` pairs from
    `write_json_staged` and `BetonWriter.commit(rename=False)`; then fsync their folder once."""
    path = ""
    try:
        for tmp, path in staged:
            os.replace(tmp, path)
        for folder in {os.path.dirname(os.path.abspath(p)) for _, p in staged}:
            fsync_path(folder)
    except OSError as e:
        raise disk_error(e, path) from None


def write_text_atomic(path: str, text: str) -> None:
    with atomic_file(path, "w") as f:
        f.write(text)


def save_torch_atomic(path: str, obj) -> None:
    import torch

    with atomic_file(path) as f:
        try:
            torch.save(obj, f)
        except RuntimeError as e:  # torch's C++ writer (inline_container.cc) reports a full disk so
            raise disk_error(e, path) from None


@contextlib.contextmanager
def atomic_folder(path: str):
    """`with atomic_folder(p) as tmp:` fill the new folder `tmp`; it then takes the place of `p`,
    whose old content stays there until that moment. On failure `tmp` is removed and `p` is untouched."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=f"{os.path.basename(path)}.tmp-{os.getpid()}-", dir=parent)
    except OSError as e:
        raise disk_error(e, path) from None
    old = tmp + ".old"
    try:
        yield tmp
        for dirpath, _, files in os.walk(tmp):
            for f in files:
                fsync_path(os.path.join(dirpath, f))
            fsync_path(dirpath)
        os.chmod(tmp, 0o755)  # mkdtemp creates 0700
        if not os.path.lexists(path):
            os.rename(tmp, path)
        elif not _exchange(tmp, path):  # the kernel cannot swap (e.g. NFS): two renames
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
        fsync_path(parent)
    except OSError as e:
        raise disk_error(e, path) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the new folder after a failure, else the old one (swapped)
        if os.path.lexists(path):
            shutil.rmtree(old, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Swap the entries `a` and `b` in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    import ctypes

    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


_TEMP_NAME = re.compile(r"\.tmp-\d+-[A-Za-z0-9_]+(\.old)?$")


def is_temp_name(name: str) -> bool:
    """Only the names `_open_temp` / `atomic_folder` make (`<base>.tmp-<pid>-<random>[.old]`): a user's
    `notes.tmp-2024.txt` is not ours."""
    return _TEMP_NAME.search(name) is not None


def remove_temps(folder: str) -> list[str]:
    """Delete every `*.tmp-*` file in `folder`; call only while holding its FolderLock."""
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for e in os.scandir(folder):
            if e.is_file() and is_temp_name(e.name):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(e.path)
                    removed.append(e.name)
    return removed


# --- folder ownership -----------------------------------------------------------------------------

class FolderLock:
    """One process per folder: an exclusive, non-blocking `flock` on `<folder>/.lock`.

    The kernel drops the lock when its process dies (also on kill -9), so a lock is never stale;
    on entry, temp files of earlier, dead writers are removed. A second process gets one sentence
    naming the holder (pid and command, written into the lock file).
    """

    def __init__(self, folder: str, what: str, advice: str = ""):
        self.folder, self.what, self.advice = folder, what, advice
        self.path = os.path.join(folder, ".lock")
        self.fd = None
        self.removed: list[str] = []

    def acquire(self) -> "FolderLock":
        try:
            os.makedirs(self.folder, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise disk_error(e, self.path) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"{self.folder} is in use by {holder}; wait for it to finish"
                            + (f" or {self.advice}" if self.advice else "")) from None
        try:
            same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # its holder removed the folder's .lock on the way out: lock the folder anew
            os.close(fd)
            return self.acquire()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} ({' '.join(sys.argv)[:300]})\n".encode(), 0)
        self.fd = fd
        self.removed = remove_temps(self.folder)
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
