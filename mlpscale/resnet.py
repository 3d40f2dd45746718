"""The paper's convolutional baseline of Table 1: the standard ResNet-18 (He et al. 2016) with the
CIFAR-style stem (one 3x3 convolution, stride 1, no max-pool) the authors compare with at 32px.

It plugs into the same loop as the MLPs: it takes the same HWC-flattened input (B, H*W*C) the device
augmentation produces and views it as NCHW (a permute of the NHWC buffer: channels-last strides, no copy),
so crops, flips, MixUp and normalisation are exactly the MLP runs'. Layout: stem 64 -> four stages of two
basic blocks (64, 128, 256, 512 channels; stride 2 from the second stage on) -> global average pool ->
linear head. `features` is the pooled 512-vector (what a linear probe sees).

Counts as models.MLP: `macs_per_forward` (convolutions and the head), `paper_flops_per_forward`
(fvcore's count: one per MAC, plus 2 per element of each BatchNorm; pooling, ReLU and residual adds count 0).
"""
from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.short(x))


class ResNet18(nn.Module):
    """ResNet-18 on HWC-flattened `res x res x channels` images, CIFAR stem."""

    def __init__(self, res: int, num_classes: int, channels: int = 3, spec=None):
        super().__init__()
        # spec: the models.ArchSpec naming this baseline, given by models.build_model (this module
        # does not import models, which builds it)
        self.spec, self.res, self.channels, self.num_classes = spec, res, channels, num_classes
        self.dim_in = res * res * channels
        self.stem = nn.Sequential(nn.Conv2d(channels, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        stages, cin = [], 64
        for i, cout in enumerate((64, 128, 256, 512)):
            stride = 1 if i == 0 else 2
            stages += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*stages)
        self.linear_out = nn.Linear(512, num_classes)
        self._counts = None

    def features(self, x: torch.Tensor) -> torch.Tensor:  # (B, H*W*C) -> (B, 512)
        b = x.shape[0]
        x = x.view(b, self.res, self.res, self.channels).permute(0, 3, 1, 2)  # NCHW view, channels-last strides
        return self.blocks(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, H*W*C) -> (B, num_classes)
        return self.linear_out(self.features(x))

    def replace_head(self, num_classes: int) -> None:
        self.linear_out = nn.Linear(512, num_classes).to(self.linear_out.weight.device)
        self.num_classes = num_classes
        self._counts = None

    # --- accounting (as models.MLP) ----------------------------------------------------------------
    def get_num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _count(self) -> tuple[int, int]:
        """(MACs, BatchNorm output elements) of one forward of one image, from the layers' output shapes
        (a forward on the meta device: no memory, no arithmetic)."""
        if self._counts is None:
            macs, bn, shapes = 0, 0, {}

            def hook(mod, inp, out):
                shapes[mod] = tuple(out.shape)

            with torch.device("meta"):
                twin = ResNet18(self.res, self.num_classes, self.channels).eval()   # batch-norm takes one image
            hs = [m.register_forward_hook(hook) for m in twin.modules()
                  if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d))]
            with torch.no_grad():
                twin(torch.empty((1, self.dim_in), device="meta"))
            for h in hs:
                h.remove()
            for m, shape in shapes.items():
                n_out = 1
                for d in shape[1:]:
                    n_out *= d
                if isinstance(m, nn.Conv2d):
                    macs += n_out * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
                elif isinstance(m, nn.Linear):
                    macs += m.in_features * m.out_features
                else:
                    bn += n_out
            self._counts = (macs, bn)
        return self._counts

    def macs_per_forward(self) -> int:
        return self._count()[0]

    def paper_flops_per_forward(self) -> int:
        macs, bn = self._count()
        return macs + 2 * bn

    def train_flops_per_image(self) -> int:
        return 6 * self.macs_per_forward()

    def estimate_mfu(self, img_per_s: float, peak_flops: float) -> float:
        return img_per_s * self.train_flops_per_image() / peak_flops
