"""Peak dense bf16 throughput of known accelerators, the MFU denominator when none is measured.

Datasheet numbers (dense, no sparsity). `train.peak_tflops` in the config overrides them, e.g.
with the bf16 matmul peak measured by `make gpu-check`.
"""
from __future__ import annotations

import torch

PEAK_BF16_TFLOPS = {  # substring of torch.cuda.get_device_name() -> TFLOP/s
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A6000": 155.0,
    "A5000": 111.0,
    "4090": 165.0,
    "3090": 71.0,
}


def peak_flops(device: torch.device, override_tflops: float = 0.0) -> float | None:
    """Peak FLOP/s for MFU, or None when unknown (the CPU, an unlisted GPU)."""
    if override_tflops > 0:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():
        if key in name:
            return tflops * 1e12
    return None


def software_versions() -> dict:
    """torch, CUDA and FFCV versions of this process (recorded in summary.json, quoted by mlpscale-report)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ffcv = version("ffcv")
    except PackageNotFoundError:
        ffcv = "not installed"
    return {"torch": torch.__version__, "cuda": torch.version.cuda or "none (CPU build)", "ffcv": ffcv}
