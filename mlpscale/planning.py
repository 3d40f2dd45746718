"""Planning from a fit: `mlpscale-scaling FIT --budget PFLOPS` (or `--gpu-hours H --gpu h100|h200|a5000`) prints
the compute-optimal model size P* and dataset size N* for that budget at the allocation's T, per method of
scaling.json (frontier, surface, IsoFLOP), with intervals from each exponent's 95% interval, and the nearest
model of the study.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np

from .errors import UserError
from .scaling_fits import surface_allocation
from .scaling_plots import _human


GPUS = {"h100": "H100", "h200": "H200", "a5000": "A5000"}   # --gpu -> hardware.PEAK_BF16_TFLOPS key


def budget_from_gpu_hours(hours: float, gpu: str, mfu: float) -> float:
    """Paper PFLOPs (one per multiply-add) a budget of GPU-hours buys at `mfu` of the GPU's bf16 peak (true
    FLOPs count two per multiply-add, hence / 2)."""
    from .hardware import PEAK_BF16_TFLOPS

    return hours * 3600 * PEAK_BF16_TFLOPS[GPUS[gpu]] * 1e12 * mfu / 2 / 1e15


def _pivot(value_at, c: float, c0: float, ci) -> list | None:
    """Interval of a power law's prediction at C from its exponent's interval, pivoting at C0 (the centre of
    the compute it was fitted on, where the prediction is best determined)."""
    return None if not ci else sorted(value_at(c0) * (c / c0) ** e for e in ci)


def plan(r: dict, budget: float) -> dict:
    """Compute-optimal P*, N* at `budget` PFLOPs from scaling.json `r`, for each method that was fitted."""
    t = r["epochs_for_allocation"]
    alloc = r["allocation_frontier"]
    c0 = math.exp(np.mean(np.log([p["compute_pflops"] for p in alloc])))
    out = {}
    fr = r["p_star"], r["n_star"]
    ests = {"frontier": (lambda c: fr[0]["coefficient"]["value"] * c ** fr[0]["exponent"]["value"],
                         lambda c: fr[1]["coefficient"]["value"] * c ** fr[1]["exponent"]["value"],
                         fr[0]["exponent"]["ci95"], fr[1]["exponent"]["ci95"])}
    m = r.get("methods", {})
    s = m.get("surface", {})
    if "p_star_exponent" in s and str(t) in s.get("B_T", {}):
        ests["surface"] = (lambda c: float(surface_allocation(s, [c], t)[0][0]),
                           lambda c: float(surface_allocation(s, [c], t)[1][0]),
                           s["p_star_exponent"]["ci95"], s["n_star_exponent"]["ci95"])
    iso = m.get("isoflop", {})
    if "p_star_exponent" in iso and str(t) in iso.get("intercepts", {}):
        k, e, kap = iso["intercepts"][str(t)], iso["p_star_exponent"]["value"], iso["kappa_pflops"]
        ests["isoflop"] = (lambda c: k * c ** e, lambda c: c / (kap * t * k * c ** e),
                           iso["p_star_exponent"]["ci95"], iso["n_star_exponent"]["ci95"])
    models = r["models"]
    for name, (p_at, n_at, p_ci, n_ci) in ests.items():
        p = p_at(budget)
        zoo = min(models, key=lambda x: abs(math.log(x["params"] / p)))
        out[name] = {"p_star": p, "p_star_ci95": _pivot(p_at, budget, c0, p_ci), "n_star": n_at(budget),
                     "n_star_ci95": _pivot(n_at, budget, c0, n_ci), "nearest_model": zoo["arch"],
                     "nearest_model_params": zoo["params"], "epochs": t}
    return {"budget_pflops": budget, "epochs": t,
            "fitted_compute_pflops": [min(p["compute_pflops"] for p in alloc), max(p["compute_pflops"] for p in alloc)],
            "methods": out}


def _print_plan(pl: dict, source: str) -> None:
    lo, hi = pl["fitted_compute_pflops"]
    print(f"compute-optimal allocation for {pl['budget_pflops']:.4g} PFLOPs at T = {pl['epochs']} epochs "
          f"(from {source}; its runs span {lo:.3g}-{hi:.3g} PFLOPs)")
    if not lo <= pl["budget_pflops"] <= hi:
        print("  note: the budget lies outside the fitted range: an extrapolation")

    def iv(ci):
        return f" [{_human(ci[0])}, {_human(ci[1])}]" if ci else " [no interval]"

    for name, m in pl["methods"].items():
        print(f"  {name:<9} P* {_human(m['p_star'])}{iv(m['p_star_ci95'])} parameters, N* {_human(m['n_star'])}"
              f"{iv(m['n_star_ci95'])} images; nearest model {m['nearest_model']} ({_human(m['nearest_model_params'])}),"
              f" T = {m['epochs']}")


def plan_main(a) -> None:
    src = a.inputs[0]
    path = os.path.join(src, "scaling.json") if os.path.isdir(src) else src
    try:
        with open(path) as f:
            r = json.load(f)
    except (OSError, ValueError):
        raise UserError(f"{src} is not a scaling.json (or a folder holding one): run mlpscale-scaling SWEEP_DIR "
                        f"--out DIR first, then pass DIR") from None
    if "allocation_frontier" not in r:
        raise UserError(f"{path} is not a scaling.json written by mlpscale-scaling")
    if a.gpu_hours is not None:
        if not a.gpu_hours > 0 or not 0 < a.mfu <= 1:
            raise UserError("--gpu-hours must be positive and --mfu in (0, 1]")
        budget = budget_from_gpu_hours(a.gpu_hours, a.gpu, a.mfu)
        print(f"{a.gpu_hours:g} GPU-hours of {a.gpu} at {a.mfu:.0%} of its bf16 peak (nominal) = {budget:.4g} PFLOPs "
              f"(the paper's count: one per multiply-add)")
    else:
        if not a.budget > 0:
            raise UserError(f"--budget must be a positive number of PFLOPs, got {a.budget}")
        budget = a.budget
    _print_plan(plan(r, budget), path)
