"""Converter benchmark: whole commands, each tool in its own process, on the same JPEG tree.

Tree: N JPEGs at ImageNet-like sizes (500x375, 375x500, 500x333, 640x480; quality 90; smooth
photo-like content plus noise) in 10 class folders, 1/12 of them under val/, the rest under
train/; generated once into --tmp (not timed).

  ours     `mlpscale-convert folder --src TREE --dataset x --res 64 --root OUT`: both splits in one
           command (default square layout, raw, workers = all cores); also once per round with
           `--layout paper`, which stores what the authors' converter stores (same image sizes), to
           compare pixels.
  authors  the paper's converter (gregorbachmann/scaling_mlps, data_utils/dataset_to_beton.py) as
           its users run it: one command per split,
           `python dataset_to_beton.py --dataset_name x --data_path TREE/<split> --mode <split>
           --res 64 --write_path OUT --num_workers CORES`. Re-written here from its description
           (AUTHORS_SCRIPT, written to a temp file): torchvision's ImageFolder without a transform
           (classes = sorted folders; each image fully decoded by PIL and converted to RGB;
           torchvision is not installable here, so this is emulated with PIL, which leaves out the
           time `import torchvision` costs them) written by FFCV's DatasetWriter with
           {'image': RGBImageField(write_mode='smart', max_resolution=res), 'label': IntField()},
           chunksize 100, num_workers = cores.

Timer: wall clock of each command, from starting the process to its exit (interpreter start,
imports, listing, decoding, resizing, writing; ours also verifying, renaming and writing meta);
the authors' figure is the sum of its two commands. CPU: user+system seconds of the command and
all its worker processes. Start-up of ours: from the process's start to the first converted image
(meta `startup_s`). The tools alternate, the order flipping every round; medians, min-max and
the ratio of medians are reported, plus same-round ratios.

  .venv/bin/python benchmarks/bench_convert.py --quick            # 360 images, 1 round
  .venv/bin/python benchmarks/bench_convert.py --n 2400 --repeats 5 --json benchmarks/results/convert_<hw>_<date>.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

SIZES = [(500, 375), (375, 500), (500, 333), (640, 480)]
CLASSES = 10

# The authors' converter as its users run it, re-written from its description (see the docstring).
AUTHORS_SCRIPT = '''\
"""dataset_to_beton.py (the paper's converter), rebuilt for the benchmark: ImageFolder -> FFCV."""
import argparse
import os

from PIL import Image
from ffcv.fields import IntField, RGBImageField
from ffcv.writer import DatasetWriter

EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


class ImageFolder:
    """torchvision.datasets.ImageFolder(root, transform=None): (PIL RGB image, class index)."""

    def __init__(self, root):
        self.classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
        self.samples = []
        for label, c in enumerate(self.classes):
            for dirpath, _, files in sorted(os.walk(os.path.join(root, c), followlinks=True)):
                self.samples += [(os.path.join(dirpath, f), label) for f in sorted(files)
                                 if f.lower().endswith(EXTENSIONS)]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        path, label = self.samples[i]
        with open(path, "rb") as f:
            return Image.open(f).convert("RGB"), label


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--dataset_name", required=True)
    p.add_argument("--data_path", required=True)
    p.add_argument("--mode", default="train")
    p.add_argument("--res", type=int, default=32)
    p.add_argument("--write_path", default="./beton/")
    p.add_argument("--num_workers", type=int, default=16)
    a = p.parse_args()
    path = os.path.join(a.write_path, a.dataset_name, a.mode, f"{a.mode}_{a.res}.beton")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fields = {"image": RGBImageField(write_mode="smart", max_resolution=a.res), "label": IntField()}
    DatasetWriter(path, fields, num_workers=a.num_workers).from_indexed_dataset(ImageFolder(a.data_path),
                                                                               chunksize=100)
'''


def make_tree(root: str, n: int) -> dict[str, int]:
    """n JPEGs in root/{train,val}/<class>/ (reused when present); returns images per split."""
    n_val = n // 12
    counts = {"train": 0, "val": 0}
    for i in range(n):
        split = "val" if i < n_val else "train"
        counts[split] += 1
        path = os.path.join(root, split, f"c{i % CLASSES:02d}", f"img{i:06d}.JPEG")
        if os.path.exists(path):
            continue
        rng = np.random.default_rng([0, i])  # per image: a reused tree needs no draws
        w, h = SIZES[i % len(SIZES)]
        base = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(base).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int16)
        img = np.clip(img + rng.integers(-20, 21, (h, w, 3)), 0, 255).astype(np.uint8)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        Image.fromarray(img).save(path, quality=90)
    return counts


def run(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its reaped workers) of one command."""
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(cmd)} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return wall, (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)


class Tools:
    """The command lines of both tools for one tree, and where they write."""

    def __init__(self, tree: str, out: str, res: int, workers: int, authors_script: str):
        bindir = os.path.dirname(sys.executable)
        convert = os.path.join(bindir, "mlpscale-convert")
        self.ours_out, self.paper_out, self.authors_out = (os.path.join(out, d) for d in ("ours", "paper", "authors"))
        self.ours = [convert, "folder", "--src", tree, "--dataset", "x", "--res", str(res), "--root", self.ours_out,
                     "--workers", str(workers)]
        self.paper = [convert, "folder", "--src", tree, "--dataset", "x", "--res", str(res), "--root", self.paper_out,
                      "--workers", str(workers), "--layout", "paper"]
        self.authors = {split: [sys.executable, authors_script, "--dataset_name", "x", "--data_path",
                                os.path.join(tree, split), "--mode", split, "--res", str(res), "--write_path",
                                self.authors_out, "--num_workers", str(workers)] for split in ("train", "val")}

    def run_ours(self, paper: bool = False) -> tuple[float, float, float]:
        """(wall, CPU, start-up to the first image) of one fresh conversion."""
        out = self.paper_out if paper else self.ours_out
        shutil.rmtree(out, ignore_errors=True)
        wall, cpu = run(self.paper if paper else self.ours)
        with open(os.path.join(out, "x", f"meta_{self.ours[self.ours.index('--res') + 1]}.json")) as f:
            return wall, cpu, json.load(f)["startup_s"]

    def run_authors(self) -> tuple[float, float, dict]:
        """(wall, CPU, per-split wall) of the two commands a user of the authors' converter runs."""
        shutil.rmtree(self.authors_out, ignore_errors=True)
        per = {split: run(cmd) for split, cmd in self.authors.items()}
        return sum(w for w, _ in per.values()), sum(c for _, c in per.values()), {s: w for s, (w, _) in per.items()}


def pixel_difference(paper_beton: str, authors_beton: str) -> tuple[bool, float]:
    """(same image sizes?, mean |ours - authors| in 0..255) of ours --layout paper vs the authors'."""
    from mlpscale.beton import MODE_RAW, iter_payloads, open_beton

    def images(path):
        out = []
        for payload, mode, h, w, _ in iter_payloads(open_beton(path)):
            assert mode == MODE_RAW  # 'smart' without a threshold stores raw
            out.append(np.frombuffer(payload, np.uint8).reshape(h, w, 3).astype(np.int16))
        return out

    a, b = images(paper_beton), images(authors_beton)
    same = len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return same, float(np.mean([np.abs(x - y).mean() for x, y in zip(a, b)])) if same else float("nan")


def spread(values: list[float], digits: int = 3) -> dict:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "runs": [round(v, digits) for v in values]}


def versions() -> dict:
    import PIL

    from benchmarks.env import _cpu_model, _version

    return {"python": platform.python_version(), "pillow": PIL.__version__, "numpy": np.__version__,
            "opencv": _version("cv2", "opencv-python-headless"), "ffcv": _version("ffcv"), "cpu": _cpu_model(),
            "cores": len(os.sched_getaffinity(0)), "platform": platform.platform()}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2400, help="images in the generated tree (train + val)")
    p.add_argument("--res", type=int, default=64)
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--repeats", type=int, default=5, help="rounds; each runs every tool once")
    p.add_argument("--quick", action="store_true", help="360 images, 1 round (~25 s; what CI runs)")
    p.add_argument("--tmp", default=os.path.join(tempfile.gettempdir(), "mlpscale_bench_convert"))
    p.add_argument("--json", default=None, help="write the results here")
    args = p.parse_args(argv)
    if args.quick:  # the authors' two commands (each pays `import ffcv`) dominate
        args.n, args.repeats = 360, 1
    t = time.perf_counter()
    tree = os.path.join(args.tmp, f"tree_{args.n}")
    counts = make_tree(tree, args.n)
    print(f"tree: {args.n} JPEGs ({counts}) under {tree} ({time.perf_counter() - t:.1f} s to generate/reuse)")
    out = tempfile.mkdtemp(prefix="bench_convert_out_")
    script = os.path.join(out, "dataset_to_beton.py")
    with open(script, "w") as f:
        f.write(AUTHORS_SCRIPT)
    tools = Tools(tree, out, args.res, args.workers, script)
    ours_t, ours_c, ours_up, paper_t, auth_t, auth_c, auth_split, same_round = [], [], [], [], [], [], [], []
    load_before = os.getloadavg()
    try:
        tools.run_ours()  # untimed: the tree into the page cache, .pyc files written, for both tools
        for r in range(args.repeats):
            order = ["authors", "ours"] if r % 2 == 0 else ["ours", "authors"]
            for tool in order:
                if tool == "ours":
                    w, c, up = tools.run_ours()
                    ours_t.append(w), ours_c.append(c), ours_up.append(up)
                else:
                    w, c, per = tools.run_authors()
                    auth_t.append(w), auth_c.append(c), auth_split.append(per)
            paper_t.append(tools.run_ours(paper=True)[0])
            same_round.append(auth_t[-1] / ours_t[-1])
            print(f"round {r}: authors {auth_t[-1]:.2f} s ({args.n / auth_t[-1]:.0f} img/s, "
                  f"{1e3 * auth_c[-1] / args.n:.2f} CPU ms/img), ours {ours_t[-1]:.2f} s ({args.n / ours_t[-1]:.0f} "
                  f"img/s, {1e3 * ours_c[-1] / args.n:.2f} CPU ms/img, first image after {ours_up[-1]:.2f} s), "
                  f"ours --layout paper {paper_t[-1]:.2f} s")
        res = str(args.res)
        same_sizes, diff = pixel_difference(os.path.join(tools.paper_out, "x", f"train_{res}.beton"),
                                            os.path.join(tools.authors_out, "x", "train", f"train_{res}.beton"))
    finally:
        shutil.rmtree(out, ignore_errors=True)
    a, o = statistics.median(auth_t), statistics.median(ours_t)
    result = {
        "benchmark": f"convert a JPEG tree (train + val) -> {args.res}px betons, whole commands",
        "command": shlex.join([os.path.relpath(sys.executable, REPO) if sys.executable.startswith(REPO)
                               else sys.executable, *sys.argv]),
        "ours_command": shlex.join(tools.ours),
        "baseline_commands": [shlex.join(c) for c in tools.authors.values()],
        "baseline": "the paper's converter (scaling_mlps data_utils/dataset_to_beton.py) rebuilt from its "
                    "description: ImageFolder emulated with PIL (full decode, RGB), FFCV DatasetWriter, "
                    "RGBImageField(write_mode='smart', max_resolution=res), num_workers=cores; one command per split",
        "images": args.n, "images_per_split": counts, "res": args.res, "workers": args.workers,
        "repeats": args.repeats, "image_sizes": SIZES,
        "baseline_img_s": round(args.n / a, 1), "ours_img_s": round(args.n / o, 1),
        "ratio": round(a / o, 2),
        "same_round_ratios": spread(same_round, 2),
        "baseline_s_runs": [round(x, 3) for x in auth_t], "ours_s_runs": [round(x, 3) for x in ours_t],
        "baseline_s": spread(auth_t), "ours_s": spread(ours_t),
        "baseline_s_per_split": {s: spread([x[s] for x in auth_split]) for s in ("train", "val")},
        "ours_startup_s": spread(ours_up),
        "ours_paper_layout_s": spread(paper_t),
        "baseline_cpu_ms_per_img": round(1e3 * statistics.median(auth_c) / args.n, 3),
        "ours_cpu_ms_per_img": round(1e3 * statistics.median(ours_c) / args.n, 3),
        "cpu_ratio": round(statistics.median(auth_c) / statistics.median(ours_c), 2),
        "paper_layout_same_sizes_as_baseline": same_sizes,
        "mean_abs_pixel_diff_paper_layout_vs_baseline": round(diff, 2),
        "load_avg_before": [round(x, 2) for x in load_before], "load_avg_after": [round(x, 2) for x in os.getloadavg()],
        "note": "load_avg > cores means other processes shared the CPUs: wall-clock figures then understate both "
                "sides; cpu_ratio (CPU seconds of each command and its workers, per image) is robust to that",
        "timer": "wall clock of whole commands, process start to exit (interpreter start, imports, listing, "
                 "decode, resize, write; ours also verify, rename, meta); the baseline is the sum of its two "
                 "commands (train, val); tree generation excluded; one untimed warm-up conversion first",
        "versions": versions(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print(f"authors' converter (2 commands): {result['baseline_img_s']} img/s, median {a:.2f} s")
    print(f"mlpscale-convert (1 command):    {result['ours_img_s']} img/s, median {o:.2f} s, "
          f"first image after {result['ours_startup_s']['median']} s")
    print(f"ratio: {result['ratio']}x wall (same-round {result['same_round_ratios']['min']}-"
          f"{result['same_round_ratios']['max']}), {result['cpu_ratio']}x CPU time; --layout paper "
          f"{result['ours_paper_layout_s']['median']} s, same sizes as the authors': {same_sizes}, "
          f"mean |diff| {result['mean_abs_pixel_diff_paper_layout_vs_baseline']}")
    if args.json:
        from mlpscale.io import write_json_atomic

        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        write_json_atomic(args.json, result)  # a cut-short run leaves no half-written results file
        print(f"wrote {args.json}")
    return result


if __name__ == "__main__":
    main()
