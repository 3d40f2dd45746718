"""FFCV's own loader reads our betons in every memory mode (each mode compiles its numba pipeline: seconds)."""
from __future__ import annotations

import numpy as np

from data_prep.engine import Encoding, write_split
from data_prep.records import ArrayRecords
from data_prep.workers import Workers


def test_ffcv_loader_reads_our_betons_in_all_memory_modes(tmp_path):
    from ffcv.fields.decoders import IntDecoder, SimpleRGBImageDecoder
    from ffcv.loader import Loader, OrderOption

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (700, 8, 8, 3), dtype=np.uint8)
    labels = np.arange(700) % 7
    path = str(tmp_path / "t.beton")
    with Workers(2) as pool:
        r = write_split(path, ArrayRecords(imgs, labels), Encoding(8), pool, batch=50, progress=False)
    assert r.count == 700 and r.kept.all()
    for os_cache, order in ((True, OrderOption.SEQUENTIAL), (False, OrderOption.SEQUENTIAL),
                            (False, OrderOption.QUASI_RANDOM)):
        loader = Loader(path, batch_size=128, num_workers=1, order=order, os_cache=os_cache, drop_last=False,
                        pipelines={"image": [SimpleRGBImageDecoder()], "label": [IntDecoder()]})
        xs, ys = zip(*[(np.array(x), np.array(y).ravel()) for x, y in loader])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if order == OrderOption.SEQUENTIAL:
            np.testing.assert_array_equal(x, imgs)
            np.testing.assert_array_equal(y, labels)
        else:
            assert sorted(y.tolist()) == sorted(labels.tolist())
