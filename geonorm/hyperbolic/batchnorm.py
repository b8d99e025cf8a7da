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

Unlike the SPD presets (LieBN's default), the gradient flows through the
batch mean and variance (``detach_stats=False``), as in the Poincaré ResNet
code and hypll's ``HBatchNorm`` (and ``torch.nn.BatchNorm``). Detaching them
lets the pre-normalization scale and offset drift freely during training
(the gradient cannot see that the normalization undoes them; Ioffe &
Szegedy 2015, sec. 2): the running statistics then lag the batch statistics
and a Poincaré ResNet that trains in train mode collapses to chance in
evaluation mode (measured on Fashion-MNIST, see docs/poincare_resnet.md).
"""

from __future__ import annotations

from collections.abc import Iterable

import geoopt
import torch

from .._checks import check_floating, check_int
from ..riemannian.batchnorm import RiemannianBatchNorm
from .geometry import PoincareBall

Tensor = torch.Tensor

__all__ = ["PoincareBatchNorm", "PoincareBatchNorm2d", "recalibrate_running_stats"]


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
        ``detach_stats`` defaults to ``False`` here (see the module notes).

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
        kwargs.setdefault("detach_stats", False)  # differentiate through the statistics (module notes)
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


@torch.no_grad()
def recalibrate_running_stats(model: torch.nn.Module, batches: Iterable[Tensor]) -> int:
    r"""Recompute the running statistics of every batch norm in ``model`` with its current weights.

    "Precise BN" (Wu & Johnson, *Rethinking "Batch" in BatchNorm*, 2021): the
    running statistics are reset and re-estimated as the cumulative average
    (``momentum=None``, step :math:`1/k` at batch :math:`k`) over ``batches``,
    one forward pass each in training mode without gradients; momenta and the
    training flag are then restored. Every
    :class:`~geonorm.riemannian.RiemannianBatchNorm` (the Poincaré presets
    included) and ``torch.nn`` batch norm with running statistics is
    recalibrated. The moving averages kept during training lag a network
    whose statistics drift, and a deep Poincaré network amplifies the lag
    (docs/poincare_resnet.md); evaluate after this.

    Returns the number of batches used.

    >>> bn = PoincareBatchNorm(2, dtype=torch.float64)
    >>> x = 0.3 * torch.rand(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    >>> recalibrate_running_stats(bn, [x])
    1
    >>> bool(torch.allclose(bn.eval()(x), bn.train()(x)))  # eval now reproduces the batch statistics
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    kinds = (RiemannianBatchNorm, torch.nn.modules.batchnorm._BatchNorm)
    norms = [m for m in model.modules() if isinstance(m, kinds) and m.track_running_stats]
    momenta, was_training = [m.momentum for m in norms], model.training
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    count = 0
    model.train()
    try:
        for batch in batches:
            model(batch)
            count += 1
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        model.train(was_training)
    if count == 0:
        raise ValueError("batches: expected at least one batch, got none")
    return count
