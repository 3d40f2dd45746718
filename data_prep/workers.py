"""The converter's worker processes: started first, gone with their parent.

`Workers(n)` forks its n processes at once, before the converter reads its source (listing a
large tree or unpacking CIFAR takes seconds; the processes are then ready when the first task
comes, and they fork from a small parent). Tasks go out in order with a bounded window and their
results come back in the same order (`map_ordered`), so the output is deterministic and at most
`window` tasks are in memory.

No orphans, however the parent ends:
  * normal end or an exception (including Ctrl-C): the context manager shuts the pool down,
    killing the processes at once when something went wrong;
  * `kill -9` of the parent: each worker asked the kernel (Linux `prctl(PR_SET_PDEATHSIG,
    SIGKILL)`) to be killed when its parent dies, and exits by itself if the parent died before
    it could ask;
  * Ctrl-C reaches the whole process group: workers ignore SIGINT and leave it to the parent.
A worker that dies (e.g. killed for memory) makes `map_ordered` raise `BrokenProcessPool`
instead of hanging.
"""
from __future__ import annotations

import os
import signal
import sys
from collections import deque

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def default_workers(workers: int = 0) -> int:
    """`workers` when positive, else the cores this process may run on."""
    if workers and workers > 0:
        return workers
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: SIGKILL when the parent dies; ignore Ctrl-C (the parent handles it)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    # warm the decoder while the parent still reads its source (time otherwise spent on the
    # first task)
    from PIL import Image, JpegImagePlugin, PngImagePlugin  # noqa: F401


def _ready() -> int:
    return os.getpid()


class Workers:
    """A pool of `n` worker processes (0: all usable cores; 1: run tasks in this process)."""

    def __init__(self, n: int = 0):
        self.n = default_workers(n)
        self.pool, self.procs = None, []
        if self.n <= 1:
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        # fork: no re-import of the converter in each worker (as spawn would)
        ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
        before = set(mp.active_children())
        self.pool = ProcessPoolExecutor(max_workers=self.n, mp_context=ctx, initializer=_die_with_parent,
                                        initargs=(os.getpid(),))
        self.pool.submit(_ready)  # with fork, the first submit starts all n processes now
        self.procs = [p for p in mp.active_children() if p not in before]

    def map_ordered(self, fn, calls, window: int | None = None):
        """Yield `fn(*args)` for each `args` of `calls`, in order, at most `window` in flight."""
        if self.pool is None:
            for args in calls:
                yield fn(*args)
            return
        window = window or 4 * self.n
        pending = deque()
        it = iter(calls)
        try:
            for args in it:
                pending.append(self.pool.submit(fn, *args))
                if len(pending) >= window:
                    break
            while pending:
                result = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(self.pool.submit(fn, *nxt))
                yield result
        finally:
            for fut in pending:
                fut.cancel()

    def close(self, kill: bool = False) -> None:
        """Stop the processes: after their current task, or at once with `kill`."""
        if self.pool is None:
            return
        if kill:
            for p in self.procs:
                if p.is_alive():
                    p.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(kill=exc_type is not None)
