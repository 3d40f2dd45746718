"""`mlpscale-info ARCH --res R --num-classes K [--n-train N --epochs T] [--json]`: size and compute of an
architecture."""
from __future__ import annotations

import argparse
import json

import torch

from . import cli
from .config import MAX_RES
from .errors import cli_entry, int_range
from .metrics import paper_compute_pflops
from .models import build_model


def describe(arch: str, res: int, num_classes: int, channels: int = 3, n_train: int = 0, epochs: int = 0) -> dict:
    with torch.device("meta"):  # no memory is allocated, so B_12-Wi_1024 at 11k classes is instant
        model = build_model(arch, res, num_classes, channels=channels)
    extra = {}
    if n_train and epochs:  # the paper's C = fvcore flops x 3 x N x T
        extra = {"n_train": n_train, "epochs": epochs,
                 "compute_pflops": paper_compute_pflops(model.paper_flops_per_forward(), n_train, epochs)}
    return {
        "arch": model.spec.name,
        "res": res,
        "num_classes": num_classes,
        "params": model.get_num_params(),
        "macs_per_forward": model.macs_per_forward(),
        "paper_flops_per_forward": model.paper_flops_per_forward(),
        "train_flops_per_image": model.train_flops_per_image(),
        **extra,
    }


def build_parser() -> argparse.ArgumentParser:
    p = cli.command_parser("mlpscale-info", "Print the size and compute of an MLP architecture (nothing is allocated).",
                           "mlpscale-info B_12-Wi_1024 --res 64 --num-classes 11230",
                           "With --n-train and --epochs it adds the paper's compute C = FLOPs per forward x 3 x N x T "
                           "(PFLOPs).")
    p.add_argument("arch", help="the paper's naming, e.g. B_12-Wi_1024, B_6-Wi_512-E_8, S_6-Wi_1024")
    cli.add(p, "--res", "that of the model's input (default 64)", type=int_range(1, MAX_RES), default=64)
    cli.add(p, "--num-classes", "default 11230 (ImageNet-21k, as the paper's Table 5)", type=int_range(1, 10**7),
            default=11230)
    p.add_argument("--n-train", type=int_range(0, 10**13), default=0, metavar="N",
                   help="training-set size N, for the paper's compute C")
    cli.add(p, "--epochs", "for the paper's compute C", type=int_range(0, 10**7), default=0)
    cli.add(p, "--json")
    return p


@cli_entry
def main(argv=None):
    a = build_parser().parse_args(argv)
    d = describe(a.arch, a.res, a.num_classes, n_train=a.n_train, epochs=a.epochs)
    if a.json:
        print(json.dumps(d))
        return
    print(f"{d['arch']} at {a.res}x{a.res}, {a.num_classes} classes")
    print(f"  parameters            {d['params']:>16,}  ({d['params'] / 1e6:.1f}M)")
    print(f"  MACs per forward      {d['macs_per_forward']:>16,}  (matrix multiplies)")
    print(f"  paper FLOPs / forward {d['paper_flops_per_forward']:>16,}  (fvcore's count, the paper's unit: "
          f"C = this x 3 x N x T)")
    print(f"  train FLOPs per image {d['train_flops_per_image']:>16,}  (2 per MAC, fwd+bwd; for MFU)")
    if "compute_pflops" in d:
        print(f"  compute C             {d['compute_pflops']:>16,.4g}  PFLOPs for N={a.n_train:,}, T={a.epochs}")


if __name__ == "__main__":
    main()
