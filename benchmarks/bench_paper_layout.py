"""Paper layout vs square layout: the training rate of whole `mlpscale-train` commands on the same photos.

Tree: N made photos (smooth photo-like content plus noise, JPEG quality 90) of four aspect ratios
(80x60, 60x80, 90x60, 64x64) in 10 class folders, 1/10 of them under val/; converted twice at R
(`mlpscale-convert folder --layout square` and `--layout paper`, raw); generated once into --tmp,
not timed. The paper layout stores each image aspect-kept in an R x R canvas with its true size, so
both files are fixed-size and resident; the difference left is on the device: boxes drawn inside
each image's own (h, w) and the centred-square evaluation view (one grid_sample either way).

Each round runs, in its own process and alternating (the order flips every round):
  mlpscale-train --config CFG --set data.dataset=<square|paper> ...
with data.resident=on, aug on (random-resized crop + flip, MixUp 0.8), fp32, a small B-MLP (so the
data path is a larger share of a step than in any real run), and reads from its summary.json:
  img_per_s   the median over epochs of the images per second of the training loop (metrics.jsonl;
              the timer covers data, augmentation, forward, backward and update; not start-up)
plus the command's wall clock (process start to exit). Reported: medians, min-max, the ratio of
medians paper / square and the same-round ratios.

Then, in this process, the part that differs alone: `DeviceAugment(train=True)` (crop + flip, or the
evaluation view) on one (batch, R, R, 3) uint8 batch of the paper files' canvases, with their true
sizes (`hw`) and without (the whole canvas, as for the square layout), alternating, `--aug-reps`
timings each; the timer covers one call (box sampling, grid_sample, normalisation).

  .venv/bin/python benchmarks/bench_paper_layout.py --quick
  .venv/bin/python benchmarks/bench_paper_layout.py --n 6000 --epochs 3 --repeats 5 \
      --json benchmarks/results/paper_layout_<hw>_<date>.json
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
SIZES = [(80, 60), (60, 80), (90, 60), (64, 64)]
CLASSES = 10

CONFIG = """\
data: {{root: {root}, res: {res}, resident: "on"}}
model: {{arch: {arch}}}
aug: {{enabled: true, mixup: 0.8}}
optim: {{name: lion, lr: 1.0e-4, weight_decay: 0.0, label_smoothing: 0.3}}
train: {{epochs: {epochs}, batch_size: {batch}, precision: fp32, eval_every: {epochs}, log_every: 50}}
run: {{out_dir: {out}, progress: false}}
"""


def make_tree(root: str, n: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    src = os.path.join(root, "tree")
    for i in range(n):
        split = "val" if (i // CLASSES) % 10 == 0 else "train"
        c = i % CLASSES
        w, h = SIZES[i % len(SIZES)]
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
        folder = os.path.join(src, split, f"c{c}")
        os.makedirs(folder, exist_ok=True)
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        with open(os.path.join(folder, f"{i}.jpg"), "wb") as f:
            f.write(buf.getvalue())
    return src


def convert(src: str, out: str, layout: str, res: int) -> None:
    subprocess.run([os.path.join(BIN, "mlpscale-convert"), "folder", "--src", src, "--name", layout, "--res",
                    str(res), "--out", out, "--layout", layout, "--quiet"], check=True)


def train(cfg: str, layout: str, name: str) -> dict:
    t0 = time.perf_counter()
    r = subprocess.run([os.path.join(BIN, "mlpscale-train"), "--config", cfg, "--set", f"data.dataset={layout}",
                        "--set", f"run.name={name}"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"mlpscale-train failed for {layout}:\n{r.stderr[-3000:]}")
    out = {}
    run_dir = os.path.join(os.path.dirname(cfg), "runs", name)
    with open(os.path.join(run_dir, "summary.json")) as f:
        s = json.load(f)
    out.update(img_per_s=s["img_per_s"], wall_s=wall, layout=s.get("layout"), test_top1=s.get("test_top1"))
    return out


def summarise(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def augment_only(data: str, res: int, batch: int, reps: int) -> dict:
    """Seconds per DeviceAugment call on paper-layout canvases, with and without their true sizes."""
    import torch

    sys.path.insert(0, REPO)
    from mlpscale.augment import DeviceAugment
    from mlpscale.beton import open_beton, read_raw_images
    from mlpscale.layout import beton_path

    b = open_beton(beton_path(data, "paper", "train", res))
    x = torch.from_numpy(read_raw_images(b, np.arange(batch)))
    hw = torch.from_numpy(b.image_sizes()[:batch].astype(np.int16))
    out = {}
    for train in (True, False):
        aug = DeviceAugment((120.0,) * 3, (60.0,) * 3, res, train=train)
        times = {"paper": [], "square": []}
        for k in range(reps):
            for name in (("paper", "square") if k % 2 == 0 else ("square", "paper")):
                gen = torch.Generator().manual_seed(k)
                t0 = time.perf_counter()
                aug(x, gen, hw if name == "paper" else None)
                times[name].append(time.perf_counter() - t0)
        key = "train_crop_flip" if train else "eval_view"
        out[key] = {name: summarise(v) for name, v in times.items()}
        out[key]["ratio_square_over_paper_time"] = out[key]["square"]["median"] / out[key]["paper"]["median"]
    return out


def _report_aug(aug: dict) -> None:
    for key, v in aug.items():
        print(f"DeviceAugment {key}: paper {v['paper']['median'] * 1e3:.2f} ms, "
              f"square {v['square']['median'] * 1e3:.2f} ms "
              f"per call (rate ratio paper/square {v['ratio_square_over_paper_time']:.3f})")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000, help="images in the tree (1/10 of them val)")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--arch", default="B_2-Wi_256")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--aug-reps", type=int, default=200)
    p.add_argument("--augment-only", action="store_true",
                   help="only the DeviceAugment timing, on the files already in --tmp; added to --json's file")
    p.add_argument("--quick", action="store_true", help="1200 images, 2 rounds")
    p.add_argument("--tmp", default=None, help="work folder (default: a new temp folder)")
    p.add_argument("--json", default=None, help="write the result here")
    a = p.parse_args(argv)
    if a.quick:
        a.n, a.repeats = 1200, 2
    work = a.tmp or tempfile.mkdtemp(prefix="bench-paper-layout-")
    data = os.path.join(work, "data")
    if a.augment_only:
        aug = augment_only(data, a.res, a.batch, a.aug_reps)
        result = {}
        if a.json and os.path.exists(a.json):
            with open(a.json) as f:
                result = json.load(f)
        result["augment_only_s_per_call"] = aug
        result["augment_only_command"] = " ".join([os.path.relpath(sys.executable, REPO),
                                                   "benchmarks/bench_paper_layout.py", *(argv or sys.argv[1:])])
        result["augment_only_load_avg_1m"] = os.getloadavg()[0]
        _report_aug(aug)
        if a.json:
            with open(a.json, "w") as f:
                json.dump(result, f, indent=1)
        return result
    src = make_tree(work, a.n)
    for layout in ("square", "paper"):
        convert(src, data, layout, a.res)
    cfg = os.path.join(work, "run.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(root=data, res=a.res, arch=a.arch, epochs=a.epochs, batch=a.batch,
                              out=os.path.join(work, "runs")))
    rows = {"square": [], "paper": []}
    for k in range(a.repeats):
        order = ("square", "paper") if k % 2 == 0 else ("paper", "square")
        for layout in order:
            r = train(cfg, layout, f"{layout}_{k}")
            rows[layout].append(r)
            print(f"round {k} {layout}: {r['img_per_s']:,.0f} img/s, command {r['wall_s']:.1f} s "
                  f"(layout {r['layout']}, test top-1 {r['test_top1']:.1f}%)", flush=True)
    rate = {lay: summarise([r["img_per_s"] for r in rs]) for lay, rs in rows.items()}
    wall = {lay: summarise([r["wall_s"] for r in rs]) for lay, rs in rows.items()}
    same_round = [p["img_per_s"] / s["img_per_s"] for p, s in zip(rows["paper"], rows["square"])]
    aug = augment_only(data, a.res, a.batch, a.aug_reps)
    import torch

    result = {
        "suite": "paper_layout",
        "what": "mlpscale-train img_per_s (median over epochs, training loop only) and command wall clock, "
                "square vs paper layout of the same photos, resident, aug + MixUp, fp32, each run its own process",
        "command": " ".join([os.path.relpath(sys.executable, REPO), "benchmarks/bench_paper_layout.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "hardware": {"cpu": platform.processor() or platform.machine(), "cores": len(os.sched_getaffinity(0)),
                     "device": "cpu"},
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__},
        "sizes": {"n_images": a.n, "res": a.res, "arch": a.arch, "epochs": a.epochs, "batch": a.batch,
                  "photo_sizes": SIZES, "repeats": a.repeats},
        "img_per_s": rate, "wall_s": wall,
        "ratio_paper_over_square": rate["paper"]["median"] / rate["square"]["median"],
        "same_round_ratios": same_round,
        "load_avg_1m_at_end": os.getloadavg()[0],
        "augment_only_s_per_call": aug,
    }
    print(f"paper / square training rate: {result['ratio_paper_over_square']:.3f} (median of {a.repeats}; "
          f"same-round {min(same_round):.3f}-{max(same_round):.3f})")
    _report_aug(aug)
    if a.json:
        from mlpscale.io import write_json_atomic

        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        write_json_atomic(a.json, result)  # a cut-short run leaves no half-written results file
        print(f"wrote {a.json}")
    return result


if __name__ == "__main__":
    main()
