"""Checkpoints: written atomically (temp file + rename), holding the unwrapped module's state.

A checkpoint is enough to continue a run exactly: model, optimizer, the position in the data
(epoch, micro-batch within it, optimizer step), the partial epoch's running sums, elapsed time,
torch's RNG states (dropout) and the model's input contract (arch, resolution, classes).
"""
from __future__ import annotations

import os

import torch

from .errors import UserError


def save_checkpoint(path: str, state: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(path: str) -> dict:
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found; pass a run folder that holds last.pt")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}); it is damaged or not ours") from None


def check_compatible(ckpt_model: dict, arch: str, res: int, num_classes: int, path: str) -> None:
    """The checkpoint's model must take the same inputs and produce the same classes as the data."""
    if ckpt_model.get("res") != res:
        raise UserError(
            f"checkpoint {path} was trained at {ckpt_model.get('res')}px but the data are {res}px; "
            f"use betons at {ckpt_model.get('res')}px or set data.crop_res={ckpt_model.get('res')}"
        )
    if ckpt_model.get("arch") != arch or ckpt_model.get("num_classes") != num_classes:
        raise UserError(
            f"checkpoint {path} holds {ckpt_model.get('arch')} with {ckpt_model.get('num_classes')} classes, "
            f"the config asks for {arch} with {num_classes}; match model.arch and the dataset"
        )
