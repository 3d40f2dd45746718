"""Helpers shared by tests in unit/ and integration/ (tests/conftest.py puts tests/ on sys.path:
`from util import ...`). Fixtures live in conftest.py."""
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))   # the checkout
TESTS = os.path.join(ROOT, "tests")

# The one tiny training setup of the tests: the 8x8 digits, a small batch, fp32, no progress bar, no label
# smoothing, on configs/demo_digits.yaml (crops, MixUp 0.2, constant lr after a 1-epoch warmup).
TINY = ["data.res=8", "train.batch_size=64", "train.precision=fp32", "train.log_every=5",
        "optim.label_smoothing=0.0", "run.progress=false"]
# pre-training only; fine-tuning keeps the recipe's learning rate and the source checkpoint's model
TINY_PRETRAIN = ["model.arch=B_2-Wi_32", "optim.lr=0.001"]


# the benchmarks' CLI at toy sizes; e2e: every variant a separate process (a few seconds each, FFCV's compile
# in the reference's)
BENCH_TINY = ["--arch", "B_1-Wi_32", "--res", "8", "--batch", "32", "--classes", "10", "--n-train", "256",
              "--steps", "1", "--batches", "2", "--reps", "2", "--warmup", "1"]
BENCH_TINY_E2E = BENCH_TINY + ["--e2e-arch", "B_1-Wi_32", "--e2e-steps", "2", "--e2e-warmup", "1", "--e2e-reps", "1"]


def tiny_sets(root, out, name, *extra, finetune=False) -> list[str]:
    """`--set` values of a tiny run `name` on the digits under `root`, its folder under `out`; `extra` last."""
    return TINY + ([] if finetune else TINY_PRETRAIN) + [f"data.root={root}", f"run.out_dir={out}",
                                                        f"run.name={name}", *extra]


class TinyConfig:
    """Tiny configs on the digits (see TINY), as a loaded Config, `--set` values, a command line or a sweep
    spec's `set:` mapping. `root` and `out` default to the session's digits and the test's tmp_path."""

    def __init__(self, root, out):
        self.root, self.out = str(root), out

    def sets(self, name, *extra, finetune=False, root=None, out=None) -> list[str]:
        return tiny_sets(root or self.root, out or self.out, name, *extra, finetune=finetune)

    def __call__(self, name, *extra, finetune=False, root=None, out=None):
        from mlpscale.config import load_config

        sets = self.sets(name, *extra, finetune=finetune, root=root, out=out)
        if finetune:
            from mlpscale.finetune import recipe

            return load_config(None, sets, recipe=recipe)
        return load_config("demo_digits.yaml", sets)

    def argv(self, name, *extra, root=None, out=None) -> list[str]:
        """mlpscale-train's arguments for the same run."""
        return ["--config", "demo_digits.yaml"] + [a for kv in self.sets(name, *extra, root=root, out=out)
                                                  for a in ("--set", kv)]

    def spec_set(self, *extra, root=None) -> dict:
        """A sweep spec's `set:` for the same runs (typed values; the sweep names the runs and their folder)."""
        import yaml

        sets = TINY + TINY_PRETRAIN + [f"data.root={root or self.root}", *extra]
        return {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in sets)}


def write_spec(path, **kw) -> str:
    """A sweep spec on the demo config with two local jobs of one thread each, written to `path`."""
    import yaml

    spec = {"base": "demo_digits.yaml", "local": {"jobs": 2, "threads": 1}, **kw}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


def probe_measure(root) -> dict:
    """A sweep spec's `measure:` that probes each point for 2 epochs on the digits."""
    return {"probe": {"set": {"data.dataset": "digits", "data.root": root, "data.res": 8, "train.batch_size": 64,
                              "train.epochs": 2, "optim.lr": 1.0e-3, "train.precision": "fp32"}}}


def run_main(main, capsys, *argv) -> tuple[int, str, str]:
    """A command's main() in this process: (exit code, stdout, stderr)."""
    code = 0
    try:
        main(list(argv))
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def weights(path) -> dict:
    """The model's state dict in a checkpoint file, or in a run folder's last.pt."""
    import torch

    path = str(path)
    if os.path.isdir(path):
        path = os.path.join(path, "last.pt")
    return torch.load(path, weights_only=True)["model"]


def temps(folder) -> list[str]:
    """Temporary files (`*.tmp-*`) an atomic writer left in `folder`, sorted; [] when it does not exist."""
    from mlpscale.io import is_temp_name

    return sorted(f for f in os.listdir(folder) if is_temp_name(f)) if os.path.isdir(folder) else []


def tree(folder) -> dict[str, bytes]:
    """{path relative to `folder`: bytes} of every file below it."""
    out = {}
    for d, _, files in os.walk(folder):
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.relpath(os.path.join(d, f), folder)] = fh.read()
    return out


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


def start(name: str, *args, cwd=None, env=None) -> subprocess.Popen:
    """Start a console script of the venv with its output piped (text), in `cwd` (the caller's tmp_path)."""
    return subprocess.Popen([cli(name), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=None if cwd is None else str(cwd), env=env)


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
