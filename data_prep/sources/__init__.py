"""Dataset sources for `mlpscale-convert`: each turns downloaded files into records per split.

A source module defines `NAME`, `HELP`, `add_arguments(parser)` and `load(args, pool=None) ->
SourceData` (`data_prep.records`); `pool` is the converter's `data_prep.workers.Workers`, which
sources with many class folders or archives use to index them in parallel. Records are decoded
arrays (`ArrayRecords`) or references to encoded images (`FileRecords`); `data_prep.cli` decodes,
resizes and writes them (`data_prep.engine`) and writes `meta_<res>.json`.

This package is only the registry. Importing any module in it first runs this file, which imports
every source, so what sources share lives outside it (`data_prep.records`, `data_prep.scan`); a
source imports a sibling relatively (`cifar10` -> `.cifar`), never this package.
"""
from __future__ import annotations

from . import cifar10, cifar100, digits, folder, imagenet1k, imagenet21k, stl10, tinyimagenet

SOURCES = {m.NAME: m for m in [digits, cifar10, cifar100, stl10, tinyimagenet, imagenet1k, imagenet21k, folder]}

