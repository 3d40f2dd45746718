"""Test-only hold on one source image: with PYTHONPATH=tests/hold and MLPSCALE_TEST_HOLD=<path>, every
process of a conversion (parent and workers) waits at the moment it opens <path> until <path>.go exists.
This holds a conversion mid-write in a known state, for the fault tests (a FIFO would only be skipped)."""
import os
import time

_HOLD = os.environ.get("MLPSCALE_TEST_HOLD")
if _HOLD:
    _real_open = os.open

    def _open(path, flags, *args, **kwargs):
        if isinstance(path, (str, os.PathLike)) and os.fspath(path) == _HOLD:
            while not os.path.exists(_HOLD + ".go"):
                time.sleep(0.01)
        return _real_open(path, flags, *args, **kwargs)

    os.open = _open
