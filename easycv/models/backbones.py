"""Backbones written here: ResNet (basic / bottleneck blocks) and MobileNetV2-style inverted
residuals. Widths, depths and strides come from the config, so the same code gives a
tiny 8x8-digit network or an ImageNet-sized one; ``forward`` returns every stage's map."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """conv -> batch norm -> activation (SiLU unless ``act`` is False)."""

    def __init__(self, cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.SiLU(inplace=True) if act else nn.Identity())


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(cin, cout, 3, stride), ConvBNAct(cout, cout, 3, 1, act=False))
        self.short = nn.Identity() if stride == 1 and cin == cout else ConvBNAct(cin, cout, 1, stride, act=False)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, reduction: int = 4) -> None:
        super().__init__()
        mid = max(8, cout // reduction)
        self.body = nn.Sequential(ConvBNAct(cin, mid, 1), ConvBNAct(mid, mid, 3, stride),
                                  ConvBNAct(mid, cout, 1, act=False))
        self.short = nn.Identity() if stride == 1 and cin == cout else ConvBNAct(cin, cout, 1, stride, act=False)
        self.act = nn.SiLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.short(x))


class InvertedResidual(nn.Module):
    """MobileNetV2: 1x1 expand -> 3x3 depthwise -> 1x1 linear projection; residual when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        layers: list[nn.Module] = [ConvBNAct(cin, hidden, 1)] if expand != 1 else []
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden), ConvBNAct(hidden, cout, 1, act=False)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.residual else y


class Backbone(nn.Module):
    """stem + stages; ``forward(x)`` -> list of stage outputs; ``channels`` / ``reductions`` describe them."""

    def __init__(self, spec: Any, in_channels: int) -> None:
        super().__init__()
        self.stem = ConvBNAct(in_channels, spec.stem_channels, 3, spec.stem_stride)
        stages, cin = [], spec.stem_channels
        for width, depth, stride in zip(spec.widths, spec.depths, spec.stage_strides()):
            blocks = []
            for j in range(depth):
                s = stride if j == 0 else 1
                if spec.type == "mobilenet":
                    blocks.append(InvertedResidual(cin, width, s, spec.expand_ratio))
                elif spec.block == "bottleneck":
                    blocks.append(Bottleneck(cin, width, s))
                else:
                    blocks.append(BasicBlock(cin, width, s))
                cin = width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.channels = list(spec.widths)
        self.reductions = spec.reductions()
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each residual branch (Goyal et al.)
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.body[-1][1].weight)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs


def build_backbone(spec: Any, in_channels: int) -> Backbone:
    return Backbone(spec, in_channels)
