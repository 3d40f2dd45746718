"""torch.compile on the trainer's own path, counted: how many graphs dynamo compiled, how often it
recompiled, where it broke the graph.

`compile_run(root, out_dir, device)` trains a small B-MLP with `train.compile=on` through the whole
path a real run takes: two epochs (an epoch boundary), an evaluation after each (its last batch
shorter than the others), the final evaluation with TTA, then a resume for a third epoch in the same
process (a new Trainer, model and optimizer restored from last.pt). It returns dynamo's counters
after the first run and after the resume. Expected: one graph (the training forward and backward),
no recompile, no graph break; evaluation and TTA run the uncompiled module. The CPU test
(tests/test_compile_path.py) asserts this; benchmarks/gpu_check.py reports the same counters on the GPU.

  .venv/bin/python benchmarks/compile_check.py [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import numpy as np

RES, NAME = 8, "compile_check"


def compile_counters() -> dict:
    """dynamo's counters in this process: frames it compiled (a recompile of a frame counts again),
    graphs, graph breaks (by reason)."""
    from torch._dynamo.utils import counters

    breaks = dict(counters["graph_break"])
    return {"frames": int(counters["frames"]["total"]), "frames_ok": int(counters["frames"]["ok"]),
            "graphs": int(counters["stats"]["unique_graphs"]), "graph_breaks": int(sum(breaks.values())),
            "graph_break_reasons": {str(k)[:200]: int(v) for k, v in breaks.items()}}


def write_data(root: str) -> str:
    """Made 8x8 images of 10 classes (train 1437, test 360: eval batches of 256 and 104) and their
    meta file, with mlpscale's own writer (no FFCV, no scikit-learn: the GPU target has neither)."""
    from mlpscale.beton import write_arrays
    from mlpscale.io import write_json_atomic

    rng = np.random.default_rng(0)
    proto = rng.integers(0, 256, (10, RES, RES, 3))
    folder = os.path.join(root, NAME)
    for split, n in (("train", 1437), ("test", 360)):
        y = rng.integers(0, 10, n)
        x = np.clip(proto[y] + rng.normal(0, 40, (n, RES, RES, 3)), 0, 255).astype(np.uint8)
        os.makedirs(folder, exist_ok=True)
        write_arrays(os.path.join(folder, f"{split}_{RES}.beton"), x, y)
    write_json_atomic(os.path.join(folder, f"meta_{RES}.json"),
                      {"name": NAME, "res": RES, "num_classes": 10, "classes": [str(c) for c in range(10)],
                       "counts": {"train": 1437, "test": 360}, "eval_split": "test",
                       "mean": [127.5] * 3, "std": [64.0] * 3})
    return NAME


def compile_run(root: str, out_dir: str, device: str = "cpu") -> dict:
    """Counters after two compiled epochs with evaluations and TTA, and after the resumed third epoch."""
    import torch._dynamo

    from mlpscale.config import load_config
    from mlpscale.train import run

    common = [f"data.dataset={write_data(root)}", "model.arch=B_2-Wi_64", "train.batch_size=64",
              "train.compile=on", f"train.device={device}",
              "train.eval_every=1", "eval.tta=2", "run.progress=false", "run.name=compiled",
              f"data.root={root}", f"data.res={RES}", f"run.out_dir={out_dir}"]
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    first = run(load_config("demo_digits.yaml", common + ["train.epochs=2"]))
    after_first = compile_counters()
    resumed = run(load_config("demo_digits.yaml", common + ["train.epochs=3"]),
                  resume_dir=os.path.join(out_dir, "compiled"))
    return {"device": device, "first": after_first, "after_resume": compile_counters(),
            "epochs_done": [first["epochs_done"], resumed["epochs_done"]],
            "status": [first["status"], resumed["status"]], "tta_top1": first.get("tta_top1")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlpscale-compile-") as d:
        r = compile_run(os.path.join(d, "data"), os.path.join(d, "runs"), a.device)
    json.dump(r, sys.stdout, indent=1)
    print()
    ok = r["after_resume"]["frames"] == 1 and r["after_resume"]["graphs"] == 1 and not r["after_resume"]["graph_breaks"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
