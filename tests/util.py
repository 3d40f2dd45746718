"""Helpers shared by tests (pytest puts tests/ on sys.path: `from util import ...`)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(*args, env=None, timeout=300):
    """Run a console script of the venv and capture its output."""
    exe = os.path.join(os.path.dirname(sys.executable), args[0])
    e = dict(os.environ, **(env or {}))
    return subprocess.run([exe, *args[1:]], capture_output=True, text=True, timeout=timeout, env=e)
