"""Your own dataset: `SRC/train/<class>/*` and `SRC/val/<class>/*` (or `SRC/test/<class>/*`).

Classes are the train sub-folders in sorted order (the ImageFolder convention); a class may also
be a `<class>.tar` of images. Images may sit in nested folders below their class folder; files
without an image extension are ignored, image files that do not decode are skipped and listed.
"""
from __future__ import annotations

import os

from mlpscale.errors import UserError

NAME = "folder"
HELP = "any class-folder tree: SRC/train/<class>/* and SRC/val/<class>/* (the own-dataset case)"
EXPECTED = "a folder with train/<class>/<images> and val/<class>/<images> (or test/<class>/...)"


def add_arguments(parser) -> None:
    pass


def load(args, pool=None):
    from data_prep.records import SourceData
    from data_prep.scan import RecordBuilder, add_indexed, class_entries, index_entries, require_src

    src = require_src(args, EXPECTED)
    train_dir = os.path.join(src, "train")
    eval_name = next((s for s in ("val", "test") if os.path.isdir(os.path.join(src, s))), None)
    if not os.path.isdir(train_dir) or eval_name is None:
        raise UserError(f"--src {src} lacks a train/ and a val/ (or test/) folder; expected {EXPECTED}")
    classes = list(class_entries(train_dir))
    if not classes:
        raise UserError(f"{train_dir} has no class folders; expected {EXPECTED}")
    index = {c: i for i, c in enumerate(classes)}
    splits = {}
    for split, d in (("train", train_dir), (eval_name, os.path.join(src, eval_name))):
        entries = class_entries(d)
        unknown = sorted(set(entries) - set(index))
        if unknown:
            raise UserError(f"{d} has class folders {unknown[:3]} that are not in {train_dir}; "
                            "every evaluation class needs training images")
        names = list(entries)
        b = RecordBuilder()
        for name, idx in zip(names, index_entries([entries[n] for n in names], pool)):
            add_indexed(b, entries[name], idx, index[name])
        splits[split] = b.build()
        if len(splits[split]) == 0:
            raise UserError(f"{d} has no image files; expected {EXPECTED}")
    return SourceData(splits=splits, classes=classes, eval_split=eval_name)
