"""`mlpscale-convert SOURCE --src PATH --res R --out ROOT [--format raw|jpg] [--workers N] [--shard I/K]`.

Writes ROOT/<name>/<split>_<res>.beton for every split of the source and ROOT/<name>/meta_<res>.json
(classes, counts, resolution, format, normalisation statistics, skipped files, source, version).
Two more commands work on converted data:

  mlpscale-convert combine --name N --res R --out ROOT      merge --shard outputs into one dataset
  mlpscale-convert subset  --name N --res R --out ROOT --n K [--seed S] [--beton]
                                                            class-balanced subset of the train split
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import time

from mlpscale import __version__
from mlpscale.datasets import beton_path, meta_path
from mlpscale.errors import UserError, cli_entry

from .sources import SOURCES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlpscale-convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for name, mod in SOURCES.items():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.__doc__,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
        sp.add_argument("--src", default=None, help="downloaded files (folder or archive)")
        sp.add_argument("--res", type=int, default=None, help="square output resolution (default: the dataset's)")
        sp.add_argument("--out", required=True, help="output ROOT; files go to ROOT/<name>/")
        sp.add_argument("--name", default=name, help="dataset name on disk (default: the source name)")
        sp.add_argument("--format", default="raw", choices=["raw", "jpg"], help="raw (fastest reads) or jpg (smaller)")
        sp.add_argument("--jpeg-quality", type=int, default=90)
        sp.add_argument("--workers", type=int, default=0, help="parallel decode workers (default: all cores)")
        sp.add_argument("--shard", default=None, metavar="I/K",
                        help="convert only classes with label %% K == I (0-based), for K machines; "
                             "then `mlpscale-convert combine`")
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        mod.add_arguments(sp)
    from . import combine

    combine.add_parsers(sub)
    return p


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        i, k = (int(x) for x in text.split("/"))
        if not 0 <= i < k:
            raise ValueError
    except ValueError:
        raise UserError(f"--shard must be I/K with 0 <= I < K (e.g. 0/4), got '{text}'") from None
    return i, k


def shard_suffix(shard: tuple[int, int] | None) -> str:
    return "" if shard is None else f".shard-{shard[0]}-of-{shard[1]}"


def with_suffix(path: str, suffix: str) -> str:
    base, ext = os.path.splitext(path)
    return base + suffix + ext


def convert(args) -> dict:
    from mlpscale.datasets import BUILTIN

    from .engine import write_split
    from .writer import write_json_atomic

    mod = SOURCES[args.source]
    if args.res is None:
        args.res = BUILTIN[args.name].default_res if args.name in BUILTIN else 64
    if args.res < 1:
        raise UserError(f"--res must be a positive number of pixels, got {args.res}")
    shard = parse_shard(getattr(args, "shard", None))
    suffix = shard_suffix(shard)
    t0 = time.time()
    data = mod.load(args)
    counts, skipped, sums, sidecar_files = {}, {}, {}, {}
    total = 0
    for split, records in data.splits.items():
        if shard is not None:
            import numpy as np

            records = records.subset(np.flatnonzero(records.labels % shard[1] == shard[0]))
        if len(records) == 0:
            raise UserError(f"the {split} split of {args.source} is empty" +
                            (f" in shard {args.shard}" if shard else "") + f"; check --src {args.src}")
        path = with_suffix(beton_path(args.out, args.name, split, args.res), suffix)
        r = write_split(path, records, args.res, args.format, args.jpeg_quality, args.workers,
                        desc=f"{args.name}/{split}", progress=not getattr(args, "quiet", False))
        counts[split], skipped[split] = r.count, r.skipped
        sums[split] = {"pixel_sum": r.pixel_sum.tolist(), "pixel_sqsum": r.pixel_sqsum.tolist(),
                       "pixels": r.pixels}
        total += r.count
        for key, (sc_split, values) in data.sidecars.items():
            if sc_split == split:
                kept = [v for v, k in zip(values, r.kept) if k]
                sc_path = with_suffix(os.path.join(args.out, args.name, f"{key}_{args.res}.json"), suffix)
                write_json_atomic(sc_path, kept)
                sidecar_files[key] = os.path.basename(sc_path)
        if r.skipped:
            print(f"skipped {len(r.skipped)} unreadable {split} images (listed in meta)", file=sys.stderr)
        print(f"wrote {path} ({r.count} images, {r.count / max(r.seconds, 1e-9):.0f} img/s)")

    mean, std = stats_from_sums(sums["train"])
    seconds = time.time() - t0
    meta = {
        "name": args.name,
        "source": args.source,
        "src": os.path.abspath(args.src) if args.src else None,
        "res": args.res,
        "format": args.format,
        **({"jpeg_quality": args.jpeg_quality} if args.format == "jpg" else {}),
        "num_classes": len(data.classes),
        "classes": data.classes,
        "counts": counts,
        "eval_split": data.eval_split,
        "mean": mean,
        "std": std,
        "stats": "per-channel mean/std on the 0..255 scale over every pixel of the written train split",
        "num_skipped": {s: len(v) for s, v in skipped.items()},
        "skipped": {s: data.skipped + v if s == "train" else v for s, v in skipped.items()},
        **sidecar_files,
        "pixel_sums": sums,
        "shard": args.shard,
        "tool": f"mlpscale {__version__}",
        "command": "mlpscale-convert " + " ".join(shlex.quote(a) for a in getattr(args, "argv", []) or []),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(seconds, 2),
        "images_per_s": round(total / max(seconds, 1e-9), 1),
        **data.extra_meta,
    }
    mpath = with_suffix(meta_path(args.out, args.name, args.res), suffix)
    write_json_atomic(mpath, meta)
    print(f"wrote {mpath}")
    return meta


def stats_from_sums(s: dict) -> tuple[list[float], list[float]]:
    import numpy as np

    n = max(1, int(s["pixels"]))
    mean = np.asarray(s["pixel_sum"], dtype=np.float64) / n
    var = np.maximum(np.asarray(s["pixel_sqsum"], dtype=np.float64) / n - mean ** 2, 0.0)
    return mean.tolist(), np.sqrt(var).tolist()


@cli_entry
def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    if args.source in ("combine", "subset"):
        args.func(args)
    else:
        convert(args)


if __name__ == "__main__":
    main()
