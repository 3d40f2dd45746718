"""Deterministic class-balanced subsets: the scaling study's N.

The paper subsamples ImageNet-21k proportionally across classes. `balanced_subset` keeps, from
every class, a share of its images proportional to the class's size (largest-remainder rounding,
so the total is exactly n), chosen by a seeded permutation: the same (labels, n, seed) always
gives the same indices, and a smaller N of one seed is not required to nest in a larger one.
"""
from __future__ import annotations

import numpy as np

from .errors import UserError


def balanced_subset(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `n` samples, each class represented in proportion to its size."""
    labels = np.asarray(labels)
    total = len(labels)
    if not 0 < n <= total:
        raise UserError(f"n_train={n} must be between 1 and the training-set size {total}")
    if n == total:
        return np.arange(total)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n / total)
    take = np.floor(quota).astype(np.int64)
    # largest remainders get the leftover images; ties broken by class id for determinism
    short = n - int(take.sum())
    order = np.lexsort((classes, -(quota - take)))
    take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = []
    for c, k in zip(classes, take):
        if k:
            members = np.flatnonzero(labels == c)
            picked.append(members[rng.permutation(len(members))[:k]])
    return np.sort(np.concatenate(picked))
