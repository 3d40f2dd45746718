"""The error law's Wald intervals are calibrated: 150 noisy fits where the law holds (a small study, seconds)."""
from __future__ import annotations

import numpy as np

from mlpscale import scaling

LAW = dict(a=0.2, b=0.5, alpha=0.4, e_inf=0.3)   # the points' law (unit/test_scaling.py's synthetic sweeps use it too)


def test_error_law_intervals_cover_95_percent_when_the_law_holds():
    """The Wald intervals are calibrated where the law is the data's model (points on the law plus noise);
    through a frontier they run narrow (see scaling.py's docstring), which this test does not hide."""
    rng = np.random.default_rng(0)
    c = np.geomspace(1e-3, 1e2, 15)
    draws, hits = 150, np.zeros(len(LAW))
    for _ in range(draws):
        fit = scaling.fit_error_law(c, scaling.error_law(c, **LAW) + rng.normal(0, 0.004, len(c)))
        hits += [fit[k]["ci95"] is not None and fit[k]["ci95"][0] < v < fit[k]["ci95"][1] for k, v in LAW.items()]
    assert np.all((0.88 < hits / draws) & (hits / draws <= 1.0)), dict(zip(LAW, hits / draws))  # sd ~0.018
