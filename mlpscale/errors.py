"""Errors a user can cause, and the one place that turns them into a single clear sentence.

Every CLI wraps its body in `cli_entry`: a `UserError` prints `error: <sentence>` and exits 2,
with no traceback. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import functools
import sys


class UserError(Exception):
    """Something the user can fix: the message says what happened and what to do."""


def cli_entry(fn):
    """Decorate a CLI `main(argv=None)` so that user errors end in one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(argv=None):
        try:
            return fn(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper
