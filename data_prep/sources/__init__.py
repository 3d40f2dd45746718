"""Dataset sources for `mlpscale-convert`: each turns downloaded files into records per split.

A source module defines `NAME`, `HELP`, `add_arguments(parser)` and `load(args) -> SourceData`.
Records are decoded arrays (`ArrayRecords`) or references to encoded images (`FileRecords`);
`data_prep.cli` decodes, resizes and writes them (`data_prep.engine`) and writes `meta_<res>.json`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import cifar10, cifar100, digits, folder, imagenet1k, imagenet21k, stl10, tinyimagenet

SOURCES = {m.NAME: m for m in [digits, cifar10, cifar100, stl10, tinyimagenet, imagenet1k, imagenet21k, folder]}


@dataclass
class SourceData:
    splits: dict            # split name -> records (train first, then the evaluation split)
    classes: list[str]      # class ids (wnids, folder names) in label order
    eval_split: str = "test"
    skipped: list[str] = field(default_factory=list)   # files rejected while listing, with reasons
    extra_meta: dict = field(default_factory=dict)      # source-specific facts for meta.json
    # per-sample side data aligned with a split's records: key -> (split, list); written as
    # ROOT/<name>/<key>_<res>.json with the entries of skipped images removed (e.g. ReaL labels)
    sidecars: dict = field(default_factory=dict)
