"""`mlpscale-scaling SWEEP_DIR|RESULTS.csv [...] [--out DIR]`: the scaling-law analysis of the paper.

Input: CSV files with the columns `arch,params,n_train,epochs,compute_pflops,error` (more columns are
kept). `error` is a fraction in [0, 1], e.g. 1 - linear-probe accuracy on CIFAR-100 as in the paper's
Figures 1 and 7; a column of percentages is refused (pass `--error-scale 0.01` to convert it). A folder
argument means the file `FOLDER/results.csv` that `mlpscale-sweep` writes. Rows whose error cell is
empty or `nan` (runs not evaluated yet) are skipped and counted. Compute is the paper's
`C = MACs_per_forward x 3 x N x T` in PFLOPs (one multiply-add counted as one FLOP).

Method
1. Pareto frontier of error vs compute: the runs with a lower error than every run of less or equal
   compute, sorted by compute (error strictly decreases along it). All epoch counts take part.
2. Error law, the paper's form `E(C) = a (b + C)^-alpha + E_inf` (C in PFLOPs), fitted to the frontier
   by least squares on the error itself (not its log) with `scipy.optimize.curve_fit` (trust-region,
   bounds a > 0, b >= 0, 0 < alpha <= 10, 0 <= E_inf < the smallest frontier error). Compute is scaled
   by the smallest frontier compute while fitting (conditioning). Starting points: a grid over
   (alpha, b) with a and E_inf solved linearly for each; the best few are refined, the lowest squared
   error wins. 95% intervals: Wald, `value +- t(0.975, n-4) * sqrt(diag(cov))`, from curve_fit's
   covariance (scaled by the residual variance, mapped back through the Jacobian of the rescaling).
   They are linearised intervals: they can cross a bound, and are `null` where the covariance is not
   defined; a parameter that ends on its bound is flagged `at_bound`. Where the law is the data's
   model (points on it plus noise) they are calibrated (tested on synthetic draws). They take the
   frontier as given (not which runs happen to form it, nor that off-optimal runs lift it above the
   envelope), so on frontiers of synthetic sweeps they run narrow, E_inf's and a's more than alpha's.
   A bootstrap over runs (frontier re-selected each time) did barely better at a far higher cost, so
   it is not offered; read them as the fit's precision, not as the uncertainty of the study.
3. Compute-optimal allocation at a fixed epoch count T (default: 50, the paper's, when present, else the
   smallest T present): the frontier of the runs with T epochs gives, for each compute, the optimal model
   size P* (params) and dataset size N* (n_train: distinct training samples, not samples seen = N x T).
   Power laws `P*(C) = k_p C^e_p`, `N*(C) = k_n C^e_n` are least-squares lines in log-log (natural
   log); 95% intervals of the slope and intercept from the t-distribution with n-2 degrees of freedom.
   Since C ~ P N T for an MLP (MACs ~ params), e_p + e_n is ~1 at fixed T.
   The paper reports e_p ~ 0.35 and e_n ~ 0.65 at T = 50 (transformers: both ~0.5, Hoffmann et al.
   2022); those are the paper's numbers, not something this tool asserts.
   Only grid points can be on that frontier, so a coarse grid biases its exponents; scaling_fits.py adds
   two estimates that use every run (the surface E_inf + A/P^a + B_T/N^b with P*(C), N*(C) in closed form,
   and IsoFLOP parabolas), reported under `methods` with the grid each saw, and the per-axis laws (error vs
   P at the largest N, vs N at the largest P) under `axis_laws`.
4. Planning (planning.py): `mlpscale-scaling FIT --budget PFLOPS` reads a scaling.json and prints P*, N*.

Outputs in DIR (default: the folder of the inputs, e.g. the sweep folder): `points.csv` (all runs, plus
`on_frontier` and `on_allocation_frontier` 0/1 columns),
`scaling.json` (fits, intervals, frontiers; JSON without NaN: undefined numbers are null),
`error_vs_compute.png` (Figure-1 style) and `compute_optimal_allocation.png` (Figure-7 style).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import warnings

import numpy as np

from . import cli
from .errors import UserError, cli_entry, int_range
from .io import atomic_file, write_json_atomic
from .planning import GPUS, plan_main
from .scaling_fits import axis_laws, fit_isoflop, fit_surface, grid_of, surface_allocation
from .scaling_plots import plot_allocation, plot_error_vs_compute

REQUIRED = ("arch", "params", "n_train", "epochs", "compute_pflops", "error")
RESULTS_NAME = "results.csv"            # what a sweep folder holds
PAPER_EXPONENTS = {"p_star": 0.35, "n_star": 0.65}   # the paper's, at T = 50
PAPER_EPOCHS = 50                       # the paper's allocation uses the runs of 50 epochs
N_LAW_PARAMS = 4                        # a, b, alpha, E_inf
FIGURE_ERROR = "error_vs_compute.png"
FIGURE_ALLOCATION = "compute_optimal_allocation.png"


# --- reading ----------------------------------------------------------------------------------

def _number(text: str, col: str, where: str) -> float:
    if text == "":
        raise UserError(f"{where}: column '{col}' is empty; fill it in or remove that row")
    try:
        v = float(text)
    except ValueError:
        raise UserError(f"{where}: column '{col}' holds '{text}', which is not a number; "
                        f"fix or remove that row") from None
    if not math.isfinite(v):
        raise UserError(f"{where}: column '{col}' is {text}; it must be a finite number")
    return v


def _int_if_whole(v: float):
    return int(v) if v.is_integer() else v


def _csv_path(arg: str) -> str:
    path = os.path.join(arg, RESULTS_NAME) if os.path.isdir(arg) else arg
    if not os.path.isfile(path):
        if os.path.isdir(arg):
            raise UserError(f"the folder {arg} has no {RESULTS_NAME}; pass a sweep folder (mlpscale-sweep writes "
                            f"{RESULTS_NAME} there) or the CSV file itself")
        raise UserError(f"{arg} does not exist; pass a CSV of runs or a sweep folder holding {RESULTS_NAME}")
    return path


def load_points(paths, error_column: str = "error", error_scale: float = 1.0) -> tuple[list[dict], int]:
    """Read and concatenate the CSVs (or sweep folders) in `paths`.

    Returns (rows, n_skipped). Each row is a dict: the required columns as numbers (`error` taken from
    `error_column` and multiplied by `error_scale`), every other column kept as its text. Rows whose
    error is empty or nan are skipped and counted in n_skipped.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    rows, skipped = [], 0
    need = [c if c != "error" else error_column for c in REQUIRED]
    for arg in paths:
        path = _csv_path(os.fspath(arg))
        try:
            with open(path, newline="", encoding="utf-8-sig") as f:   # -sig: a spreadsheet's BOM
                reader = csv.DictReader(f)
                header = reader.fieldnames
                if not header:
                    raise UserError(f"{path} is empty; expected a CSV whose header has the columns {','.join(need)}")
                header = [h.strip() for h in header]
                missing = [c for c in need if c not in header]
                if missing:
                    raise UserError(f"{path} lacks the column(s) {', '.join(missing)} (it has {', '.join(header)}); "
                                    f"the required columns are {','.join(need)}")
                n_lines = 0
                for raw in reader:
                    n_lines += 1
                    where = f"{path} line {reader.line_num}"
                    if None in raw:
                        raise UserError(f"{where} has more cells than the header has columns; fix that row")
                    raw = {k.strip(): (v or "").strip() for k, v in raw.items()}
                    row = _parse_row(raw, error_column, error_scale, where)
                    if row is None:
                        skipped += 1
                    else:
                        rows.append(row)
                if n_lines == 0:
                    raise UserError(f"{path} has a header but no rows; it holds no runs")
        except UnicodeDecodeError:
            raise UserError(f"{path} is not a text CSV (not UTF-8); pass the results CSV") from None
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}") from None
    if not rows:
        raise UserError(f"no run in {', '.join(map(str, paths))} has an error value ({skipped} rows with an empty "
                        f"'{error_column}'); evaluate the runs first")
    return rows, skipped


def _parse_row(raw: dict, error_column: str, error_scale: float, where: str) -> dict | None:
    err_text = raw.get(error_column, "")
    if err_text == "" or err_text.lower() == "nan":
        return None
    row = {k: v for k, v in raw.items() if k}
    row["arch"] = raw["arch"]
    if not row["arch"]:
        raise UserError(f"{where}: the column 'arch' is empty; name the model (e.g. B_6-Wi_256)")
    for col in ("params", "n_train", "epochs", "compute_pflops"):
        v = _number(raw[col], col, where)
        if v <= 0:
            what = "compute" if col == "compute_pflops" else col
            raise UserError(f"{where}: {col} = {raw[col]}, but {what} must be positive; fix or remove that row")
        row[col] = v if col == "compute_pflops" else _int_if_whole(v)
    e = _number(err_text, error_column, where) * error_scale
    if not 0.0 <= e <= 1.0:
        hint = " (it looks like a percentage: pass --error-scale 0.01)" if 1.0 < e <= 100.0 else ""
        raise UserError(f"{where}: {error_column} = {err_text}, but the error must be a fraction in [0, 1]{hint}")
    if error_column != "error" and "error" in raw:
        row["error_original"] = raw["error"]        # keep the text column that `error` now shadows
    row["error"] = e
    return row


def write_points(rows: list[dict], path: str) -> None:
    """All rows to `path`: required columns first, then every other column in first-seen order."""
    fields = list(REQUIRED)
    for r in rows:
        fields += [k for k in r if k not in fields]
    with atomic_file(path, "w") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in fields})


# --- frontier ---------------------------------------------------------------------------------

def frontier_indices(compute, error) -> np.ndarray:
    """Indices of the Pareto frontier, by increasing compute: each has a lower error than every point of
    less or equal compute (of exact duplicates, the first one stands)."""
    c, e = np.asarray(compute, float), np.asarray(error, float)
    order = np.lexsort((np.arange(len(c)), e, c))   # by compute, then error, then input order
    keep, best = [], math.inf
    for i in order:
        if e[i] < best:
            keep.append(i)
            best = e[i]
    return np.asarray(keep, dtype=int)


def pareto_frontier(points: list[dict]) -> list[dict]:
    """The frontier rows of error vs compute, sorted by compute (error strictly decreasing)."""
    idx = frontier_indices([p["compute_pflops"] for p in points], [p["error"] for p in points])
    return [points[i] for i in idx]


# --- fits -------------------------------------------------------------------------------------

def error_law(c, a: float, b: float, alpha: float, e_inf: float):
    """The paper's form E(C) = a (b + C)^-alpha + E_inf."""
    return a * (b + np.asarray(c, float)) ** (-alpha) + e_inf


def _interval(value: float, se: float | None, q: float, positive: bool = False) -> dict:
    """value +- q se; for a parameter constrained >= 0 (`positive`) whose Wald interval would cross zero, the
    interval of its logarithm instead (value x exp(+-q se / value)), so it never extends below zero."""
    ok = se is not None and math.isfinite(se) and math.isfinite(value)
    ci = [value - q * se, value + q * se] if ok else None
    if ci and positive and ci[0] < 0:
        r = q * se / value if value > 0 else math.inf
        # a log-interval wider than e^50 says nothing more than the Wald interval clipped at zero (and overflows)
        ci = [value * math.exp(-r), value * math.exp(r)] if r <= 50 else [0.0, value + q * se]
    return {"value": _clean(value), "ci95": ci}


def _starts(x, e, e_max, k: int = 4):
    """The k best (a', b', alpha, E_inf) on a grid of (alpha, b'), a' and E_inf solved linearly."""
    cands = []
    for alpha in np.geomspace(0.02, 3.0, 15):
        for b in (0.0, 0.1, 0.3, 1.0, 3.0, 10.0):
            g = (b + x) ** -alpha
            A = np.stack([g, np.ones_like(g)], 1)
            (a, ei), *_ = np.linalg.lstsq(A, e, rcond=None)
            ei = min(max(ei, 0.0), e_max)
            a = max(float(g @ (e - ei) / (g @ g)), 1e-12)
            sse = float(((a * g + ei - e) ** 2).sum())
            cands.append((sse, (a, b, alpha, ei)))
    cands.sort(key=lambda t: t[0])
    return [p for _, p in cands[:k]]


def fit_error_law(compute, error) -> dict:
    """Fit E(C) = a (b + C)^-alpha + E_inf to frontier points (C in PFLOPs, error a fraction).

    Returns {"a", "b", "alpha", "e_inf": {"value", "ci95", "at_bound"}, "n_points", "rmse",
    "dof"}. Raises UserError with fewer than 5 points (4 parameters + 1 degree of freedom).
    """
    from scipy.optimize import OptimizeWarning, curve_fit
    from scipy.stats import t as student_t

    c, e = np.asarray(compute, float), np.asarray(error, float)
    n = len(c)
    if n <= N_LAW_PARAMS:
        raise UserError(f"only {n} points to fit E(C) = a (b + C)^-alpha + E_inf, which has {N_LAW_PARAMS} "
                        f"parameters; it needs at least {N_LAW_PARAMS + 1} (add runs at more compute budgets)")
    if np.any(c <= 0):
        raise UserError("compute must be positive to fit the error law")
    c0 = float(c.min())                        # fit in x = C / c0; b' = b / c0, a' = a c0^-alpha
    x = c / c0
    e_min = float(e.min())
    e_max = e_min * (1 - 1e-9) if e_min > 0 else 1e-12
    lo = [1e-12, 0.0, 1e-6, 0.0]
    hi = [np.inf, np.inf, 10.0, e_max]

    def f(x, a, b, alpha, ei):
        return a * (b + x) ** (-alpha) + ei

    best = None
    for p0 in _starts(x, e, e_max):
        p0 = np.clip(p0, lo, hi)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                warnings.simplefilter("ignore", RuntimeWarning)
                p, cov = curve_fit(f, x, e, p0=p0, bounds=(lo, hi), method="trf", maxfev=20000)
        except (RuntimeError, ValueError):
            continue
        sse = float(((f(x, *p) - e) ** 2).sum())
        if math.isfinite(sse) and (best is None or sse < best[0]):
            best = (sse, p, cov)
    if best is None:
        raise UserError(f"the error law did not converge on the {n} frontier points from any start; "
                        f"check that the error column falls as compute grows")
    sse, (a_, b_, alpha, ei), cov = best
    # back to C in PFLOPs: a = a' c0^alpha, b = b' c0; delta method for the covariance
    a, b = a_ * c0 ** alpha, b_ * c0
    J = np.diag([c0 ** alpha, c0, 1.0, 1.0])
    J[0, 2] = a * math.log(c0)
    cov = J @ cov @ J.T if np.all(np.isfinite(cov)) else np.full((4, 4), np.nan)
    dof = n - N_LAW_PARAMS
    q = float(student_t.ppf(0.975, dof))
    out = {}
    scaled = (a_, b_, alpha, ei)
    for i, (name, v) in enumerate(zip(("a", "b", "alpha", "e_inf"), (a, b, alpha, ei))):
        var = cov[i, i]
        r = _interval(float(v), math.sqrt(var) if var >= 0 else None, q, positive=True)   # all four are >= 0
        r["at_bound"] = bool(np.isclose(scaled[i], lo[i], rtol=0, atol=1e-9) or
                             (math.isfinite(hi[i]) and np.isclose(scaled[i], hi[i], rtol=1e-6, atol=1e-12)))
        out[name] = r
    out["n_points"] = n
    out["dof"] = dof
    out["rmse"] = math.sqrt(sse / n)
    return out


def fit_power_law(x, y) -> dict:
    """Least-squares line in log-log: y = k x^e. Returns {"exponent", "coefficient": {"value", "ci95"},
    "n_points", "r2"}; 95% intervals from the t-distribution with n-2 degrees of freedom."""
    from scipy.stats import t as student_t

    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    if n < 3:
        raise UserError(f"only {n} points for a power-law fit; it needs at least 3 (2 parameters + 1 for the interval)")
    if np.any(x <= 0) or np.any(y <= 0):
        raise UserError("a power law in log-log needs positive values")
    lx, ly = np.log(x), np.log(y)
    mx = lx.mean()
    sxx = float(((lx - mx) ** 2).sum())
    if sxx == 0:
        raise UserError("all points of the power-law fit have the same compute; it needs a range of compute")
    slope = float(((lx - mx) * (ly - ly.mean())).sum() / sxx)
    icpt = float(ly.mean() - slope * mx)
    res = ly - (icpt + slope * lx)
    s2 = float(res @ res) / (n - 2)
    q = float(student_t.ppf(0.975, n - 2))
    se_slope = math.sqrt(s2 / sxx)
    se_icpt = math.sqrt(s2 * (1 / n + mx * mx / sxx))
    sst = float(((ly - ly.mean()) ** 2).sum())
    return {
        "exponent": _interval(slope, se_slope, q),
        "coefficient": {"value": math.exp(icpt), "ci95": [math.exp(icpt - q * se_icpt), math.exp(icpt + q * se_icpt)]},
        "n_points": n,
        "r2": _clean(1 - float(res @ res) / sst) if sst > 0 else None,
    }


# --- analysis ---------------------------------------------------------------------------------

METHOD = ("frontier: runs with lower error than every run of less or equal compute (all epochs); "
          "error law E(C) = a (b + C)^-alpha + E_inf, C in PFLOPs, fitted by scipy.optimize.curve_fit (trf, "
          "bounds a>0, b>=0, 0<alpha<=10, 0<=E_inf<min frontier error) on the frontier, least squares on the "
          "error (linear, not log), best of several starts; ci95: Wald intervals from the covariance, "
          "t(0.975, n-4), delta method through the compute rescaling (no bootstrap); allocation: frontier of the "
          "runs at epochs_for_allocation, P* = params, N* = n_train (dataset size in samples, not samples seen), "
          "power laws by least squares in natural log-log, ci95 from t(0.975, n-2)")


def _clean(v):
    """JSON has no NaN or inf: those become null."""
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        return _clean(v.item())
    return v


def analyse(points: list[dict], epochs: int | None = None) -> dict:
    """Frontier, error-law fit and compute-optimal allocation of `points` (rows from load_points).
    Returns the JSON-ready dict written to scaling.json."""
    frontier = pareto_frontier(points)
    c = [p["compute_pflops"] for p in frontier]
    budgets = len({p["compute_pflops"] for p in points})
    if len(frontier) <= N_LAW_PARAMS < budgets:  # enough budgets, but more compute did not lower the error
        raise UserError(f"the errors of this study do not fall with compute: of its {budgets} compute budgets "
                        f"only {len(frontier)} lower the error below every smaller budget's, too few to fit "
                        f"E(C) = a (b + C)^-alpha + E_inf; check the runs (learning rate, epochs, a diverged "
                        f"or unfinished run) in points.csv before fitting")
    fit = fit_error_law(c, [p["error"] for p in frontier])
    fit["form"] = "E(C) = a * (b + C)^(-alpha) + E_inf, C in PFLOPs"
    fit["compute_range_pflops"] = [min(c), max(c)]

    present = sorted({p["epochs"] for p in points})
    t = (PAPER_EPOCHS if PAPER_EPOCHS in present else present[0]) if epochs is None else epochs
    if t not in present:
        raise UserError(f"no run has {epochs} epochs; the epochs present are {', '.join(map(str, present))}")
    alloc = pareto_frontier([p for p in points if p["epochs"] == t])
    if len(alloc) < 3:
        counts = ", ".join(f"{e}: {len(pareto_frontier([p for p in points if p['epochs'] == e]))}" for e in present)
        raise UserError(f"the frontier at {t} epochs has {len(alloc)} point(s), but the compute-optimal power laws "
                        f"need at least 3; add runs at {t} epochs or pick --epochs from (epochs: frontier points) "
                        f"{counts}")
    ca = [p["compute_pflops"] for p in alloc]
    p_star = fit_power_law(ca, [p["params"] for p in alloc])
    n_star = fit_power_law(ca, [p["n_train"] for p in alloc])
    p_star.update(form="P*(C) = coefficient * C^exponent, C in PFLOPs, P* in parameters",
                  paper_exponent=PAPER_EXPONENTS["p_star"])
    n_star.update(form="N*(C) = coefficient * C^exponent, C in PFLOPs, N* in training samples (dataset size "
                       "n_train, not samples seen)", paper_exponent=PAPER_EXPONENTS["n_star"])
    sizes = {}
    for p in points:                           # one entry per model name, its smallest params count
        sizes[p["arch"]] = min(sizes.get(p["arch"], p["params"]), p["params"])
    archs = sorted((n, a) for a, n in sizes.items())
    methods = allocation_methods(points, alloc, p_star, n_star, t)
    return _clean({
        "n_points": len(points),
        "n_frontier": len(frontier),
        "epochs_present": present,
        "models": [{"arch": a, "params": n} for n, a in archs],
        "method": METHOD,
        "fit": fit,
        "frontier": frontier,
        "epochs_for_allocation": t,
        "p_star": p_star,
        "n_star": n_star,
        "allocation_frontier": alloc,
        "methods": methods,
        "axis_laws": axis_laws(points, t),
    })


def allocation_methods(points: list[dict], alloc: list[dict], p_star: dict, n_star: dict, t: int) -> dict:
    """Each allocation estimate's exponents with their 95% intervals and the grid it saw (scaling_fits.py)."""
    out = {"frontier": {"p_star_exponent": p_star["exponent"], "n_star_exponent": n_star["exponent"],
                        "note": f"power laws through the frontier runs at T = {t}: only grid points can be optimal, "
                                f"so a coarse grid biases the exponents", "epochs": t,
                        "grid": grid_of([p for p in points if p["epochs"] == t]), "n_points": len(alloc)}}
    for name, fit in (("surface", fit_surface), ("isoflop", fit_isoflop)):
        try:
            out[name] = fit(points)
        except UserError as e:
            out[name] = {"error": str(e)}
    if "error" not in out["surface"]:
        cs = np.geomspace(min(p["compute_pflops"] for p in alloc), max(p["compute_pflops"] for p in alloc), 5)
        ps, ns = surface_allocation(out["surface"], cs, t)
        out["surface"]["allocation"] = {"epochs": t, "compute_pflops": cs.tolist(), "p_star": ps.tolist(),
                                        "n_star": ns.tolist()}
    return out


# --- CLI --------------------------------------------------------------------------------------

def _summary(r: dict) -> str:
    def iv(d, fmt):
        ci = d["ci95"]
        return f"{d['value']:{fmt}}" + (f" [{ci[0]:{fmt}}, {ci[1]:{fmt}}]" if ci else " [no interval]")

    f = r["fit"]
    lines = [f"{r['n_points']} runs, {r['n_frontier']} on the frontier "
             f"({f['compute_range_pflops'][0]:.3g}-{f['compute_range_pflops'][1]:.3g} PFLOPs)",
             "E(C) = a (b + C)^-alpha + E_inf  (value [95% interval])"]
    for k in ("a", "b", "alpha", "e_inf"):
        lines.append(f"  {k:<6} {iv(f[k], '.4g')}" + ("  (at its bound)" if f[k]["at_bound"] else ""))
    lines.append(f"  rmse   {f['rmse']:.4g}")
    lines.append(f"compute-optimal at {r['epochs_for_allocation']} epochs ({r['p_star']['n_points']} frontier runs):")
    lines.append(f"  P* ~ C^{iv(r['p_star']['exponent'], '.3f')}  (paper: {PAPER_EXPONENTS['p_star']})")
    lines.append(f"  N* ~ C^{iv(r['n_star']['exponent'], '.3f')}  (paper: {PAPER_EXPONENTS['n_star']})")
    lines.append("allocation exponents by method (P*, N*; value [95% interval]):")
    for key, label in (("frontier", f"frontier at T={r['epochs_for_allocation']}"),
                       ("surface", "surface E_inf + A/P^a + B_T/N^b"), ("isoflop", "IsoFLOP parabolas")):
        m = r["methods"].get(key, {})
        if "error" in m:
            lines.append(f"  {label:<34} not fitted: {m['error']}")
        elif m:
            g = m["grid"]
            lines.append(f"  {label:<34} P* ~ C^{iv(m['p_star_exponent'], '.3f')}, N* ~ C^"
                         f"{iv(m['n_star_exponent'], '.3f')}  ({g['runs']} runs: {g['models']} models x "
                         f"{len(g['n_train'])} N x T {','.join(map(str, g['epochs']))})")
    return "\n".join(lines)


def _measured(inputs, error_column: str) -> str:
    """What the error column measures, from a sweep folder's spec.yaml (else the column's name)."""
    import yaml

    for arg in inputs:
        spec_path = os.path.join(arg, "spec.yaml")
        if os.path.isdir(arg) and os.path.isfile(spec_path):
            with open(spec_path) as f:
                spec = yaml.safe_load(f) or {}
            m = spec.get("measure")
            if isinstance(m, dict) and "probe" in m:
                ds = next((s.split("=", 1)[1] for s in m["probe"].get("set") or [] if s.startswith("data.dataset=")),
                          "the probe dataset")
                kind = "linear-probe" if m["probe"].get("mode", "linear") == "linear" else "fine-tuned"
                return f"{kind} error on {ds}"
            return "test error"
    return "error" if error_column == "error" else f"error ({error_column})"


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser(
        "mlpscale-scaling",
        "Fit the paper's scaling laws to a sweep: the error-vs-compute frontier, E(C) = a (b + C)^-alpha + E_inf, "
        "and the compute-optimal model and data sizes P* ~ C^e_p, N* ~ C^e_n.",
        "mlpscale-scaling runs/sweeps/mini_cpu",
        f"Each input is a CSV with the columns {','.join(REQUIRED)} (error as a fraction in [0, 1]), or a sweep "
        f"folder holding {RESULTS_NAME}. Writes points.csv, scaling.json (fits with 95% intervals), {FIGURE_ERROR} "
        f"and {FIGURE_ALLOCATION} into the output folder.")
    p.add_argument("inputs", nargs="+", metavar="SWEEP_DIR|RESULTS.csv", help="runs to analyse (concatenated)")
    cli.add(p, "--out", "default: the folder of the inputs (the sweep folder)")
    cli.add(p, "--epochs", "that of the compute-optimal allocation (default: 50, the paper's, when present; "
                           "else the smallest present)", type=int_range(1, 10**7))
    p.add_argument("--error-column", default="error", metavar="NAME", help="column with the error (default: error)")
    p.add_argument("--error-scale", type=float, default=1.0, metavar="S",
                   help="multiply the error column by S, e.g. 0.01 for percentages (default: 1)")
    p.add_argument("--no-plots", action="store_true", help="write only points.csv and scaling.json")
    p.add_argument("--measured", metavar="TEXT",
                   help="what the error is, for the figures (default: from the sweep's spec, e.g. linear-probe "
                        "error on cifar100)")
    g = p.add_argument_group("planning from a fit: mlpscale-scaling FIT --budget PFLOPS (FIT: a scaling.json or its "
                             "folder)")
    g.add_argument("--budget", type=float, metavar="PFLOPS", help="compute budget in the paper's PFLOPs")
    g.add_argument("--gpu-hours", type=float, metavar="H", help="or a budget in GPU-hours (with --gpu)")
    g.add_argument("--gpu", choices=sorted(GPUS), default="h100", help="GPU of --gpu-hours (default h100)")
    g.add_argument("--mfu", type=float, default=0.4,
                   help="fraction of the GPU's bf16 peak the runs reach, for --gpu-hours (default 0.4)")
    return p


def default_out(inputs: list[str]) -> str:
    """The one folder the inputs come from (a sweep folder, or the folder of a CSV file)."""
    folders = {os.path.abspath(x if os.path.isdir(x) else os.path.dirname(x) or ".") for x in inputs}
    if len(folders) > 1:
        raise UserError("the inputs are in different folders; pass --out DIR for the outputs")
    return folders.pop()


@cli_entry
def main(argv=None):
    a = build_parser().parse_args(argv)
    if a.budget is not None or a.gpu_hours is not None:
        return plan_main(a)
    if not a.error_scale > 0:
        raise UserError(f"--error-scale must be positive, got {a.error_scale}")
    a.out = a.out or default_out(a.inputs)
    if os.path.exists(a.out) and not os.path.isdir(a.out):
        raise UserError(f"--out {a.out} is a file; pass a folder (it is created if missing)")

    points, skipped = load_points(a.inputs, a.error_column, a.error_scale)
    r = analyse(points, a.epochs)
    r = {"inputs": [_csv_path(x) for x in a.inputs], "error_column": a.error_column, "error_scale": a.error_scale,
         "n_skipped": skipped, "measured": a.measured or _measured(a.inputs, a.error_column), **r}
    on_fr = {id(x) for x in pareto_frontier(points)}
    on_al = {id(x) for x in pareto_frontier([x for x in points if x["epochs"] == r["epochs_for_allocation"]])}
    rows = [{**x, "on_frontier": int(id(x) in on_fr), "on_allocation_frontier": int(id(x) in on_al)} for x in points]

    write_points(rows, os.path.join(a.out, "points.csv"))
    write_json_atomic(os.path.join(a.out, "scaling.json"), r)
    written = ["points.csv", "scaling.json"]
    if not a.no_plots:
        plot_error_vs_compute(points, r, os.path.join(a.out, FIGURE_ERROR))
        plot_allocation(r, os.path.join(a.out, FIGURE_ALLOCATION))
        written += [FIGURE_ERROR, FIGURE_ALLOCATION]
    if skipped:
        print(f"note: skipped {skipped} row(s) with an empty or nan '{a.error_column}' (runs not evaluated yet)",
              file=sys.stderr)
    print(_summary(r))
    print(f"wrote {', '.join(written)} to {a.out}")


if __name__ == "__main__":
    main()
