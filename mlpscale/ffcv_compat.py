"""Importing FFCV without letting it change torch's thread count.

`ffcv.pipeline.compiler.Compiler.set_num_threads(n)` sets numba's thread count *and*
`torch.set_num_threads(n)`. FFCV calls it with 1 when it is imported, and with the loader's worker
count on Loader creation and in every epoch thread; a training step then runs its GEMMs on one
core. `import_ffcv()` imports FFCV once, puts
torch's count back to what it was before (the user's `torch.set_num_threads` / OMP_NUM_THREADS,
else torch's default: the usable cores), and replaces that method with one that sets numba's
count only. Every FFCV import in mlpscale goes through here.
"""
from __future__ import annotations

import os
import sys

import torch

_patched = False


def default_threads() -> int:
    """What torch would use without FFCV: OMP_NUM_THREADS, else the cores this process may use."""
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def import_ffcv():
    """Import FFCV (once) with torch's thread count kept; returns the `ffcv` module."""
    global _patched
    if _patched:
        return sys.modules["ffcv"]
    before = torch.get_num_threads() if "ffcv" not in sys.modules else default_threads()
    import ffcv
    from ffcv.pipeline.compiler import Compiler

    def set_num_threads(cls, n):
        import numba

        if n < 1:
            n = os.cpu_count() or 1
        cls.num_threads = n
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))

    Compiler.set_num_threads = classmethod(set_num_threads)
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
    _patched = True
    return ffcv


def ffcv_status() -> str | None:
    """None when FFCV imports here, else why not (one line)."""
    try:
        import_ffcv()
        return None
    except Exception as e:  # noqa: BLE001 - any import failure means "no FFCV here"
        return f"{type(e).__name__}: {e}"
