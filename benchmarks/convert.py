"""`convert` suite: runs benchmarks/bench_convert.py (the converter's own benchmark) in its own process
and embeds its JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from .common import REPO, Sizes


def suite_convert(s: Sizes, quick: bool, log=print) -> list[dict]:
    """Runs benchmarks/bench_convert.py (the converter's own benchmark) and embeds its JSON."""
    script = os.path.join(REPO, "benchmarks", "bench_convert.py")
    if not os.path.exists(script):
        return [{"suite": "convert", "skipped": f"{script} not found (the converter benchmark lives there)"}]
    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-convert-") as d:
        out = os.path.join(d, "convert.json")
        cmd = [sys.executable, script] + (["--quick"] if quick else []) + ["--json", out]
        env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
        if log:
            log(proc.stdout.rstrip())
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        with open(out) as f:
            return [{"suite": "convert", "external": json.load(f), "command": " ".join(cmd[1:])}]
