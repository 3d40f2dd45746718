"""Checkpoints: data, not code. Written atomically; loaded with `weights_only=True`.

Two kinds, one schema (`FORMAT`):
  * "train": everything to continue a run exactly (last.pt, epoch_<E>.pt): the unwrapped module's
    state, the optimizer's, the position in the data (epoch, micro-batch, step), the partial
    epoch's running sums, elapsed time, torch's RNG states, the resolved config;
  * "model": weights and what they expect as input (written by `mlpscale-import-paper`), the
    starting point of fine-tuning and evaluation.
Both carry `model_meta`: the model's input contract (arch, resolution, classes, flatten order,
activation, norm) and the normalisation it was trained with.

Loading never runs code from the file (`torch.load(weights_only=True)`): a file holding anything
but tensors and plain Python data is refused with one sentence, as is a bare state dict (which
says how to import it).
"""
from __future__ import annotations

import os
import pickle
import warnings

import torch

from .errors import UserError
from .io import save_torch_atomic
from .models import MLP, build_model

FORMAT = "mlpscale-checkpoint/1"


class PlainStateDict(UserError):
    """The file is a bare state dict (e.g. the paper's released weights), not an mlpscale checkpoint."""


def save_checkpoint(path: str, state: dict, kind: str = "train") -> None:
    save_torch_atomic(path, {"format": FORMAT, "kind": kind, **state})


def _looks_like_state_dict(obj) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _bare_pickle(path: str) -> bool:
    """A pickle stream (it opens with the PROTO opcode) rather than torch's zip file or junk."""
    with open(path, "rb") as f:
        return f.read(1) == b"\x80"


def load_checkpoint(path: str) -> dict:
    """A checkpoint written by mlpscale, as a dict on the CPU, or one clear UserError."""
    if not os.path.exists(path):
        raise UserError(f"checkpoint {path} not found; pass a run folder that holds last.pt, or the .pt file")
    if os.path.isdir(path):
        raise UserError(f"{path} is a folder; pass the run folder to --resume, or a .pt file")
    try:
        with warnings.catch_warnings():  # torch's remarks on a foreign pickle come before our sentence
            warnings.simplefilter("ignore")
            ck = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e) or _bare_pickle(path):  # names code, or a pickle torch.save did not write
            raise UserError(f"{path} holds objects other than tensors and plain data (possibly code); "
                            f"mlpscale loads checkpoints as data only and will not open it") from None
        raise UserError(f"cannot read checkpoint {path} (not a torch file); it is damaged or not a checkpoint") from None
    except Exception as e:  # noqa: BLE001 - a truncated, empty or foreign file
        raise UserError(f"cannot read checkpoint {path} ({type(e).__name__}); it is damaged or not a checkpoint") from None
    if isinstance(ck, dict) and "model_meta" in ck and "model" in ck:
        return ck
    if isinstance(ck, dict) and _looks_like_state_dict(ck.get("model", ck.get("state_dict", ck))):
        raise PlainStateDict(f"{path} is a plain state dict, not an mlpscale checkpoint; import it first, e.g. "
                        f"`mlpscale-import-paper {path} --arch B_12-Wi_1024 --res 64 --num-classes 11230 --out DIR` "
                        f"(the paper's checkpoints), then pass DIR")
    raise UserError(f"{path} is not an mlpscale checkpoint (no model and model_meta); pass a last.pt written by "
                    f"mlpscale-train or a folder written by mlpscale-import-paper")


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


def model_meta(model, act: str, norm: str, dataset: str = "", mean=(), std=()) -> dict:
    """The input contract stored with the weights (see the module docstring)."""
    return {"arch": model.spec.name, "res": model.res, "num_classes": model.num_classes, "flatten": "hwc",
            "act": act, "norm": norm, "dataset": dataset,
            "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def find_checkpoint(path: str) -> str:
    """A run folder (its last.pt) or a checkpoint file -> the file's path."""
    if os.path.isdir(path):
        for name in ("last.pt", "model.pt"):
            p = os.path.join(path, name)
            if os.path.exists(p):
                return p
        raise UserError(f"{path} holds no last.pt or model.pt; pass a run folder of mlpscale-train, "
                        f"mlpscale-finetune or mlpscale-import-paper, or a checkpoint file")
    return path


def model_from_checkpoint(ck: dict, device) -> MLP:
    """Our model (an MLP or the ResNet-18 baseline) as a checkpoint's model_meta describes it, with its weights."""
    m = ck["model_meta"]
    model = build_model(m["arch"], m["res"], m["num_classes"], act=m.get("act", "gelu"), norm=m.get("norm", "layer"))
    model.load_state_dict(ck["model"])
    return model.to(device)
