"""STL-10 from the official binary files (`stl10_binary/`: train_X.bin, train_y.bin, test_X.bin,
test_y.bin, class_names.txt), the extracted folder, its parent, or `stl10_binary.tar.gz`.

`*_X.bin` holds N x 3 x 96 x 96 uint8 in column-major order (each channel stored transposed), so an
image is `x.reshape(3, 96, 96).transpose(2, 1, 0)` (W, H swapped back) in HWC. Labels are 1..10 on
disk and 0..9 here. The 100,000 unlabeled images are not converted. Splits: train (5,000), test (8,000).
"""
from __future__ import annotations

import numpy as np

from mlpscale.errors import UserError

NAME = "stl10"
HELP = "STL-10 from the official binaries (stl10_binary/ with train_X.bin, train_y.bin, test_*)"
EXPECTED = "the stl10_binary/ folder (train_X.bin, train_y.bin, test_X.bin, test_y.bin) or stl10_binary.tar.gz"
CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]


def add_arguments(parser) -> None:
    pass


def load(args, pool=None):
    from data_prep.records import ArrayRecords, SourceData
    from data_prep.scan import file_reader, require_src

    read = file_reader(require_src(args, EXPECTED), EXPECTED, "stl10_binary", "train_X.bin",
                       "stl10_binary.tar.gz")
    splits = {}
    for split in ("train", "test"):
        xb, yb = read(f"{split}_X.bin"), read(f"{split}_y.bin")
        if xb is None or yb is None:
            raise UserError(f"--src {args.src} lacks {split}_X.bin / {split}_y.bin; expected {EXPECTED}")
        x = np.frombuffer(xb, dtype=np.uint8)
        y = np.frombuffer(yb, dtype=np.uint8).astype(np.int64) - 1
        if x.size != len(y) * 3 * 96 * 96:
            raise UserError(f"{split}_X.bin has {x.size} bytes, not {len(y)} x 3 x 96 x 96 for the "
                            f"{len(y)} labels in {split}_y.bin; re-download stl10_binary.tar.gz")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise UserError(f"{split}_y.bin has labels outside 1..10; re-download stl10_binary.tar.gz")
        imgs = x.reshape(-1, 3, 96, 96).transpose(0, 3, 2, 1)  # (N, C, W, H) column-major -> (N, H, W, C)
        splits[split] = ArrayRecords(np.ascontiguousarray(imgs), y)
    names = read("class_names.txt")
    classes = names.decode().split() if names else CLASSES
    return SourceData(splits=splits, classes=classes, eval_split="test")
