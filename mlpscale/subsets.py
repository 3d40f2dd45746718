"""Deterministic class-balanced subsets: the scaling study's N.

The paper subsamples ImageNet-21k proportionally across classes. `balanced_subset` keeps, from
every class, a share of its images proportional to the class's size (largest-remainder rounding,
so the total is exactly n), chosen by a seeded permutation: the same (labels, n, seed) always
gives the same indices, and a smaller N of one seed is not required to nest in a larger one.

One stable sort of the labels groups every class's members (in index order) into one slice, so
the cost is O(N log N) whatever the number of classes (ImageNet-21k: 11.8M labels, 11,230 classes).
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
    classes, dense = _dense_labels(labels)             # dense[i]: rank of labels[i] among the classes
    counts = np.bincount(dense, minlength=len(classes))
    starts = np.cumsum(counts) - counts
    # (N,) every class's members in index order, class after class: one stable sort (a radix sort
    # when the class ranks fit 16 bits, as ImageNet-21k's 11,230 do)
    by_class = np.argsort(dense, kind="stable")
    quota = counts * (n / total)
    take = np.floor(quota).astype(np.int64)
    # largest remainders get the leftover images; ties broken by class id for determinism
    short = n - int(take.sum())
    order = np.lexsort((classes, -(quota - take)))
    take[order[:short]] += 1
    rng = np.random.default_rng(seed)
    picked = np.empty(n, dtype=by_class.dtype)
    at = 0
    # the generator is drawn class by class in class order, as many numbers as each class has
    for s, c, k in zip(starts.tolist(), counts.tolist(), take.tolist()):
        if k:
            picked[at:at + k] = by_class[s + rng.permutation(c)[:k]]
            at += k
    return np.sort(picked)


def _dense_labels(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct labels, each label's rank among them), ranks in the narrowest unsigned type."""
    if labels.dtype.kind in "iu" and len(labels) and labels.min() >= 0 and labels.max() < 4 * len(labels) + 65536:
        present = np.bincount(labels) > 0              # small non-negative ids: no sort needed
        classes = np.flatnonzero(present).astype(labels.dtype)
        rank = np.cumsum(present) - 1
        dense = rank[labels]
    else:
        classes, dense = np.unique(labels, return_inverse=True)
    narrow = np.uint16 if len(classes) <= 1 << 16 else np.uint32 if len(classes) <= 1 << 32 else np.int64
    return classes, dense.astype(narrow, copy=False)
