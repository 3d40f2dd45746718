"""Learning-rate schedules as pure functions of the optimizer step."""
from __future__ import annotations

import math


def lr_at(step: int, total_steps: int, base_lr: float, warmup_steps: int = 0, schedule: str = "cosine",
          min_lr: float = 0.0) -> float:
    """Learning rate for optimizer step `step` (0-based) of `total_steps`.

    Linear warmup from base_lr/warmup_steps to base_lr over `warmup_steps`, then either constant or
    cosine decay from base_lr to min_lr at the last step.
    """
    if schedule not in ("cosine", "constant"):
        raise ValueError(f"unknown schedule '{schedule}'")
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return base_lr
    decay_steps = max(1, total_steps - warmup_steps - 1)
    t = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + math.cos(math.pi * t))
