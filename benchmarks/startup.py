"""The startup suite (`python -m benchmarks startup`): how long a user waits for the first training step, as the user
runs it.

The README's `make demo` job, whole commands: `mlpscale-convert digits --res 16` once (untimed), then
`mlpscale-train --config demo_digits.yaml` `reps` times, each a fresh process stopped after its first
step (`train.max_steps=1`). The figure is summary.json's `first_step_s`: from the process's start
(the kernel's start time: interpreter, imports, config, reading the beton into memory, model and
optimizer creation) to the end of the first optimizer step, device-synchronised. The whole command's wall time (it
also saves, evaluates and writes its summary) is reported beside it.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGET_S = 5.0


def _tool(name: str, bin_dir: str | None = None) -> list[str]:
    """The console script `name` of this interpreter's install, or of the install whose bin folder is `bin_dir`."""
    if bin_dir:
        return [os.path.join(bin_dir, name)]
    exe = os.path.join(os.path.dirname(sys.executable), name)
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", {"mlpscale-convert": "data_prep.cli",
                                                                     "mlpscale-train": "mlpscale.train"}[name]]


def convert_digits(d: str, bin_dir: str | None = None) -> None:
    """The demo's data (digits at 16px) under `d` (untimed)."""
    subprocess.run(_tool("mlpscale-convert", bin_dir) + ["digits", "--res", "16", "--root", d, "--quiet"], check=True,
                   capture_output=True, text=True, cwd=d)


def first_step(d: str, name: str, bin_dir: str | None = None) -> tuple[float, float]:
    """One fresh `mlpscale-train --config demo_digits.yaml` stopped after its first step, data under `d`:
    (summary.json's first_step_s, the whole command's wall seconds)."""
    cmd = _tool("mlpscale-train", bin_dir) + ["--config", "demo_digits.yaml", "--set", f"data.root={d}",
                                              "--set", f"run.out_dir={d}/runs", "--set", f"run.name={name}",
                                              "--set", "train.max_steps=1", "--set", "run.progress=false"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=d)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    with open(os.path.join(d, "runs", name, "summary.json")) as f:
        return json.load(f)["first_step_s"], wall


def suite_startup(reps: int, log=print) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-startup-") as d:
        convert_digits(d)
        first, wall = [], []
        for i in range(reps):
            f, w = first_step(d, f"s{i}")
            first.append(f)
            wall.append(w)
    med = statistics.median(first)
    if log:
        log(f"startup: first training step {med:.2f} s after process start (runs {min(first):.2f}-{max(first):.2f}; "
            f"target {TARGET_S:.0f} s), whole command {statistics.median(wall):.2f} s")
    return [{"suite": "startup", "name": "first training step after process start: mlpscale-train demo_digits.yaml "
                                         "(digits 16px, resident raw beton)",
             "value": round(med, 3), "unit": "s", "min": round(min(first), 3), "max": round(max(first), 3),
             "values": [round(v, 3) for v in first], "target_s": TARGET_S,
             "command_wall_s": [round(v, 3) for v in wall],
             "timer": "process start (kernel start time) to the end of the first optimizer step, device-synchronised "
                      "(summary.json first_step_s); fresh process per repetition"}]
