"""Markdown rows for benchmarks/README.md from results files, so no figure is copied by hand.

  python -m mlpscale.bench.table benchmarks/results/*.json
"""
from __future__ import annotations

import json
import os
import sys

from .schema import validate


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


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
                out.append(f"| {e['suite']} | {e['name']} | {_fmt(e['value'])} {e['unit']} | | | {hw} | "
                           f"`{doc['command']}` | {os.path.basename(path)} |")
            continue
        ours = e["variants"].get(e["ours"], {})
        for base, r in e["ratios"].items():
            b = e["variants"][base]
            pr = e.get("paired_ratios", {}).get(base)
            spread = f" (same-round {pr['min']:.2f}-{pr['max']:.2f})" if pr else ""
            out.append(f"| {e['suite']} | {e['name']} | {e['ours']} {_fmt(ours['median'])} "
                       f"[{_fmt(ours['min'])}-{_fmt(ours['max'])}] | {base} {_fmt(b['median'])} "
                       f"[{_fmt(b['min'])}-{_fmt(b['max'])}] | **{r:.2f}x**{spread} | {hw} | `{doc['command']}` | "
                       f"{os.path.basename(path)} |")
    return out


def main(argv=None):
    paths = sys.argv[1:] if argv is None else argv
    print("| suite | figure | ours median [min-max] | baseline median [min-max] | ratio | hardware | command | file |")
    print("|---|---|---|---|---|---|---|---|")
    for p in paths:
        for r in rows(p):
            print(r)


if __name__ == "__main__":
    main()
