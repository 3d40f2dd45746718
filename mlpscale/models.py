"""The paper's MLPs: the Standard MLP (S-MLP) and the inverted-Bottleneck MLP (B-MLP).

Both take HWC-flattened pixels, x of shape (B, H*W*C), and return logits (B, num_classes).

    B-MLP:  z = W_in x;  repeat depth times:  z = z + W_c act(W_e norm(z));  logits = W_out z
    S-MLP:  z = W_in x;  repeat depth-1 times: z = W act(norm(z));           logits = W_out z

W_e expands width -> expansion*width, W_c contracts back; there is no final norm (as the paper).
Architectures are named like the paper: `B_12-Wi_1024` (B-MLP, 12 blocks, width 1024, expansion 4),
`B_6-Wi_512-E_8` (expansion 8), `S_6-Wi_1024` (S-MLP, depth 6); `resnet18` is the paper's Table 1
convolutional baseline (mlpscale/resnet.py), built by the same `build_model`.

Two counts per forward pass and image:
  * `macs_per_forward()`: multiply-accumulates of the matrix multiplies, the work that sets speed
    (MFU uses 2 FLOPs per MAC, x3 for forward + backward);
  * `paper_flops_per_forward()`: what the paper's compute C = flops x 3 x N x T counts, i.e. what
    fvcore's FlopCountAnalysis reports for the model: one per MAC of each linear layer, plus 5 per
    element of each LayerNorm (4 without affine) and 2 per element of each BatchNorm (fvcore's
    count for a model traced with one image); biases, activations and residual adds count 0.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import torch
from torch import nn

from .errors import UserError

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}
NORMS = {"layer": nn.LayerNorm, "batch": nn.BatchNorm1d, "none": nn.Identity}

MAX_DEPTH, MAX_WIDTH, MAX_EXPANSION = 1024, 1 << 20, 64   # far above the paper's models; refused beyond
_ARCH_RE = re.compile(r"^(?P<kind>[BS])_(?P<depth>\d+)-Wi_(?P<width>\d+)(?:-E_(?P<exp>\d+))?$")


@dataclass(frozen=True)
class ArchSpec:
    kind: str        # "B" (inverted bottleneck), "S" (standard) or "R" (the ResNet-18 baseline)
    depth: int       # B: number of residual blocks; S: number of hidden layers incl. the input layer
    width: int       # residual-stream / hidden width
    expansion: int   # B only: hidden width of a block is expansion * width

    @property
    def name(self) -> str:
        suffix = f"-E_{self.expansion}" if self.kind == "B" and self.expansion != 4 else ""
        return f"{self.kind}_{self.depth}-Wi_{self.width}{suffix}" if self.kind != "R" else "resnet18"


def parse_arch(name: str) -> ArchSpec:
    m = _ARCH_RE.match(name.strip())
    if not m and name.strip().lower() != "resnet18":
        raise UserError(
            f"unknown architecture '{name}': use the paper's naming, e.g. B_12-Wi_1024 (bottleneck MLP, "
            f"12 blocks, width 1024), B_6-Wi_512-E_8 (expansion 8), S_6-Wi_1024 (standard MLP) or resnet18"
        )
    if name.strip().lower() == "resnet18":
        return RESNET18
    spec = ArchSpec(m["kind"], int(m["depth"]), int(m["width"]), int(m["exp"] or 4))
    if spec.depth < 1 or spec.width < 1 or spec.expansion < 1:
        raise UserError(f"architecture '{name}' needs depth, width and expansion of at least 1")
    if spec.depth > MAX_DEPTH or spec.width > MAX_WIDTH or spec.expansion > MAX_EXPANSION:
        raise UserError(f"architecture '{name}' is out of range: depth at most {MAX_DEPTH}, width at most "
                        f"{MAX_WIDTH}, expansion at most {MAX_EXPANSION} (the paper's largest is B_12-Wi_1024)")
    return spec


def check_fits_memory(spec: ArchSpec, dim_in: int, num_classes: int) -> None:
    """Refuse, with its size, a model whose fp32 weights alone exceed this machine's memory (the
    allocator would fail deep inside torch, or the machine would swap)."""
    params = macs_per_forward(spec, dim_in, num_classes)  # the weight matrices: all but biases and norms
    try:
        memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return
    if 4 * params > memory:
        raise UserError(f"{spec.name} at {dim_in:,} inputs and {num_classes:,} classes has {params / 1e9:,.1f}B "
                        f"parameters ({4 * params / 2**30:,.1f} GiB in fp32), more than this machine's "
                        f"{memory / 2**30:,.1f} GiB of memory; choose a smaller architecture")


RESNET18 = ArchSpec("R", 18, 512, 1)   # 18 layers; 512 features reach the head


def build_model(arch: str, res: int, num_classes: int, channels: int = 3, act: str = "gelu", norm: str = "layer",
                dropout: float = 0.0) -> nn.Module:
    """The model `arch` names: an MLP, or the ResNet-18 baseline (act, norm and dropout are the MLPs')."""
    if parse_arch(arch).kind == "R":
        from .resnet import ResNet18

        return ResNet18(res, num_classes, channels, spec=RESNET18)
    return MLP(arch, res, num_classes, channels, act, norm, dropout)


def _norm(kind: str, dim: int) -> nn.Module:
    if kind not in NORMS:
        raise UserError(f"unknown norm '{kind}': choose one of {', '.join(NORMS)}")
    return NORMS[kind](dim) if kind != "none" else nn.Identity()


def _act(kind: str) -> nn.Module:
    if kind not in ACTIVATIONS:
        raise UserError(f"unknown activation '{kind}': choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[kind]()


class BottleneckBlock(nn.Module):
    """z + W_c act(W_e norm(z)); the residual is added by the block itself."""

    def __init__(self, width: int, expansion: int, act: str, norm: str, dropout: float):
        super().__init__()
        self.norm = _norm(norm, width)
        self.expand = nn.Linear(width, expansion * width)
        self.act = _act(act)
        self.contract = nn.Linear(expansion * width, width)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, z: torch.Tensor) -> torch.Tensor:  # (B, width) -> (B, width)
        return z + self.drop(self.contract(self.act(self.expand(self.norm(z)))))


class StandardBlock(nn.Module):
    """W act(norm(z)), no residual: the S-MLP layer as the authors' code builds it (their StandardMLP:
    LayerNorm -> GELU -> Linear, `layernorms.{i}` then `layers.{i}`). The paper's text writes the block
    as sigma(W LN(z)) with ReLU: the linear map before the activation, and another activation. This
    follows the code, so that the released checkpoints compute here what they computed there."""

    def __init__(self, width: int, act: str, norm: str, dropout: float):
        super().__init__()
        self.norm = _norm(norm, width)
        self.act = _act(act)
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.linear = nn.Linear(width, width)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(self.drop(self.act(self.norm(z))))


class MLP(nn.Module):
    """S-MLP or B-MLP on HWC-flattened images of `res x res x channels`."""

    def __init__(self, arch: str, res: int, num_classes: int, channels: int = 3, act: str = "gelu",
                 norm: str = "layer", dropout: float = 0.0):
        super().__init__()
        self.spec = parse_arch(arch)
        if self.spec.kind == "R":
            raise UserError(f"{arch} is not an MLP; build it with models.build_model")
        self.res, self.channels, self.num_classes = res, channels, num_classes
        self.dim_in = res * res * channels
        if torch.empty(0).device.type != "meta":  # under `torch.device("meta")` nothing is allocated
            check_fits_memory(self.spec, self.dim_in, num_classes)
        w = self.spec.width
        self.linear_in = nn.Linear(self.dim_in, w)
        if self.spec.kind == "B":
            blocks = [BottleneckBlock(w, self.spec.expansion, act, norm, dropout) for _ in range(self.spec.depth)]
        else:
            blocks = [StandardBlock(w, act, norm, dropout) for _ in range(self.spec.depth - 1)]
        self.blocks = nn.Sequential(*blocks)
        self.linear_out = nn.Linear(w, num_classes)
        self.norm_kind = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H*W*C) -> (B, num_classes)
        return self.linear_out(self.features(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, H*W*C) -> (B, width): what the head sees
        return self.blocks(self.linear_in(x))

    def replace_head(self, num_classes: int) -> None:
        """A new, freshly initialised linear head for `num_classes` (fine-tuning onto another dataset)."""
        self.linear_out = nn.Linear(self.spec.width, num_classes).to(self.linear_in.weight.device)
        self.num_classes = num_classes

    # --- accounting -------------------------------------------------------------------------
    def get_num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def macs_per_forward(self) -> int:
        """Multiply-accumulates of one forward pass for one image (matrix multiplies only)."""
        return macs_per_forward(self.spec, self.dim_in, self.num_classes)

    def paper_flops_per_forward(self) -> int:
        """fvcore's count of one forward for one image: the paper's compute unit (module docstring)."""
        return paper_flops_per_forward(self.spec, self.dim_in, self.num_classes, self.norm_kind)

    def train_flops_per_image(self) -> int:
        """True FLOPs per trained image: forward + backward = 3 forwards, 2 FLOPs per MAC."""
        return 6 * self.macs_per_forward()

    def estimate_mfu(self, img_per_s: float, peak_flops: float) -> float:
        """Model FLOPs utilisation: achieved true FLOP/s over the device's peak FLOP/s."""
        return img_per_s * self.train_flops_per_image() / peak_flops


def macs_per_forward(spec: ArchSpec, dim_in: int, num_classes: int) -> int:
    w = spec.width
    if spec.kind == "B":
        body = spec.depth * 2 * w * spec.expansion * w
    else:
        body = (spec.depth - 1) * w * w
    return dim_in * w + body + w * num_classes


def paper_flops_per_forward(spec: ArchSpec, dim_in: int, num_classes: int, norm: str = "layer") -> int:
    norms = spec.depth if spec.kind == "B" else spec.depth - 1
    per_element = {"layer": 5, "batch": 2, "none": 0}[norm]
    return macs_per_forward(spec, dim_in, num_classes) + norms * spec.width * per_element
