"""`mlpscale-convert SOURCE --src PATH --res R --root ROOT [--dataset NAME] [--format raw|jpg]
[--layout square|paper] [--workers N] [--shard I/K]`.

Writes ROOT/<dataset>/<split>_<res>.beton for every split of the source and ROOT/<dataset>/meta_<res>.json
(classes, counts, resolution, layout, format, normalisation statistics, skipped files, source,
version, the conversion id stamped into every beton, the command that wrote them). The folder is
consistent or refused: the betons are written to temp files first and all made visible together
at the end (data_prep/output.py), so an interrupted conversion leaves the previous dataset as it was.
Two more commands work on converted data:

  mlpscale-convert combine --dataset N --res R --root ROOT    merge --shard outputs into one dataset
  mlpscale-convert subset  --dataset N --res R --root ROOT --n K [--seed S] [--beton]
                                                              class-balanced subset of the train split
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time

import numpy as np

from mlpscale import __version__, cli
from mlpscale.errors import UserError, cli_entry

from . import combine
from .engine import FORMATS, Encoding, SplitResult, stats_from_sums, write_split
from .output import OutputFolder, shard_suffix
from .resize import LAYOUTS
from .sources import SOURCES
from .workers import Workers

# An image must fit one FFCV page (we use pages of up to 4 MiB): 1024 x 1024 x 3 bytes = 3 MiB raw.
# The paper trains at 64px; 1024 leaves room for any low-resolution study.
MAX_RES = 1024


WHAT = "Convert an image dataset once into .beton files at a low resolution, for training and evaluation."
EXAMPLE = "mlpscale-convert cifar10 --src cifar-10-python.tar.gz --res 32 --root data"
DETAILS = """\
Writes ROOT/<dataset>/<split>_<res>.beton for every split and ROOT/<dataset>/meta_<res>.json (classes,
counts, normalisation statistics, skipped files, the command that wrote them). A conversion is
published whole or not at all: an interrupted one leaves the previous dataset as it was.
`mlpscale-convert SOURCE --help` lists the options of one source; `combine` merges --shard outputs,
`subset` writes a class-balanced subset of the training split."""

SOURCE_EXAMPLES = {
    "digits": "mlpscale-convert digits --res 16 --root data",
    "cifar10": "mlpscale-convert cifar10 --src cifar-10-python.tar.gz --res 32 --root data",
    "cifar100": "mlpscale-convert cifar100 --src cifar-100-python.tar.gz --res 32 --root data",
    "stl10": "mlpscale-convert stl10 --src stl10_binary/ --res 64 --root data",
    "tinyimagenet": "mlpscale-convert tinyimagenet --src tiny-imagenet-200/ --res 64 --root data",
    "imagenet1k": "mlpscale-convert imagenet1k --src ILSVRC/ --res 64 --root data --real real.json",
    "imagenet21k": "mlpscale-convert imagenet21k --src winter21_whole/ --res 64 --root data --format jpg",
    "folder": "mlpscale-convert folder --src mydata/ --dataset mydata --res 64 --root data",
}

# the paper's own data, whose photos are not square: stored as the authors stored them by default; the
# other sources' images are square already (CIFAR, STL-10, Tiny ImageNet), where both layouts agree
PAPER_LAYOUT_SOURCES = ("imagenet1k", "imagenet21k")


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser("mlpscale-convert", WHAT, EXAMPLE, DETAILS)
    sub = p.add_subparsers(dest="source", required=True, metavar="SOURCE",
                           help="where the images come from (or combine / subset); each has its own --help")
    for name, mod in SOURCES.items():
        sp = sub.add_parser(name, help=mod.HELP, description=cli.describe(f"Convert {mod.HELP}.", SOURCE_EXAMPLES[name],
                                                                         mod.__doc__),
                            formatter_class=cli.HelpFormatter)
        sp.add_argument("--src", default=None, help="downloaded files (folder or archive)")
        cli.add(sp, "--res", f"that of the written images, 1..{MAX_RES} (default: the dataset's)")
        cli.add(sp, "--root", "the files go to ROOT/<dataset>/", required=True)
        cli.add(sp, "--dataset", "default: the source name", default=name)
        sp.add_argument("--format", default="raw", choices=FORMATS, help="raw (fastest reads) or jpg (smaller)")
        sp.add_argument("--jpeg-quality", type=int, default=90, help="JPEG quality 1..100 for --format jpg")
        default_layout = "paper" if name in PAPER_LAYOUT_SOURCES else "square"
        sp.add_argument("--layout", default=default_layout, choices=LAYOUTS,
                        help="square: res x res, shorter side to res + centre crop; paper: as the paper's "
                             "authors stored it (aspect kept, longer side shrunk to res when larger; kept "
                             f"in a res x res canvas beside its true size). Default here: {default_layout}")
        cli.add(sp, "--workers", "default: all cores", default=0)
        sp.add_argument("--shard", default=None, metavar="I/K",
                        help="convert only classes with label %% K == I (0-based), for K machines; "
                             "then `mlpscale-convert combine`")
        sp.add_argument("--allow-empty-classes", action="store_true",
                        help="convert even when a class has no training images (it stays in the class "
                             "list, so label ids keep their meaning); without it that is an error")
        cli.add(sp, "--quiet")
        mod.add_arguments(sp)
        combine.add_old_spellings(sp)
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


def check_options(args) -> None:
    """One sentence for an option out of range, before anything starts."""
    if not 1 <= args.res <= MAX_RES:
        raise UserError(f"--res must be between 1 and {MAX_RES} pixels (one image must fit an FFCV page), "
                        f"got {args.res}")
    if not 1 <= args.jpeg_quality <= 100:
        raise UserError(f"--jpeg-quality must be between 1 and 100, got {args.jpeg_quality}")


def require_classes(labels: np.ndarray, classes: list, wanted: np.ndarray, problem: str, allow: bool) -> None:
    """UserError naming the first class of `wanted` (bool per class) that has no label in `labels`."""
    have = np.bincount(labels, minlength=len(classes))[:len(classes)] > 0
    empty = np.flatnonzero(wanted & ~have)
    if len(empty) and not allow:
        more = f" (and {len(empty) - 1} more classes)" if len(empty) > 1 else ""
        raise UserError(f"class '{classes[empty[0]]}'{more} {problem}; add images, or pass "
                        "--allow-empty-classes to keep empty classes in the class list")


def command_line(args) -> str:
    """The command that (re)writes this dataset, for meta.json and the trainer's error messages."""
    argv = getattr(args, "argv", None)
    if argv:
        return "mlpscale-convert " + shlex.join(argv)
    src = f" --src {shlex.quote(os.path.abspath(args.src))}" if args.src else ""
    return (f"mlpscale-convert {args.source}{src} --dataset {shlex.quote(args.dataset)} --res {args.res} "
            f"--root {shlex.quote(os.path.abspath(args.root))}")


def convert(args) -> dict:
    """Convert one source (see the module docstring); returns the meta that was written."""
    from mlpscale.datasets import BUILTIN

    t_start = getattr(args, "t_start", None) or time.time()
    if args.res is None:
        args.res = BUILTIN[args.dataset].default_res if args.dataset in BUILTIN else 64
    check_options(args)
    shard = parse_shard(args.shard)
    # workers first (listing and reading the source can take minutes), and before the lock, so
    # that they do not inherit its file descriptor
    with Workers(args.workers) as pool, OutputFolder(args.root, args.dataset, args.res, shard_suffix(shard)) as out:
        data = SOURCES[args.source].load(args, pool)
        require_classes(data.splits["train"].labels, data.classes, np.ones(len(data.classes), bool),
                        f"has no training images in --src {args.src}", args.allow_empty_classes)
        results = {split: stage_split(args, data, split, shard, pool, out) for split in data.splits}
        meta = out.publish(build_meta(args, data, results, out, t_start))
    if not args.quiet:
        for split, r in results.items():
            rate = r.count / max(r.seconds, 1e-9)
            print(f"wrote {out.beton_path(split)} ({r.count} images, {rate:.0f} img/s)")
        print(f"wrote {out.meta_path()}")
    return meta


def stage_split(args, data, split: str, shard, pool, out: OutputFolder) -> SplitResult:
    """Encode one split (this shard's classes of it) into a verified temp beton staged in `out`,
    with its side files."""
    records = data.splits[split]
    if shard is not None:
        records = records.subset(np.flatnonzero(records.labels % shard[1] == shard[0]))
    if len(records) == 0:
        raise UserError(f"the {split} split of {args.source} is empty" +
                        (f" in shard {args.shard}" if shard else "") + f"; check --src {args.src}")
    enc = Encoding(args.res, args.format, args.jpeg_quality, args.layout)
    r = write_split(out.beton_path(split), records, enc, pool, conversion_id=out.conversion_id, rename=False,
                    desc=f"{args.dataset}/{split}", progress=not args.quiet)
    out.stage_beton(split, r.tmp)
    if split == "train":  # every image of a class unreadable: as bad as no images
        require_classes(records.labels[r.kept], data.classes,
                        np.bincount(records.labels, minlength=len(data.classes)) > 0,
                        "has no readable training image (all were skipped)", args.allow_empty_classes)
    for key, (sc_split, values) in data.sidecars.items():
        if sc_split == split:  # side data of skipped images dropped: index i is sample i
            out.stage_json(out.sidecar_path(key), [v for v, k in zip(values, r.kept) if k])
    if r.skipped:
        print(f"skipped {len(r.skipped)} unreadable {split} images (listed in meta)", file=sys.stderr)
    return r


def build_meta(args, data, results: dict[str, SplitResult], out: OutputFolder, t_start: float) -> dict:
    """meta_<res>.json (mlpscale.layout.META_KEYS and more); `out.publish` adds the conversion id
    and the file names."""
    mean, std = stats_from_sums(results["train"].sums())
    counts = {s: r.count for s, r in results.items()}
    seconds = time.time() - t_start
    first = min(r.first_image_at for r in results.values())
    return {
        "name": args.dataset,
        "source": args.source,
        "src": os.path.abspath(args.src) if args.src else None,
        "res": args.res,
        "layout": args.layout,
        "format": args.format,
        **({"jpeg_quality": args.jpeg_quality} if args.format == "jpg" else {}),
        "num_classes": len(data.classes),
        "classes": data.classes,
        "counts": counts,
        "eval_split": data.eval_split,
        "mean": mean,
        "std": std,
        "stats": "per-channel mean/std on the 0..255 scale over every pixel of the written train split",
        "num_skipped": {s: len(r.skipped) for s, r in results.items()},
        "skipped": {s: (data.skipped if s == "train" else []) + r.skipped for s, r in results.items()},
        **{key: os.path.basename(out.sidecar_path(key)) for key in data.sidecars},
        "pixel_sums": {s: r.sums() for s, r in results.items()},
        "shard": args.shard,
        "tool": f"mlpscale {__version__}",
        "command": command_line(args),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(seconds, 2),
        "startup_s": round(first - t_start, 3),  # command start -> first converted image
        "images_per_s": round(sum(counts.values()) / max(seconds, 1e-9), 1),
        **data.extra_meta,
    }


def _process_start() -> float | None:
    """Wall-clock time at which this process started (Linux), so that start-up is measured whole."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22: starttime since boot
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def _terminate(signum, frame):
    # SIGTERM (a scheduler's preemption, `kill`): unwind like Ctrl-C, so temp files and workers go
    sys.exit(128 + signum)


@cli_entry
def main(argv=None):
    # as a command, start-up counts from the process's start (imports included)
    t_start = (_process_start() if argv is None else None) or time.time()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv, args.t_start = argv, t_start
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if args.source in ("combine", "subset"):
            args.func(args)
        else:
            convert(args)
    finally:
        signal.signal(signal.SIGTERM, previous)

if __name__ == "__main__":
    main()
