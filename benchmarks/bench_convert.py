"""Converter throughput: ours vs the reference approach, on the same generated JPEG tree, one run.

Tree: N JPEGs at ImageNet-like sizes (500x375, 375x500, 500x333, 640x480; quality 90; smooth
photo-like content plus noise) in 10 class folders, generated once into --tmp (not timed).

  ours      data_prep.engine.write_split: our worker pool, Pillow draft() (DCT-scaled) decode, box
            resize + centre crop, streaming page writer, read-back verify, rename.
  baseline  the reference approach: full Pillow decode, torchvision-style Resize (shorter side, PIL
            bilinear with antialias, which is what torchvision.transforms.Resize does on PIL images)
            + CenterCrop inside __getitem__, written by FFCV's DatasetWriter with
            RGBImageField(write_mode='smart').

Timer: wall clock from the call that starts the conversion until the .beton is complete on disk
(includes worker start-up, reading, decoding, resizing, writing; ours also includes the verify
and rename). Excludes tree generation and the one-time `import ffcv`. Both use --workers
processes; runs alternate baseline/ours, and the median of --repeats is reported.

  .venv/bin/python benchmarks/bench_convert.py --quick            # < 60 s
  .venv/bin/python benchmarks/bench_convert.py --n 3000 --repeats 3 --json benchmarks/results/convert_cpu2_DATE.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SIZES = [(500, 375), (375, 500), (500, 333), (640, 480)]


def make_tree(root: str, n: int, classes: int = 10) -> list[tuple[str, int]]:
    """n JPEGs in root/train/<class>/; returns [(path, label)] (reuses an existing tree)."""
    rng = np.random.default_rng(0)
    items = []
    for i in range(n):
        c = i % classes
        path = os.path.join(root, "train", f"c{c:02d}", f"img{i:06d}.JPEG")
        items.append((path, c))
        if os.path.exists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        w, h = SIZES[i % len(SIZES)]
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(path, quality=90)
    return items


class ReferenceDataset:
    """The reference pipeline: full decode, Resize(res) (shorter side, bilinear+antialias), CenterCrop."""

    def __init__(self, items, res):
        self.items, self.res = items, res

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        img = Image.open(path).convert("RGB")
        w, h = img.size
        if w < h:
            size = (self.res, int(self.res * h / w))
        else:
            size = (int(self.res * w / h), self.res)
        img = img.resize(size, Image.Resampling.BILINEAR)
        left, top = int(round((size[0] - self.res) / 2.0)), int(round((size[1] - self.res) / 2.0))
        img = img.crop((left, top, left + self.res, top + self.res))
        return np.asarray(img), label


def cpu_seconds() -> float:
    """User+system CPU of this process and its finished (reaped) children."""
    import multiprocessing
    import resource

    multiprocessing.active_children()  # reaps finished worker processes so they are counted
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def timed(fn, *a):
    """(wall seconds, CPU seconds) of fn(*a); CPU time is robust to other load on the machine."""
    c0 = cpu_seconds()
    wall = fn(*a)
    time.sleep(0.2)  # let exiting workers finish so that their CPU time is reaped
    return wall, cpu_seconds() - c0


def run_baseline(items, res, workers, path) -> float:
    from ffcv.fields import IntField, RGBImageField
    from ffcv.writer import DatasetWriter

    fields = {"image": RGBImageField(write_mode="smart", max_resolution=res), "label": IntField()}
    t0 = time.perf_counter()
    DatasetWriter(path, fields, num_workers=workers).from_indexed_dataset(
        ReferenceDataset(items, res), chunksize=100)
    return time.perf_counter() - t0


def run_ours(items, res, workers, path, fmt="raw") -> float:
    from data_prep.engine import FileRecords, write_split

    t0 = time.perf_counter()
    rec = FileRecords([c for _, c in items], paths=[p for p, _ in items])
    r = write_split(path, rec, res, fmt, workers=workers, progress=False)
    assert r.count == len(items) and not r.skipped
    return time.perf_counter() - t0


def pixel_difference(a_path, b_path, res) -> float:
    """Mean |ours - baseline| over all pixels (0..255): both are valid downscales, not identical."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
    from ffcv.reader import Reader

    from data_prep.beton import iter_samples

    ra = [np.frombuffer(p, np.uint8) for p, *_ in iter_samples(a_path)]
    rb = Reader(b_path)
    modes = rb.metadata["f0"]["mode"]
    if (modes == 1).all():
        rbs = [np.frombuffer(p, np.uint8) for p, *_ in iter_samples(b_path)]
        return float(np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(ra, rbs)]))
    return float("nan")


def versions() -> dict:
    import PIL

    import ffcv

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"python": platform.python_version(), "pillow": PIL.__version__, "numpy": np.__version__,
            "ffcv": getattr(ffcv, "__version__", "1.0.2"), "cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "platform": platform.platform()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=3000, help="images in the generated tree")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="600 images, 1 repeat (< 60 s)")
    p.add_argument("--tmp", default=os.path.join(tempfile.gettempdir(), "mlpscale_bench_convert"))
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.repeats = 600, 1
    import ffcv.writer  # noqa: F401  (one-time import cost, ~10 s cold, kept out of both timers)

    t = time.perf_counter()
    items = make_tree(args.tmp, args.n)
    print(f"tree: {args.n} JPEGs under {args.tmp} ({time.perf_counter() - t:.1f} s to generate/reuse)")
    out = tempfile.mkdtemp(prefix="bench_out_")
    base_t, ours_t, base_c, ours_c = [], [], [], []
    load_before = os.getloadavg()
    try:
        for r in range(args.repeats):
            w, c = timed(run_baseline, items, args.res, args.workers, os.path.join(out, "baseline.beton"))
            base_t.append(w), base_c.append(c)
            w, c = timed(run_ours, items, args.res, args.workers, os.path.join(out, "ours.beton"))
            ours_t.append(w), ours_c.append(c)
            print(f"run {r}: baseline {args.n / base_t[-1]:.0f} img/s ({1e3 * base_c[-1] / args.n:.2f} CPU ms/img), "
                  f"ours {args.n / ours_t[-1]:.0f} img/s ({1e3 * ours_c[-1] / args.n:.2f} CPU ms/img)")
        jpg_t = run_ours(items, args.res, args.workers, os.path.join(out, "ours_jpg.beton"), "jpg")
        diff = pixel_difference(os.path.join(out, "ours.beton"), os.path.join(out, "baseline.beton"), args.res)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    b, o = statistics.median(base_t), statistics.median(ours_t)
    result = {
        "benchmark": "convert JPEG tree -> 64px beton",
        "command": " ".join([sys.executable, *sys.argv]),
        "images": args.n, "res": args.res, "workers": args.workers, "repeats": args.repeats,
        "image_sizes": SIZES,
        "baseline_img_s": round(args.n / b, 1), "ours_img_s": round(args.n / o, 1),
        "ratio": round(b / o, 2),
        "baseline_s_runs": [round(x, 3) for x in base_t], "ours_s_runs": [round(x, 3) for x in ours_t],
        "ours_jpg_format_img_s": round(args.n / jpg_t, 1),
        "baseline_cpu_ms_per_img": round(1e3 * statistics.median(base_c) / args.n, 3),
        "ours_cpu_ms_per_img": round(1e3 * statistics.median(ours_c) / args.n, 3),
        "cpu_ratio": round(statistics.median(base_c) / statistics.median(ours_c), 2),
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "note": "load_avg > cores means other processes shared the CPUs: wall-clock img/s then understate both "
                "sides; cpu_ratio (CPU seconds of all processes involved, per image) is robust to that",
        "mean_abs_pixel_diff_ours_vs_baseline": round(diff, 2),
        "timer": "wall clock of one full conversion (worker start-up, read, decode, resize, write; ours also "
                 "verify + rename); excludes tree generation and the one-time ffcv import",
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"baseline (full decode + PIL bilinear Resize + FFCV smart writer): {result['baseline_img_s']} img/s")
    print(f"ours (draft decode + box resize + streaming writer):             {result['ours_img_s']} img/s")
    print(f"ratio ours/baseline: {result['ratio']}x wall, {result['cpu_ratio']}x CPU time "
          f"(ours, --format jpg: {result['ours_jpg_format_img_s']} img/s; load avg {result['load_avg_after'][0]})")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
