"""Errors a user can cause, and the one place that turns them into a single clear sentence.

Every CLI wraps its body in `cli_entry`: a `UserError` prints `error: <sentence>` and exits 2,
with no traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Something the user can fix: the message says what happened and what to do."""


def int_range(lo: int, hi: int):
    """An argparse `type` that refuses an integer outside [lo, hi] at parse time, in one sentence."""
    import argparse

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number, got '{text}'") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:,} and {hi:,}, got {v:,}")
        return v
    return parse


def cli_entry(fn):
    """Decorate a CLI `main(argv=None)` so that user errors end in one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(argv=None):
        import signal
        import threading

        from . import _interrupted_while_starting
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # started: Ctrl-C is KeyboardInterrupt again
        try:
            return fn(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
