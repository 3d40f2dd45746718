"""Scale suite: how mlpscale's costs grow with the number of images, projected to ImageNet-21k.

Made data (not timed): JPEG betons of N = 20k / 80k / 200k images at 32px (1,024 distinct encoded
images cycled, labels over 1,000 classes, an evaluation split of 2,048 images, and a meta file), written
with mlpscale's own BetonWriter; and a synthetic in-memory index of 11.8M samples over 11,230 classes
(ImageNet-21k's training split as the paper uses it). Figures:

  write      BetonWriter.add + commit per image (the converter's write stage, payloads already encoded)
  startup    `data.build_data` as the trainer calls it at start (check_dataset, the class-balanced
             subset `data.n_train` = 90% of N, the one-time JPEG decode of both splits into the
             resident store), after numba's one-time compile of the batch decoder (a constant per
             process, recorded apart as decoder_compile_s). Each run a fresh process, the sizes
             alternating (order flipped every round), --reps rounds; medians (and the 200k / 20k ratio
             within each round) of wall and CPU seconds (all threads: less sensitive to the other load
             on the machine), and the resident bytes (VmRSS growth) per image. The files sit in the
             page cache (just written): disk reads are not timed.
  fit        growth exponent b of time ~ N^b (least squares in log-log) and the projection to
             ImageNet-21k's 11.8M training images: t(200k) x (11.8M / 180k)^b (90% of 200k train).
  decode     decode_images over the same 20k rows with 1 and 2 threads, the GIL-free batch loop (ours)
             and the per-image Python loop (baseline), alternating, 5 rounds, medians; the load average
             is recorded before and after (the machine is shared). Also one decode thread beside a
             Python thread that spins: the share of its own rate it keeps shows whether it needs the GIL.
  index      the 11.8M-row index: balanced_subset (wall and CPU seconds) against the per-class
             reference at 1.18M labels (its cost grows with N x classes); one scan of the index
             (`Beton.scan`: what every chunk of a load re-did before) and the index's bytes per sample.
  tar        a 20k-member synset tar: counting its images from the headers vs indexing it.

  .venv/bin/python benchmarks/bench_scale.py --reps 5 --json benchmarks/results/scale_<hw>_<date>.json
  .venv/bin/python benchmarks/bench_scale.py --quick          # 5k / 10k / 20k, 1.18M index, 1 round
"""
from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.env import environment  # noqa: E402

RES, CLASSES, EVAL_N, UNIQUE = 32, 1000, 2048, 1024
IN21K_TRAIN, IN21K_CLASSES = 11_801_680, 11_230


def _payloads(n_unique: int, res: int) -> list[bytes]:
    """Distinct smooth-plus-noise JPEGs (quality 90), like downscaled photos."""
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    yy, xx = np.mgrid[0:res, 0:res] / res
    for i in range(n_unique):
        base = 255 * (0.5 + 0.5 * np.sin(2 * np.pi * (xx * rng.uniform(0.5, 3) + yy * rng.uniform(0.5, 3))))
        img = np.clip(base[..., None] * rng.uniform(0.3, 1, 3) + rng.normal(0, 12, (res, res, 3)), 0, 255)
        buf = io.BytesIO()
        Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def make_dataset(root: str, name: str, n: int) -> dict:
    """ROOT/<name>/{train,val}_32.beton and meta_32.json; returns the write figure."""
    from mlpscale.beton import MODE_JPG, BetonWriter
    from mlpscale.io import write_json_atomic

    folder = os.path.join(root, name)
    os.makedirs(folder, exist_ok=True)
    pays = _payloads(UNIQUE, RES)
    rng = np.random.default_rng(n)
    t0 = time.perf_counter()
    for split, count in (("train", n), ("val", EVAL_N)):
        w = BetonWriter(os.path.join(folder, f"{split}_{RES}.beton"), count, max(map(len, pays)))
        for i, y in enumerate(rng.integers(0, CLASSES, count).tolist()):
            w.add(pays[i % UNIQUE], MODE_JPG, RES, RES, y)
        w.commit()
    write_s = time.perf_counter() - t0
    write_json_atomic(os.path.join(folder, f"meta_{RES}.json"),
                      {"name": name, "res": RES, "num_classes": CLASSES, "classes": list(map(str, range(CLASSES))),
                       "counts": {"train": n, "val": EVAL_N}, "eval_split": "val", "format": "jpg",
                       "mean": [127.5] * 3, "std": [64.0] * 3})
    return {"write_s": round(write_s, 3), "write_us_per_img": round(1e6 * write_s / (n + EVAL_N), 2)}


def _rss() -> int:
    with open("/proc/self/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) * 1024
    return 0


def one_size(root: str, name: str, n: int, reps: int) -> dict:
    """(In a fresh process) the trainer's data start-up for one size, `reps` times."""
    import gc

    import torch

    from mlpscale.config import load_config
    from mlpscale.data import build_data
    from mlpscale.runtime import Runtime

    rt = Runtime.create("cpu", "fp32", "off")
    cfg = load_config("demo_digits.yaml", [f"data.root={root}", f"data.dataset={name}", f"data.res={RES}",
                                            f"data.n_train={int(0.9 * n)}", "data.resident=on",
                                            "run.progress=false"])
    from mlpscale.decode import _batch_decoder

    t0 = time.perf_counter()
    _batch_decoder()  # numba's one-time compile of the batch decoder: a constant, reported apart
    compile_s = time.perf_counter() - t0
    times, cpus, rss, loads = [], [], [], []
    for _ in range(reps):
        gc.collect()
        before = _rss()
        t0, c0 = time.perf_counter(), time.process_time()
        data = build_data(cfg, rt, 256)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        rss.append(_rss() - before)
        loads.append(data.report.get("train_load_s"))
        decoder = data.report.get("train_decoder")
        del data
    return {"n": n, "n_train": int(0.9 * n), "startup_s": times, "startup_cpu_s": cpus, "train_load_s": loads,
            "resident_bytes": rss, "decoder": decoder, "torch_threads": torch.get_num_threads(),
            "decoder_compile_s": [compile_s]}


def summarise(n: int, runs: list[dict]) -> dict:
    """Medians over the rounds of one size, per image."""
    imgs = int(0.9 * n) + EVAL_N
    cat = {k: [x for r in runs for x in r[k]]
           for k in ("startup_s", "startup_cpu_s", "train_load_s", "resident_bytes", "decoder_compile_s")}
    med = {k: float(np.median(v)) for k, v in cat.items()}
    return {"n": n, "n_train": int(0.9 * n), **{k: [round(x, 3) for x in v] for k, v in cat.items()},
            "startup_median_s": round(med["startup_s"], 3),
            "startup_us_per_img": round(1e6 * med["startup_s"] / imgs, 2),
            "startup_cpu_us_per_img": round(1e6 * med["startup_cpu_s"] / imgs, 2),
            "train_load_us_per_img": round(1e6 * med["train_load_s"] / int(0.9 * n), 2),
            "resident_bytes_per_img": round(med["resident_bytes"] / imgs, 1),
            "pixel_bytes_per_img": RES * RES * 3, "decoder": runs[0]["decoder"],
            "torch_threads": runs[0]["torch_threads"]}


def decode_scaling(path: str, rows: int, rounds: int) -> dict:
    """Median img/s of decode_images with 1 and 2 threads, batch (ours) and per image (baseline)."""
    from mlpscale.beton import open_beton
    from mlpscale.decode import decode_images

    b = open_beton(path)
    idx = np.arange(rows)
    out = np.empty((rows, RES, RES, 3), np.uint8)
    decode_images(b, idx[:4096], out[:4096], batch=True)       # compile the batch loop (not timed)
    variants = [("batch", 1), ("batch", 2), ("per_image", 1), ("per_image", 2)]
    rates = {f"{k}_{t}t": [] for k, t in variants}
    load = [os.getloadavg()[0]]
    for r in range(rounds):
        for k, t in (variants if r % 2 == 0 else variants[::-1]):
            t0 = time.perf_counter()
            decode_images(b, idx, out, workers=t, batch=k == "batch")
            rates[f"{k}_{t}t"].append(rows / (time.perf_counter() - t0))
    # beside a Python thread that never sleeps: a decoder that needs the GIL per image waits for it (up
    # to the 5 ms switch interval each time); one that releases it only shares the core
    import threading

    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    for k in ("batch", "per_image"):
        rates[f"{k}_1t_beside_python"] = []
    for r in range(rounds):
        for k in (("batch", "per_image") if r % 2 == 0 else ("per_image", "batch")):
            stop.clear()
            t = threading.Thread(target=spin)
            t.start()
            t0 = time.perf_counter()
            decode_images(b, idx[:4096], out[:4096], workers=1, batch=k == "batch")
            rates[f"{k}_1t_beside_python"].append(4096 / (time.perf_counter() - t0))
            stop.set()
            t.join()
    load.append(os.getloadavg()[0])
    med = {k: float(np.median(v)) for k, v in rates.items()}
    return {"rows": rows, "rounds": rounds, "img_per_s": {k: [round(x) for x in v] for k, v in rates.items()},
            "median_img_per_s": {k: round(v) for k, v in med.items()},
            "two_over_one_thread": {"batch": round(med["batch_2t"] / med["batch_1t"], 3),
                                    "per_image": round(med["per_image_2t"] / med["per_image_1t"], 3)},
            "beside_a_python_thread_over_alone": {
                "batch": round(med["batch_1t_beside_python"] / med["batch_1t"], 3),
                "per_image": round(med["per_image_1t_beside_python"] / med["per_image_1t"], 3)},
            "load_avg_1m_before_after": [round(x, 2) for x in load]}


def per_class_subset(labels, n, seed=0):
    """The per-class reference (`labels == c` per class), as tests/test_scale.py has it."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n / len(labels))
    take = np.floor(quota).astype(np.int64)
    take[np.lexsort((classes, -(quota - take)))[:n - int(take.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [np.flatnonzero(labels == c)[rng.permutation(int(cnt))[:k]]
              for c, cnt, k in zip(classes, counts, take) if k]
    return np.sort(np.concatenate(picked))


def index_figures(n: int) -> dict:
    from mlpscale.beton import ALLOC, MODE_JPG, Beton, metadata_dtype
    from mlpscale.subsets import balanced_subset

    rng = np.random.default_rng(0)
    labels = rng.integers(0, IN21K_CLASSES, n)

    def timed(fn):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - w, time.process_time() - c

    walls, cpus = [], []
    for _ in range(3):
        _, w, c = timed(lambda: balanced_subset(labels, n // 2, 0))
        walls.append(w)
        cpus.append(c)
    small = labels[: n // 10]
    ref, rw, rc = timed(lambda: per_class_subset(small, len(small) // 2, 0))
    ours_small, ow, oc = timed(lambda: balanced_subset(small, len(small) // 2, 0))
    # a synthetic index of n JPEG samples, 3 KB each, packed in 4 MiB pages
    meta = np.zeros(n, metadata_dtype([2, 1]))
    sizes = rng.integers(2000, 4000, n)
    ptr = np.cumsum(sizes) - sizes + 4096
    meta["f0"]["mode"], meta["f0"]["width"], meta["f0"]["height"] = MODE_JPG, 64, 64
    meta["f0"]["data_ptr"], meta["f1"] = ptr, labels
    alloc = np.zeros(n, ALLOC)
    alloc["sample_id"], alloc["ptr"], alloc["size"] = np.arange(n), ptr, sizes
    b = Beton("synthetic", n, 1 << 22, ["image", "label"], [2, 1], meta, alloc, [b"", b""])
    _, sw, sc = timed(b.scan)
    chunks = -(-n // (1 << 15))
    return {"labels": n, "classes": IN21K_CLASSES,
            "subset_wall_s": [round(x, 2) for x in walls], "subset_cpu_s": [round(x, 2) for x in cpus],
            "subset_wall_median_s": round(float(np.median(walls)), 2),
            "subset_cpu_median_s": round(float(np.median(cpus)), 2),
            "reference_at": len(small), "reference_wall_s": round(rw, 2), "reference_cpu_s": round(rc, 2),
            "ours_at_reference_size_wall_s": round(ow, 3), "ours_at_reference_size_cpu_s": round(oc, 3),
            "equal_to_reference": bool(np.array_equal(ref, ours_small)),
            "index_scan_wall_s": round(sw, 2), "index_scan_cpu_s": round(sc, 2),
            "chunks_per_load": chunks,
            "index_bytes_per_sample": meta.itemsize + alloc.itemsize}


def tar_count_figure(folder: str, members: int = 20000, rounds: int = 5) -> dict:
    """Seconds per member: counting a synset tar's images from its headers (what the ImageNet-21k
    source does for every class first) against indexing it (`index_tar`: tarfile, names, offsets)."""
    import tarfile

    from data_prep.scan import count_tar_images, index_tar

    path = os.path.join(folder, "n00000001.tar")
    with tarfile.open(path, "w") as tf:
        for i in range(members):
            info = tarfile.TarInfo(f"n00000001_{i}.JPEG")
            info.size = 3000
            tf.addfile(info, io.BytesIO(bytes(3000)))
    count, index = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        n = count_tar_images(path)
        count.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        m = len(index_tar(path)[0])
        index.append(time.perf_counter() - t0)
    assert n == m == members
    c, x = float(np.median(count)), float(np.median(index))
    return {"members": members, "rounds": rounds, "count_us_per_member": round(1e6 * c / members, 2),
            "index_us_per_member": round(1e6 * x / members, 2), "index_over_count": round(x / c, 2),
            "load_avg_1m": round(os.getloadavg()[0], 2), "env": environment()}


def fit_exponent(ns, ts) -> float:
    return float(np.polyfit(np.log(ns), np.log(ts), 1)[0])


def table(path: str) -> str:
    """benchmarks/README.md's rows for a results file of this script."""
    with open(path) as f:
        d = json.load(f)
    env, per, fit, ix, dec = d["env"], d["sizes"], d["fit"], d["index"], d["decode"]
    hw = f"{env['host_cpu']} x{env['affinity_cpus']} (load {env['load_avg_1m']}-{env['load_avg_1m_end']})"
    cmd, name = re.sub(r"\S*\.venv/bin/python", "python", d["command"]), os.path.basename(path)
    sizes = " / ".join(f"{r['n'] // 1000}k" for r in per)
    head = "| figure | " + " | ".join(f"N={r['n']:,}" for r in per) + " | growth N^b | ImageNet-21k (11.8M) |"
    lines = [head, "|" + "---|" * (len(per) + 3),
             "| start-up, wall s (`build_data`: check, subset, decode) | "
             + " | ".join(f"{r['startup_median_s']}" for r in per)
             + f" | b = {fit['startup_exponent']} | {d['projection_imagenet21k']['startup_s']} s (2 shared cores) |",
             "| start-up, CPU us/img | " + " | ".join(f"{r['startup_cpu_us_per_img']}" for r in per)
             + f" | b = {fit['startup_cpu_exponent']} | |",
             "| one-time load (JPEG decode), wall us/img | " + " | ".join(f"{r['train_load_us_per_img']}" for r in per)
             + f" | b = {fit['load_exponent']} | ratio {per[-1]['n'] // 1000}k / {per[0]['n'] // 1000}k: "
             f"{d['load_per_img_ratio_largest_over_smallest']} (same-round median "
             f"{d['load_per_img_ratio_same_round']['median']}, {min(d['load_per_img_ratio_same_round']['values'])}-"
             f"{max(d['load_per_img_ratio_same_round']['values'])}) |",
             "| resident bytes/img (pixels: " + str(per[0]["pixel_bytes_per_img"]) + ") | "
             + " | ".join(f"{r['resident_bytes_per_img']}" for r in per) + " | | "
             + f"{d['projection_imagenet21k']['resident_gb_at_64px']} GB at 64px |",
             "| write us/img (BetonWriter) | " + " | ".join(f"{r['write_us_per_img']}" for r in per)
             + f" | b = {fit['write_exponent']} | |"]
    m, two = dec["median_img_per_s"], dec["two_over_one_thread"]
    lines += ["", f"Decode threads ({dec['rows']:,} rows, {dec['rounds']} alternating rounds, load "
              f"{dec['load_avg_1m_before_after'][0]}-{dec['load_avg_1m_before_after'][1]} on 2 cores): batch nogil "
              f"{m['batch_1t']:,} -> {m['batch_2t']:,} img/s (**{two['batch']}x** with 2 threads); per-image Python "
              f"loop {m['per_image_1t']:,} -> {m['per_image_2t']:,} img/s ({two['per_image']}x)."
              + "".join(f" Rerun at load {r['load_avg_1m_before_after'][0]}: batch {r['two_over_one_thread']['batch']}x, "
                        f"per image {r['two_over_one_thread']['per_image']}x with 2 threads"
                        + (f"; beside a spinning Python thread one decode thread keeps {g['batch']} (batch) / "
                           f"{g['per_image']} (per image) of its rate" if (g := r.get("beside_a_python_thread_over_alone"))
                           else "") + "."
                        for r in d.get("decode_reruns", [])),
              f"Index of {ix['labels']:,} samples / {ix['classes']:,} classes: `balanced_subset` "
              f"**{ix['subset_wall_median_s']} s** wall ({ix['subset_cpu_median_s']} CPU s); the per-class reference "
              f"at {ix['reference_at']:,} labels {ix['reference_cpu_s']} CPU s vs ours "
              f"{ix['ours_at_reference_size_cpu_s']} "
              f"(equal: {ix['equal_to_reference']}); one index scan {ix['index_scan_wall_s']} s, done once per open "
              f"(a load of this index reads {ix['chunks_per_load']} chunks, each of which re-sorted the whole index "
              f"before); "
              f"{ix['index_bytes_per_sample']} B of index per sample."
              + (f" Counting a synset tar's images from its headers: {tc['count_us_per_member']} us/member vs "
                 f"{tc['index_us_per_member']} to index it ({tc['index_over_count']}x; {tc['members']:,} members, "
                 f"page cache)." if (tc := d.get("tar_count")) else ""),
              f"Hardware: {hw}; sizes {sizes}; `{cmd}`; {name}."]
    return "\n".join(lines)


def decode_only(a) -> int:
    """Re-measure the decode thread figure alone (e.g. when the shared machine is quieter); a results
    file given with --json keeps its other figures and gets this one under "decode_rerun"."""
    with tempfile.TemporaryDirectory(prefix="mlpscale-scale-", dir=a.tmp) as root:
        make_dataset(root, "scale20000", 20000)
        dec = decode_scaling(os.path.join(root, "scale20000", f"train_{RES}.beton"), 20000, a.rounds)
    dec["env"] = environment()
    print(json.dumps(dec))
    if a.json and os.path.exists(a.json):
        from mlpscale.io import write_json_atomic

        with open(a.json) as f:
            doc = json.load(f)
        doc.setdefault("decode_reruns", []).append(dec)
        write_json_atomic(a.json, doc)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="20000,80000,200000")
    p.add_argument("--index-n", type=int, default=IN21K_TRAIN)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="5k / 10k / 20k, a 1.18M index, 1 round")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--tmp", default=None, help="folder for the made betons (default: a temp folder)")
    p.add_argument("--decode-only", action="store_true",
                   help="only the decode thread figure (on the 20k beton), added to --json if it exists")
    p.add_argument("--tar-only", action="store_true",
                   help="only the tar counting figure, added to --json if it exists")
    p.add_argument("--table", metavar="JSON", help="print benchmarks/README.md's rows for a results file")
    p.add_argument("--one", nargs=3, metavar=("ROOT", "NAME", "N"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.table:
        print(table(a.table))
        return 0
    if a.one:
        print(json.dumps(one_size(a.one[0], a.one[1], int(a.one[2]), a.reps)))
        return 0
    if a.decode_only:
        return decode_only(a)
    if a.tar_only:
        with tempfile.TemporaryDirectory(prefix="mlpscale-scale-", dir=a.tmp) as d:
            fig = tar_count_figure(d)
        print(json.dumps(fig))
        if a.json and os.path.exists(a.json):
            from mlpscale.io import write_json_atomic

            with open(a.json) as f:
                doc = json.load(f)
            doc["tar_count"] = fig
            write_json_atomic(a.json, doc)
        return 0
    sizes = [5000, 10000, 20000] if a.quick else [int(s) for s in a.sizes.split(",")]
    index_n = IN21K_TRAIN // 10 if a.quick else a.index_n
    rounds = 1 if a.quick else a.rounds
    args = sys.argv[1:] if argv is None else argv
    doc = {"suite": "scale", "command": "python benchmarks/bench_scale.py " + " ".join(args),
           "env": environment(), "res": RES, "format": "jpg", "classes": CLASSES, "eval_images": EVAL_N}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mlpscale-scale-", dir=a.tmp) as root:
        writes = {n: make_dataset(root, f"scale{n}", n) for n in sizes}
        runs = {n: [] for n in sizes}
        for r in range(a.reps):  # the sizes alternate, the order flipping every round (the machine is shared)
            for n in (sizes if r % 2 == 0 else sizes[::-1]):
                proc = subprocess.run([sys.executable, __file__, "--reps", "1", "--one", root, f"scale{n}", str(n)],
                                      capture_output=True, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": REPO})
                if proc.returncode:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    return 1
                runs[n].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        per = []
        for n in sizes:
            row = {**writes[n], **summarise(n, runs[n])}
            per.append(row)
            print(f"N={n}: write {row['write_us_per_img']} us/img, start-up {row['startup_median_s']} s "
                  f"({row['startup_us_per_img']} us/img, CPU {row['startup_cpu_us_per_img']} us/img), load "
                  f"{row['train_load_us_per_img']} us/img, resident {row['resident_bytes_per_img']} B/img", flush=True)
        doc["decode"] = decode_scaling(os.path.join(root, f"scale{sizes[0]}", f"train_{RES}.beton"),
                                       min(sizes[0], 20000), rounds)
        print(f"decode: {doc['decode']['median_img_per_s']} img/s, 2t/1t {doc['decode']['two_over_one_thread']}",
              flush=True)
        doc["sizes"] = per
    ns = [r["n"] for r in per]
    doc["fit"] = {key: round(fit_exponent(ns, [r[src] * r["n"] for r in per]), 3) for key, src in
                  (("startup_exponent", "startup_us_per_img"), ("startup_cpu_exponent", "startup_cpu_us_per_img"),
                   ("load_exponent", "train_load_us_per_img"), ("write_exponent", "write_us_per_img"))}
    doc["load_per_img_ratio_largest_over_smallest"] = round(
        per[-1]["train_load_us_per_img"] / per[0]["train_load_us_per_img"], 3)
    # the same ratio within each round (the two loads ran minutes apart at most): robust to the drifting load
    lo, hi = per[0], per[-1]
    same = [(b / hi["n_train"]) / (a / lo["n_train"]) for a, b in zip(lo["train_load_s"], hi["train_load_s"])]
    doc["load_per_img_ratio_same_round"] = {"median": round(float(np.median(same)), 3),
                                            "values": [round(x, 3) for x in same]}
    doc["startup_cpu_per_img_ratio_largest_over_smallest"] = round(
        per[-1]["startup_cpu_us_per_img"] / per[0]["startup_cpu_us_per_img"], 3)
    big = per[-1]
    scale = IN21K_TRAIN / (0.9 * big["n"])
    doc["projection_imagenet21k"] = {
        "train_images": IN21K_TRAIN,
        "startup_s": round(big["startup_median_s"] * scale ** doc["fit"]["startup_exponent"], 1),
        "load_s": round(big["train_load_us_per_img"] * 1e-6 * IN21K_TRAIN * scale ** (doc["fit"]["load_exponent"] - 1), 1),
        "resident_gb_at_32px": round(big["resident_bytes_per_img"] * IN21K_TRAIN / 2 ** 30, 1),
        "resident_gb_at_64px": round(big["resident_bytes_per_img"] * 4 * IN21K_TRAIN / 2 ** 30, 1),
        "note": "this machine's cores (2, shared); at 64px a JPEG decodes ~2-3x slower than at 32px"}
    doc["index"] = index_figures(index_n)
    with tempfile.TemporaryDirectory(prefix="mlpscale-scale-", dir=a.tmp) as d:
        doc["tar_count"] = tar_count_figure(d)
    print(f"index: {doc['index']}", flush=True)
    doc["total_s"] = round(time.perf_counter() - t_all, 1)
    doc["env"]["load_avg_1m_end"] = round(os.getloadavg()[0], 2)
    doc["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps({k: doc[k] for k in ("fit", "load_per_img_ratio_largest_over_smallest",
                                          "load_per_img_ratio_same_round",
                                          "startup_cpu_per_img_ratio_largest_over_smallest", "projection_imagenet21k")}))
    if a.json:
        from mlpscale.io import write_json_atomic

        write_json_atomic(a.json, doc)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
