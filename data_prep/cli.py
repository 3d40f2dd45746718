"""`mlpscale-convert SOURCE --res R --out ROOT [--src PATH] [--format raw|jpg] [--workers N]`.

Writes ROOT/<name>/<split>_<res>.beton for every split of the source and ROOT/<name>/meta_<res>.json
(classes, counts, resolution, format, normalisation statistics, skipped files, source, version).
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from mlpscale import __version__
from mlpscale.datasets import beton_path, meta_path
from mlpscale.errors import UserError, cli_entry

from .sources import SOURCES
from .writer import channel_stats, write_beton, write_json_atomic


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlpscale-convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, mod in SOURCES.items():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        sp.add_argument("--src", default=None, help="downloaded files (folder or archive)")
        sp.add_argument("--res", type=int, default=None, help="square output resolution (default: the dataset's)")
        sp.add_argument("--out", required=True, help="output ROOT; files go to ROOT/<name>/")
        sp.add_argument("--name", default=name, help="dataset name on disk (default: the source name)")
        sp.add_argument("--format", default="raw", choices=["raw", "jpg"], help="raw (fastest reads) or jpg (smaller)")
        sp.add_argument("--jpeg-quality", type=int, default=90)
        sp.add_argument("--workers", type=int, default=0, help="parallel workers (default: all cores)")
        mod.add_arguments(sp)
    return p


def convert(args) -> dict:
    from mlpscale.datasets import BUILTIN

    mod = SOURCES[args.source]
    if args.res is None:
        args.res = BUILTIN[args.name].default_res if args.name in BUILTIN else 64
    if args.res < 1:
        raise UserError(f"--res must be a positive number of pixels, got {args.res}")
    t0 = time.time()
    data = mod.load(args)
    counts = {}
    for split, records in data.splits.items():
        path = beton_path(args.out, args.name, split, args.res)
        counts[split] = write_beton(path, records, args.res, args.format, args.jpeg_quality, args.workers)
        print(f"wrote {path} ({counts[split]} images)")
    train = data.splits["train"]
    images = getattr(train, "images", None)
    if images is None:  # sample records for the statistics
        idx = np.linspace(0, len(train) - 1, min(len(train), 10_000)).astype(int)
        images = np.stack([train[i][0] for i in idx])
    mean, std = channel_stats(images)
    meta = {
        "name": args.name,
        "source": args.source,
        "src": os.path.abspath(args.src) if args.src else None,
        "res": args.res,
        "format": args.format,
        "num_classes": len(data.classes),
        "classes": data.classes,
        "counts": counts,
        "eval_split": data.eval_split,
        "mean": mean,
        "std": std,
        "skipped": data.skipped,
        "tool": f"mlpscale {__version__}",
        "seconds": round(time.time() - t0, 2),
        **data.extra_meta,
    }
    mpath = meta_path(args.out, args.name, args.res)
    write_json_atomic(mpath, meta)
    print(f"wrote {mpath}")
    return meta


@cli_entry
def main(argv=None):
    convert(build_parser().parse_args(argv))


if __name__ == "__main__":
    main()
