"""The evidence that goes with every figure: hardware, versions, thread counts."""
from __future__ import annotations

import datetime
import os
import platform
import re
import subprocess
import sys

import torch


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


def _version(mod: str, dist: str | None = None) -> str | None:
    """The installed distribution's version (module __version__ can be stale: ffcv 1.0.2 says 0.0.3rc1),
    None when absent, or why the import fails (a broken install is a fact worth reporting)."""
    try:
        m = __import__(mod)
    except Exception as e:  # noqa: BLE001
        return None if isinstance(e, ModuleNotFoundError) else f"import failed: {type(e).__name__}: {e}"[:200]
    try:
        from importlib.metadata import version

        return version(dist or mod)
    except Exception:  # noqa: BLE001 - e.g. a shim or a source checkout without metadata
        return getattr(m, "__version__", "unknown")


def _git_commit() -> str | None:
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "") if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    cuda = torch.cuda.is_available()
    env = {
        "date_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "host_cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "affinity_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "nice": os.nice(0) if hasattr(os, "nice") else None,   # scheduling priority the benchmark ran at
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_count": torch.cuda.device_count() if cuda else 0,
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "ffcv": _version("ffcv"),
        "lion_pytorch": _version("lion_pytorch", "lion-pytorch"),
        "kornia": _version("kornia"),
        "git_commit": _git_commit(),
    }
    if cuda:
        p = torch.cuda.get_device_properties(0)
        env["gpu_memory_gib"] = round(p.total_memory / 2**30, 1)
        env["gpu_sm_count"] = p.multi_processor_count
    return env


def hardware_slug(env: dict | None = None) -> str:
    """Short name of the machine for result file names, e.g. `h200` or `cpu2-amd-epyc`."""
    env = env or environment()
    if env.get("gpu"):
        name = env["gpu"].lower()
        for key in ("h200", "h100", "a100", "a5000", "a6000", "l40s", "4090", "3090"):
            if key in name:
                return key
        return re.sub(r"[^a-z0-9]+", "-", name).strip("-")[:24]
    cpu = re.sub(r"\(.*?\)|processor|cpu|\d+-core", " ", env.get("host_cpu", "").lower())
    cpu = re.sub(r"[^a-z0-9]+", "-", cpu).strip("-")[:20] or "unknown"
    return f"cpu{env.get('affinity_cpus') or env.get('cpu_count')}-{cpu}"


def format_environment(env: dict) -> str:
    keys = ["date_utc", "gpu", "cuda", "host_cpu", "affinity_cpus", "torch_threads", "load_avg_1m", "nice", "python", "torch",
            "numpy",
            "numba", "ffcv", "lion_pytorch", "kornia", "git_commit"]
    return "environment: " + ", ".join(f"{k}={env.get(k)}" for k in keys if env.get(k) is not None)


def run_command() -> str:
    prog = os.path.basename(sys.argv[0])
    if prog in ("__main__.py", "cli.py"):  # python -m benchmarks
        prog = "python -m benchmarks"
    return " ".join([prog] + sys.argv[1:])
