"""Throughput benchmarks: ours vs the paper's recipe, side by side (`mlpscale-bench`, benchmarks/gpu_check.py)."""
