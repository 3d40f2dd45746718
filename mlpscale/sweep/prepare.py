"""Data preparation: the spec's `prepare:` steps (a command, or a Python function), each skipped when the
path it creates exists."""
from __future__ import annotations

import importlib
import os
import shlex
import subprocess
import sys
import time

from ..errors import UserError
from .commands import tool
from .runner import progress
from .spec import Spec


def prepare(spec: Spec) -> None:
    """Run the spec's prepare steps in order; a step whose `creates` exists is skipped."""
    for i, st in enumerate(spec.prepare):
        creates = st.creates
        what = st.run or st.python
        if creates and os.path.exists(creates):
            progress(f"prepare: skip {what if isinstance(what, str) else shlex.join(what)} ({creates} exists)")
            continue
        t0 = time.monotonic()
        if st.python is not None:
            mod, fn = st.python.split(":", 1)
            progress(f"prepare: {mod}:{fn}({', '.join(f'{k}={v!r}' for k, v in st.args.items())})")
            try:
                func = getattr(importlib.import_module(mod), fn)
            except (ImportError, AttributeError) as e:
                raise UserError(f"{spec.path}: prepare[{i}]: cannot import {st.python} ({e})") from None
            func(**st.args)
        else:
            argv = shlex.split(st.run) if isinstance(st.run, str) else [str(x) for x in st.run]
            argv = tool(argv[0]) + argv[1:] if argv[0].startswith("mlpscale-") else \
                [sys.executable] + argv[1:] if argv[0] in ("python", "python3") else argv
            progress(f"prepare: {shlex.join(argv)}")
            rc = subprocess.run(argv, check=False).returncode
            if rc != 0:
                raise UserError(f"{spec.path}: prepare[{i}] failed (exit code {rc}): {shlex.join(argv)}")
        progress(f"prepare: done in {time.monotonic() - t0:.1f} s")


def missing_prepared(spec: Spec) -> list[str]:
    return [st.creates for st in spec.prepare if st.creates and not os.path.exists(st.creates)]
