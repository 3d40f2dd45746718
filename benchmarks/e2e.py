"""The e2e suite: each recipe end to end and as a bare step, every figure from its own process.

What a user runs is a process: `mlpscale-train` (ours) or the authors' `train.py` (the baseline).
Timing both inside one benchmark process hides what only a fresh process shows - e.g. a thread count
that importing a library changes only in a fresh process. So each variant below is a separate Python process
(`python -m benchmarks.worker RECIPE MODE`, see worker.py) that warms up and times its own
steady-state window; the parent only alternates them over repeats and collects medians:

    mlpscale         ours end to end: train.run(cfg) on the beton (resident), max_steps = warm-up + N
    mlpscale_bare    ours' bare step: Trainer.step on one prepared batch (no data, no augmentation)
    reference        the authors' recipe end to end: FFCV CPU crop/flip/MixUp loader + fp32 eager step
    reference_bare   its bare step on one float batch in memory
    mlpscale_stream  (info, not --quick) ours streaming the beton with FFCV (data.resident=off)

Pipeline efficiency = end-to-end img/s / bare-step img/s of the same recipe: the share of the
step's speed the whole training loop keeps. Each round runs a recipe's two processes back to back,
so the headline figure is the median over rounds of those same-round ratios (drift of a shared
machine cancels); the ratio of the medians is reported beside it. On a CPU the bare steps of both
recipes are the same fp32 GEMMs, so the efficiencies are where the recipes differ.

`gate_failures` is the CI check: ours' efficiency below `--min-efficiency` (0.7 with --quick) is a
regression of the data path (a thread count, a host sync, a copy), not noise.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

from mlpscale.layout import beton_path

from . import data as bdata
from .common import REPO, Sizes, beton_root
from .timing import Comparison, Variant, compare

# name: (recipe, mode, resident, role, what)
PROCESSES = {
    "mlpscale": ("ours", "e2e", "on", "ours",
                 "mlpscale-train's code (train.run) on the beton, read once into memory: its own loop, "
                 "loader, device augmentation (on the prefetch thread when train.prefetch resolves on; `auto` "
                 "keeps it inline on a CPU whose cores torch already uses), step"),
    "mlpscale_bare": ("ours", "bare", "on", "info",
                      "Trainer.step on one prepared batch: model + loss + backward + LION, no data"),
    "reference": ("reference", "e2e", "", "baseline",
                  "the authors' recipe: FFCV Loader with per-image CPU RandomResizedCrop + flip + "
                  "ImageMixup/LabelMixup -> fp32 eager CHW MLP -> mixed CE -> Python LION (+ their "
                  "per-step top-k accuracy and loss.item())"),
    "reference_bare": ("reference", "bare", "", "info",
                       "the reference step on one float batch in memory, no loader"),
    "mlpscale_stream": ("ours", "e2e", "off", "info",
                        "mlpscale-train's code with data.resident=off: FFCV streams uint8 batches"),
}
PAIRS = {"ours": ("mlpscale", "mlpscale_bare"), "baseline": ("reference", "reference_bare"),
         "ours_stream": ("mlpscale_stream", "mlpscale_bare")}


def worker_env() -> dict:
    """The environment of a worker process: this checkout first on PYTHONPATH, plus any folders this
    process added to sys.path (e.g. wheels the GPU check unpacked), so the child imports the same code."""
    base = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    extra = [p for p in sys.path if p and os.path.isdir(p)
             and not any(os.path.realpath(p).startswith(b) for b in base)]
    parts = [REPO] + extra + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    seen, path = set(), []
    for p in parts:
        if p not in seen:
            seen.add(p)
            path.append(p)
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def run_worker(recipe: str, mode: str, s, root: str, dataset: str, resident: str = "on", inject: str = "",
               timeout: float = 1800.0) -> dict:
    """Run one worker process to completion; returns its JSON result (raises with its stderr on failure)."""
    with tempfile.TemporaryDirectory(prefix="mlpscale-bench-proc-") as d:
        out = os.path.join(d, "result.json")
        cmd = [sys.executable, "-m", "benchmarks.worker", recipe, mode, "--json", out, "--root", root,
               "--dataset", dataset, "--arch", s.arch, "--res", str(s.res), "--batch", str(s.batch),
               "--classes", str(s.num_classes), "--precision", s.prec(), "--compile", s.compile,
               "--device", str(s.dev()), "--warmup", str(s.e2e_warmup), "--steps", str(s.e2e_steps)]
        if resident:
            cmd += ["--resident", resident]
        if inject:
            cmd += ["--inject", inject]
        env = worker_env()
        env.pop("MLPSCALE_BENCH_INJECT", None)  # only --inject reaches a worker, and only ours' e2e one
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"worker `{recipe} {mode}` failed (exit {proc.returncode}):\n"
                               f"{(proc.stderr or proc.stdout)[-3000:]}")
        with open(out) as f:
            return json.load(f)


def paired_order(r: int, live: list) -> list:
    """Round r: a recipe's e2e and bare processes back to back, recipes rotated, pair order alternated."""
    by_name = {v.name: v for v in live}
    groups = [[by_name[n] for n in pair if n in by_name] for pair in (PAIRS["ours"], PAIRS["baseline"])]
    groups += [[v] for v in live if v.name == "mlpscale_stream"]
    groups = [g for g in groups if g]
    groups = groups[r % len(groups):] + groups[:r % len(groups)] if groups else []
    return [v for g in groups for v in (g if r % 2 == 0 else g[::-1])]


def efficiency(e2e: list[float], bare: list[float]) -> dict:
    rounds = [a / b for a, b in zip(e2e, bare)]
    return {"median": statistics.median(rounds), "min": min(rounds), "max": max(rounds), "values": rounds,
            "of_medians": statistics.median(e2e) / statistics.median(bare)}


def e2e_comparison(s, root: str, log=print, inject: str = "", reference: bool | None = None,
                   stream: bool | None = None) -> dict:
    """beton -> trained steps, each recipe end to end and as a bare step, each variant its own process.

    `reference` / `stream` default to whether FFCV loads here (and, for stream, s.e2e_stream)."""
    dev = s.dev()
    root = os.path.join(root, "raw")
    name = bdata.make_dataset(root, s.n_train, s.n_test, s.res, s.num_classes, "raw")
    per_epoch = s.n_train // s.batch
    if s.e2e_warmup + s.e2e_steps > per_epoch:
        from mlpscale.errors import UserError

        raise UserError(f"--e2e-warmup {s.e2e_warmup} + --e2e-steps {s.e2e_steps} is more than one epoch "
                        f"({per_epoch} steps of batch {s.batch}); raise --n-train")
    ffcv_why = bdata.ffcv_status()
    if reference is None:
        reference = ffcv_why is None
    if stream is None:
        stream = s.e2e_stream and ffcv_why is None
    procs: dict[str, list] = {}

    def variant(vname: str) -> Variant:
        recipe, mode, resident, role, what = PROCESSES[vname]
        if recipe == "reference" and not s.e2e_baseline:
            return Variant(vname, lambda: 0, role, what, skipped="not requested (--no-e2e-baseline)")
        if (recipe == "reference" and mode == "e2e" and not reference) or (vname == "mlpscale_stream" and not stream):
            why = f"FFCV cannot load here ({ffcv_why})" if ffcv_why else "not requested"
            return Variant(vname, lambda: 0, role, what, skipped=why)

        def fn() -> float:
            res = run_worker(recipe, mode, s, root, name, resident, inject if vname == "mlpscale" else "")
            procs.setdefault(vname, []).append(
                {k: res.get(k) for k in ("img_per_s", "seconds", "pid", "torch_threads", "torch_threads_at_start",
                                         "setup_s", "process_s", "outside_step_share", "loader_share",
                                         "prepare_share", "prefetch", "load_avg_1m")})
            if log:
                extra = "".join(f", {k.replace('_share', '')} {_pct(res[k])}" for k in ("loader_share", "prepare_share")
                                if res.get(k) is not None)
                log(f"  {vname:<16} {res['img_per_s']:>10,.1f} img/s  (threads {res.get('torch_threads')}, "
                    f"setup {res.get('setup_s', 0):.1f} s, outside step {_pct(res.get('outside_step_share'))}"
                    f"{extra}; load {res.get('load_avg_1m')})")
            return res["img_per_s"]

        return Variant(vname, fn, role, what, self_timed=True)

    names = ["mlpscale", "mlpscale_bare", "reference", "reference_bare", "mlpscale_stream"]
    variants = [variant(n) for n in names]
    cmp = Comparison("e2e", f"{s.arch} {s.res}px batch {s.batch} n={s.n_train} on {dev.type}", "img/s",
                     f"each variant a separate process: {s.e2e_steps} optimizer steps after {s.e2e_warmup} "
                     f"warm-up steps, closed by a device sync (e2e: batch fetching, augmentation and the "
                     f"loop included)",
                     {"arch": s.arch, "res": s.res, "batch": s.batch, "num_classes": s.num_classes,
                      "n_train": s.n_train, "format": "raw", "precision": s.prec(), "compile": s.compile,
                      "device": str(dev), "steps": s.e2e_steps, "warmup_steps": s.e2e_warmup,
                      "ffcv_threads": len(os.sched_getaffinity(0)), "inject": inject or None,
                      "beton": beton_path(root, name, "train", s.res)},
                     variants, s.reps, 0)
    res = compare(cmp, dev, None, order=paired_order)
    out = res.to_json()
    vals = {k: v["values"] for k, v in out["variants"].items() if "values" in v}
    eff = {key: efficiency(vals[a], vals[b]) for key, (a, b) in PAIRS.items() if a in vals and b in vals}
    out["pipeline_efficiency"] = {k: v["median"] for k, v in eff.items()}
    out["pipeline_efficiency_rounds"] = eff
    if "mlpscale_bare" in vals and "reference_bare" in vals:
        out["bare_ratio"] = statistics.median(vals["mlpscale_bare"]) / statistics.median(vals["reference_bare"])
    out["processes"] = procs
    if log:
        from .timing import format_comparison

        log(format_comparison(out))
        log(format_efficiency(out))
    return out


def _pct(x) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def format_efficiency(e: dict) -> str:
    parts = []
    for key, label in (("ours", "ours"), ("baseline", "baseline"), ("ours_stream", "ours streaming")):
        r = e.get("pipeline_efficiency_rounds", {}).get(key)
        if r:
            parts.append(f"{label} {r['median']:.2f} (rounds {r['min']:.2f}-{r['max']:.2f})")
    line = "  pipeline efficiency (end to end / bare step): " + (", ".join(parts) or "n/a")
    if "bare_ratio" in e:
        line += f"; bare step ours / reference = {e['bare_ratio']:.2f}x"
    return line


def gate_failures(results: list[dict], min_efficiency: float | None) -> list[str]:
    """One sentence per e2e figure whose ours pipeline efficiency is below `min_efficiency`."""
    if not min_efficiency:
        return []
    out = []
    for e in results:
        eff = e.get("pipeline_efficiency", {}).get("ours") if isinstance(e, dict) else None
        if e.get("suite") != "e2e" or eff is None:
            continue
        if eff < min_efficiency:
            v = e["variants"]
            out.append(f"pipeline efficiency of ours is {eff:.2f} < {min_efficiency:.2f} in '{e['name']}' "
                       f"(end to end {v['mlpscale']['median']:,.0f} img/s vs bare step "
                       f"{v['mlpscale_bare']['median']:,.0f} img/s): the training loop's data path regressed "
                       f"(thread count, host sync, copy?); profile `python -m benchmarks.worker ours e2e`")
    return out


def suite_e2e(s: Sizes, log=print, inject: str = "") -> list[dict]:
    with beton_root(s) as root:
        return [e2e_comparison(s.for_e2e(), root, log, inject=inject)]
