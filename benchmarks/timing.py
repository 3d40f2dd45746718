"""Side-by-side timing: ours and its baselines, alternately, in one process.

A "variant" is a zero-argument callable that does one repetition of work (e.g. 5 train steps)
and returns how many items (images) it processed; a `self_timed` variant instead returns the rate
it measured itself (a separate process that warmed up and timed its own steady-state window).
`compare()` warms every variant up, then runs them in turn, rotating the order each round
(A B C, B C A, C A B, ...; or another `order`), so slow drift of
a shared machine (other jobs, thermal) hits all variants alike. The timer covers exactly one
call, closed by `sync()` (CUDA: torch.cuda.synchronize), and nothing else.

Throughput per repetition = items / seconds; a variant is summarised by the median over
repetitions with its min, max and inter-quartile range; ratios are ours' median over each
baseline's median (so > 1 means ours is faster); the same-round ratios (ours over the baseline
timed right next to it) are kept too, since they cancel drift that the medians only dampen.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def sync(device=None) -> None:
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize()


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    if len(s) == 1:
        return s[0]
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(values: list[float]) -> dict:
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "iqr": quantile(values, 0.75) - quantile(values, 0.25),
        "values": [float(v) for v in values],
    }


@dataclass
class Variant:
    name: str
    fn: Callable[[], int]           # one repetition; returns the number of items processed
    role: str = "baseline"          # "ours" or "baseline"
    what: str = ""                  # one line: what this variant does
    skipped: str = ""               # non-empty: why it could not run (e.g. library missing)
    self_timed: bool = False        # fn() returns items/s measured by the callee (warm-up included there)


@dataclass
class Comparison:
    suite: str
    name: str                       # short id of this figure, e.g. "step B_6-Wi_512 b512 32px"
    unit: str
    timer: str                      # what one timed repetition covers
    config: dict
    variants: list[Variant]
    reps: int
    warmup: int
    results: dict = field(default_factory=dict)
    setup_s: dict = field(default_factory=dict)   # untimed one-off costs per variant (read, compile)

    def to_json(self) -> dict:
        ours = next((v.name for v in self.variants if v.role == "ours"), None)
        out = {
            "suite": self.suite, "name": self.name, "unit": self.unit, "timer": self.timer,
            "config": self.config, "reps": self.reps, "warmup": self.warmup, "ours": ours,
            "variants": {}, "ratios": {}, "setup_s": self.setup_s,
        }
        for v in self.variants:
            entry = {"role": v.role, "what": v.what}
            if v.skipped:
                entry["skipped"] = v.skipped
            else:
                entry.update(self.results[v.name])
            out["variants"][v.name] = entry
        out["paired_ratios"] = {}
        if ours is not None and ours in self.results:
            mine = self.results[ours]["values"]
            for v in self.variants:
                if v.role == "baseline" and v.name in self.results:
                    out["ratios"][v.name] = self.results[ours]["median"] / self.results[v.name]["median"]
                    # same-round ratios: robust to slow drift of a shared machine
                    pr = [a / b for a, b in zip(mine, self.results[v.name]["values"])]
                    out["paired_ratios"][v.name] = {"median": statistics.median(pr), "min": min(pr), "max": max(pr)}
        return out


def rotate(r: int, live: list) -> list:
    """Round r's order: A B C, B C A, C A B, ..."""
    return live[r % len(live):] + live[:r % len(live)] if live else []


def compare(cmp: Comparison, device=None, log=print, order=rotate) -> Comparison:
    """Warm up, then time the variants alternately (`order(round, variants)`); fills cmp.results
    (throughput per second)."""
    live = [v for v in cmp.variants if not v.skipped]
    for v in live:
        for _ in range(0 if v.self_timed else cmp.warmup):
            v.fn()
        sync(device)
    per = {v.name: [] for v in live}
    for r in range(cmp.reps):
        for v in order(r, live):
            if v.self_timed:
                per[v.name].append(float(v.fn()))
                continue
            sync(device)
            t0 = time.perf_counter()
            n = v.fn()
            sync(device)
            dt = time.perf_counter() - t0
            per[v.name].append(n / dt)
    cmp.results = {name: summarize(vals) for name, vals in per.items()}
    if log is not None:
        log(format_comparison(cmp.to_json()))
    return cmp


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def format_comparison(d: dict) -> str:
    """Human-readable block: one line per variant (median, spread) and the ratios."""
    lines = [f"[{d['suite']}] {d['name']}  ({d['unit']}; median of {d['reps']} after {d['warmup']} warm-up; "
             f"timer: {d['timer']})"]
    for name, v in d["variants"].items():
        tag = {"ours": "ours", "baseline": "base"}.get(v["role"], "info")
        if "skipped" in v:
            lines.append(f"  {tag} {name:<24} skipped: {v['skipped']}")
        else:
            lines.append(f"  {tag} {name:<24} {_fmt(v['median']):>12}  [min {_fmt(v['min'])}, max {_fmt(v['max'])}, "
                         f"iqr {_fmt(v['iqr'])}]")
    for name, r in d["ratios"].items():
        p = d.get("paired_ratios", {}).get(name)
        extra = f"  (same-round ratios: median {p['median']:.2f}x, range {p['min']:.2f}-{p['max']:.2f}x)" if p else ""
        lines.append(f"  ratio {d['ours']} / {name} = {r:.2f}x{extra}")
    return "\n".join(lines)
