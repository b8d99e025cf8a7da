r"""Poincaré ResNet's activation, residual addition and residual block.

Following van Spengler, Berkhout & Mettes (*Poincaré ResNet*, ICCV 2023):

* activation in the tangent space at the origin,
  :math:`\sigma_c(x) = \exp_0(\sigma(\log_0 x))`; for the ReLU, since
  :math:`\log_0` is a positive radial rescaling,
  :math:`\exp_0(\mathrm{ReLU}(\log_0 x)) = \exp_0\bigl(\tfrac{\operatorname{artanh}(\sqrt{c}\|x\|)}{\sqrt{c}\|x\|}\mathrm{ReLU}(x)\bigr)`;
* residual connection by Möbius addition of the block output and the
  (possibly downsampled) input, :math:`f(x) \oplus_c x` (the paper's default
  order);
* block: conv 3×3 → batch norm → activation → conv 3×3 → batch norm,
  :math:`\oplus_c` the skip, activation; a strided block downsamples the
  skip with a 1×1 Poincaré convolution.

Feature maps are ``[B, C, H, W]`` with ball-valued channel vectors.
"""

from __future__ import annotations

import geoopt
import torch

from .._checks import check_floating, check_int
from .._numerics import safe_sqrt
from .ball import _add, _artanh, _c, _max_tanh_arg, project
from .batchnorm import PoincareBatchNorm2d
from .conv import PoincareConv2d
from .linear import layer_ball

Tensor = torch.Tensor

__all__ = ["PoincareReLU", "PoincareResidualBlock", "poincare_relu", "poincare_residual"]


def poincare_relu(x: Tensor, *, c: object, dim: int = -1) -> Tensor:
    r""":math:`\exp_0(\mathrm{ReLU}(\log_0 x))` over the ball dimension ``dim``.

    Evaluated as :math:`\exp_0(f\,\mathrm{ReLU}(x))`,
    :math:`f = \operatorname{artanh}(\sqrt{c}\|x\|)/(\sqrt{c}\|x\|)`, with norms along
    ``dim`` (no transposition of feature maps).

    >>> poincare_relu(torch.tensor([[0.5, 0.1], [-0.5, -0.1]]), c=1.0)  # fixes the positive orthant
    tensor([[0.5000, 0.1000],
            [0.0000, 0.0000]])
    """
    cc = _c(c, x)
    s = safe_sqrt(cc * (x * x).sum(dim, keepdim=True))  # sqrt(c)|x|
    f = _artanh(s) / s  # log_0 = f x
    r = torch.relu(x)
    su = f * safe_sqrt(cc * (r * r).sum(dim, keepdim=True))  # sqrt(c)|f relu(x)|
    return (torch.tanh(su.clamp_max(_max_tanh_arg(x.dtype))) / su * f) * r


def poincare_residual(fx: Tensor, x: Tensor, *, c: object, dim: int = -1) -> Tensor:
    r"""The Poincaré ResNet skip :math:`f(x) \oplus_c x` over the ball dimension ``dim``.

    The sum of two points near the boundary can round onto it: the result is
    projected back to the margin (:func:`~geonorm.hyperbolic.project`).

    >>> x = torch.tensor([0.2, 0.1])
    >>> poincare_residual(torch.zeros(2), x, c=1.0)  # a zero branch passes the input through
    tensor([0.2000, 0.1000])
    """
    cc = _c(c, fx)
    return project(_add(fx, x, cc, dim), c=cc, dim=dim)  # rounding can reach the boundary


class PoincareReLU(torch.nn.Module):
    r"""ReLU in the tangent space at the origin, :math:`\exp_0(\mathrm{ReLU}(\log_0 x))`.

    Parameters
    ----------
    dim : int
        The ball dimension (``1`` for feature maps ``[B, C, H, W]``).
    c, learnable_curvature, ball
        Curvature, as :class:`~geonorm.hyperbolic.PoincareLinear`.

    Examples
    --------
    >>> PoincareReLU(dim=1)(torch.tensor([[0.3, 0.2], [-0.3, -0.2]]))
    tensor([[0.3000, 0.2000],
            [0.0000, 0.0000]])
    """

    def __init__(
        self, *, dim: int = -1, c: float = 1.0, learnable_curvature: bool = False,
        ball: geoopt.PoincareBall | None = None, device=None, dtype=None,
    ) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim", minimum=-64)
        self.geometry = layer_ball(c, learnable_curvature, ball, device, dtype)

    def forward(self, x: Tensor) -> Tensor:
        check_floating(x, "x")
        return poincare_relu(x, c=self.geometry.c, dim=self.dim)


class PoincareResidualBlock(torch.nn.Module):
    r"""The Poincaré ResNet basic block on ball-valued maps ``[B, C_in, H, W] -> [B, C_out, H', W']``.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : int
        Stride of the first convolution (and of the 1×1 skip convolution,
        present when ``stride > 1`` or the channel counts differ).
    bn : {"midpoint", "frechet", None}
        The batch norm's mean (:class:`~geonorm.hyperbolic.PoincareBatchNorm2d`), or none.
    c : float
        Curvature magnitude.
    ball : geoopt.PoincareBall, optional
        One ball shared by every layer of the block (default: a fresh one of
        curvature ``c``, learnable with ``learnable_curvature``).
    bn_options : dict, optional
        Extra options of the batch norms (``momentum``, ``karcher_steps``, …).

    Examples
    --------
    >>> block = PoincareResidualBlock(4, 8, stride=2, dtype=torch.float64)
    >>> x = 0.1 * torch.randn(2, 4, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> block(x).shape
    torch.Size([2, 8, 3, 3])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        bn: str | None = "midpoint",
        c: float = 1.0,
        learnable_curvature: bool = False,
        ball: geoopt.PoincareBall | None = None,
        bn_options: dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if bn not in ("midpoint", "frechet", None):
            raise ValueError(f"bn: expected 'midpoint', 'frechet' or None, got {bn!r}")
        factory = {"device": device, "dtype": dtype}
        self.geometry = layer_ball(c, learnable_curvature, ball, device, dtype)
        shared = {"ball": self.geometry.ball, **factory}
        self.conv1 = PoincareConv2d(in_channels, out_channels, 3, stride=stride, padding=1, validate=False, **shared)
        self.conv2 = PoincareConv2d(out_channels, out_channels, 3, padding=1, validate=False, **shared)
        opts = dict(bn_options or {})
        self.bn1 = PoincareBatchNorm2d(out_channels, mean=bn, **opts, **shared) if bn else torch.nn.Identity()
        self.bn2 = PoincareBatchNorm2d(out_channels, mean=bn, **opts, **shared) if bn else torch.nn.Identity()
        self.act = PoincareReLU(dim=1, **shared)
        self.skip = (
            PoincareConv2d(in_channels, out_channels, 1, stride=stride, validate=False, **shared)
            if stride != 1 or in_channels != out_channels
            else torch.nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.act(poincare_residual(out, self.skip(x), c=self.geometry.c, dim=1))
