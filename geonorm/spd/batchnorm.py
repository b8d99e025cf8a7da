r"""Riemannian batch normalization of SPD matrices: one module, many geometries.

For a batch :math:`\{P_b\}` with Fréchet mean :math:`\mu` and variance
:math:`v` under a geometry, :class:`RiemannianBatchNorm` computes

.. math::

    \tilde P_b = \mathrm{bias}_B\Big(\mathrm{scale}_{s/\sqrt{v + \epsilon}}
        \big(\mathrm{centre}_\mu(P_b)\big)\Big),

in the geometry's coordinates, with a learned SPD bias :math:`B` and a learned
positive scale :math:`s` (Chen et al., ICLR 2024, Algorithm 1). Training uses
the batch statistics and moves the running mean along a geodesic
(``momentum``); evaluation uses the running statistics. The presets are
:class:`LieBatchNorm` (LieBN), :class:`BuresWassersteinBatchNorm` (GBWBN) and
:class:`SPDBatchNorm` (SPDNetBN).
"""

from __future__ import annotations

import geoopt
import torch
from torch import nn

from .._checks import check_floating, check_spd, check_symmetric
from ..distributed import is_distributed, sum_across_ranks
from ._params import check_count
from .aim import AffineInvariant
from .bw import GeneralizedBuresWasserstein
from .lcm import LogCholesky
from .lem import LogEuclidean
from .protocol import SPDGeometry
from .registry import get_geometry

Tensor = torch.Tensor

__all__ = ["RiemannianBatchNorm", "LieBatchNorm", "BuresWassersteinBatchNorm", "SPDBatchNorm"]


class RiemannianBatchNorm(nn.Module):
    r"""Batch normalization of SPD matrices under any :class:`~geonorm.spd.SPDGeometry`.

    Parameters
    ----------
    geometry : SPDGeometry or str
        The geometry (or a registry name: ``"aim"``, ``"lem"``, ``"lcm"``,
        ``"bw"``; see :func:`~geonorm.spd.get_geometry`).
    n : int
        Matrix size; inputs are ``[B, n, n]``, or ``[B, C, n, n]`` with
        ``channels=C`` (statistics and parameters per channel).
    channels : int, optional
        Number of channels ``C``.
    momentum : float or None
        Geodesic step of the running mean and the running-variance average;
        ``None`` keeps a cumulative average (step ``1/k`` at batch ``k``).
    eps : float
        Added to the variance before the square root.
    scale : bool
        Normalize the dispersion (``False``: centring and biasing only).
    learn_bias, learn_scale : bool
        Learn the SPD bias (a geoopt ``ManifoldParameter``, trained by
        ``geoopt.optim.RiemannianAdam``) and the positive scale
        :math:`s = e^{\ell}`, stored as the parameter ``log_shift``
        (:math:`\ell`).
    track_running_stats : bool
        Keep running statistics and use them in evaluation; otherwise batch
        statistics are always used.
    detach_stats : bool
        Treat the batch mean and variance as constants for autograd (LieBN's
        default); ``False`` differentiates through them.
    karcher_steps : int
        Iterations of iterative means (AIM Karcher flow, BW fixed point).
    sync : bool
        With ``torch.distributed`` initialised, reduce statistics across ranks.
    validate : bool
        Check every input for positive definiteness (one Cholesky per matrix).
        Shape, symmetry and finiteness are always checked.
    device, dtype
        Of parameters and buffers.

    Notes
    -----
    Input and output are ``[B, n, n]`` or ``[B, C, n, n]``.

    Examples
    --------
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> a = torch.randn(16, 4, 4, dtype=torch.float64)
    >>> x = a @ a.mT + 0.1 * torch.eye(4, dtype=torch.float64)
    >>> bn = RiemannianBatchNorm("lem", 4, dtype=torch.float64)
    >>> y = bn(x)
    >>> bn.geometry.frechet_mean(y).diagonal()  # the batch mean is now the identity
    tensor([1.0000, 1.0000, 1.0000, 1.0000], dtype=torch.float64, grad_fn=<DiagonalBackward0>)
    """

    def __init__(
        self,
        geometry: SPDGeometry | str,
        n: int,
        *,
        channels: int | None = None,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        scale: bool = True,
        learn_bias: bool = True,
        learn_scale: bool = True,
        track_running_stats: bool = True,
        detach_stats: bool = True,
        karcher_steps: int = 1,
        sync: bool = False,
        validate: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.geometry = get_geometry(geometry)
        self.n = check_count(n, "n")
        self.channels = None if channels is None else check_count(channels, "channels")
        self.geometry.check_dimension(self.n)
        if momentum is not None and not (isinstance(momentum, (int, float)) and 0 < momentum <= 1):
            raise ValueError(f"momentum: expected a float in (0, 1] or None, got {momentum!r}")
        if not (isinstance(eps, (int, float)) and eps >= 0):
            raise ValueError(f"eps: expected a float >= 0, got {eps!r}")
        self.momentum = momentum
        self.eps = float(eps)
        self.scale = bool(scale)
        self.track_running_stats = bool(track_running_stats)
        self.detach_stats = bool(detach_stats)
        self.karcher_steps = check_count(karcher_steps, "karcher_steps")
        self.sync = bool(sync)
        self.validate = bool(validate)

        factory = {"device": device, "dtype": dtype}
        lead = () if channels is None else (channels,)
        eye = torch.eye(n, **factory).expand(lead + (n, n)).clone()
        if learn_bias:
            self.bias = geoopt.ManifoldParameter(eye.clone(), manifold=geoopt.SymmetricPositiveDefinite())
        else:
            self.register_buffer("bias", eye.clone())
        if self.scale:
            log_shift = torch.zeros(lead, **factory)
            if learn_scale:
                self.log_shift = nn.Parameter(log_shift)
            else:
                self.register_buffer("log_shift", log_shift)
        else:
            self.register_parameter("log_shift", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", eye.clone())
            self.register_buffer("running_var", torch.ones(lead, **factory))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    @property
    def shift(self) -> Tensor | None:
        """The positive scale :math:`s` (the target standard deviation)."""
        return None if self.log_shift is None else torch.exp(self.log_shift)

    def extra_repr(self) -> str:
        return (
            f"n={self.n}, channels={self.channels}, momentum={self.momentum}, eps={self.eps}, "
            f"scale={self.scale}, detach_stats={self.detach_stats}, karcher_steps={self.karcher_steps}"
        )

    @torch.no_grad()
    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.copy_(torch.eye(self.n).expand_as(self.running_mean))
            self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    def _check_input(self, x: Tensor) -> None:
        check_floating(x, "x")
        expected = ["B"] + ([] if self.channels is None else [str(self.channels)]) + [str(self.n)] * 2
        ok = x.ndim == len(expected) and x.shape[-2:] == (self.n, self.n)
        if ok and self.channels is not None:
            ok = x.shape[1] == self.channels
        if not ok:
            raise ValueError(
                f"x: expected shape [{', '.join(expected)}], got {list(x.shape)}"
                + (" (wrong channel count)" if x.ndim == len(expected) and x.shape[-2:] == (self.n, self.n) else "")
            )
        if torch.compiler.is_compiling():
            return
        if self.validate:
            check_spd(x, "x")
        else:
            check_symmetric(x, "x")

    def _reduce(self):
        return sum_across_ranks if self.sync and is_distributed() else None

    def forward(self, x: Tensor) -> Tensor:
        self._check_input(x)
        g = self.geometry
        z = g.encode(x)
        point = g.encode(self.bias.to(x.dtype))
        shift = None if self.log_shift is None else self.shift.to(x.dtype)
        if self.training or not self.track_running_stats:
            if shift is not None and x.shape[0] < 2 and not self._reduce():
                raise ValueError(
                    f"x: expected more than 1 matrix per channel in training mode to "
                    f"estimate a variance, got batch size {x.shape[0]}"
                )
            reduce = self._reduce()
            mean = g.mean(z.detach() if self.detach_stats else z, reduce=reduce, steps=self.karcher_steps)
            out, batch_var = g.normalize(
                z, mean, point, shift=shift, eps=self.eps, detach_var=self.detach_stats, reduce=reduce
            )
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.detach(), None if batch_var is None else batch_var.detach())
        else:
            mean = g.encode(self.running_mean.to(x.dtype))
            var = None if shift is None else self.running_var.to(x.dtype)
            out, _ = g.normalize(z, mean, point, shift=shift, eps=self.eps, var=var)
        return g.decode(out)

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, var: Tensor | None) -> None:
        self.num_batches_tracked.add_(1)
        step = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        g = self.geometry
        dtype = self.running_mean.dtype
        current = g.encode(self.running_mean.to(mean.dtype))
        self.running_mean.copy_(g.decode(g.interpolate(current, mean, step)).to(dtype))
        if var is not None:
            self.running_var.lerp_(var.to(self.running_var.dtype), step)


class LieBatchNorm(RiemannianBatchNorm):
    r"""LieBN: Lie-group batch normalization (Chen, Song, Liu, Sebe, ICLR 2024).

    ``metric`` selects the (θ, α, β)-AIM (Cholesky group translation), the
    (α, β)-LEM or the θ-LCM geometry; see :class:`RiemannianBatchNorm` for the
    other options. Defaults follow the official code: ``momentum=0.1``,
    ``eps=1e-5``, one Karcher step, detached batch statistics.

    Examples
    --------
    >>> bn = LieBatchNorm(3, metric="lcm", theta=0.5, channels=2, dtype=torch.float64)
    >>> bn(torch.eye(3, dtype=torch.float64).repeat(4, 2, 1, 1) * 2).shape
    torch.Size([4, 2, 3, 3])
    """

    def __init__(
        self,
        n: int,
        metric: str = "aim",
        *,
        theta: float = 1.0,
        alpha: float = 1.0,
        beta: float = 0.0,
        **kwargs,
    ) -> None:
        key = metric.lower() if isinstance(metric, str) else metric
        if key == "aim":
            geometry: SPDGeometry = AffineInvariant(theta=theta, alpha=alpha, beta=beta)
        elif key == "lem":
            if theta != 1.0:
                raise ValueError(
                    f"theta: the Log-Euclidean metric is invariant to the power deformation "
                    f"(log(P^theta)/theta = log P); expected theta=1.0, got {theta!r}"
                )
            geometry = LogEuclidean(alpha=alpha, beta=beta)
        elif key == "lcm":
            geometry = LogCholesky(theta=theta, alpha=alpha, beta=beta)
        else:
            raise ValueError(f"metric: expected 'aim', 'lem' or 'lcm', got {metric!r}")
        self.metric = key
        super().__init__(geometry, n, **kwargs)


class BuresWassersteinBatchNorm(RiemannianBatchNorm):
    r"""GBWBN: generalized Bures–Wasserstein batch normalization (Wang et al., CVPR 2025).

    Runs BW batch normalization in the chart :math:`M^{-1/2} P^\theta M^{-1/2}`
    with a learnable SPD metric parameter :math:`M` (``learn_metric=True``;
    one per channel) and a fixed power θ. ``learn_metric=False`` keeps
    :math:`M = I` (plain BW).

    Examples
    --------
    >>> bn = BuresWassersteinBatchNorm(3, theta=0.5, dtype=torch.float64)
    >>> [name for name, _ in bn.named_parameters()]
    ['bias', 'log_shift', 'geometry.metric']
    """

    def __init__(
        self,
        n: int,
        *,
        theta: float = 1.0,
        learn_metric: bool = True,
        channels: int | None = None,
        device=None,
        dtype=None,
        **kwargs,
    ) -> None:
        geometry = GeneralizedBuresWasserstein(
            n, channels=channels, theta=theta, learn_metric=learn_metric, device=device, dtype=dtype
        )
        super().__init__(geometry, n, channels=channels, device=device, dtype=dtype, **kwargs)


class SPDBatchNorm(RiemannianBatchNorm):
    r"""SPDNetBN: Riemannian batch normalization (Brooks et al., NeurIPS 2019).

    Affine-invariant centring and biasing by parallel transport,
    :math:`P \mapsto B^{1/2} \mu^{-1/2} P \mu^{-1/2} B^{1/2}`, with no variance
    normalization. Statistics are per channel (Brooks et al. pool channels).

    Examples
    --------
    >>> bn = SPDBatchNorm(2, dtype=torch.float64)
    >>> x = torch.diag_embed(torch.tensor([[1.0, 4.0], [4.0, 1.0]], dtype=torch.float64))
    >>> bn(x).diagonal(dim1=-2, dim2=-1)
    tensor([[0.5000, 2.0000],
            [2.0000, 0.5000]], dtype=torch.float64, grad_fn=<DiagonalBackward0>)
    """

    def __init__(self, n: int, **kwargs) -> None:
        if "scale" in kwargs:
            raise TypeError("scale: SPDBatchNorm never normalizes the variance")
        super().__init__(AffineInvariant(translation="sqrt"), n, scale=False, **kwargs)
