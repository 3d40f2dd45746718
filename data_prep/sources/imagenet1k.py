"""ImageNet-1k (ILSVRC-2012), optionally with the ReaL labels (Beyer et al. 2020).

--src holds `train/` and `val/`:
  train/<wnid>/*.JPEG            (extracted), or
  train/<wnid>.tar               (the 1000 per-class archives inside ILSVRC2012_img_train.tar,
                                  read in place, nothing extracted)
  val/<wnid>/*.JPEG              (class folders), or
  val/ILSVRC2012_val_*.JPEG      flat, with a ground-truth file: --val-labels FILE, or found in SRC:
                                  LOC_val_solution.csv (Kaggle: "ImageId,PredictionString"), or
                                  val_labels.txt (lines "ILSVRC2012_val_00000001.JPEG n01751748")
Classes: the 1000 train wnids in sorted order (the standard label ids, which ReaL also uses).
Validation order: by file name (ILSVRC2012_val_00000001 first), whatever the layout, so
`real_labels_<res>.json` lines up with `val_<res>.beton` sample by sample.

--real real.json (a list of 50,000 label lists in validation-file order, some empty) writes
ROOT/<name>/real_labels_<res>.json: a list with one label list per sample of val_<res>.beton
(images that were skipped are dropped, so index i always means sample i).
"""
from __future__ import annotations

import csv
import json
import os
import re

from mlpscale.errors import UserError

NAME = "imagenet1k"
HELP = "ImageNet-1k: SRC/train/<wnid>/ folders or <wnid>.tar files, SRC/val/ in class folders or flat"
EXPECTED = ("a folder with train/<wnid>/*.JPEG (or train/<wnid>.tar) and val/<wnid>/*.JPEG "
            "(or flat val/*.JPEG with LOC_val_solution.csv / --val-labels)")


def add_arguments(parser) -> None:
    parser.add_argument("--val-labels", default=None,
                        help="ground truth for a flat val/: LOC_val_solution.csv or lines 'FILE WNID'")
    parser.add_argument("--real", default=None, help="ImageNet ReaL labels (real.json) to store with val")
    parser.add_argument("--words", default=None, help="words.txt (wnid<TAB>names) for readable class names")


def read_val_labels(path: str) -> dict[str, str]:
    """Validation file stem -> wnid, from LOC_val_solution.csv or a 'FILE WNID' text file."""
    out = {}
    with open(path, newline="") as f:
        if path.endswith(".csv"):
            for row in csv.DictReader(f):
                out[row["ImageId"]] = row["PredictionString"].split()[0]
        else:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    out[os.path.splitext(os.path.basename(parts[0]))[0]] = parts[1]
    if not out:
        raise UserError(f"{path} holds no validation labels; expected LOC_val_solution.csv or lines 'FILE WNID'")
    return out


def val_number(path: str) -> int | None:
    """50000 for ILSVRC2012_val_00050000.JPEG (1-based position in real.json); None otherwise."""
    m = re.search(r"val_(\d+)", os.path.basename(path))
    return int(m.group(1)) if m else None


def load(args, pool=None):
    from data_prep.records import SourceData
    from data_prep.scan import (
        RecordBuilder,
        add_indexed,
        class_entries,
        index_entries,
        list_images,
        read_words,
        require_src,
    )

    src = require_src(args, EXPECTED)
    train_dir, val_dir = os.path.join(src, "train"), os.path.join(src, "val")
    if not os.path.isdir(train_dir) or not os.path.isdir(val_dir):
        raise UserError(f"--src {src} lacks train/ or val/; expected {EXPECTED}")
    entries = class_entries(train_dir)
    classes = list(entries)
    if not classes:
        raise UserError(f"{train_dir} has no <wnid>/ folders or <wnid>.tar files; expected {EXPECTED}")
    index = {w: i for i, w in enumerate(classes)}
    train = RecordBuilder()
    for w, idx in zip(classes, index_entries([entries[w] for w in classes], pool)):
        add_indexed(train, entries[w], idx, index[w])

    # validation: (path, wnid) pairs, ordered by file name
    val_entries = {w: p for w, p in class_entries(val_dir).items() if os.path.isdir(p)}
    if val_entries:
        pairs = [(p, w) for w, d in val_entries.items() for p in list_images(d)]
    else:
        label_file = args.val_labels or next(
            (os.path.join(src, f) for f in ("LOC_val_solution.csv", "val_labels.txt")
             if os.path.isfile(os.path.join(src, f))), None)
        if label_file is None:
            raise UserError(f"{val_dir} is flat but no ground truth was found; pass --val-labels "
                            "LOC_val_solution.csv (or a 'FILE WNID' list), or sort val/ into <wnid>/ folders")
        truth = read_val_labels(label_file)
        pairs = []
        for p in list_images(val_dir):
            stem = os.path.splitext(os.path.basename(p))[0]
            if stem not in truth:
                raise UserError(f"{label_file} has no label for {os.path.basename(p)}; use the ground truth "
                                "that ships with this validation set")
            pairs.append((p, truth[stem]))
    pairs.sort(key=lambda pw: os.path.basename(pw[0]))
    unknown = sorted({w for _, w in pairs} - set(index))
    if unknown:
        raise UserError(f"validation labels name classes {unknown[:3]} that have no training images in {train_dir}")
    val = RecordBuilder()
    for p, w in pairs:
        val.add_files([p], index[w])

    sidecars, extra = {}, {}
    if args.real:
        sidecars["real_labels"] = ("val", _real_for(args.real, [p for p, _ in pairs]))
        extra["real_labels_source"] = os.path.abspath(args.real)
    words = read_words(args.words) if args.words else {}
    if words:
        extra["class_names"] = [words.get(w, w) for w in classes]
    return SourceData(splits={"train": train.build(), "val": val.build()}, classes=classes,
                      eval_split="val", extra_meta=extra, sidecars=sidecars)


def _real_for(real_path: str, val_paths: list[str]) -> list[list[int]]:
    """ReaL label lists for `val_paths`, matched by the number in each file name."""
    try:
        with open(real_path) as f:
            real = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"cannot read --real {real_path} ({e}); download real.json from "
                        "github.com/google-research/reassessed-imagenet") from None
    if not isinstance(real, list) or not all(isinstance(x, list) for x in real):
        raise UserError(f"--real {real_path} is not a list of label lists (the format of real.json)")
    out = []
    for p in val_paths:
        k = val_number(p)
        if k is None or not 1 <= k <= len(real):
            raise UserError(f"cannot match {os.path.basename(p)} to an entry of {real_path}: ReaL needs the "
                            f"original ILSVRC2012_val_NNNNNNNN file names (1..{len(real)})")
        out.append([int(c) for c in real[k - 1]])
    return out
