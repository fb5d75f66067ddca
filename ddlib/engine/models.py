"""Networks: the DD-standard ConvNet; the timm students register from :mod:`ddlib.engine.timm_models`.

ConvNet is the architecture of DC/DSA/DM/MTT (Zhao et al. 2021, Sec. 4): ``depth``
blocks of conv3x3(width) -> norm -> ReLU -> avgpool2, then a linear classifier.
"Instance norm" there is ``GroupNorm(width, width)`` (affine), as in the
reference code.  On 28 x 28 one-channel images (MNIST, Fashion-MNIST) the
reference treats the input as 32 x 32: its first conv is padded by 3 (28 + 6 - 2
= 32), so three blocks end on a 4 x 4 map and the embedding of ConvNet-3-128 is
2,048 wide; ddlib does the same.  Every model exposes ``embed(x) -> (N, D)`` penultimate
features, ``forward(x) -> (N, num_classes)`` logits, and ``stem``, the first
module both run through (where cost meters count passes).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ddlib.core.registry import Registry

MODELS = Registry("model")


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "instance":
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(width)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}")


class ConvNet(nn.Module):
    """ConvNet-D-W with instance / batch / no norm and average pooling.

    Args:
        in_chans: C of the (N, C, H, W) input.
        num_classes: K, the logits' width.
        img_size: H (= W); each block halves it (floor), at least to 1.  A 28-px
            one-channel input is padded to 32 by the first conv (padding 3), as
            the reference ``networks.py`` (``im_size == 28 -> (32, 32)``).
        width: channels of every conv layer.
        depth: number of conv blocks.
        norm: "instance" | "batch" | "none".
    """

    def __init__(self, in_chans: int, num_classes: int, img_size: int, width: int = 128,
                 depth: int = 3, norm: str = "instance"):
        super().__init__()
        layers, c, s = [], in_chans, img_size
        pad0 = 1
        if in_chans == 1 and img_size == 28:
            pad0, s = 3, 32
        for d in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=pad0 if d == 0 else 1), _norm(norm, width),
                       nn.ReLU(inplace=True)]
            if s >= 2:
                layers.append(nn.AvgPool2d(2))
                s //= 2
            c = width
        self.features = nn.Sequential(*layers)
        self.feat_dim = width * s * s
        self.classifier = nn.Linear(self.feat_dim, num_classes)

    @property
    def stem(self) -> nn.Module:
        return self.features

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


@dataclass(frozen=True)
class ModelSpec:
    """A registered architecture: class plus fixed keyword arguments."""

    cls: type
    kwargs: tuple

    def build(self, in_chans: int, num_classes: int, img_size: int) -> nn.Module:
        return self.cls(in_chans, num_classes, img_size, **dict(self.kwargs))


MODELS.add("convnet", ModelSpec(ConvNet, (("width", 128), ("depth", 3), ("norm", "instance"))))
MODELS.add("convnet_bn", ModelSpec(ConvNet, (("width", 128), ("depth", 3), ("norm", "batch"))))
MODELS.add("convnet_nn", ModelSpec(ConvNet, (("width", 128), ("depth", 3), ("norm", "none"))))
for _w in (16, 32, 64, 256):
    MODELS.add(f"convnet_d3w{_w}", ModelSpec(ConvNet, (("width", _w), ("depth", 3), ("norm", "instance"))))
    MODELS.add(f"convnet_d3w{_w}_bn", ModelSpec(ConvNet, (("width", _w), ("depth", 3), ("norm", "batch"))))


def create_model(name: str, num_classes: int, in_chans: int, img_size: int,
                 seed: int | None = None) -> nn.Module:
    """Build registered architecture ``name``; ``seed`` fixes its initialisation.

    The init uses the global RNG under ``torch.random.fork_rng`` so that the
    caller's random state is untouched (model init is its own seed stream).
    """
    spec = MODELS.get(name)
    if seed is None:
        return spec.build(in_chans, num_classes, img_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(in_chans, num_classes, img_size)
