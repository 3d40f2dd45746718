"""Markdown rows for benchmarks/README.md from results files, so no figure is copied by hand.

  python -m mlpscale.bench.table benchmarks/results/*.json

One row per baseline of a comparison (and one per single figure). Beside every ratio stands the
pipeline efficiency (end to end / bare step, or TTA / bare forward) of ours and of the baseline
where the suite measures it ("-" where the figure has no pipeline: a step, a loader alone).
"""
from __future__ import annotations

import json
import os
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


def rows(path: str) -> list[str]:
    with open(path) as f:
        doc = json.load(f)
    if doc.get("schema") != "mlpscale-bench/1":
        return []
    validate(doc)
    env = doc["env"]
    hw = env.get("gpu") or f"{env.get('host_cpu')} x{env.get('affinity_cpus')} threads"
    out = []
    for e in doc["results"]:
        if "variants" not in e:
            if "value" in e:
                out.append(f"| {e['suite']} | {e['name']} | {_fmt(e['value'])} {e['unit']} | | | - | "
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
