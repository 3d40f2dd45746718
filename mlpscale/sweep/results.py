"""results.csv: one row per point, rebuilt from the run folders whenever a point finishes."""
from __future__ import annotations

import csv
import fcntl
import os

from ..io import atomic_file
from .plan import Sweep
from .spec import yaml_value
from .state import locked, probe_state, read_json, train_state

STATUS = ("finished", "running", "trained", "interrupted", "failed", "pending")
COLUMNS = ["arch", "params", "n_train", "epochs", "compute_pflops", "error", "name", "test_top1", "probe_top1",
           "status", "run_dir", "probe_dir"]
RESULTS = "results.csv"


def _metrics_top1(run_dir: str) -> dict:
    from ..metrics import read_rows

    return {r["epoch"]: r["test_top1"] for r in read_rows(os.path.join(run_dir, "metrics.jsonl")) if "test_top1" in r}


def collect(sweep: Sweep) -> list[dict]:
    """One row per point, from the run folders as they are now."""
    rows = []
    extra = [k for k in sweep.fields if k not in ("model.arch", "data.n_train", "train.epochs")]
    for u in sweep.units:
        d = sweep.unit_dir(u)
        ts = train_state(sweep, u)
        s = read_json(os.path.join(d, "summary.json")) if ts == "done" else None
        top1_at = _metrics_top1(d) if s and u.reuse else {}
        running = locked(sweep.state_dir(u))
        failed = read_json(os.path.join(sweep.state_dir(u), "status.json"))
        for p in u.points:
            cfg = u.cfg
            row = {"name": p.name, "arch": cfg["model"]["arch"], "epochs": p.epochs,
                   "n_train": cfg["data"]["n_train"] or "", "run_dir": os.path.relpath(d, sweep.dir)}
            measured = None
            if s:
                n = s["n_train"]
                row.update(arch=s["arch"], params=s["params"], n_train=n,
                           compute_pflops=s["paper_flops_per_forward"] * 3 * n * p.epochs / 1e15)
                top1 = top1_at.get(p.epochs) if u.reuse else s.get("test_top1")
                row["test_top1"] = top1 if top1 is not None else ""
                measured = top1
            if sweep.spec.measure.kind == "probe":
                pd = sweep.probe_dir(p)
                row["probe_dir"] = os.path.relpath(pd, sweep.dir)
                measured = None
                if s and probe_state(sweep, u, p) == "done":
                    measured = read_json(os.path.join(pd, "summary.json")).get("test_top1")
                    row["probe_top1"] = measured
            if s and measured is not None:
                row["error"] = 1.0 - measured / 100.0
                status = "finished"
            elif running:
                status = "running"
            elif failed and failed.get("status") in ("failed", "interrupted"):
                status = failed["status"]
            elif s:
                status = "trained"
            elif ts == "resume":
                status = "interrupted"
            else:
                status = "pending"
            row["status"] = status
            for k in extra:
                row[k] = yaml_value(p.values[k]) if k in p.values else ""
            rows.append(row)
    return rows


def write_results(sweep: Sweep) -> list[dict]:
    """Rewrite SWEEP_DIR/results.csv from the folders (atomically; writers take turns on a lock file, so
    the last one to write has seen every point that finished before it)."""
    os.makedirs(sweep.dir, exist_ok=True)
    fd = os.open(os.path.join(sweep.dir, ".results.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        rows = collect(sweep)
        cols = COLUMNS + [k for k in sweep.fields if k not in ("model.arch", "data.n_train", "train.epochs")]
        with atomic_file(os.path.join(sweep.dir, RESULTS), "w") as f:
            w = csv.DictWriter(f, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k, "") for k in cols})
        return rows
    finally:
        os.close(fd)


def report(sweep: Sweep, rows: list[dict], seconds: float | None = None) -> None:
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUS}
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    took = f" in {seconds:.0f} s" if seconds is not None else ""
    print(f"{len(rows)} points ({parts}){took}; results in {os.path.join(sweep.dir, RESULTS)}")
    if counts["finished"] == len(rows) and rows:
        print(f"next: mlpscale-scaling {sweep.dir}   (writes the fits and figures into it)")
