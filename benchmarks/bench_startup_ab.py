"""Start-up of this install against another one (e.g. the previous commit's checkout), whole commands.

The startup suite's figure (`python -m benchmarks startup`): `mlpscale-train --config demo_digits.yaml`
stopped after its first step, summary.json's `first_step_s` (process start to the end of the first
optimizer step) and the whole command's wall time. Here the same command from two installs, each a fresh
process, alternating (order flipped every round) on the same converted data, `--reps` rounds; medians,
spread and the within-round ratio baseline / ours.

  git worktree add /tmp/base <commit> && (cd /tmp/base && make install)
  .venv/bin/python benchmarks/bench_startup_ab.py --baseline /tmp/base/.venv/bin --reps 9 \\
      --json benchmarks/results/startup-ab_<hw>_<date>.json
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.env import environment  # noqa: E402 - after the checkout is put on sys.path (run as a script)
from benchmarks.startup import convert_digits, first_step  # noqa: E402 - likewise


def _commit(bin_dir: str) -> str:
    """The git commit (and +dirty) of the checkout an install's mlpscale package is imported from."""
    code = "import mlpscale, os; print(os.path.dirname(os.path.dirname(mlpscale.__file__)))"
    src = subprocess.run([os.path.join(bin_dir, "python"), "-c", code], capture_output=True, text=True,
                         check=True, cwd="/").stdout.strip()  # not the working folder's mlpscale
    rev = subprocess.run(["git", "-C", src, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "-C", src, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                           text=True).stdout.strip()
    return rev.strip() + ("+dirty" if dirty else "") + f" ({src})"


def _summary(xs: list[float]) -> dict:
    return {"median": round(statistics.median(xs), 3), "min": round(min(xs), 3), "max": round(max(xs), 3),
            "values": [round(x, 3) for x in xs]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, metavar="BIN",
                   help="bin folder of the other install (holding its python, mlpscale-convert, mlpscale-train)")
    p.add_argument("--reps", type=int, default=9, help="alternating rounds (default 9)")
    p.add_argument("--json", metavar="PATH", help="write the results here")
    a = p.parse_args(argv)
    ours_bin = os.path.dirname(sys.executable)
    sides = {"ours": ours_bin, "baseline": os.path.abspath(a.baseline)}
    first = {k: [] for k in sides}
    wall = {k: [] for k in sides}
    with tempfile.TemporaryDirectory(prefix="mlpscale-startup-ab-") as d:
        convert_digits(d)
        for r in range(a.reps):
            order = list(sides) if r % 2 == 0 else list(sides)[::-1]
            for k in order:
                f, w = first_step(d, f"{k}{r}", sides[k])
                first[k].append(f)
                wall[k].append(w)
            print(f"round {r + 1}: " + ", ".join(f"{k} {first[k][-1]:.2f} s" for k in sides), flush=True)
    ratio = [b / o for b, o in zip(first["baseline"], first["ours"])]
    doc = {"suite": "startup-ab", "command": "python benchmarks/bench_startup_ab.py "
                                             + " ".join(argv if argv is not None else sys.argv[1:]),
           "env": environment(),
           "what": "mlpscale-train --config demo_digits.yaml (digits 16px, resident raw beton) with "
                   "train.max_steps=1, a fresh process per run, the two installs alternating",
           "timer": "summary.json first_step_s: process start (kernel start time) to the end of the first "
                    "optimizer step; command_wall_s: the whole command",
           "installs": {k: {"bin": v, "commit": _commit(v)} for k, v in sides.items()},
           "first_step_s": {k: _summary(v) for k, v in first.items()},
           "command_wall_s": {k: _summary(v) for k, v in wall.items()},
           "baseline_over_ours_same_round": _summary(ratio)}
    print(f"first step: ours {doc['first_step_s']['ours']['median']} s, baseline "
          f"{doc['first_step_s']['baseline']['median']} s; baseline / ours same-round median "
          f"{doc['baseline_over_ours_same_round']['median']}x ({min(ratio):.2f}-{max(ratio):.2f})")
    if a.json:
        from mlpscale.io import write_json_atomic

        write_json_atomic(a.json, doc)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
