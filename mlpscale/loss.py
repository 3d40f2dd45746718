"""The training loss: cross-entropy against soft targets, which covers MixUp and label smoothing.

With MixUp (one lambda per batch) the target of sample i is lam * onehot(y_i) + (1-lam) * onehot(y2_i)
smoothed by `smoothing`; cross-entropy is linear in the target, so this is exactly
lam * CE(y, smoothing) + (1-lam) * CE(y2, smoothing), computed in that form (two fused
log-softmax + gather kernels, no (B, classes) target tensor). Logits arrive in bf16 under autocast
and are upcast once here.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_cross_entropy(logits: torch.Tensor, y: torch.Tensor, y2: torch.Tensor | None = None,
                              lam: float = 1.0, smoothing: float = 0.0) -> torch.Tensor:
    """Mean loss of logits (B, K) against targets y (B,) [mixed with y2 (B,) at weight 1-lam]."""
    logits = logits.float()
    loss = F.cross_entropy(logits, y, label_smoothing=smoothing)
    if y2 is not None and lam < 1.0:
        loss = lam * loss + (1.0 - lam) * F.cross_entropy(logits, y2, label_smoothing=smoothing)
    return loss
