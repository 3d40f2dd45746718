"""Dataset sources for `mlpscale-convert`: each turns downloaded files into decoded splits.

A source module defines `NAME`, `HELP`, `add_arguments(parser)` and
`load(args) -> SourceData`; `data_prep.cli` writes the betons and `meta_<res>.json`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from . import digits

SOURCES = {m.NAME: m for m in [digits]}


@dataclass
class SourceData:
    splits: dict            # split name -> ImageRecords (train first, then the evaluation split)
    classes: list[str]      # class names in label order
    eval_split: str = "test"
    skipped: list[str] = field(default_factory=list)   # files that could not be decoded, with reasons
    extra_meta: dict = field(default_factory=dict)      # source-specific facts for meta.json
