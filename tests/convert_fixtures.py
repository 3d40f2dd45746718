"""Small datasets in the real download formats, generated on the fly for the converter tests.

Every image of class c is a solid colour `class_colour(c)` (plus, for JPEG trees, a size that
varies), so the decoded, resized pixels tell which record ended up where.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import tarfile

import numpy as np
from PIL import Image


def class_colour(c: int) -> tuple[int, int, int]:
    return (40 + 50 * (c % 4), 30 + 60 * ((c // 4) % 4), 200 - 45 * (c % 5))


def image_bytes(colour, size=(50, 40), fmt="JPEG", mode="RGB", quality=95) -> bytes:
    img = Image.new("RGB", size, colour)
    if mode != "RGB":
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": quality} if fmt == "JPEG" else {}))
    return buf.getvalue()


def write(path: str, data: bytes) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def add_member(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def read_images(path: str):
    """([images (H, W, 3) uint8, sizes may differ], labels (N,)) decoded from a beton (raw or JPEG);
    a paper-layout beton's images are cut from their canvases at their true sizes."""
    from mlpscale.beton import MODE_RAW, iter_payloads, open_beton

    b = open_beton(path)
    true_hw = b.image_sizes()
    xs, ys = [], []
    for i, (payload, mode, h, w, label) in enumerate(iter_payloads(b)):
        if mode == MODE_RAW:
            x = np.frombuffer(payload, np.uint8).reshape(h, w, 3)
        else:
            x = np.asarray(Image.open(io.BytesIO(payload)).convert("RGB"))
        xs.append(x if true_hw is None else x[:true_hw[i, 0], :true_hw[i, 1]])
        ys.append(label)
    return xs, np.asarray(ys)


def read_beton(path: str):
    """(images (N, H, W, 3) uint8, labels (N,)) of a fixed-size beton."""
    xs, ys = read_images(path)
    return np.stack(xs), ys


# -- CIFAR -----------------------------------------------------------------------------------------
def cifar_arrays(n: int, num_classes: int, seed: int):
    """n random CHW images; labels cycle through the classes (every class has an image when
    n >= num_classes), shuffled."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)  # CHW, as the pickles store it
    y = rng.permutation(np.arange(n) % num_classes)
    return x, y


def make_cifar10(root: str, per_batch: int = 6, archive: bool = True) -> tuple[str, dict]:
    """cifar-10-python.tar.gz (or the extracted folder); returns (src, {split: (x CHW, y)})."""
    truth, members = {"train": ([], []), "test": ([], [])}, {}
    xs, ys = cifar_arrays(5 * per_batch, 10, 1)
    for i in range(1, 6):
        x, y = xs[(i - 1) * per_batch:i * per_batch], ys[(i - 1) * per_batch:i * per_batch]
        members[f"data_batch_{i}"] = {b"data": x.reshape(per_batch, -1), b"labels": y.tolist(),
                                      b"batch_label": b"training batch"}
        truth["train"][0].append(x), truth["train"][1].append(y)
    x, y = cifar_arrays(per_batch, 10, 99)
    members["test_batch"] = {b"data": x.reshape(per_batch, -1), b"labels": y.tolist()}
    truth["test"][0].append(x), truth["test"][1].append(y)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    members["batches.meta"] = {b"label_names": [n.encode() for n in names], b"num_vis": 3072}
    return _pack(root, "cifar-10-batches-py", "cifar-10-python.tar.gz", members, archive), \
        {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in truth.items()}


def make_cifar100(root: str, n: int = 12, archive: bool = True):
    truth, members = {}, {}
    for split, seed in (("train", 1), ("test", 2)):
        x, fine = cifar_arrays(n, 100, seed)
        coarse = fine // 5
        members[split] = {b"data": x.reshape(n, -1), b"fine_labels": fine.tolist(),
                          b"coarse_labels": coarse.tolist()}
        truth[split] = (x, fine, coarse)
    members["meta"] = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
                       b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    return _pack(root, "cifar-100-python", "cifar-100-python.tar.gz", members, archive), truth


def _pack(root, folder, archive_name, members, archive):
    if archive:
        os.makedirs(root, exist_ok=True)
        path = os.path.join(root, archive_name)
        with tarfile.open(path, "w:gz") as tf:
            for name, obj in members.items():
                add_member(tf, f"{folder}/{name}", pickle.dumps(obj))
        return path
    for name, obj in members.items():
        write(os.path.join(root, folder, name), pickle.dumps(obj))
    return root


# -- STL-10 ----------------------------------------------------------------------------------------
def make_stl10(root: str, n_train: int = 10, n_test: int = 4):
    """stl10_binary/ with column-major 96x96 images; returns (src, {split: (HWC images, 0-based y)})."""
    d = os.path.join(root, "stl10_binary")
    truth = {}
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        rng = np.random.default_rng(seed)
        hwc = rng.integers(0, 256, (n, 96, 96, 3), dtype=np.uint8)
        y = rng.permutation(np.arange(n) % 10)  # every class present in train
        colmajor = hwc.transpose(0, 3, 2, 1)  # (N, C, W, H): how the official files store pixels
        write(os.path.join(d, f"{split}_X.bin"), np.ascontiguousarray(colmajor).tobytes())
        write(os.path.join(d, f"{split}_y.bin"), (y + 1).astype(np.uint8).tobytes())
        truth[split] = (hwc, y)
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    write(os.path.join(d, "class_names.txt"), ("\n".join(names) + "\n").encode())
    return root, truth


# -- JPEG trees ------------------------------------------------------------------------------------
WNIDS = ["n01443537", "n01629819", "n01641577", "n02085620", "n03000134"]


def make_tinyimagenet(root: str, per_class: int = 3, val_per_class: int = 2):
    src = os.path.join(root, "tiny-imagenet-200")
    wnids = WNIDS[::-1]  # wnids.txt is not sorted in the real download; classes must be
    write(os.path.join(src, "wnids.txt"), ("\n".join(wnids) + "\n").encode())
    write(os.path.join(src, "words.txt"), "".join(f"{w}\tthing {w[-3:]}, other\n" for w in wnids).encode())
    for c, w in enumerate(WNIDS):
        for i in range(per_class):
            write(os.path.join(src, "train", w, "images", f"{w}_{i}.JPEG"), image_bytes(class_colour(c), (64, 64)))
        write(os.path.join(src, "train", w, f"{w}_boxes.txt"), b"")
    lines = []
    k = 0
    for c, w in enumerate(WNIDS):
        for _ in range(val_per_class):
            write(os.path.join(src, "val", "images", f"val_{k}.JPEG"), image_bytes(class_colour(c), (64, 64)))
            lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63\n")
            k += 1
    write(os.path.join(src, "val", "val_annotations.txt"), "".join(lines[::-1]).encode())
    return src


def make_imagenet1k(root: str, per_class: int = 4, val_per_class: int = 2, tars: bool = True,
                    flat_val: bool = True, corrupt: bool = True):
    """train/<wnid>.tar (or folders), val flat with LOC_val_solution.csv, real.json; returns
    (src, val truth list of (file, label) in file order, real list)."""
    src = os.path.join(root, "imagenet")
    for c, w in enumerate(WNIDS):
        blobs = {f"{w}_{i}.JPEG": image_bytes(class_colour(c), (80 + 10 * i, 60)) for i in range(per_class)}
        if corrupt and c == 1:
            blobs[f"{w}_{per_class}.JPEG"] = image_bytes(class_colour(c))[:100]  # truncated JPEG
        if tars:
            os.makedirs(os.path.join(src, "train"), exist_ok=True)
            with tarfile.open(os.path.join(src, "train", f"{w}.tar"), "w") as tf:
                for name, data in blobs.items():
                    add_member(tf, name, data)
        else:
            for name, data in blobs.items():
                write(os.path.join(src, "train", w, name), data)
    rng = np.random.default_rng(0)
    labels = rng.permutation(np.repeat(np.arange(len(WNIDS)), val_per_class))
    rows, truth = ["ImageId,PredictionString\n"], []
    for k, c in enumerate(labels, start=1):
        name = f"ILSVRC2012_val_{k:08d}"
        sub = "" if flat_val else WNIDS[c]
        write(os.path.join(src, "val", sub, name + ".JPEG"), image_bytes(class_colour(c), (70, 90)))
        rows.append(f"{name},{WNIDS[c]} 1 2 3 4\n")
        truth.append((name, int(c)))
    if flat_val:
        write(os.path.join(src, "LOC_val_solution.csv"), "".join(rows[:1] + rows[1:][::-1]).encode())
    real = [[int(c)] if k % 3 else [] if k % 2 else [int(c), (int(c) + 1) % 5] for k, (_, c) in enumerate(truth)]
    write(os.path.join(root, "real.json"), json.dumps(real).encode())
    return src, truth, real


def make_imagenet21k(root: str, sizes=(12, 3, 9, 10), corrupt_member: bool = True):
    """Per-synset tars `<wnid>.tar`; class i has sizes[i] images (one of class 0 is not an image)."""
    src = os.path.join(root, "winter21_whole")
    os.makedirs(src, exist_ok=True)
    for c, n in enumerate(sizes):
        w = WNIDS[c]
        with tarfile.open(os.path.join(src, f"{w}.tar"), "w") as tf:
            for i in range(n):
                data = image_bytes(class_colour(c), (60 + i, 45))
                if corrupt_member and c == 0 and i == 5:
                    data = b"this is not an image at all"
                add_member(tf, f"{w}_{i}.JPEG", data)
    return src


def make_folder(root: str, classes=("cat", "dog", "zebra"), per_class: int = 3, fmt="PNG"):
    src = os.path.join(root, "mydata")
    for c, name in enumerate(classes):
        for split, n in (("train", per_class), ("val", 1)):
            for i in range(n):
                write(os.path.join(src, split, name, f"img{i}.{fmt.lower()}"),
                      image_bytes(class_colour(c), (30 + 7 * i, 20 + 5 * i), fmt=fmt))
    write(os.path.join(src, "train", "cat", "notes.txt"), b"not an image, ignored")
    write(os.path.join(src, "train", "dog", "broken.png"), b"\x89PNG\r\n\x1a\n garbage")
    return src
