"""`combine` (merge the outputs of `--shard I/K` runs) and `subset` (class-balanced subsets).

Sharding ImageNet-21k over K machines: every machine runs the same command with `--shard I/K`
(I = 0..K-1). All shards index the whole source, so they agree on the class list; shard I converts
the classes whose label % K == I and writes `<split>_<res>.shard-I-of-K.beton` plus
`meta_<res>.shard-I-of-K.json`. Copy the shard files into one ROOT/<name>/ and run
`mlpscale-convert combine --name imagenet21k --res 64 --out ROOT`: it checks that all K shards are
there and agree, then streams their samples (already encoded, no re-decoding) into
`<split>_<res>.beton` and writes `meta_<res>.json` with exact pooled statistics.

Subsets: `mlpscale-convert subset --name N --res R --out ROOT --n K [--seed S]` writes
`train_<res>_n<K>.idx.npy`, the sorted int64 indices into `train_<res>.beton` of a class-balanced
subset (`mlpscale.subsets.balanced_subset`: every class keeps a share proportional to its size);
with `--beton` it also writes `train_<res>_n<K>.beton` holding exactly those samples.
"""
from __future__ import annotations

import glob
import json
import os
import re
import time

import numpy as np

from mlpscale import __version__
from mlpscale.datasets import beton_path, meta_path
from mlpscale.errors import UserError


def add_parsers(sub) -> None:
    c = sub.add_parser("combine", help="merge the outputs of --shard I/K runs into one dataset",
                       description=__doc__)
    c.add_argument("--name", required=True)
    c.add_argument("--res", type=int, required=True)
    c.add_argument("--out", required=True, help="ROOT holding ROOT/<name>/*.shard-I-of-K.*")
    c.add_argument("--delete-shards", action="store_true", help="remove the shard files afterwards")
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=combine)
    s = sub.add_parser("subset", help="class-balanced subset of N training images", description=__doc__)
    s.add_argument("--name", required=True)
    s.add_argument("--res", type=int, required=True)
    s.add_argument("--out", required=True, help="ROOT holding ROOT/<name>/train_<res>.beton")
    s.add_argument("--n", type=int, required=True, help="number of training images to keep")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--beton", action="store_true", help="also write the subset as its own beton")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=subset)


def copy_samples(dst: str, sources: list[tuple[str, object]], res: int, fmt: str, quiet: bool) -> int:
    """Stream encoded samples from (beton, indices or None) pairs into a new beton at `dst`."""
    from tqdm import tqdm

    from .beton import BetonWriter, beton_info, iter_samples

    total = sum(beton_info(p)[0] if idx is None else len(idx) for p, idx in sources)
    w = BetonWriter(dst, res, fmt, capacity=total)
    try:
        with tqdm(total=total, desc=os.path.basename(dst), unit="img", unit_scale=True,
                  disable=quiet, mininterval=1.0) as bar:
            for path, idx in sources:
                for payload, mode, h, wd, label in iter_samples(path, idx):
                    w.add(payload, mode, h, wd, label)
                    bar.update(1)
        return w.commit()
    finally:
        w.abort()


def combine(args) -> dict:
    from .cli import stats_from_sums, with_suffix
    from .writer import write_json_atomic

    base = meta_path(args.out, args.name, args.res)
    pattern = re.compile(re.escape(os.path.basename(base)[:-5]) + r"\.shard-(\d+)-of-(\d+)\.json$")
    found = {}
    for p in glob.glob(os.path.join(os.path.dirname(base), "*.shard-*-of-*.json")):
        m = pattern.search(os.path.basename(p))
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    if not found:
        raise UserError(f"no shard metadata {os.path.basename(base)[:-5]}.shard-I-of-K.json in "
                        f"{os.path.dirname(base)}; run the conversion with --shard I/K first")
    ks = {k for _, k in found}
    if len(ks) != 1:
        raise UserError(f"{os.path.dirname(base)} mixes shards of different K ({sorted(ks)}); keep one set")
    k = ks.pop()
    missing = [i for i in range(k) if (i, k) not in found]
    if missing:
        raise UserError(f"shards {missing} of {k} are missing in {os.path.dirname(base)}; "
                        f"run --shard {missing[0]}/{k} (or copy its files here) and combine again")
    metas = []
    for i in range(k):
        with open(found[(i, k)]) as f:
            metas.append(json.load(f))
    first = metas[0]
    for key in ("classes", "res", "format", "eval_split"):
        bad = [i for i, m in enumerate(metas) if m.get(key) != first.get(key)]
        if bad:
            raise UserError(f"shard {bad[0]} of {k} differs from shard 0 in '{key}'; convert all shards "
                            "with the same command (same --src, --res, --format, --classes)")
    splits = list(first["counts"])
    counts, skipped, sums = {}, {}, {}
    t0 = time.time()
    for split in splits:
        suffixes = [f".shard-{i}-of-{k}" for i in range(k)]
        parts = [with_suffix(beton_path(args.out, args.name, split, args.res), s) for s in suffixes]
        absent = [p for p in parts if not os.path.exists(p)]
        if absent:
            raise UserError(f"{absent[0]} is missing; copy every shard's betons next to its meta file")
        dst = beton_path(args.out, args.name, split, args.res)
        counts[split] = copy_samples(dst, [(p, None) for p in parts], args.res, first["format"], args.quiet)
        skipped[split] = [x for m in metas for x in m["skipped"].get(split, [])]
        sums[split] = {key: np.sum([m["pixel_sums"][split][key] for m in metas], axis=0).tolist()
                       for key in ("pixel_sum", "pixel_sqsum", "pixels")}
        print(f"wrote {dst} ({counts[split]} images from {k} shards)")
    sidecars = {}
    for key, fname in first.items():
        if key.endswith("_labels") and isinstance(fname, str) and fname.endswith(".json"):
            merged = []
            for m in metas:
                with open(os.path.join(os.path.dirname(base), m[key])) as f:
                    merged += json.load(f)
            out = re.sub(r"\.shard-\d+-of-\d+", "", fname)
            write_json_atomic(os.path.join(os.path.dirname(base), out), merged)
            sidecars[key] = out
    mean, std = stats_from_sums(sums["train"])
    meta = {**first, **sidecars, "counts": counts, "mean": mean, "std": std,
            "num_skipped": {s: len(v) for s, v in skipped.items()}, "skipped": skipped, "pixel_sums": sums,
            "shard": None, "combined_from": [os.path.basename(found[(i, k)]) for i in range(k)],
            "seconds": round(sum(m["seconds"] for m in metas) + time.time() - t0, 2),
            "tool": f"mlpscale {__version__}"}
    write_json_atomic(base, meta)
    print(f"wrote {base}")
    if args.delete_shards:
        for i in range(k):
            for split in splits:
                os.remove(with_suffix(beton_path(args.out, args.name, split, args.res), f".shard-{i}-of-{k}"))
            for key in sidecars:
                os.remove(os.path.join(os.path.dirname(base), metas[i][key]))
            os.remove(found[(i, k)])
    return meta


def subset_paths(root: str, name: str, res: int, n: int) -> tuple[str, str]:
    """(index file, beton) of the n-image subset of `name`'s train split."""
    d = os.path.join(root, name)
    return os.path.join(d, f"train_{res}_n{n}.idx.npy"), os.path.join(d, f"train_{res}_n{n}.beton")


def subset(args) -> np.ndarray:
    from mlpscale.subsets import balanced_subset

    from .beton import read_labels

    src = beton_path(args.out, args.name, "train", args.res)
    if not os.path.exists(src):
        raise UserError(f"{src} does not exist; convert the dataset first (mlpscale-convert {args.name} "
                        f"--res {args.res} --out {args.out} --src ...)")
    labels = read_labels(src)
    idx = balanced_subset(labels, args.n, args.seed).astype(np.int64)
    idx_path, beton = subset_paths(args.out, args.name, args.res, args.n)
    tmp = idx_path + f".tmp-{os.getpid()}.npy"
    np.save(tmp, idx)
    os.replace(tmp, idx_path)
    print(f"wrote {idx_path} ({len(idx)} of {len(labels)} indices, seed {args.seed})")
    if args.beton:
        from .beton import BetonWriter  # noqa: F401 (format check happens in copy_samples)

        fmt = _format_of(args.out, args.name, args.res)
        copy_samples(beton, [(src, idx)], args.res, fmt, args.quiet)
        print(f"wrote {beton}")
    return idx


def _format_of(root: str, name: str, res: int) -> str:
    try:
        with open(meta_path(root, name, res)) as f:
            return json.load(f).get("format", "raw")
    except OSError:
        return "raw"
