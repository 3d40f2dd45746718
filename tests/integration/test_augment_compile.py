"""torch.compile of the augmentation's normalise-and-flatten step (a compile costs seconds, so it runs with the
integration tests)."""

import torch

from mlpscale.augment import normalize_flatten


def test_normalize_flatten_compiles():
    """torch.compile (the GPU path may compile the input pipeline) gives the same values."""
    x = torch.rand(4, 3, 5, 6) * 255
    mean, std = torch.tensor([10.0, 20.0, 30.0]), torch.tensor([2.0, 4.0, 8.0])
    compiled = torch.compile(normalize_flatten)(x, mean, std)
    assert torch.allclose(compiled, normalize_flatten(x, mean, std), atol=1e-5)
