"""ImageNet-21k scale: subsets by one sort, the beton index read once per load, batch decode,
copies by ranges, cheap tar counting, compact records. Correctness only; times are in
benchmarks/bench_scale.py."""
import numpy as np
import pytest

from mlpscale.subsets import balanced_subset


def per_class_subset(labels, n, seed=0):
    """The per-class reference (`labels == c` once per class): the indices every existing subset,
    sweep and `subset` file was made with."""
    labels = np.asarray(labels)
    total = len(labels)
    if n == total:
        return np.arange(total)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n / total)
    take = np.floor(quota).astype(np.int64)
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


@pytest.mark.parametrize("kind", ["dense", "sparse_ids", "negative", "skewed"])
def test_subset_by_one_sort_equals_per_class(kind):
    rng = np.random.default_rng(3)
    if kind == "dense":
        labels = rng.integers(0, 300, 40_000)
    elif kind == "sparse_ids":           # ids far apart: ranked through np.unique
        labels = rng.integers(0, 50, 20_000) * 10_000_019
    elif kind == "negative":
        labels = rng.integers(-20, 20, 10_000)
    else:                                # a few huge classes, many tiny ones, sorted input
        labels = np.sort(np.concatenate([np.zeros(5000, int), rng.integers(1, 2000, 3000)]))
    for n in (1, 13, len(labels) // 7, len(labels) - 1, len(labels)):
        for seed in (0, 11):
            np.testing.assert_array_equal(balanced_subset(labels, n, seed), per_class_subset(labels, n, seed))


def test_subset_with_more_classes_than_16_bits():
    labels = np.repeat(np.arange(70_000), 2)[::-1]
    idx = balanced_subset(labels, 70_000, seed=1)
    assert np.array_equal(np.sort(labels[idx]), np.arange(70_000))  # one of each class
