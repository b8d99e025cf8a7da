r"""Poincaré ResNet and a Euclidean ResNet of the same shape (CIFAR-style ResNet-``6n+2``).

Van Spengler, Berkhout & Mettes, *Poincaré ResNet*, ICCV 2023: the ResNet of
He et al. (2016) for small images with every layer replaced by its Poincaré
counterpart — a 3×3 :class:`~geonorm.hyperbolic.conv.PoincareConv2d` stem,
three groups of ``n = (depth - 2) / 6`` :class:`~geonorm.hyperbolic.residual.PoincareResidualBlock`
(widths ``widths``, strides 1, 2, 2), global average pooling and a Poincaré
multinomial logistic regression head (the HNN++ hyperplane distances
:math:`v_k`, :func:`~geonorm.hyperbolic.hyperplane_distances`, as logits).

Input images (Euclidean, ``[B, C, H, W]``) enter the ball by
:math:`\exp_0` of each pixel's channel vector; the pooling is the average of
the pixels' :math:`\log_0` (the tangent-space average the paper's code
takes). One geoopt ball, of curvature ``c`` (learnable with
``learnable_curvature``), is shared by every layer.
"""

from __future__ import annotations

import torch

from .._checks import check_floating, check_int
from ..hyperbolic.ball import expmap0, logmap0
from ..hyperbolic.batchnorm import PoincareBatchNorm2d
from ..hyperbolic.conv import PoincareConv2d
from ..hyperbolic.linear import PoincareLinear, layer_ball
from ..hyperbolic.residual import PoincareReLU, PoincareResidualBlock

Tensor = torch.Tensor

__all__ = ["PoincareResNet", "ResNet"]


def _blocks_per_group(depth: int) -> int:
    depth = check_int(depth, "depth", minimum=8)
    if (depth - 2) % 6:
        raise ValueError(f"depth: expected 6n + 2 (8, 14, 20, 32, ...), got {depth}")
    return (depth - 2) // 6


def _widths(widths: tuple[int, int, int]) -> tuple[int, int, int]:
    if not isinstance(widths, (tuple, list)) or len(widths) != 3:
        raise ValueError(f"widths: expected three channel counts, got {widths!r}")
    return tuple(check_int(w, "widths") for w in widths)


class PoincareResNet(torch.nn.Module):
    r"""Poincaré ResNet-``depth`` for ``[B, in_channels, H, W]`` images -> ``[B, classes]`` logits.

    Parameters
    ----------
    depth : int
        ``6n + 2`` (20: three groups of three blocks).
    widths : (int, int, int)
        Channels of the three groups.
    bn : {"midpoint", "frechet", None}
        Poincaré batch norm with the gyromidpoint or the Fréchet mean, or none.
    c : float
        Curvature magnitude of the shared ball (the paper uses 0.1 on CIFAR).
    in_channels, classes : int
    learnable_curvature : bool
        Train ``c`` (geoopt's softplus parametrisation).
    bn_options : dict, optional
        Extra options of every batch norm (``momentum``, ``karcher_steps``, …).

    Examples
    --------
    >>> net = PoincareResNet(depth=8, widths=(4, 4, 8), in_channels=1, classes=3)
    >>> net(torch.rand(2, 1, 12, 12)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        depth: int = 20,
        widths: tuple[int, int, int] = (8, 16, 32),
        *,
        bn: str | None = "midpoint",
        c: float = 1.0,
        in_channels: int = 1,
        classes: int = 10,
        learnable_curvature: bool = False,
        bn_options: dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        n = _blocks_per_group(depth)
        widths = _widths(widths)
        if bn not in ("midpoint", "frechet", None):
            raise ValueError(f"bn: expected 'midpoint', 'frechet' or None, got {bn!r}")
        self.in_channels = check_int(in_channels, "in_channels")
        self.depth, self.widths, self.bn_kind = depth, widths, bn
        self.geometry = layer_ball(c, learnable_curvature, None, device, dtype)
        shared = {"ball": self.geometry.ball, "device": device, "dtype": dtype}
        opts = dict(bn_options or {})
        self.stem = PoincareConv2d(self.in_channels, widths[0], 3, padding=1, validate=False, **shared)
        self.stem_bn = PoincareBatchNorm2d(widths[0], mean=bn, **opts, **shared) if bn else torch.nn.Identity()
        self.act = PoincareReLU(dim=1, **shared)
        blocks, prev = [], widths[0]
        for g, width in enumerate(widths):
            for i in range(n):
                stride = 2 if g > 0 and i == 0 else 1
                blocks.append(PoincareResidualBlock(prev, width, stride=stride, bn=bn, bn_options=opts, **shared))
                prev = width
        self.blocks = torch.nn.Sequential(*blocks)
        self.head = PoincareLinear(widths[2], check_int(classes, "classes"), validate=False, **shared)

    def embed(self, images: Tensor) -> Tensor:
        """Images -> ball-valued maps: :math:`\\exp_0` of each pixel's channel vector."""
        check_floating(images, "images")
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"images: expected shape [B, {self.in_channels}, H, W], got {list(images.shape)}")
        return expmap0(images.movedim(1, -1), c=self.geometry.c).movedim(-1, 1)

    def features(self, images: Tensor) -> Tensor:
        """The pooled ball point ``[B, widths[2]]`` before the head."""
        c = self.geometry.c
        x = self.blocks(self.act(self.stem_bn(self.stem(self.embed(images)))))  # [B, C, H', W']
        pooled = logmap0(x.movedim(1, -1), c=c).mean(dim=(1, 2))  # tangent average, [B, C]
        return expmap0(pooled, c=c)

    def forward(self, images: Tensor) -> Tensor:
        return self.head.distances(self.features(images))


class ResNet(torch.nn.Module):
    r"""The Euclidean ResNet-``depth`` of the same shape as :class:`PoincareResNet`.

    ``bn`` is ``"batch"`` (``torch.nn.BatchNorm2d``) or ``None``.

    Examples
    --------
    >>> ResNet(depth=8, widths=(4, 4, 8), classes=3)(torch.rand(2, 1, 12, 12)).shape
    torch.Size([2, 3])
    """

    def __init__(
        self,
        depth: int = 20,
        widths: tuple[int, int, int] = (8, 16, 32),
        *,
        bn: str | None = "batch",
        in_channels: int = 1,
        classes: int = 10,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        n = _blocks_per_group(depth)
        widths = _widths(widths)
        if bn not in ("batch", None):
            raise ValueError(f"bn: expected 'batch' or None, got {bn!r}")
        factory = {"device": device, "dtype": dtype}
        self.in_channels = check_int(in_channels, "in_channels")

        def norm(ch: int) -> torch.nn.Module:
            return torch.nn.BatchNorm2d(ch, **factory) if bn else torch.nn.Identity()

        def conv(a: int, b: int, k: int, s: int) -> torch.nn.Conv2d:
            return torch.nn.Conv2d(a, b, k, stride=s, padding=k // 2, bias=bn is None, **factory)

        self.stem = torch.nn.Sequential(conv(self.in_channels, widths[0], 3, 1), norm(widths[0]), torch.nn.ReLU())
        self.blocks = torch.nn.ModuleList()
        prev = widths[0]
        for g, width in enumerate(widths):
            for i in range(n):
                stride = 2 if g > 0 and i == 0 else 1
                branch = torch.nn.Sequential(
                    conv(prev, width, 3, stride), norm(width), torch.nn.ReLU(), conv(width, width, 3, 1), norm(width)
                )
                skip = (
                    torch.nn.Sequential(conv(prev, width, 1, stride), norm(width))
                    if stride != 1 or prev != width
                    else torch.nn.Identity()
                )
                self.blocks.append(torch.nn.ModuleDict({"branch": branch, "skip": skip}))
                prev = width
        self.head = torch.nn.Linear(widths[2], check_int(classes, "classes"), **factory)

    def forward(self, images: Tensor) -> Tensor:
        check_floating(images, "images")
        if images.ndim != 4 or images.shape[1] != self.in_channels:
            raise ValueError(f"images: expected shape [B, {self.in_channels}, H, W], got {list(images.shape)}")
        x = self.stem(images)
        for block in self.blocks:
            x = torch.relu(block["branch"](x) + block["skip"](x))
        return self.head(x.mean(dim=(2, 3)))
