"""`combine` (merge the outputs of `--shard I/K` runs) and `subset` (class-balanced subsets).

Sharding ImageNet-21k over K machines: every machine runs the same command with `--shard I/K`
(I = 0..K-1). All shards index the whole source, so they agree on the class list; shard I converts
the classes whose label % K == I and writes `<split>_<res>.shard-I-of-K.beton` plus
`meta_<res>.shard-I-of-K.json`, each shard stamped with its own conversion id. Copy the shard
files into one ROOT/<name>/ and run `mlpscale-convert combine --dataset imagenet21k --res 64
--root ROOT`: it checks that all K shards are there, complete and agree, then streams their samples
(already encoded, no re-decoding) into `<split>_<res>.beton` and writes `meta_<res>.json` with exact
pooled statistics. The combined dataset is a new conversion (fresh id) and is published like any
other (data_prep/output.py): the previous dataset stays until the combined one is complete.

Subsets: `mlpscale-convert subset --dataset N --res R --root ROOT --n K [--seed S]` writes
`train_<res>_n<K>.idx.npy`, the sorted int64 indices into `train_<res>.beton` of a class-balanced
subset (`mlpscale.subsets.balanced_subset`: every class keeps a share proportional to its size);
with `--beton` it also writes `train_<res>_n<K>.beton` holding exactly those samples, stamped with
the dataset's conversion id (it belongs to that conversion).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from mlpscale import __version__, cli
from mlpscale.beton import BetonWriter, open_beton
from mlpscale.errors import UserError
from mlpscale.io import FolderLock, atomic_file, disk_error, remove_temps
from mlpscale.layout import beton_path, check_dataset, dataset_dir, read_meta

from .engine import stats_from_sums
from .output import SHARD_RE, OutputFolder, shard_suffix


def add_old_spellings(parser: argparse.ArgumentParser) -> None:
    """Every convert command still takes the previous release's --out ROOT and --name NAME."""
    cli.deprecate(parser, "--out", "--root")
    cli.deprecate(parser, "--name", "--dataset")


def add_parsers(sub) -> None:
    c = sub.add_parser("combine", help="merge the outputs of --shard I/K runs into one dataset",
                       description=cli.describe("Merge the outputs of `--shard I/K` conversions into one dataset.",
                                                "mlpscale-convert combine --dataset imagenet21k --res 64 --root data"),
                       formatter_class=cli.HelpFormatter)
    cli.add(c, "--dataset", required=True)
    cli.add(c, "--res", "that of the shards", required=True)
    cli.add(c, "--root", "here the one holding ROOT/<dataset>/*.shard-I-of-K.*", required=True)
    c.add_argument("--delete-shards", action="store_true", help="remove the shard files afterwards")
    cli.add(c, "--quiet")
    add_old_spellings(c)
    c.set_defaults(func=combine)
    s = sub.add_parser("subset", help="class-balanced subset of N training images",
                       description=cli.describe("Write a class-balanced subset of a converted training split.",
                                                "mlpscale-convert subset --dataset imagenet21k --res 64 --root data "
                                                "--n 1000000"),
                       formatter_class=cli.HelpFormatter)
    cli.add(s, "--dataset", required=True)
    cli.add(s, "--res", required=True)
    cli.add(s, "--root", "here the one holding ROOT/<dataset>/train_<res>.beton", required=True)
    s.add_argument("--n", type=int, required=True, help="number of training images to keep")
    cli.add(s, "--seed", "here of the subset choice (the trainer's data.subset_seed)", default=0)
    s.add_argument("--beton", action="store_true", help="also write the subset as its own beton")
    cli.add(s, "--quiet")
    add_old_spellings(s)
    s.set_defaults(func=subset)


def payload_chunks(b, idx=None, max_bytes: int = 1 << 23, with_sizes: bool = False):
    """The encoded samples `idx` (default all) of beton `b`, in order, as chunks of about `max_bytes`:
    (payloads back to back (uint8), sizes, modes, heights, widths, labels, true (h, w) per image or None;
    the sizes only `with_sizes`, for paper-layout files). Samples stored back to back are copied as one
    slice per run (a whole page when copying all); scattered ones by one gather."""
    rows = np.arange(b.num_samples) if idx is None else np.asarray(idx, dtype=np.int64)
    true_hw = b.image_sizes()[rows] if with_sizes else None  # (n, 2)
    img = b.images
    ptrs, sizes, labels = b.data_ptrs()[rows], b.sizes()[rows], b.labels[rows]
    modes, heights, widths = img["mode"][rows], img["height"][rows], img["width"][rows]
    mm = np.memmap(b.path, dtype=np.uint8, mode="r") if len(rows) else None
    ends = np.cumsum(sizes)
    s = 0
    while s < len(rows):
        e = max(s + 1, int(np.searchsorted(ends, ends[s] - sizes[s] + max_bytes, side="right")))
        p, z = ptrs[s:e], sizes[s:e]
        breaks = np.flatnonzero(p[1:] != p[:-1] + z[:-1]) + 1
        if len(breaks) < (e - s) // 8:   # long runs: one slice each
            cuts = np.concatenate([[0], breaks, [e - s]])
            data = np.concatenate([mm[p[a]:p[c - 1] + z[c - 1]] for a, c in zip(cuts[:-1], cuts[1:])])
        else:                            # short runs: byte j of sample k sits at p[k] + j
            out_start = np.cumsum(z) - z
            data = mm[np.repeat(p - out_start, z) + np.arange(int(z.sum()))]
        yield data, z, modes[s:e], heights[s:e], widths[s:e], labels[s:e], None if true_hw is None else true_hw[s:e]
        s = e


def copy_samples(dst: str, sources: list[tuple[str, object]], conversion_id: str | None, min_payload: int = 0,
                 rename: bool = True, quiet: bool = True) -> tuple[int, str | None]:
    """Copy encoded samples from (beton, indices or None) pairs into a new beton at `dst`, by
    contiguous ranges or vectorised gathers (`payload_chunks`, `BetonWriter.add_many`).

    Returns (samples written, the verified temp file when `rename` is False, else None).
    """
    from tqdm import tqdm

    bets = [(open_beton(p), idx) for p, idx in sources]
    total = sum(b.num_samples if idx is None else len(idx) for b, idx in bets)
    biggest = max([min_payload] + [int(b.sizes().max()) for b, _ in bets if b.num_samples])
    true_sizes = [b.image_sizes() for b, _ in bets]  # paper layout: each image's (h, w) travels with it
    with_sizes = all(t is not None for t in true_sizes)
    try:
        w = BetonWriter(dst, capacity=total, max_payload=biggest, conversion_id=conversion_id, sizes=with_sizes)
    except OSError as e:
        raise disk_error(e, dst) from None
    try:
        with tqdm(total=total, desc=os.path.basename(dst), unit="img", unit_scale=True,
                  disable=quiet, mininterval=1.0) as bar:
            for b, idx in bets:
                for chunk in payload_chunks(b, idx, with_sizes=with_sizes):
                    try:
                        w.add_many(*chunk)
                    except OSError as e:
                        raise disk_error(e, dst) from None
                    bar.update(len(chunk[1]))
        n = w.commit(rename=rename)
    except BaseException:
        w.abort()
        raise
    return n, None if rename else w.tmp


def find_shards(folder: str, res: int) -> tuple[int, list[str]]:
    """(K, shard meta paths in order 0..K-1) of the complete set of shards in `folder`."""
    base = f"meta_{res}"
    found = {}
    for f in os.listdir(folder) if os.path.isdir(folder) else []:
        m = SHARD_RE.fullmatch(f[len(base):-5]) if f.startswith(base) and f.endswith(".json") else None
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = os.path.join(folder, f)
    if not found:
        raise UserError(f"no shard metadata {base}.shard-I-of-K.json in {folder}; "
                        "run the conversion with --shard I/K first")
    ks = {k for _, k in found}
    if len(ks) != 1:
        raise UserError(f"{folder} mixes shards of different K ({sorted(ks)}); keep one set")
    k = ks.pop()
    missing = [i for i in range(k) if (i, k) not in found]
    if missing:
        raise UserError(f"shards {missing} of {k} are missing in {folder}; "
                        f"run --shard {missing[0]}/{k} (or copy its files here) and combine again")
    return k, [found[(i, k)] for i in range(k)]


def _check_shard(args, i: int, k: int, meta: dict, first: dict) -> list[str]:
    """The shard's beton paths, after checking they are complete and belong to its meta."""
    for key in ("classes", "res", "format", "layout", "eval_split"):
        if meta.get(key) != first.get(key):
            raise UserError(f"shard {i} of {k} differs from shard 0 in '{key}'; convert all shards "
                            "with the same command (same --src, --res, --format, --layout, --classes)")
    redo = meta.get("command") or f"mlpscale-convert ... --shard {i}/{k}"
    paths = []
    for split, want in meta["counts"].items():
        p = beton_path(args.root, args.dataset, split, args.res, shard_suffix((i, k)))
        if not os.path.exists(p):
            raise UserError(f"{p} is missing; copy every shard's betons next to its meta file")
        b = open_beton(p, redo)
        if b.conversion_id != meta.get("conversion_id") or b.num_samples != want:
            raise UserError(f"{p} does not belong to its meta file (another or an interrupted conversion); "
                            f"re-run: {redo}")
        paths.append(p)
    return paths


def combine(args) -> dict:
    folder = dataset_dir(args.root, args.dataset)
    find_shards(folder, args.res)  # nothing to combine: say so before creating anything
    with OutputFolder(args.root, args.dataset, args.res, what="mlpscale-convert combine") as out:
        k, meta_files = find_shards(folder, args.res)
        metas = []
        for p in meta_files:
            with open(p) as f:
                metas.append(json.load(f))
        first = metas[0]
        shard_files = [_check_shard(args, i, k, m, first) + [meta_files[i]] for i, m in enumerate(metas)]
        splits = list(first["counts"])
        counts, skipped, sums = {}, {}, {}
        t0 = time.time()
        for split in splits:
            parts = [beton_path(args.root, args.dataset, split, args.res, shard_suffix((i, k))) for i in range(k)]
            counts[split], tmp = copy_samples(out.beton_path(split), [(p, None) for p in parts],
                                              out.conversion_id, args.res * args.res * 3, rename=False,
                                              quiet=args.quiet)
            out.stage_beton(split, tmp)
            skipped[split] = [x for m in metas for x in m["skipped"].get(split, [])]
            sums[split] = {key: np.sum([m["pixel_sums"][split][key] for m in metas], axis=0).tolist()
                           for key in ("pixel_sum", "pixel_sqsum", "pixels")}
        sidecars = {}
        for key, fname in first.items():
            if key.endswith("_labels") and isinstance(fname, str) and fname.endswith(".json"):
                merged = []
                for i, m in enumerate(metas):
                    with open(os.path.join(folder, m[key])) as f:
                        merged += json.load(f)
                    shard_files[i].append(os.path.join(folder, m[key]))
                sidecars[key] = SHARD_RE.sub("", fname)
                out.stage_json(os.path.join(folder, sidecars[key]), merged)
        mean, std = stats_from_sums(sums["train"])
        meta = out.publish({
            **{key: v for key, v in first.items() if key != "startup_s"}, **sidecars, "counts": counts, "mean": mean,
            "std": std,
            "num_skipped": {s: len(v) for s, v in skipped.items()}, "skipped": skipped, "pixel_sums": sums,
            "shard": None, "combined_from": [os.path.basename(p) for p in meta_files],
            "command": f"mlpscale-convert combine --dataset {args.dataset} --res {args.res} --root {args.root}",
            "seconds": round(sum(m["seconds"] for m in metas) + time.time() - t0, 2),
            "tool": f"mlpscale {__version__}"})
        if not args.quiet:
            for split in splits:
                print(f"wrote {out.beton_path(split)} ({counts[split]} images from {k} shards)")
            print(f"wrote {out.meta_path()}")
        if args.delete_shards:
            for p in (p for files in shard_files for p in files):
                os.remove(p)
    return meta


def subset_paths(root: str, name: str, res: int, n: int) -> tuple[str, str]:
    """(index file, beton) of the n-image subset of `name`'s train split."""
    return (os.path.join(dataset_dir(root, name), f"train_{res}_n{n}.idx.npy"),
            beton_path(root, name, "train", res, f"_n{n}"))


def subset(args) -> np.ndarray:
    from mlpscale.subsets import balanced_subset

    meta = read_meta(args.root, args.dataset, args.res) or {}
    hint = meta.get("command") or (f"mlpscale-convert {args.dataset} --res {args.res} --root {args.root} "
                                   "--src PATH_TO_DOWNLOADED_FILES")
    open_beton(beton_path(args.root, args.dataset, "train", args.res), hint)  # missing: say so before locking
    folder = dataset_dir(args.root, args.dataset)
    with FolderLock(folder, "mlpscale-convert subset"):
        try:
            train = check_dataset(args.root, args.dataset, args.res, ["train"], hint)["train"]
            labels = train.labels
            idx = balanced_subset(labels, args.n, args.seed).astype(np.int64)
            idx_path, beton = subset_paths(args.root, args.dataset, args.res, args.n)
            with atomic_file(idx_path) as f:
                np.save(f, idx)
            if not args.quiet:
                print(f"wrote {idx_path} ({len(idx)} of {len(labels)} indices, seed {args.seed})")
            if args.beton:
                copy_samples(beton, [(train.path, idx)], train.conversion_id, quiet=args.quiet)
                if not args.quiet:
                    print(f"wrote {beton}")
        finally:
            remove_temps(folder)  # we hold the lock: any temp file is ours or a dead writer's
    return idx
