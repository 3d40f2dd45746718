"""Helpers shared by tests (pytest puts tests/ on sys.path: `from util import ...`)."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(name: str) -> str:
    """Path of a console script of the venv running the tests."""
    return os.path.join(os.path.dirname(sys.executable), name)


def run_cli(*args, env=None, timeout=300, cwd=None):
    """Run a console script of the venv and capture its output. It runs in `cwd`, or else in a fresh
    temporary folder removed when it returns, so relative defaults (runs/, data/) never reach the
    repository and nothing piles up in /tmp. `timeout` only bounds a hang."""
    e = dict(os.environ, **(env or {}))
    argv = [cli(args[0]), *args[1:]]
    if cwd is not None:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e, cwd=cwd)
    with tempfile.TemporaryDirectory(prefix="mlpscale-cli-") as tmp:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=e, cwd=tmp)


def write_dataset(root, name, train, evals, eval_split="test", fmt="raw", sidecars=None):
    """A converted dataset made from arrays: ROOT/<name>/{train,<eval_split>}_<res>.beton + meta_<res>.json,
    stamped like the converter's. `train` and `evals` are (images (N, R, R, 3) uint8, labels (N,))."""
    import numpy as np

    from mlpscale.beton import write_arrays
    from mlpscale.io import write_json_atomic
    from mlpscale.layout import beton_path, meta_path, new_conversion_id, sidecar_path

    res = train[0].shape[1]
    cid = new_conversion_id()
    counts = {}
    for split, (x, y) in (("train", train), (eval_split, evals)):
        counts[split] = write_arrays(beton_path(str(root), name, split, res), x, y, fmt, conversion_id=cid)
    px = train[0].reshape(-1, 3).astype(np.float64)
    meta = {"name": name, "res": res, "format": fmt, "num_classes": int(max(train[1].max(), evals[1].max()) + 1),
            "counts": counts, "eval_split": eval_split, "mean": px.mean(0).tolist(), "std": px.std(0).tolist(),
            "conversion_id": cid, "command": f"(test fixture {name})"}
    for key, values in (sidecars or {}).items():
        write_json_atomic(sidecar_path(str(root), name, key, res), values)
        meta[key] = os.path.basename(sidecar_path(str(root), name, key, res))
    write_json_atomic(meta_path(str(root), name, res), meta)
    return str(root)


def digits_arrays(res=8):
    """scikit-learn's digits as (train, test) uint8 RGB arrays at `res` (the demo's split)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    gray = np.clip(d.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    if res != 8:
        gray = np.stack([np.asarray(Image.fromarray(g).resize((res, res), Image.Resampling.BICUBIC)) for g in gray])
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    y = d.target.astype(np.int64)
    return (rgb[:1437], y[:1437]), (rgb[1437:], y[1437:])
