r"""Poincaré-ball batch norm presets on :class:`~geonorm.riemannian.RiemannianBatchNorm`.

For a batch :math:`\{x_b\}` on the ball with mean :math:`\mu` (gyromidpoint
or Fréchet mean) and Fréchet variance :math:`v`,

.. math::

    \tilde x_b = \beta \oplus_c \Big(\frac{s}{\sqrt{v + \epsilon}} \otimes_c
        \big((-\mu) \oplus_c x_b\big)\Big),

with a learned bias point :math:`\beta` (a geoopt ``ManifoldParameter`` on the
ball) and target standard deviation :math:`s` (Lou et al., ICML 2020;
van Spengler, Berkhout & Mettes, ICCV 2023). Running statistics (a geodesic
moving average of the mean, a moving average of the variance) are registered
buffers used in evaluation.
"""

from __future__ import annotations

import geoopt
import torch

from .._checks import check_floating, check_int
from ..riemannian.batchnorm import RiemannianBatchNorm
from .geometry import PoincareBall

Tensor = torch.Tensor

__all__ = ["PoincareBatchNorm", "PoincareBatchNorm2d"]


class PoincareBatchNorm(RiemannianBatchNorm):
    r"""Batch norm of points ``[B, dim]`` (or ``[B, C, dim]`` with ``channels``) on the ball.

    Parameters
    ----------
    dim : int
        Dimension of the ball.
    c : float
        Curvature magnitude (the ball has curvature :math:`-c`), used as given.
    mean : {"midpoint", "frechet"}
        Gyromidpoint (closed form, fast) or Fréchet mean (the reference).
    learnable_curvature : bool
        Train ``c`` (geoopt's softplus parametrisation, started at ``c``).
    ball : geoopt.PoincareBall, optional
        Share one ball (and its curvature) with other layers.
    **kwargs
        The options of :class:`~geonorm.riemannian.RiemannianBatchNorm`
        (``momentum``, ``eps``, ``scale``, ``track_running_stats``, ``sync``,
        ``karcher_steps`` caps the Fréchet iterations, ``device``, ``dtype``, …).

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> x = 0.15 * torch.randn(32, 3, dtype=torch.float64, generator=gen)
    >>> bn = PoincareBatchNorm(3, scale=False, dtype=torch.float64)
    >>> y = bn(x)
    >>> bn.geometry.mean(y).abs().max() < 1e-12  # the gyromidpoint is now the origin
    tensor(True)
    """

    def __init__(
        self,
        dim: int,
        *,
        c: float = 1.0,
        mean: str = "midpoint",
        learnable_curvature: bool = False,
        ball: geoopt.PoincareBall | None = None,
        **kwargs,
    ) -> None:
        if "geometry" in kwargs:
            raise TypeError("geometry: PoincareBatchNorm chooses its geometry; use RiemannianBatchNorm for another")
        geometry = PoincareBall(c, mean=mean, learnable=learnable_curvature, ball=ball)
        if ball is None:  # an owned ball's curvature takes the layer's dtype and device
            geometry.ball.to(device=kwargs.get("device"), dtype=kwargs.get("dtype"))
            geometry.reset_curvature(c)
        super().__init__(geometry, dim, **kwargs)


class PoincareBatchNorm2d(PoincareBatchNorm):
    r"""Batch norm of feature maps ``[B, C, H, W]`` whose channel vectors are points on the ball.

    Each pixel's ``C``-vector is a point of the ``C``-dimensional ball;
    statistics run over the ``B·H·W`` points (as hypll's ``HBatchNorm2d`` and
    the Poincaré ResNet code). Options as :class:`PoincareBatchNorm`.

    Examples
    --------
    >>> x = 0.1 * torch.randn(2, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    >>> PoincareBatchNorm2d(4)(x).shape
    torch.Size([2, 4, 3, 3])
    """

    def __init__(self, channels: int, **kwargs) -> None:
        if "channels" in kwargs:
            raise TypeError("channels: PoincareBatchNorm2d's points are the channel vectors; pass the count first")
        super().__init__(check_int(channels, "channels"), **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        check_floating(x, "x")
        if x.ndim != 4 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape [B, {self.dim}, H, W], got {list(x.shape)}")
        b, c, h, w = x.shape
        points = x.permute(0, 2, 3, 1).reshape(b * h * w, c)  # [B*H*W, C]
        out = super().forward(points)
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)  # [B, C, H, W]
