"""The results file of `python -m benchmarks --json` (and of benchmarks/gpu_check.py), and its validator.

    {"schema": "mlpscale-bench/1", "command": str, "quick": bool, "env": {...}, "results": [entry, ...]}

An entry is one of
  * a comparison: suite, name, unit, timer, config, reps, warmup, ours, variants {name: {role, what,
    median, min, max, iqr, values} or {role, what, skipped}}, ratios {baseline: ours/baseline}, setup_s;
    optionally (e2e, eval) pipeline_efficiency {recipe: end-to-end / bare rate, the median of same-round
    ratios} with pipeline_efficiency_rounds {recipe: {median, min, max, values, of_medians}}, and
    (e2e) processes {variant: [{img_per_s, torch_threads, setup_s, pid, ...} per repetition]};
  * {"suite", "skipped": why} - the suite could not run here (e.g. FFCV missing);
  * {"suite", "error": message} - the suite crashed (the CLI then exits non-zero);
  * {"suite", "external": {...}, "command"} - a figure produced by another benchmark script (convert);
  * {"suite", "name", "value", "unit", ...} - a single measured figure (gpu_check: matmul peak, ...).
"""
from __future__ import annotations

SCHEMA = "mlpscale-bench/1"
ENV_KEYS = ("date_utc", "python", "torch", "host_cpu", "cpu_count")
COMPARISON_KEYS = {"suite": str, "name": str, "unit": str, "timer": str, "config": dict, "reps": int,
                   "warmup": int, "variants": dict, "ratios": dict, "setup_s": dict}
STATS = ("median", "min", "max", "iqr")
ROLES = ("ours", "baseline", "info")


class SchemaError(ValueError):
    pass


def _need(cond: bool, msg: str) -> None:
    if not cond:
        raise SchemaError(msg)


def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x == x  # not NaN


def validate_entry(e: dict, where: str = "entry") -> None:
    _need(isinstance(e, dict) and isinstance(e.get("suite"), str), f"{where}: needs a 'suite' string")
    if "skipped" in e:
        _need(isinstance(e["skipped"], str) and e["skipped"], f"{where}: 'skipped' must say why")
        return
    if "error" in e:
        _need(isinstance(e["error"], str), f"{where}: 'error' must be a message")
        return
    if "external" in e:
        _need(isinstance(e["external"], dict), f"{where}: 'external' must be an object")
        return
    if "value" in e:
        _need(_num(e["value"]) and isinstance(e.get("unit"), str) and isinstance(e.get("name"), str),
              f"{where}: a single figure needs name, numeric value and unit")
        return
    for k, tp in COMPARISON_KEYS.items():
        _need(isinstance(e.get(k), tp), f"{where}: '{k}' must be {tp.__name__}")
    _need(e["reps"] >= 1, f"{where}: reps must be >= 1")
    ours = e.get("ours")
    _need(ours is None or ours in e["variants"], f"{where}: 'ours' must name a variant")
    for name, v in e["variants"].items():
        w = f"{where}.variants.{name}"
        _need(v.get("role") in ROLES, f"{w}: role must be one of {ROLES}")
        if "skipped" in v:
            continue
        for k in STATS:
            _need(_num(v.get(k)), f"{w}: '{k}' must be a number")
        _need(v["min"] <= v["median"] <= v["max"], f"{w}: min <= median <= max violated")
        vals = v.get("values")
        _need(isinstance(vals, list) and len(vals) == e["reps"] and all(_num(x) for x in vals),
              f"{w}: 'values' must hold one number per repetition")
    for name, r in e["ratios"].items():
        _need(name in e["variants"] and e["variants"][name]["role"] == "baseline", f"{where}: ratio for unknown "
                                                                                    f"baseline '{name}'")
        _need(_num(r) and r > 0, f"{where}: ratio '{name}' must be a positive number")
        o, b = e["variants"][ours]["median"], e["variants"][name]["median"]
        _need(abs(r - o / b) <= 1e-6 * max(1.0, r), f"{where}: ratio '{name}' is not ours/baseline medians")
    _validate_efficiency(e, where)


def _validate_efficiency(e: dict, where: str) -> None:
    eff = e.get("pipeline_efficiency")
    if eff is None:
        return
    _need(isinstance(eff, dict) and all(_num(v) and v > 0 for v in eff.values()),
          f"{where}: 'pipeline_efficiency' must map recipes to positive numbers")
    rounds = e.get("pipeline_efficiency_rounds", {})
    _need(isinstance(rounds, dict) and set(rounds) == set(eff),
          f"{where}: 'pipeline_efficiency_rounds' must have the recipes of 'pipeline_efficiency'")
    for k, r in rounds.items():
        _need(all(_num(r.get(x)) for x in ("median", "min", "max")) and r["min"] <= r["median"] <= r["max"],
              f"{where}: pipeline_efficiency_rounds.{k} needs min <= median <= max")
        _need(abs(r["median"] - eff[k]) <= 1e-9 * max(1.0, eff[k]),
              f"{where}: pipeline_efficiency.{k} is not the median of its rounds")
    procs = e.get("processes", {})
    _need(isinstance(procs, dict) and all(isinstance(v, list) for v in procs.values()),
          f"{where}: 'processes' must map variants to lists (one object per repetition)")


def validate(doc: dict) -> None:
    """Raise SchemaError naming the first problem; return None when `doc` is a valid results file."""
    _need(isinstance(doc, dict), "results file must be a JSON object")
    _need(doc.get("schema") == SCHEMA, f"'schema' must be '{SCHEMA}'")
    _need(isinstance(doc.get("command"), str), "'command' must be the command line that produced the file")
    _need(isinstance(doc.get("env"), dict), "'env' must be an object")
    for k in ENV_KEYS:
        _need(k in doc["env"], f"env.{k} missing")
    _need(isinstance(doc.get("results"), list), "'results' must be a list")
    for i, e in enumerate(doc["results"]):
        validate_entry(e, f"results[{i}]")
