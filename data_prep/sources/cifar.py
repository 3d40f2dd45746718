"""CIFAR-10 / CIFAR-100 from the official python-pickle archives (`cifar-10-python.tar.gz`,
`cifar-100-python.tar.gz`), read straight from the `.tar.gz` or from the extracted folder.

Pickles hold `data` (N, 3072) uint8 in CHW order and `labels` (CIFAR-10) or `fine_labels` /
`coarse_labels` (CIFAR-100). Class order is the one in `batches.meta` / `meta`, i.e. the official
label ids. Splits: train (50,000) and test (10,000).
"""
from __future__ import annotations

import io
import pickle

import numpy as np

from mlpscale.errors import UserError

LAYOUT = {
    "cifar10": dict(folder="cifar-10-batches-py", archive="cifar-10-python.tar.gz",
                    train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta"),
    "cifar100": dict(folder="cifar-100-python", archive="cifar-100-python.tar.gz",
                     train=["train"], test=["test"], meta="meta"),
}


def _reader(src: str, layout: dict):
    """A function name -> unpickled dict, for an archive, its folder, or the folder's parent."""
    from data_prep.scan import file_reader

    expected = (f"the official {layout['archive']} or its extracted {layout['folder']}/ folder "
                f"(with {', '.join(layout['train'] + layout['test'])} and {layout['meta']})")
    read = file_reader(src, expected, layout["folder"], layout["meta"], layout["archive"])

    def load(name):
        data = read(name)
        if data is None:
            raise UserError(f"--src {src} has no {name}; expected {expected}")
        return _unpickle(data, f"{src}:{name}")
    return load


# All that CIFAR's pickles (Python 2's, or re-pickled by Python 3) name: numpy arrays (rebuilt by
# _reconstruct, or _frombuffer under protocol 5) and dtypes, and _codecs.encode for bytes under
# Python 3's protocol 2. A pickle naming anything else could run code.
_CIFAR_GLOBALS = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                  *((f"numpy.{core}.multiarray", "_reconstruct") for core in ("core", "_core")),
                  *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core"))}


class _CifarUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numpy arrays only: a pickle that names anything else is refused."""

    def __init__(self, data: bytes, where: str):
        super().__init__(io.BytesIO(data), encoding="bytes")
        self.where = where

    def find_class(self, module, name):
        if (module, name) not in _CIFAR_GLOBALS:
            raise UserError(f"{self.where} is not a CIFAR batch (its pickle refers to {module}.{name}, which "
                            "a CIFAR file never does); use the official archive")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict:
    try:
        d = _CifarUnpickler(data, where).load()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any unpickling failure means it is not a CIFAR batch
        raise UserError(f"{where} is not a CIFAR batch ({type(e).__name__}); re-download the archive") from None
    if not isinstance(d, dict):
        raise UserError(f"{where} is not a CIFAR batch (it holds a {type(d).__name__}, not a dict); "
                        "re-download the archive")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def load_cifar(args, which: str):
    from data_prep.records import ArrayRecords, SourceData
    from data_prep.scan import require_src

    layout = LAYOUT[which]
    src = require_src(args, f"the official {layout['archive']} or its extracted {layout['folder']}/ folder")
    load = _reader(src, layout)
    key = "labels" if which == "cifar10" else f"{getattr(args, 'label_type', 'fine')}_labels"
    meta = load(layout["meta"])
    names_key = "label_names" if which == "cifar10" else f"{getattr(args, 'label_type', 'fine')}_label_names"
    classes = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    splits = {}
    for split in ("train", "test"):
        xs, ys = [], []
        for name in layout[split]:
            d = load(name)
            x = np.asarray(d["data"], dtype=np.uint8)
            if x.ndim != 2 or x.shape[1] != 3072:
                raise UserError(f"{name} holds data of shape {x.shape}, not (N, 3072); re-download the archive")
            xs.append(x.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # CHW -> HWC
            ys.append(np.asarray(d[key], dtype=np.int64))
        splits[split] = ArrayRecords(np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys))
    extra = {"label_type": getattr(args, "label_type", "fine")} if which == "cifar100" else {}
    return SourceData(splits=splits, classes=classes, eval_split="test", extra_meta=extra)
