"""ImageNet-21k with the class filtering and validation hold-out of Ridnik et al. (2021).

--src holds one entry per synset: `<wnid>.tar` (the archives of fall11_whole / winter21_whole,
read in place by offset: 14M images are never extracted) or extracted `<wnid>/` folders.

Preprocessing (Ridnik et al., "ImageNet-21K Pretraining for the Masses"):
  1. drop classes with fewer than --min-images images (default 500), counted from the tar headers
     alone before the kept classes are indexed;
  2. hold out --val-per-class images of every remaining class for validation (default 50),
     chosen by a permutation seeded with (--seed, the wnid), so each class's split does not
     depend on which other classes exist or on sharding;
  3. classes = the kept wnids in sorted order.
With these defaults Ridnik et al. report, for fall11: 11,221 classes, 11,797,632 train and
561,050 val images; for winter21: 10,450 classes, 11,060,223 train, 522,500 val.
(Counts here are of images that decode; unreadable ones are skipped and listed in meta.json.)

To make pre-training and fine-tuning (or several resolutions / machines) agree on the class list,
pass --class-list with an earlier meta_<res>.json or a text file of wnids (one per line): exactly
those classes are converted, in that order, and the filter is not applied.
"""
from __future__ import annotations

import json
import os
import zlib

import numpy as np

from mlpscale import cli
from mlpscale.errors import UserError

NAME = "imagenet21k"
HELP = "ImageNet-21k from per-synset <wnid>.tar archives (read in place) or <wnid>/ folders"
EXPECTED = "a folder of per-synset archives <wnid>.tar (e.g. winter21_whole/) or <wnid>/ image folders"


def add_arguments(parser) -> None:
    parser.add_argument("--min-images", type=int, default=500,
                        help="drop classes with fewer images (Ridnik et al.: 500)")
    parser.add_argument("--val-per-class", type=int, default=50,
                        help="images per class held out for validation (Ridnik et al.: 50)")
    cli.add(parser, "--seed", "here of the validation hold-out", default=0)
    parser.add_argument("--class-list", metavar="FILE", default=None,
                        help="fix the class list: an earlier meta_<res>.json or a file of wnids")
    cli.deprecate(parser, "--classes", "--class-list")
    parser.add_argument("--words", default=None, help="words.txt (wnid<TAB>names) for readable class names")


def read_class_list(path: str) -> list[str]:
    try:
        if path.endswith(".json"):
            with open(path) as f:
                return list(json.load(f)["classes"])
        with open(path) as f:
            return [line.split()[0] for line in f if line.strip()]
    except (OSError, KeyError, json.JSONDecodeError, IndexError) as e:
        raise UserError(f"cannot read --class-list {path} ({e}); pass a meta_<res>.json or one wnid per line") from None


def holdout(wnid: str, n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) sorted positions among a class's n sorted images; val has min(k, n) of them."""
    rng = np.random.default_rng([seed, zlib.crc32(wnid.encode())])
    perm = rng.permutation(n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def load(args, pool=None):
    from data_prep.records import SourceData
    from data_prep.scan import (
        RecordBuilder,
        add_indexed,
        class_entries,
        count_entries,
        entry_size,
        index_entries,
        read_words,
        require_src,
    )

    src = require_src(args, EXPECTED)
    if not os.path.isdir(src):
        raise UserError(f"--src {src} is a file; expected {EXPECTED}")
    entries = class_entries(src)
    if not entries:
        raise UserError(f"--src {src} has no <wnid>.tar archives or <wnid>/ folders; expected {EXPECTED}")
    known = {}  # wnid -> index_entries result, for what is indexed already
    if args.class_list:
        classes = read_class_list(args.class_list)
        missing = [w for w in classes if w not in entries]
        if missing:
            raise UserError(f"--src {src} lacks {len(missing)} classes of --class-list (e.g. {missing[0]}); "
                            "point --src at the same ImageNet-21k release")
    else:
        # a tar's images are counted from its headers alone, so the classes --min-images drops are never
        # indexed; a folder's listing is its count and its index at once
        tars = [w for w in entries if not os.path.isdir(entries[w])]
        counts = dict(zip(tars, count_entries([entries[w] for w in tars], pool, desc="counting synsets")))
        folders = [w for w in entries if w not in counts]
        known = dict(zip(folders, index_entries([entries[w] for w in folders], pool, desc="indexing synsets")))
        counts.update({w: entry_size(ix) for w, ix in known.items()})
        classes = [w for w in entries if counts[w] >= args.min_images and counts[w] > args.val_per_class]
        if not classes:
            raise UserError(f"no class in {src} has at least --min-images {args.min_images} images; "
                            "lower --min-images for a small test tree")
    todo = [w for w in classes if w not in known]
    known.update(zip(todo, index_entries([entries[w] for w in todo], pool, desc="indexing synsets")))
    by_name = {w: known[w] for w in classes}
    sizes = {w: entry_size(ix) for w, ix in by_name.items()}
    train, val = RecordBuilder(), RecordBuilder()
    for label, w in enumerate(classes):
        tr, va = holdout(w, sizes[w], args.val_per_class, args.seed)
        add_indexed(train, entries[w], by_name[w], label, tr)
        add_indexed(val, entries[w], by_name[w], label, va)
    extra = {
        "preprocessing": {"min_images": args.min_images, "val_per_class": args.val_per_class,
                          "seed": args.seed, "classes_in_src": len(entries),
                          "classes_kept": len(classes), "class_list_from": args.class_list},
    }
    if args.words:
        words = read_words(args.words)
        extra["class_names"] = [words.get(w, w) for w in classes]
    return SourceData(splits={"train": train.build(), "val": val.build()}, classes=classes,
                      eval_split="val", extra_meta=extra)
