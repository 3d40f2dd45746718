"""`mlpscale-report SWEEP_DIR [--against table1|table2|readme] [--out DIR]`: a finished (or half-finished)
sweep of a paper table, seeds averaged and set beside the paper's numbers, with a claim block.

It reads what `mlpscale-sweep` wrote (results.csv, spec.yaml, the run folders' config.yaml and
summary.json) and changes nothing there. Each point becomes a cell entry:

    row     the paper's row whose `match` the point's configuration meets (mlpscale/paper_tables.py), else a
            row named after the configuration (arch, augmentation, epochs)
    column  the dataset measured: the probe's (fine-tuning) dataset, else the training dataset; ImageNet ReaL
            scores (eval.real) go to column "real", test-time-augmentation scores (eval.tta) to the "+ TTA" row
    value   top-1 % of a finished point; a point that is pending, running, interrupted or failed is counted
            by its status and never enters a mean

Per cell: our mean ± sample standard deviation over seeds (n shown, with the count of missing or failed
runs), the cited number, the difference (ours - cited) and whether the cited number lies within our
spread, mean ± 2 std (n >= 2). Written as report.md (a Markdown table to paste) and report.json.

The claim block under it: the GPUs (model and count, from each run's summary.json), total run time (sum
of the runs' elapsed_s) and GPU-hours (elapsed_s x GPUs per run), the torch / CUDA / FFCV versions the runs
recorded (else this environment's, marked so), the exact commands, and the commit of this checkout.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys

import yaml

from . import cli
from .errors import UserError, cli_entry
from .hardware import software_versions
from .io import write_json_atomic, write_text_atomic
from .paper_tables import TABLES, Table

NOT_RUN = ("pending", "running", "trained", "interrupted", "failed")


# --- reading the sweep -----------------------------------------------------------------------------------

def _json(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _yaml(path: str):
    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except (OSError, yaml.YAMLError):
        return None


def read_sweep(sweep_dir: str) -> tuple[list[dict], dict]:
    """(results.csv rows, spec.yaml) of SWEEP_DIR, or a UserError that says how to make them."""
    path = os.path.join(sweep_dir, "results.csv")
    if not os.path.isfile(path):
        raise UserError(f"{sweep_dir} holds no results.csv: pass the folder mlpscale-sweep wrote (its --out), "
                        f"or rebuild the file with `mlpscale-sweep SPEC --out {sweep_dir} --collect`")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, _yaml(os.path.join(sweep_dir, "spec.yaml")) or {}


def _dotted(cfg: dict | None, key: str):
    node = cfg
    for k in key.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node


def _bool(v) -> bool | None:
    if isinstance(v, bool) or v is None:
        return v
    return str(v).strip().lower() in ("true", "1", "yes", "on")


def _family(arch: str) -> str:
    return "resnet" if arch.lower().startswith("resnet") else arch[:1]


def _probe_dataset(spec: dict) -> str | None:
    probe = (spec.get("measure") or {}).get("probe") if isinstance(spec.get("measure"), dict) else None
    if not probe:
        return None
    for s in probe.get("set") or []:
        k, _, v = str(s).partition("=")
        if k.strip() == "data.dataset":
            return v.strip()
    if probe.get("config"):
        return _dotted(_yaml(probe["config"]), "data.dataset")
    return None


def point_entries(sweep_dir: str, row: dict, spec: dict, base_cfg: dict | None) -> list[dict]:
    """The cell entries of one results.csv row: a key (arch, family, aug, epochs, tta, seed), a column, a
    value (None unless finished) and the status."""
    run_dir = os.path.join(sweep_dir, row["run_dir"]) if row.get("run_dir") else None
    cfg = _yaml(os.path.join(run_dir, "config.yaml")) if run_dir else None

    def field(key):  # a grid column, else the run's resolved config, else the spec's base config
        if row.get(key, "") != "":
            return yaml.safe_load(row[key])
        v = _dotted(cfg, key)
        return v if v is not None else _dotted(base_cfg, key)

    arch = row.get("arch") or field("model.arch") or "?"
    key = {"arch": arch, "family": _family(arch), "aug": _bool(field("aug.enabled")), "epochs": int(row["epochs"]),
           "seed": field("train.seed"), "tta": False}
    probe = bool(row.get("probe_dir"))
    probe_cfg = _yaml(os.path.join(sweep_dir, row["probe_dir"], "config.yaml")) if probe else None
    column = (_dotted(probe_cfg, "data.dataset") or _probe_dataset(spec) if probe else None) \
        or field("data.dataset") or "?"
    status = row.get("status") or "pending"
    measured = row.get("probe_top1") if probe else row.get("test_top1")
    value = float(measured) if status == "finished" and measured not in (None, "") else None
    if value is None and status == "finished":
        status = "failed"                         # finished without a score: never shown as a number
    base = {"point": row.get("name", ""), "status": status if value is None else "finished"}
    out = [{**base, "key": key, "column": column, "value": value}]
    summary = _json(os.path.join(sweep_dir, row["probe_dir"] if probe else row["run_dir"], "summary.json")) \
        if value is not None else None
    if summary:
        for extra, k2, col in (("tta_top1", {"tta": True}, column), ("real_top1", {}, "real"),
                               ("tta_real_top1", {"tta": True}, "real")):
            if summary.get(extra) is not None:
                out.append({**base, "key": {**key, **k2}, "column": col, "value": float(summary[extra])})
    return out


# --- cells ---------------------------------------------------------------------------------------------

def _matches(match: dict, key: dict) -> bool:
    return all(key.get(k) == v for k, v in match.items())


def _own_label(key: dict) -> str:
    aug = {True: " + DA", False: "", None: ""}[key["aug"]]
    return f"{key['arch']}{aug} (@{key['epochs']} E)" + (" + TTA" if key["tta"] else "")


def cell_stats(values: list[float], cited: tuple | None, failed: dict) -> dict:
    n = len(values)
    c = {"n": n, "values": values, "not_finished": failed}
    if n:
        c["mean"] = statistics.fmean(values)
        c["std"] = statistics.stdev(values) if n >= 2 else None
    if cited is not None:
        c["cited"], c["cited_std"] = cited
        if n:
            c["diff"] = c["mean"] - cited[0]
            c["within"] = None if c["std"] is None else abs(c["diff"]) <= 2 * c["std"]
    return c


def build_report(sweep_dir: str, table: Table) -> dict:
    rows, spec = read_sweep(sweep_dir)
    base_cfg = _yaml(spec["base"]) if spec.get("base") else None
    entries = [e for r in rows for e in point_entries(sweep_dir, r, spec, base_cfg)]
    order, labels = [], {}
    for e in entries:
        paper_row = next((r for r in table.rows if _matches(r.match, e["key"])), None)
        label = paper_row.label if paper_row else _own_label(e["key"])
        e["row"] = label
        if label not in labels:
            labels[label] = paper_row
    # the paper's rows first, in its order, then our own
    order = [r.label for r in table.rows if r.label in labels] + [lb for lb in labels if labels[lb] is None]
    columns = [c for c in table.columns if any(e["column"] == c for e in entries)]
    columns += sorted({e["column"] for e in entries} - set(columns))
    cells = {}
    for label in order:
        for col in columns:
            es = [e for e in entries if e["row"] == label and e["column"] == col]
            if not es:
                continue
            failed: dict = {}
            for e in es:
                if e["value"] is None:
                    failed.setdefault(e["status"], []).append(e["point"])
            pr = labels[label]
            cells.setdefault(label, {})[col] = cell_stats(
                [e["value"] for e in es if e["value"] is not None], pr.values.get(col) if pr else None, failed)
    return {"sweep_dir": os.path.abspath(sweep_dir), "against": table.key, "title": table.title,
            "source": table.source, "rows": order, "columns": columns, "cells": cells,
            "spread_rule": "the cited number lies within our mean ± 2 sample std (n >= 2)",
            "claim": claim(sweep_dir, rows, spec)}


# --- the claim block -------------------------------------------------------------------------------------

def _commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown (mlpscale is not installed from a git checkout)"
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown (git is not available)"


def claim(sweep_dir: str, rows: list[dict], spec: dict) -> dict:
    summaries, seen = [], set()
    for r in rows:
        for k in ("run_dir", "probe_dir"):
            d = r.get(k)
            if d and d not in seen:
                seen.add(d)
                s = _json(os.path.join(sweep_dir, d, "summary.json"))
                if s:
                    summaries.append(s)
    devices: dict = {}
    seconds = gpu_s = 0.0
    versions = set()
    for s in summaries:
        world = int(s.get("world_size") or 1)
        dev = str(s.get("device") or "unknown")
        devices[dev] = max(devices.get(dev, 0), world)
        el = float(s.get("elapsed_s") or 0.0)
        seconds += el
        if "cpu" not in dev.lower():
            gpu_s += el * world
        if s.get("versions"):
            versions.add(json.dumps(s["versions"], sort_keys=True))
    recorded = [json.loads(v) for v in sorted(versions)]
    spec_file = spec.get("spec_file") or "SPEC.yaml"
    cwd = spec.get("working_dir")
    commands = ([f"cd {cwd}"] if cwd else []) + [
        f"mlpscale-sweep {spec_file} --out {os.path.abspath(sweep_dir)}",
        "mlpscale-report " + " ".join(sys.argv[1:]) if sys.argv[1:] and "report" in os.path.basename(sys.argv[0])
        else f"mlpscale-report {os.path.abspath(sweep_dir)}"]
    return {
        "hardware": [{"device": d, "count": n} for d, n in sorted(devices.items())] or "no finished run recorded it",
        "runs_measured": len(summaries),
        "run_time_h": seconds / 3600, "gpu_hours": gpu_s / 3600,
        "versions": recorded if recorded else [{**software_versions(), "note": "this environment (the runs did not "
                                                                           "record theirs)"}],
        "commands": commands,
        "commit": _commit(),
    }


# --- output ---------------------------------------------------------------------------------------------

def _fmt_cell(c: dict) -> str:
    if not c["n"]:
        return "; ".join(f"{len(v)} {k}" for k, v in c["not_finished"].items())
    std = f" ± {c['std']:.2f}" if c["std"] is not None else ""
    text = f"{c['mean']:.2f}{std} (n={c['n']}"
    text += "".join(f", {len(v)} {k}" for k, v in c["not_finished"].items()) + ")"
    if "cited" in c:
        cited = f"{c['cited']:g}" + (f" ± {c['cited_std']:g}" if c["cited_std"] is not None else "")
        verdict = {True: "within", False: "outside", None: "n/a"}[c["within"]]
        text += f" vs {cited}: {c['diff']:+.2f}, {verdict}"
    return text


def to_markdown(rep: dict) -> str:
    lines = [f"# {rep['title']}", "",
             f"Ours: top-1 % as mean ± sample std over seeds (n finished; missing or failed runs counted beside n, "
             f"never averaged), then the cited number (source: {rep['source']}), the difference ours - cited, and "
             f"whether {rep['spread_rule']}.", "",
             "| row | " + " | ".join(rep["columns"]) + " |", "|---|" + "---|" * len(rep["columns"])]
    for label in rep["rows"]:
        cells = rep["cells"].get(label, {})
        lines.append(f"| {label} | " + " | ".join(_fmt_cell(cells[c]) if c in cells else "—"
                                                 for c in rep["columns"]) + " |")
    cl = rep["claim"]
    hw = cl["hardware"] if isinstance(cl["hardware"], str) else \
        ", ".join(f"{h['count']} x {h['device']}" for h in cl["hardware"])
    vers = "; ".join(", ".join(f"{k} {v}" for k, v in v.items()) for v in cl["versions"])
    lines += ["", "## Claim", "", "```",
              f"hardware:  {hw}",
              f"run time:  {cl['run_time_h']:.3f} h ({cl['run_time_h'] * 3600:.0f} s) summed over "
              f"{cl['runs_measured']} runs; {cl['gpu_hours']:.3f} GPU-hours",
              f"versions:  {vers}",
              f"commit:    {cl['commit']}",
              "commands:"] + [f"  {c}" for c in cl["commands"]] + ["```", ""]
    return "\n".join(lines)


def _default_against(spec: dict) -> str:
    return "table2" if isinstance(spec.get("measure"), dict) else "table1"


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser(
        "mlpscale-report",
        "Set a sweep of a paper table beside the paper's numbers: seeds averaged, with a claim block of "
        "hardware, time and versions.",
        "mlpscale-report runs/sweeps/table1_cifar10",
        "Reads what mlpscale-sweep wrote and changes nothing there; writes report.md (a Markdown table to paste) "
        "and report.json. Per cell: our mean +- standard deviation over seeds (n shown, with missing or failed "
        "runs counted), the cited number, the difference and whether the cited number lies within our spread.")
    p.add_argument("sweep_dir", metavar="SWEEP_DIR", help="a folder mlpscale-sweep wrote (holds results.csv)")
    p.add_argument("--against", choices=sorted(TABLES), default=None,
                   help="the published table to compare with (default: table2 for fine-tuning sweeps, else table1)")
    cli.add(p, "--out", "report.md and report.json go there (default: SWEEP_DIR)")
    return p


@cli_entry
def main(argv=None):
    a = build_parser().parse_args(argv)
    if not os.path.isdir(a.sweep_dir):
        raise UserError(f"{a.sweep_dir} is not a folder: pass the folder mlpscale-sweep wrote (its --out)")
    _, spec = read_sweep(a.sweep_dir)
    rep = build_report(a.sweep_dir, TABLES[a.against or _default_against(spec)])
    out = a.out or a.sweep_dir
    os.makedirs(out, exist_ok=True)
    md = to_markdown(rep)
    write_text_atomic(os.path.join(out, "report.md"), md)
    write_json_atomic(os.path.join(out, "report.json"), rep)
    print(md)
    print(f"wrote {os.path.join(out, 'report.md')} and report.json")


if __name__ == "__main__":
    main()
