"""TinyImageNet from `tiny-imagenet-200/`: train/<wnid>/images/*.JPEG (500 per class) and
val/images/*.JPEG with val/val_annotations.txt (file, wnid, box). The unlabeled test split is not
converted. Classes: the train folders' wnids in sorted order (the ImageFolder convention), named
from words.txt when present. Splits: train (100,000), val (10,000).
"""
from __future__ import annotations

import os

from mlpscale.errors import UserError

NAME = "tinyimagenet"
HELP = "TinyImageNet from tiny-imagenet-200/ (train/<wnid>/images, val/images + val_annotations.txt)"
EXPECTED = "the tiny-imagenet-200/ folder with train/<wnid>/images/*.JPEG and val/val_annotations.txt"


def add_arguments(parser) -> None:
    pass


def load(args, pool=None):
    from data_prep.records import SourceData
    from data_prep.scan import RecordBuilder, list_images, read_words, require_src

    src = require_src(args, EXPECTED)
    if not os.path.isdir(os.path.join(src, "train")) and os.path.isdir(os.path.join(src, "tiny-imagenet-200")):
        src = os.path.join(src, "tiny-imagenet-200")
    train_dir, ann = os.path.join(src, "train"), os.path.join(src, "val", "val_annotations.txt")
    if not os.path.isdir(train_dir) or not os.path.isfile(ann):
        raise UserError(f"--src {args.src} lacks train/ or val/val_annotations.txt; expected {EXPECTED}")
    wnids = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)))
    index = {w: i for i, w in enumerate(wnids)}
    train = RecordBuilder()
    for w in wnids:
        d = os.path.join(train_dir, w, "images")
        train.add_files(list_images(d if os.path.isdir(d) else os.path.join(train_dir, w)), index[w])
    val = RecordBuilder()
    with open(ann) as f:
        rows = sorted(line.split("\t")[:2] for line in f if line.strip())
    for fname, w in rows:
        if w not in index:
            raise UserError(f"val_annotations.txt names class {w}, which has no train/{w}/ folder")
        val.add_files([os.path.join(src, "val", "images", fname)], index[w])
    words = read_words(os.path.join(src, "words.txt"))
    return SourceData(splits={"train": train.build(), "val": val.build()}, classes=wnids, eval_split="val",
                      extra_meta={"class_names": [words.get(w, w) for w in wnids]})
