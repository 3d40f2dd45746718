"""Where and how models run: device, ranks, precision, compilation, DDP.

Shared by training, fine-tuning and evaluation (it sits below all three, so none imports another
to get it). The wrappers are applied apart from the model definition, and checkpoints always hold
the unwrapped module's state (torchtitan's `parallelize.py` habit).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from .distributed import DistInfo, init_distributed


def auto_on_off(value) -> bool | None:
    """'auto' -> None, 'on' -> True, 'off' -> False (the config has already checked the value)."""
    return {"auto": None, "on": True, "off": False}[str(value)]


@dataclass
class Runtime:
    dist: DistInfo
    device: torch.device
    bf16: bool              # autocast matmuls to bf16
    compile: bool           # torch.compile the model

    @classmethod
    def create(cls, device: str = "auto", precision: str = "auto", compile: str = "auto") -> "Runtime":
        """precision auto: bf16 on CUDA, fp32 on CPUs (bf16 autocast is far slower than fp32 on
        CPUs without AVX512-BF16/AMX, benchmarks/README.md); compile auto: on CUDA only."""
        dist, dev = init_distributed(device)
        bf16 = precision == "bf16" or (precision == "auto" and dev.type == "cuda")
        comp = auto_on_off(compile)
        return cls(dist, dev, bf16, dev.type == "cuda" if comp is None else comp)

    @property
    def input_dtype(self) -> torch.dtype:
        """What augmentation hands the model: bf16 on CUDA under autocast (halves the bytes), else fp32."""
        return torch.bfloat16 if self.bf16 and self.device.type == "cuda" else torch.float32

    def autocast(self):
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def wrap(self, model: torch.nn.Module, ddp: bool = True):
        """(forward callable, DDP module or None): DDP across ranks (if `ddp` and world > 1), then compile."""
        wrapped, ddp_mod = model, None
        if ddp and self.dist.world > 1 and any(p.requires_grad for p in model.parameters()):
            from torch.nn.parallel import DistributedDataParallel as DDP

            ddp_mod = wrapped = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return (torch.compile(wrapped) if self.compile else wrapped), ddp_mod

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def device_name(self) -> str:
        return torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else "cpu"
