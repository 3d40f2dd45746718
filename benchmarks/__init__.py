"""Developer benchmarks: ours vs the paper's recipe, side by side (`python -m benchmarks`, gpu_check.py).

They live in the checkout, not in the wheel: they build the authors' recipe as a baseline and run the
checkout's scripts. A user checks their own device with `mlpscale-train` (img/s and MFU per epoch).
"""
