"""Allocation estimates that need no run to sit exactly at the optimum (Hoffmann et al. 2022, approaches 2 and 3).

The frontier method (scaling.py) can only pick grid points, so on a coarse grid (the paper's six models x a
few dataset sizes) its exponents are biased. Two estimates that use every run:

Surface (approach 3). At each epoch count T, E(P, N) = E_inf + A / P^a + B_T / N^b (P parameters, N training
images); the exponents a, b, E_inf and A are shared by all T, each T has its own data coefficient B_T (an epoch
of repeated images is worth what it is worth; nothing assumes N x T is what counts). Fitted by nonlinear least
squares (scipy.optimize.least_squares) in log-parameters (log E_inf, log A, log a, log b, log B_T), so a, b and
E_inf stay positive; best of a grid of starts. With C = kappa P N T (kappa = C / (P N T) from the runs: the
paper's compute per parameter, ~3 for an MLP whose MACs ~ params), minimising E at fixed C and T gives, in
closed form,
    P*(C) = G_T (C / (kappa T))^(b / (a + b)),  N*(C) = (C / (kappa T)) / P*(C),  G_T = (a A / (b B_T))^(1 / (a + b))
so e_p = b / (a + b) and e_n = a / (a + b) = 1 - e_p.

IsoFLOP (approach 2). At each T, each model's errors are smoothed by a parabola in log C through its runs and read
at a ladder of compute levels inside its own range of N; at each level with >= 3 models a parabola in log P gives the
minimum P_opt when it curves upwards and its minimum lies within the models' range. log P_opt = e_p log C + c_T
(one intercept per T) by least squares; N_opt = C / (kappa T P_opt), so e_n = 1 - e_p.

Intervals (95%): Wald from the Jacobian of the log-parameter fit (t with n - k degrees of freedom), mapped
through exp for a, b, E_inf (never below zero) and through the logistic function for e_p (inside (0, 1)).
"""
from __future__ import annotations

import math

import numpy as np

from .errors import UserError


def _t(dof: int) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.975, max(dof, 1)))


def _logit_interval(p: float, se_p: float, q: float) -> list | None:
    """A 95% interval of a fraction p in (0, 1): Wald in logit space, mapped back."""
    if not (0 < p < 1 and se_p is not None and math.isfinite(se_p)):
        return None
    lg, se = math.log(p / (1 - p)), se_p / (p * (1 - p))
    return [1 / (1 + math.exp(-(lg - q * se))), 1 / (1 + math.exp(-(lg + q * se)))]


def kappa(points: list[dict]) -> float:
    """Compute per (parameter x image x epoch) of the runs, in PFLOPs: C = kappa P N T."""
    return float(np.median([p["compute_pflops"] / (p["params"] * p["n_train"] * p["epochs"]) for p in points]))


def grid_of(points: list[dict]) -> dict:
    return {"models": len({p["arch"] for p in points}), "params": sorted({p["params"] for p in points}),
            "n_train": sorted({p["n_train"] for p in points}), "epochs": sorted({p["epochs"] for p in points}),
            "runs": len(points)}


# --- approach 3: the surface ----------------------------------------------------------------------------

def fit_surface(points: list[dict]) -> dict:
    """E(P, N) = E_inf + A / P^a + B_T / N^b over all runs (module docstring)."""
    from scipy.optimize import least_squares

    ts = sorted({p["epochs"] for p in points})
    k = 4 + len(ts)
    if len(points) < k + 2:
        raise UserError(f"only {len(points)} runs to fit the surface E(P, N) = E_inf + A/P^a + B_T/N^b, which has {k} "
                        f"parameters here; it needs at least {k + 2}")
    lp = np.log([p["params"] for p in points])
    ln = np.log([p["n_train"] for p in points])
    ti = np.array([ts.index(p["epochs"]) for p in points])
    e = np.array([p["error"] for p in points], float)
    lp0, ln0 = lp.mean(), ln.mean()                         # centred logs: conditioning

    def model(th):
        le, la, lal, lb, lbe = th[:5]
        lbt = np.concatenate([[0.0], th[5:]])[ti]           # log B_T relative to the first T
        return np.exp(le) + np.exp(la - np.exp(lal) * (lp - lp0)) + np.exp(lb + lbt - np.exp(lbe) * (ln - ln0))

    best = None
    e_min = float(e.min())
    for alpha0 in (0.1, 0.3, 0.8):
        for beta0 in (0.1, 0.3, 0.8):
            for frac in (0.3, 0.7):
                ei = max(e_min * frac, 1e-4)
                rest = max(e.mean() - ei, 1e-3) / 2
                th0 = np.array([math.log(ei), math.log(rest), math.log(alpha0), math.log(rest), math.log(beta0)]
                               + [0.0] * (len(ts) - 1))
                try:
                    with np.errstate(over="ignore", invalid="ignore"):
                        s = least_squares(lambda th: model(th) - e, th0, method="trf", x_scale="jac", max_nfev=4000)
                except (ValueError, FloatingPointError):
                    continue
                if np.all(np.isfinite(s.x)) and (best is None or s.cost < best.cost):
                    best = s
    if best is None:
        raise UserError("the surface fit did not converge from any start; check that the error falls with P and N")
    th, J = best.x, best.jac
    dof = len(points) - k
    s2 = 2 * best.cost / max(dof, 1)
    try:
        cov = np.linalg.pinv(J.T @ J) * s2
    except np.linalg.LinAlgError:
        cov = np.full((k, k), np.nan)
    q = _t(dof)
    se = np.sqrt(np.clip(np.diag(cov), 0, None))

    def positive(i):  # a parameter fitted as its log: exp of the log-interval
        return {"value": float(math.exp(th[i])), "ci95": [float(math.exp(th[i] - q * se[i])),
                                                          float(math.exp(th[i] + q * se[i]))]}

    a, b = math.exp(th[2]), math.exp(th[4])
    ep = b / (a + b)
    # d e_p / d log a = -a b / (a+b)^2, d e_p / d log b = a b / (a+b)^2
    g = np.zeros(k)
    g[2], g[4] = -a * b / (a + b) ** 2, a * b / (a + b) ** 2
    se_ep = float(math.sqrt(max(g @ cov @ g, 0.0)))
    ci = _logit_interval(ep, se_ep, q)
    A = math.exp(th[1] + math.exp(th[2]) * lp0)              # back to uncentred: A / P^a
    Bt = [math.exp(th[3] + (0.0 if i == 0 else th[4 + i]) + b * ln0) for i in range(len(ts))]
    return {
        "form": "E(P, N) = E_inf + A / P^a + B_T / N^b (P parameters, N training images, B_T per epoch count T)",
        "e_inf": positive(0), "a": positive(2), "b": positive(4), "A": A, "B_T": dict(zip(map(str, ts), Bt)),
        "p_star_exponent": {"value": ep, "ci95": ci},
        "n_star_exponent": {"value": 1 - ep, "ci95": [1 - ci[1], 1 - ci[0]] if ci else None},
        "rmse": math.sqrt(2 * best.cost / len(points)), "n_points": len(points), "dof": dof,
        "kappa_pflops": kappa(points), "grid": grid_of(points),
    }


def surface_allocation(fit: dict, compute_pflops, epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """(P*, N*) of the surface at compute C (PFLOPs) and T epochs, in closed form (module docstring)."""
    a, b = fit["a"]["value"], fit["b"]["value"]
    bt = fit["B_T"].get(str(epochs))
    if bt is None:
        raise UserError(f"the surface was fitted at epochs {', '.join(fit['B_T'])}; pick one of those")
    m = np.asarray(compute_pflops, float) / (fit["kappa_pflops"] * epochs)     # P x N at that budget
    g = (a * fit["A"] / (b * bt)) ** (1 / (a + b))
    p = g * m ** (b / (a + b))
    return p, m / p


# --- approach 2: IsoFLOP profiles -----------------------------------------------------------------------

def isoflop_minima(points: list[dict], levels_per_decade: int = 4) -> list[dict]:
    """One {epochs, compute_pflops, params, models} per (T, compute level) whose parabola has an interior minimum."""
    out = []
    for t in sorted({p["epochs"] for p in points}):
        curves = {}
        for p in points:
            if p["epochs"] == t:
                curves.setdefault(p["params"], []).append((math.log(p["compute_pflops"]), p["error"]))
        curves = {P: sorted(c) for P, c in curves.items() if len({x for x, _ in c}) >= 2}
        if len(curves) < 3:
            continue
        # each model's error vs log C at this T: a parabola through its runs (a line with two), read only
        # inside its own range of N
        smooth = {P: np.polyfit([x for x, _ in c], [y for _, y in c], min(2, len(c) - 1)) for P, c in curves.items()}
        lo = min(c[0][0] for c in curves.values())
        hi = max(c[-1][0] for c in curves.values())
        step = math.log(10) / levels_per_decade
        for lc in np.arange(lo, hi + 1e-9, step):
            prof = [(math.log(P), float(np.polyval(smooth[P], lc)))
                    for P, c in curves.items() if c[0][0] <= lc <= c[-1][0]]
            if len(prof) < 3:
                continue
            x, y = np.array(prof).T
            c2, c1, _ = np.polyfit(x, y, 2)
            if c2 <= 0:
                continue
            xm = -c1 / (2 * c2)
            if not x.min() < xm < x.max():
                continue
            out.append({"epochs": t, "compute_pflops": math.exp(lc), "params": math.exp(xm), "models": len(prof)})
    return out


def fit_isoflop(points: list[dict]) -> dict:
    """log P_opt = e_p log C + c_T over the IsoFLOP minima of every T (module docstring)."""
    mins = isoflop_minima(points)
    ts = sorted({m["epochs"] for m in mins})
    if len(mins) < len(ts) + 2:
        raise UserError(f"only {len(mins)} IsoFLOP profile(s) have a minimum inside the model range; the IsoFLOP "
                        f"method needs at least {len(ts) + 2} (more models around the optimum, or more data sizes)")
    lc = np.log([m["compute_pflops"] for m in mins])
    X = np.column_stack([lc] + [[1.0 if m["epochs"] == t else 0.0 for m in mins] for t in ts])
    y = np.log([m["params"] for m in mins])
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    res = y - X @ coef
    dof = len(y) - X.shape[1]
    s2 = float(res @ res) / max(dof, 1)
    cov = np.linalg.pinv(X.T @ X) * s2
    q = _t(dof)
    ep, se = float(coef[0]), float(math.sqrt(max(cov[0, 0], 0.0)))
    ci = [ep - q * se, ep + q * se]
    return {
        "form": "log P_opt = e_p log C + c_T (parabola minima of error in log P at each compute level and T); "
                "N_opt = C / (kappa T P_opt), so e_n = 1 - e_p",
        "p_star_exponent": {"value": ep, "ci95": ci},
        "n_star_exponent": {"value": 1 - ep, "ci95": [1 - ci[1], 1 - ci[0]]},
        "intercepts": {str(t): float(math.exp(c)) for t, c in zip(ts, coef[1:])},
        "minima": mins, "n_points": len(mins), "dof": dof, "kappa_pflops": kappa(points), "grid": grid_of(points),
    }


# --- per-axis laws ----------------------------------------------------------------------------------------

def fit_axis(x, y) -> dict | None:
    """E = E_inf + A x^-alpha on one axis (error vs P at the largest N, or vs N at the largest P); None with
    fewer than 4 points or no convergence."""
    from scipy.optimize import least_squares

    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 4:
        return None
    lx = np.log(x) - np.log(x).mean()
    best = None
    for al in (0.1, 0.4, 1.0):
        for frac in (0.3, 0.8):
            th0 = [math.log(max(y.min() * frac, 1e-4)), math.log(max(y.mean() - y.min() * frac, 1e-3)), math.log(al)]
            with np.errstate(over="ignore", invalid="ignore"):
                s = least_squares(lambda th: np.exp(th[0]) + np.exp(th[1] - np.exp(th[2]) * lx) - y, th0, max_nfev=2000)
            if np.all(np.isfinite(s.x)) and (best is None or s.cost < best.cost):
                best = s
    if best is None:
        return None
    th = best.x
    dof = len(x) - 3
    cov = np.linalg.pinv(best.jac.T @ best.jac) * (2 * best.cost / max(dof, 1))
    se = np.sqrt(np.clip(np.diag(cov), 0, None))
    q = _t(dof)
    return {"e_inf": {"value": math.exp(th[0]), "ci95": [math.exp(th[0] - q * se[0]), math.exp(th[0] + q * se[0])]},
            "alpha": {"value": math.exp(th[2]), "ci95": [math.exp(th[2] - q * se[2]), math.exp(th[2] + q * se[2])]},
            "n_points": len(x), "dof": dof, "x": x.tolist(), "error": y.tolist()}


def axis_laws(points: list[dict], epochs: int) -> dict:
    at = [p for p in points if p["epochs"] == epochs]
    n_max = max(p["n_train"] for p in at)
    p_max = max(p["params"] for p in at)
    by_p = sorted((p["params"], p["error"]) for p in at if p["n_train"] == n_max)
    by_n = sorted((p["n_train"], p["error"]) for p in at if p["params"] == p_max)
    return {"epochs": epochs,
            "error_vs_params": {"at_n_train": n_max, "form": "E = E_inf + A P^-alpha",
                                "fit": fit_axis(*zip(*by_p)) if by_p else None},
            "error_vs_n_train": {"at_params": p_max, "form": "E = E_inf + B N^-alpha",
                                 "fit": fit_axis(*zip(*by_n)) if by_n else None}}
