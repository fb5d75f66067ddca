"""Students from timm, built by timm's own names (``pretrained=False``) and adapted to small images.

The cross-architecture evaluations of the distillation papers (DC/DSA Table 3,
DM Table 3, MTT Table 6, CIM Table 2, *Hard truths* ConvNet vs ResNet-18) train
networks other than the one a set was made with.  timm's ImageNet networks shrink
a 224-px image 32-fold; on 8-32-px images that leaves nothing, so each is adapted
the way the CIFAR versions of these networks are (the adaptation is listed on the
book's deviations page):

* ``resnet18``: the 7x7 stride-2 stem conv and the max-pool become one 3x3
  stride-1 conv (He et al. 2016, Sec. 4.2's CIFAR ResNets; the DC/DM reference's ResNet-18).
* ``vgg11_bn``: timm's 4096-wide 7x7 ``pre_logits`` (built for 224 px) is
  dropped and the classifier reads the globally average-pooled 512 features, as
  the CIFAR VGG of the DC reference (one linear layer); a max-pool whose input is
  already 1 px wide is skipped (8-px digits).
* ``mobilenetv3_small_100``, ``efficientnet_b0``: the stride-2 stem becomes
  stride 1, so the network's overall stride is 16 (a 32-px image ends 2x2).
* ``vit_tiny``: timm's ``vit_tiny_patch16_224`` (192 wide, 12 blocks, 3 heads)
  at the data's image size with patches of ``img_size / 8`` (the divisor of
  ``img_size`` nearest it): 4-px patches on 28-32 px, an 8x8 or 7x7 token grid,
  as the small-image ViTs of the transfer studies.

Every student exposes ``embed(x) -> (N, D)`` (timm's pre-logits features),
``forward(x) -> (N, num_classes)`` and ``stem`` (its first module, where cost
meters count passes), like :class:`ddlib.engine.models.ConvNet`.  The batch-norm
networks are not :func:`ddlib.engine.fastpath.per_sample` (never micro-batched)
and carry buffers (never stacked by :func:`ddlib.engine.batched.fit_many`); both
engines route them to whole-batch fits.  The ViT has layer norm only and goes
through every fast path.

Registered into :data:`ddlib.engine.models.MODELS` when the engine package is
imported (``ddlib/engine/__init__.py`` imports this module, so any import of the
engine registers them); timm itself is imported only when a student is built.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from ddlib.engine.models import MODELS, ModelSpec

TOKENS_PER_SIDE = 8  # the ViT's token grid side on small images (img_size / patch)


def vit_patch(img_size: int) -> int:
    """The divisor of ``img_size`` whose token grid side is nearest :data:`TOKENS_PER_SIDE` (ties: larger patch).

    32 -> 4 (8x8 tokens), 28 -> 4 (7x7), 8 -> 1 (8x8), 64 -> 8, 128 -> 16.
    """
    divisors = [p for p in range(1, img_size + 1) if img_size % p == 0]
    return min(divisors, key=lambda p: (abs(img_size / p - TOKENS_PER_SIDE), -p))


def _small_vgg(net: nn.Module, num_classes: int, img_size: int) -> None:
    """Drop timm VGG's 224-px ``pre_logits`` MLP; skip max-pools on 1-px maps (in place)."""
    from timm.layers import ClassifierHead

    s = img_size
    for i, m in enumerate(net.features):
        if isinstance(m, nn.MaxPool2d):
            if s < 2:
                net.features[i] = nn.Identity()
            else:
                s //= 2
    net.pre_logits = nn.Identity()
    net.head = ClassifierHead(net.num_features, num_classes, pool_type="avg")
    net.head_hidden_size = net.num_features


def _stride1_stem(net: nn.Module) -> None:
    """MobileNet / EfficientNet: the stem conv at stride 1 (same weights' shape)."""
    net.conv_stem.stride = (1, 1)


def _small_resnet(net: nn.Module, in_chans: int) -> None:
    """ResNet: a 3x3 stride-1 stem conv and no max-pool (the CIFAR ResNet stem)."""
    net.conv1 = nn.Conv2d(in_chans, net.conv1.out_channels, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()


class TimmStudent(nn.Module):
    """timm network ``timm_name``, untrained, adapted to ``img_size``-px inputs (module docstring).

    Args:
        in_chans: C of the (N, C, H, W) input.
        num_classes: K, the logits' width.
        img_size: H (= W).
        timm_name: timm's model name (``timm.list_models``).
        adapt: "resnet" | "vgg" | "stem1" | "vit": which small-image adaptation.
        norm: the network's normalisation ("batch" or "layer"); declarative, so
            code that needs a batch-norm network (SRe2L's statistics) can ask the registry.
    """

    def __init__(self, in_chans: int, num_classes: int, img_size: int, timm_name: str = "resnet18",
                 adapt: str = "resnet", norm: str = "batch"):
        super().__init__()
        import timm  # lazy: listing models needs no timm import

        kw = {}
        if adapt == "vit":
            kw = dict(img_size=img_size, patch_size=vit_patch(img_size))
        net = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kw)
        if adapt == "resnet":
            _small_resnet(net, in_chans)
        elif adapt == "vgg":
            _small_vgg(net, num_classes, img_size)
        elif adapt == "stem1":
            _stride1_stem(net)
        elif adapt != "vit":
            raise ValueError(f"unknown adaptation {adapt!r}")
        self.net, self.norm = net, norm
        self.feat_dim = int(getattr(net, "head_hidden_size", 0) or net.num_features)

    @property
    def stem(self) -> nn.Module:
        """The first module every forward runs through."""
        n = self.net
        for name in ("conv1", "conv_stem", "patch_embed"):
            if hasattr(n, name):
                return getattr(n, name)
        return n.features[0]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, D) pre-logits features."""
        return self.net.forward_head(self.net.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _spec(timm_name: str, adapt: str, norm: str) -> ModelSpec:
    return ModelSpec(TimmStudent, (("timm_name", timm_name), ("adapt", adapt), ("norm", norm)))


#: registry name -> (timm name, adaptation, norm)
TIMM_STUDENTS = {
    "resnet18": ("resnet18", "resnet", "batch"),
    "vgg11_bn": ("vgg11_bn", "vgg", "batch"),
    "mobilenetv3_small_100": ("mobilenetv3_small_100", "stem1", "batch"),
    "efficientnet_b0": ("efficientnet_b0", "stem1", "batch"),
    "vit_tiny": ("vit_tiny_patch16_224", "vit", "layer"),
}
for _name, (_timm, _adapt, _norm) in TIMM_STUDENTS.items():
    MODELS.add(_name, _spec(_timm, _adapt, _norm))
