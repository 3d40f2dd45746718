"""The command lines of a unit: training (new or resumed) and each point's probe, as a user types them."""
from __future__ import annotations

import os
import sys

from .plan import Point, Sweep, Unit
from .state import probe_state, source, train_state

TOOL_MODULES = {"mlpscale-train": "mlpscale.train", "mlpscale-finetune": "mlpscale.finetune",
                "mlpscale-convert": "data_prep.cli", "mlpscale-eval": "mlpscale.evaluate",
                "mlpscale-scaling": "mlpscale.scaling", "mlpscale-sweep": "mlpscale.sweep"}


def tool(name: str) -> list[str]:
    """A console script next to sys.executable (this environment's), else `python -m` its module."""
    exe = os.path.join(os.path.dirname(sys.executable), name)
    if os.access(exe, os.X_OK):
        return [exe]
    if name in TOOL_MODULES:
        return [sys.executable, "-m", TOOL_MODULES[name]]
    return [name]


def _sets(items) -> list[str]:
    return [a for s in items for a in ("--set", s)]


def train_command(sweep: Sweep, u: Unit, state: str, exe=None) -> list[str]:
    exe = exe or ["mlpscale-train"]
    d = sweep.unit_dir(u)
    if state == "resume":   # the run's own config.yaml, with the sweep's length and keep settings
        return exe + ["--resume", d] + _sets([f"train.epochs={u.epochs}"] + u.extra)
    return exe + ["--config", sweep.spec.base] + _sets(u.overrides + u.extra + [
        f"run.out_dir={os.path.join(sweep.dir, 'points')}", f"run.name={u.name}"])


def probe_command(sweep: Sweep, u: Unit, p: Point, state: str, exe=None) -> list[str]:
    exe = exe or ["mlpscale-finetune"]
    m = sweep.spec.measure
    if state == "resume":
        return exe + ["--resume", sweep.probe_dir(p), "--set", "run.progress=false"]
    cmd = exe + ["--config", sweep.probe_file()] + _sets(m.sets + [
        f"finetune.mode={m.mode}", f"finetune.from={source(sweep, u, p)}", "run.progress=false",
        f"run.out_dir={os.path.join(sweep.dir, 'probes')}", f"run.name={p.name}"])
    return cmd + (["--overwrite"] if state == "stale" else [])


def unit_commands(sweep: Sweep, u: Unit, fresh: bool = False) -> list[list[str]]:
    """The commands that bring a unit to finished (all of them with fresh=True), as the user types them."""
    ts = "new" if fresh else train_state(sweep, u)
    cmds = [] if ts == "done" else [train_command(sweep, u, ts)]
    if sweep.spec.measure.kind == "probe":
        for p in u.points:
            ps = "new" if fresh or ts != "done" else probe_state(sweep, u, p)
            if ts != "done" and os.path.exists(os.path.join(sweep.probe_dir(p), "last.pt")):
                ps = "stale"
            if ps != "done":
                cmds.append(probe_command(sweep, u, p, ps))
    return cmds
