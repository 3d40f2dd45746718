"""The scaling study's figures (mlpscale-scaling): error vs compute (the paper's Figure 1) and the compute-optimal
allocation (Figure 7), from the dict `scaling.analyse` returns.

Error vs compute: one colour per model (a colour bar of parameters beyond MAX_LEGEND_MODELS models), one marker
per epoch count T, marker area by dataset size; the axis and title name what was measured. Allocation: the
frontier runs at the allocation's T with their power laws, the surface's closed-form P*(C), N*(C) and the
IsoFLOP minima (scaling_fits.py), each with its exponent and interval.
"""
from __future__ import annotations

import math

import numpy as np

from .io import atomic_file
from .scaling_fits import surface_allocation

MAX_LEGEND_MODELS = 8                   # more models: a colour bar of their sizes instead of a legend row each
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")   # one per epoch count T


def _human(n: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            v = n / div
            return f"{v:.3g}{suffix}"
    return f"{n:.3g}"


def _fit_label(fit: dict) -> str:
    v = {k: fit[k]["value"] for k in ("a", "b", "alpha", "e_inf")}
    return (f"fit: {v['a']:.3g} (C + {v['b']:.2g})$^{{-{v['alpha']:.3f}}}$ + {v['e_inf']:.3f}")


def plot_error_vs_compute(points: list[dict], analysis: dict, path: str, title: str | None = None) -> None:
    """Figure-1 style: error vs compute (log x) for every run, one colour per model (params order),
    marker area by dataset size, the frontier and the fitted law."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    import matplotlib as mpl

    fig = Figure(figsize=(9.5, 5.6), layout="constrained")
    ax = fig.add_subplot()
    models = analysis["models"]
    cmap = mpl.colormaps["viridis"]
    colours = {m["arch"]: cmap(0.92 * i / max(len(models) - 1, 1)) for i, m in enumerate(models)}
    many = len(models) > MAX_LEGEND_MODELS            # a colour bar of parameters instead of one legend row each
    if many:
        norm = mpl.colors.LogNorm(min(m["params"] for m in models), max(m["params"] for m in models))
        colours = {m["arch"]: cmap(0.92 * norm(m["params"])) for m in models}
    ts = sorted({p["epochs"] for p in points})
    marker = {t: MARKERS[i % len(MARKERS)] for i, t in enumerate(ts)}   # each point's T, visible
    ns = np.array([p["n_train"] for p in points], float)
    lo, hi = np.log(ns.min()), np.log(ns.max())

    def area(n):
        return 14 + 150 * ((math.log(n) - lo) / (hi - lo) if hi > lo else 0.5)

    for m in models:
        for t in ts:
            sel = [p for p in points if p["arch"] == m["arch"] and p["epochs"] == t]
            if sel:
                ax.scatter([p["compute_pflops"] for p in sel], [p["error"] for p in sel],
                           s=[area(p["n_train"]) for p in sel], marker=marker[t], color=colours[m["arch"]], alpha=0.75,
                           edgecolors="white", linewidths=0.5, zorder=2)
    fr = analysis["frontier"]
    ax.plot([p["compute_pflops"] for p in fr], [p["error"] for p in fr], color="0.25", lw=1, ls=":",
            marker="o", ms=3, zorder=3)
    fit = analysis["fit"]
    cmin = min(p["compute_pflops"] for p in points)
    cmax = max(p["compute_pflops"] for p in points)
    cc = np.geomspace(cmin, cmax, 300)
    a, b, alpha, e_inf = (fit[k]["value"] for k in ("a", "b", "alpha", "e_inf"))
    ax.plot(cc, a * (b + cc) ** (-alpha) + e_inf, color="crimson", lw=1.8,
            zorder=4)
    ax.axhline(fit["e_inf"]["value"], color="crimson", lw=0.8, ls="--", alpha=0.6, zorder=1)
    ax.set_xscale("log")
    ax.set_xlabel("compute (PFLOPs)")
    measured = analysis.get("measured") or "error"
    ax.set_ylabel(f"{measured} (fraction: 1 - top-1)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_title(title or f"{measured[:1].upper() + measured[1:]} vs training compute: {len(points)} runs, "
                          f"Pareto frontier and fitted law")

    # one legend outside on the right (models, then dataset sizes: it grows with the number of models and
    # never overlaps another), and the lines inside where the points leave room (below the frontier, usually)
    def header(text):
        return Line2D([], [], ls="", marker="", label=text)

    uniq = sorted({p["n_train"] for p in points})
    shown = uniq if len(uniq) <= 5 else [uniq[round(i * (len(uniq) - 1) / 4)] for i in range(5)]
    model_rows = [] if many else (
        [header("model (params)")] + [Line2D([], [], ls="", marker="o", ms=7, color=colours[m["arch"]],
                                             label=f"{m['arch']} ({_human(m['params'])})") for m in models]
        + [header(" ")])
    handles = (model_rows + [header("epochs T")]
               + [Line2D([], [], ls="", marker=marker[t], ms=7, color="0.45", label=str(t)) for t in ts]
               + [header(" "), header("training samples")]
               + [Line2D([], [], ls="", marker="o", color="0.55", ms=math.sqrt(area(n)), label=_human(n))
                  for n in dict.fromkeys(shown)])
    leg = fig.legend(handles=handles, loc="outside right upper", frameon=False, labelspacing=0.8,
                     ncols=1 if len(handles) <= 22 else 2, handletextpad=0.4)
    for text in leg.get_texts():
        if text.get_text() in ("model (params)", "training samples", "epochs T"):
            text.set_fontweight("bold")
    line_handles = [Line2D([], [], color="0.25", lw=1, ls=":", marker="o", ms=3, label="Pareto frontier"),
                    Line2D([], [], color="crimson", lw=1.8, label=_fit_label(fit)),
                    Line2D([], [], color="crimson", lw=0.8, ls="--", alpha=0.6, label="$E_\\infty$ (fitted)")]
    ax.legend(handles=line_handles, loc="best", framealpha=0.9)
    if many:
        bar = fig.colorbar(mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, location="left", pad=0.01)
        bar.set_label(f"model parameters ({len(models)} models)")
    _save(fig, path)


def plot_allocation(analysis: dict, path: str, title: str | None = None) -> None:
    """Figure-7 style: compute-optimal model size P* and dataset size N* vs compute (log-log), with the
    fitted power laws and their exponents (95% interval) in the legend."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    fig = Figure(figsize=(10, 4.4), layout="constrained")
    alloc = analysis["allocation_frontier"]
    c = np.array([p["compute_pflops"] for p in alloc], float)
    cc = np.geomspace(c.min() / 1.5, c.max() * 1.5, 100)
    panels = (("p_star", "params", "P*", "parameters", "tab:blue"),
              ("n_star", "n_train", "N*", "training samples", "tab:orange"))
    for i, (key, col, sym, unit, colour) in enumerate(panels):
        ax = fig.add_subplot(1, 2, i + 1)
        fitd = analysis[key]
        k, e = fitd["coefficient"]["value"], fitd["exponent"]["value"]
        ci = fitd["exponent"]["ci95"]
        ci_txt = f", exponent 95% CI [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
        ax.plot(cc, k * cc ** e, color=colour, lw=1.6, label=f"fit: {sym} $\\propto$ C$^{{{e:.2f}}}$" + ci_txt)
        ax.scatter(c, [p[col] for p in alloc], color=colour, edgecolors="black", linewidths=0.5, zorder=3, s=30,
                   label=f"frontier runs at T={analysis['epochs_for_allocation']} (n={len(alloc)})")
        _other_methods(ax, analysis, key, cc)
        ax.set_xscale("log")
        ax.set_yscale("log")
        fmt = FuncFormatter(lambda v, _: _human(v))    # 9M, 12M, ... rather than 9x10^6
        ax.yaxis.set_major_formatter(fmt)
        lo, hi = ax.get_ylim()
        if hi / lo < 30:                               # under ~1.5 decades: label the 2, 3 and 5 ticks too
            ax.yaxis.set_minor_formatter(FuncFormatter(
                lambda v, _: _human(v) if round(v / 10 ** math.floor(math.log10(v))) in (2, 3, 5) else ""))
        ax.set_xlabel("compute (PFLOPs)")
        ax.set_ylabel(f"{sym}: {unit}")
        ax.grid(True, which="major", alpha=0.3)
        ax.set_title(f"Compute-optimal {'model size' if key == 'p_star' else 'dataset size'} {sym}")
        ax.legend(loc="best", framealpha=0.9)
    fig.suptitle(title or f"Compute-optimal allocation at T = {analysis['epochs_for_allocation']} epochs: frontier "
                          f"runs, surface E_inf + A/P^a + B_T/N^b and IsoFLOP minima")
    _save(fig, path)


def _other_methods(ax, analysis: dict, key: str, cc) -> None:
    """The surface's closed-form P*(C) / N*(C) and the IsoFLOP minima at the allocation's T, with exponents."""
    t = analysis["epochs_for_allocation"]
    m = analysis.get("methods", {})
    s = m.get("surface", {})
    if "p_star_exponent" in s and str(t) in s.get("B_T", {}):
        p, n = surface_allocation(s, cc, t)
        e = s[f"{key}_exponent"]
        ci = e["ci95"]
        ax.plot(cc, p if key == "p_star" else n, color="0.2", lw=1.2, ls="--",
                label=f"surface: C$^{{{e['value']:.2f}}}$" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
    iso = m.get("isoflop", {})
    if "minima" in iso:
        mins = [x for x in iso["minima"] if x["epochs"] == t]
        if mins:
            c = np.array([x["compute_pflops"] for x in mins])
            pv = np.array([x["params"] for x in mins])
            y = pv if key == "p_star" else c / (iso["kappa_pflops"] * t * pv)
            e = iso[f"{key}_exponent"]
            ax.scatter(c, y, marker="x", color="crimson", zorder=4,
                       label=f"IsoFLOP minima: C$^{{{e['value']:.2f}}}$ [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]")


def _save(fig, path: str) -> None:
    with atomic_file(path) as f:
        fig.savefig(f, format="png", dpi=130)
