"""The run folder's life around a training run: locked, checked, an old run set aside (--overwrite), and
only once the new run has started (data, model and any checkpoint in hand) its config.yaml written and the
old run dropped; a run refused before that leaves the folder as it was (a new folder: no folder at all).
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys

from .config import Config, save_config
from .errors import UserError
from .io import FolderLock

RUN_FILES = ("last.pt", "summary.json", "metrics.jsonl", "eval.json")


STASH = ".replaced"   # an old run's files while the run replacing it (--overwrite) has not started yet


def lock_run(run_dir: str, resume: bool, overwrite: bool, tool: str = "mlpscale-train"):
    """Take the run folder (rank 0; other ranks get None) and check that it may start or resume there."""
    if int(os.environ.get("RANK", "0")) != 0:
        return None
    lock = FolderLock(run_dir, "run", f"choose another run.name ({tool} --set run.name=NEW ...)").acquire()
    try:
        restore_stash(run_dir)  # a replacing run killed before it started: the old run is still the run
    except BaseException:
        lock.release()
        raise
    has_state = os.path.exists(os.path.join(run_dir, "last.pt"))
    if resume and not has_state:
        lock.release()
        raise UserError(f"{run_dir} has no last.pt to resume from (the run saved none yet); "
                        f"start it again without --resume")
    if not resume and has_state and not overwrite:
        lock.release()
        raise UserError(f"{run_dir} already holds a run; continue it with `{tool} --resume {run_dir}`, "
                        f"or pass --overwrite, or choose another run.name")
    return lock


def prepare_run(cfg: Config, run_dir: str, resume: bool) -> None:
    """Rank 0, holding the folder's lock, for a new run: set an earlier run's files aside (`start_run`
    removes them once the new run has started, `abandon_run` puts them back). Nothing of a run changes
    before the new one has started."""
    if int(os.environ.get("RANK", "0")) != 0 or resume:
        return
    old = [n for n in os.listdir(run_dir) if n in RUN_FILES or n in ("config.yaml", "tb")
           or (n.startswith("epoch_") and n.endswith(".pt"))]
    if old:
        os.makedirs(os.path.join(run_dir, STASH))
        for name in old:
            os.rename(os.path.join(run_dir, name), os.path.join(run_dir, STASH, name))


def restore_stash(run_dir: str) -> None:
    """Put the files `prepare_run` set aside back in place (a run that did not start)."""
    stash = os.path.join(run_dir, STASH)
    if not os.path.isdir(stash):
        return
    for name in os.listdir(stash):
        dst = os.path.join(run_dir, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        os.replace(os.path.join(stash, name), dst)
    os.rmdir(stash)


def start_run(cfg: Config, run_dir: str) -> None:
    """Rank 0: the run has started (its data, model and any checkpoint are in hand): only now is the
    resolved config.yaml written (on resume with any --set given then) and a replaced run's files removed."""
    if int(os.environ.get("RANK", "0")) != 0:
        return
    save_config(cfg, os.path.join(run_dir, "config.yaml"))
    shutil.rmtree(os.path.join(run_dir, STASH), ignore_errors=True)


def abandon_run(run_dir: str, new_folder: bool, resumed: bool) -> None:
    """Rank 0, refused before it started: a new folder goes; a replaced run's files come back."""
    if not resumed:
        for name in ("metrics.jsonl", "tb"):  # what the refused trainer may have begun
            path = os.path.join(run_dir, name)
            with contextlib.suppress(OSError):
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    restore_stash(run_dir)
    if new_folder:
        with contextlib.suppress(OSError):
            os.remove(os.path.join(run_dir, ".lock"))
        with contextlib.suppress(OSError):
            os.rmdir(run_dir)


def check_loggers(cfg: Config) -> None:
    """The optional packages the config asks for, checked before any folder is made."""
    import importlib.util

    for on, name in ((cfg.run.tensorboard, "tensorboard"), (cfg.run.wandb, "wandb")):
        if on and importlib.util.find_spec(name) is None:
            raise UserError(f"run.{name} is on but {name} is not installed: pip install {name} "
                            f"(or --set run.{name}=false)")


def report(s: dict, tool: str) -> int:
    """Print a finished run's outcome; returns the exit code that says what happened (0, or 128 + the
    signal that interrupted it, after last.pt was saved)."""
    if int(os.environ.get("RANK", "0")) == 0:
        top1 = s.get("test_top1")
        print(f"{s['status']}: {s['arch']} on {s['dataset']} ({s['epochs_done']} epochs, {s['steps']} steps, "
              f"{s['compute_pflops']:.4g} PFLOPs)" + (f", test top-1 {top1:.2f}%" if top1 is not None else ""))
        print(f"results in {s['run_dir']}/ (summary.json, metrics.jsonl, last.pt)")
        if s["status"] == "interrupted":
            print(f"resume with: {tool} --resume {s['run_dir']}")
    sys.stdout.flush()
    if s["status"] == "interrupted":
        return 128 + int(s.get("signal") or signal.SIGINT)
    return 0
