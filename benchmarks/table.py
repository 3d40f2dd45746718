"""Markdown rows for benchmarks/README.md from results files, so no figure is copied by hand.

  python -m mlpscale.bench.table benchmarks/results/*.json

One row per baseline of a comparison (and one per single figure). Beside every ratio stands the
pipeline efficiency (end to end / bare step, or TTA / bare forward) of ours and of the baseline
where the suite measures it ("-" where the figure has no pipeline: a step, a loader alone).
"""
from __future__ import annotations

import json
import os
import re
import sys

from .schema import validate

HEADER = ("| suite | figure | ours median [min-max] | baseline median [min-max] | ratio | pipeline efficiency "
          "ours / baseline | timer covers | hardware | command | file |")


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _efficiency(e: dict) -> str:
    eff = e.get("pipeline_efficiency") or {}
    if not eff:
        if "tier_efficiency" in e:
            return f"tiered / device-resident {e['tier_efficiency']:.2f}"
        return "-"
    r = e.get("pipeline_efficiency_rounds", {})

    def one(k):
        if k not in eff:
            return "n/a"
        rr = r.get(k)
        return f"{eff[k]:.2f}" + (f" ({rr['min']:.2f}-{rr['max']:.2f})" if rr and rr["min"] != rr["max"] else "")

    return f"{one('ours')} / {one('baseline')}"


def _convert_row(doc: dict, path: str) -> str:
    """The converter's own benchmark (benchmarks/bench_convert.py): whole commands, or (older files)
    both converters timed inside one process."""
    w, h = doc["image_sizes"][0]
    cmd = re.sub(r"\S*\.venv/bin/python", "python", doc["command"])
    host = doc.get("versions", {}).get("cpu") or ""
    hw = f"{host} x{doc['workers']} threads" if host else f"{doc['workers']} workers"
    if "ours_s" in doc:  # whole commands
        o, b, sr = doc["ours_s"], doc["baseline_s"], doc["same_round_ratios"]
        return (f"| convert | {doc['images']:,} generated ImageNet-sized JPEGs ({w}x{h} ...) -> {doc['res']}px raw, "
                f"train + val, {doc['workers']} workers, whole commands | `mlpscale-convert folder` "
                f"{doc['ours_img_s']:.1f} img/s ({o['median']:.2f} s [{o['min']:.2f}-{o['max']:.2f}]; first image "
                f"after {doc['ours_startup_s']['median']:.2f} s; {doc['ours_cpu_ms_per_img']:.2f} CPU ms/img) | the "
                f"authors' converter, one process per split {doc['baseline_img_s']:.1f} img/s ({b['median']:.2f} s "
                f"[{b['min']:.1f}-{b['max']:.1f}]; {doc['baseline_cpu_ms_per_img']:.2f} CPU ms/img) | "
                f"**{doc['ratio']:.2f}x** (same-round {sr['min']:.2f}-{sr['max']:.2f}), {doc['cpu_ratio']:.2f}x in "
                f"CPU time | - | {doc['timer']} | {hw} | `{cmd}` | {os.path.basename(path)} |")
    o, b = doc["ours_s_runs"], doc["baseline_s_runs"]
    rate = [doc["images"] / t for t in o], [doc["images"] / t for t in b]
    return (f"| convert (in-process, superseded by a whole-command row) | {doc['images']:,} generated ImageNet-sized "
            f"JPEGs ({w}x{h} ...) -> {doc['res']}px raw, {doc['workers']} workers | ours {_fmt(doc['ours_img_s'])} "
            f"img/s (runs {_fmt(min(rate[0]))}-{_fmt(max(rate[0]))}; {doc['ours_cpu_ms_per_img']:.2f} CPU ms/img) | "
            f"the authors' recipe (full decode + PIL + FFCV writer) {doc['baseline_img_s']:,.0f} img/s ({_fmt(min(rate[1]))}-{_fmt(max(rate[1]))}; "
            f"{doc['baseline_cpu_ms_per_img']:.2f} CPU ms/img) | **{doc['ratio']:.2f}x** wall, {doc['cpu_ratio']:.2f}x "
            f"CPU time | - | {doc['timer']} | {hw} | `{cmd}` | {os.path.basename(path)} |")


def rows(path: str) -> list[str]:
    with open(path) as f:
        doc = json.load(f)
    if str(doc.get("benchmark", "")).startswith("convert"):
        return [_convert_row(doc, path)]
    if doc.get("schema") != "mlpscale-bench/1":
        return []
    validate(doc)
    env = doc["env"]
    hw = env.get("gpu") or f"{env.get('host_cpu')} x{env.get('affinity_cpus')} threads"
    out = []
    for e in doc["results"]:
        if "variants" not in e:
            if "value" in e:
                spread = f" [{_fmt(e['min'])}-{_fmt(e['max'])}]" if "min" in e else ""
                out.append(f"| {e['suite']} | {e['name']} | {_fmt(e['value'])} {e['unit']}{spread} | | | - | "
                           f"{e.get('timer', '')} | {hw} | `{doc['command']}` | {os.path.basename(path)} |")
            continue
        ours = e["variants"].get(e["ours"], {})
        eff = _efficiency(e)
        for base, r in e["ratios"].items():
            b = e["variants"][base]
            pr = e.get("paired_ratios", {}).get(base)
            spread = f" (same-round {pr['min']:.2f}-{pr['max']:.2f})" if pr else ""
            out.append(f"| {e['suite']} | {e['name']} | {e['ours']} {_fmt(ours['median'])} "
                       f"[{_fmt(ours['min'])}-{_fmt(ours['max'])}] | {base} {_fmt(b['median'])} "
                       f"[{_fmt(b['min'])}-{_fmt(b['max'])}] | **{r:.2f}x**{spread} | {eff} | {e['timer']} | {hw} | "
                       f"`{doc['command']}` | {os.path.basename(path)} |")
        if not e["ratios"] and "median" in ours:  # no baseline ran here (e.g. FFCV missing): ours alone
            out.append(f"| {e['suite']} | {e['name']} | {e['ours']} {_fmt(ours['median'])} "
                       f"[{_fmt(ours['min'])}-{_fmt(ours['max'])}] | (no baseline ran) | - | {eff} | {e['timer']} | "
                       f"{hw} | `{doc['command']}` | {os.path.basename(path)} |")
    return out


def main(argv=None):
    paths = sys.argv[1:] if argv is None else argv
    print(HEADER)
    print("|" + "---|" * (HEADER.count("|") - 1))
    for p in paths:
        for r in rows(p):
            print(r)


if __name__ == "__main__":
    main()
