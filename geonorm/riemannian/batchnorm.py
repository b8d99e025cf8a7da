r"""Riemannian batch normalization: one module for every geometry.

For a batch :math:`\{x_b\}` with mean :math:`\mu` and dispersion :math:`v`
under a :class:`~geonorm.riemannian.Geometry`, :class:`RiemannianBatchNorm`
computes

.. math::

    \tilde x_b = \mathrm{bias}_B\Big(\mathrm{scale}_{s/\sqrt{v + \epsilon}}
        \big(\mathrm{centre}_\mu(x_b)\big)\Big),

in the geometry's coordinates, with a learned bias point :math:`B` on the
manifold and a learned target standard deviation :math:`s` (Chen et al.,
ICLR 2024, Algorithm 1; Lou et al., ICML 2020; van Spengler et al., ICCV
2023). Training uses the batch statistics and moves the running mean along
a geodesic (``momentum``); evaluation uses the running statistics, so an
evaluated sample's output does not depend on the rest of its batch.

The module talks to the geometry only through the protocol of
:mod:`geonorm.riemannian.protocol`; the SPD and Poincaré-ball presets are
thin subclasses (:class:`geonorm.spd.LieBatchNorm`,
:class:`geonorm.hyperbolic.PoincareBatchNorm`, …).
"""

from __future__ import annotations

import geoopt
import torch
from torch import nn

from .._checks import check_floating, check_int, check_real
from .._numerics import compute_dtype
from ..distributed import is_distributed, sum_across_ranks
from .protocol import Geometry
from .registry import build_geometry

Tensor = torch.Tensor

__all__ = ["RiemannianBatchNorm"]


class RiemannianBatchNorm(nn.Module):
    r"""Batch normalization of manifold-valued features under any geometry.

    Parameters
    ----------
    geometry : Geometry or str
        The geometry, or a registry name (``"aim"``, ``"lem"``, ``"lcm"``,
        ``"bw"``, ``"gbw"``, ``"poincare"``; see
        :func:`~geonorm.riemannian.get_geometry`). Size-dependent geometries
        (``"gbw"``) are built for ``dim`` and ``channels``.
    dim : int
        Point size: inputs are ``[B, *point_shape(dim)]`` (``[B, n, n]`` for
        SPD matrices, ``[B, d]`` on the ball), or ``[B, C, *point_shape]``
        with ``channels=C`` (statistics and parameters per channel).
    channels : int, optional
        Number of channels ``C``.
    momentum : float or None
        Geodesic step of the running mean and the step of the running
        variance's average; ``None`` keeps a cumulative average (step
        ``1/k`` at batch ``k``).
    eps : float
        Added to the variance before the square root.
    scale : bool
        Normalize the dispersion (``False``: centring and biasing only).
    learn_bias, learn_scale : bool
        Learn the bias point (a geoopt ``ManifoldParameter`` on
        ``geometry.manifold``, trained by ``geoopt.optim.RiemannianAdam``)
        and the target standard deviation :math:`s = e^{\ell}`, stored as the
        parameter ``log_std`` (:math:`\ell`).
    track_running_stats : bool
        Keep running statistics and use them in evaluation; otherwise batch
        statistics are always used.
    detach_stats : bool
        Treat the batch mean and variance as constants for autograd (LieBN's
        default); ``False`` differentiates through them.
    karcher_steps : int, optional
        Iterations of an iterative mean. ``None`` (default) uses the
        geometry's own setting, the one source of truth; an int overrides it
        for this layer.
    sync : bool
        With ``torch.distributed`` initialised, reduce the statistics across
        ranks (every sum of the mean and variance is all-reduced).
    validate : bool
        Run the geometry's strict membership check (e.g. a Cholesky per SPD
        matrix) on every input. Without it, non-members are still rejected
        wherever the chart's own factorization or one norm can tell.
    device, dtype
        Of parameters and buffers.

    Notes
    -----
    Input dtype must equal the layer's (as for ``torch.nn.Linear``); half
    precision layers compute in float32 and return half, and under CPU/CUDA
    autocast a lower-precision input is computed and returned in the layer's
    dtype. State-dict keys: ``bias``, ``log_std``, ``running_mean``,
    ``running_var`` (only with ``scale=True``), ``num_batches_tracked``, and
    the geometry's own parameters under ``geometry.``.

    Examples
    --------
    >>> gen = torch.Generator().manual_seed(0)
    >>> a = torch.randn(16, 4, 4, dtype=torch.float64, generator=gen)
    >>> x = a @ a.mT + 0.1 * torch.eye(4, dtype=torch.float64)
    >>> bn = RiemannianBatchNorm("lem", 4, dtype=torch.float64)
    >>> y = bn(x)
    >>> bn.geometry.frechet_mean(y).diagonal()  # the batch mean is now the identity
    tensor([1.0000, 1.0000, 1.0000, 1.0000], dtype=torch.float64, grad_fn=<DiagonalBackward0>)
    """

    def __init__(
        self,
        geometry: Geometry | str,
        dim: int,
        *,
        channels: int | None = None,
        momentum: float | None = 0.1,
        eps: float = 1e-5,
        scale: bool = True,
        learn_bias: bool = True,
        learn_scale: bool = True,
        track_running_stats: bool = True,
        detach_stats: bool = True,
        karcher_steps: int | None = None,
        sync: bool = False,
        validate: bool = False,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        self.dim = check_int(dim, "dim")
        self.channels = check_int(channels, "channels", allow_none=True)
        self.geometry = build_geometry(geometry, self.dim, channels=self.channels, device=device, dtype=dtype)
        self.geometry.check_dimension(self.dim)
        if momentum is not None:
            momentum = check_real(momentum, "momentum", low=0.0, high=1.0, low_open=True)
        self.momentum = momentum
        self.eps = check_real(eps, "eps", low=0.0)
        self.scale = bool(scale)
        self.track_running_stats = bool(track_running_stats)
        self.detach_stats = bool(detach_stats)
        self.karcher_steps = check_int(karcher_steps, "karcher_steps", allow_none=True)
        self.sync = bool(sync)
        self.validate = bool(validate)

        factory = {"device": device, "dtype": dtype}
        self._lead = () if self.channels is None else (self.channels,)
        start = self._origin(**factory)
        if learn_bias:
            self.bias = geoopt.ManifoldParameter(start.clone(), manifold=self.geometry.manifold)
        else:
            self.register_buffer("bias", start.clone())
        if self.scale:
            log_std = torch.zeros(self._lead, **factory)
            if learn_scale:
                self.log_std = nn.Parameter(log_std)
            else:
                self.register_buffer("log_std", log_std)
        else:
            self.register_parameter("log_std", None)
        if self.track_running_stats:
            self.register_buffer("running_mean", start.clone())
            self.register_buffer("running_var", torch.ones(self._lead, **factory) if self.scale else None)
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def _origin(self, dtype=None, device=None) -> Tensor:
        point = self.geometry.origin(self.dim, dtype=dtype, device=device)
        return point.expand(self._lead + point.shape).clone()  # [*lead, *point]

    @property
    def target_std(self) -> Tensor | None:
        """The target standard deviation :math:`s = e^{\\ell}` (``None`` without scaling)."""
        return None if self.log_std is None else torch.exp(self.log_std)

    def extra_repr(self) -> str:
        steps = "geometry's" if self.karcher_steps is None else f"{self.karcher_steps} (overrides the geometry's)"
        return (
            f"dim={self.dim}, channels={self.channels}, momentum={self.momentum}, eps={self.eps}, "
            f"scale={self.scale}, detach_stats={self.detach_stats}, karcher_steps={steps}"
        )

    @torch.no_grad()
    def reset_running_stats(self) -> None:
        """Running mean to the origin, running variance to one, counter to zero."""
        if self.track_running_stats:
            self.running_mean.copy_(self._origin(dtype=self.running_mean.dtype, device=self.running_mean.device))
            if self.running_var is not None:
                self.running_var.fill_(1.0)
            self.num_batches_tracked.zero_()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Running statistics reset; bias to the origin; target standard deviation to one."""
        self.reset_running_stats()
        self.bias.copy_(self._origin(dtype=self.bias.dtype, device=self.bias.device))
        if self.log_std is not None:
            self.log_std.zero_()

    # -- input -------------------------------------------------------------------
    def _check_input(self, x: Tensor) -> Tensor:
        check_floating(x, "x")
        point = self.geometry.point_shape(self.dim)
        expected = ["B", *map(str, self._lead), *map(str, point)]
        if x.ndim != len(expected) or tuple(x.shape[1:]) != self._lead + point:
            hint = ""
            if x.ndim == len(expected) and tuple(x.shape[x.ndim - len(point):]) == point:
                hint = " (wrong channel count)"
            raise ValueError(f"x: expected shape [{', '.join(expected)}], got {list(x.shape)}{hint}")
        layer_dtype = self.bias.dtype
        if x.dtype != layer_dtype:
            if torch.is_autocast_enabled(x.device.type) and x.dtype in (torch.float16, torch.bfloat16):
                return x.to(layer_dtype)
            raise TypeError(
                f"x: expected dtype {layer_dtype} (the layer's; convert the input or the layer "
                f"with .to()), got {x.dtype}"
            )
        return x

    def _reduce(self):
        return sum_across_ranks if self.sync and is_distributed() else None

    def _encode_all(self, x: Tensor, points: list[Tensor]) -> tuple[Tensor, ...]:
        """The input's coordinates (checked) and those of ``points``, in one geometry call."""
        g = self.geometry
        if torch.compiler.is_compiling():
            return g.encode_many(x, "x", *points, check=False)
        if self.validate:  # the strict check already vouches for x: encode without a second one
            g.check_point(x, "x", strict=True)
            return g.encode_many(x, "x", *points, check=False)
        return g.encode_many(x, "x", *points)

    # -- forward -------------------------------------------------------------------
    def forward(self, x: Tensor) -> Tensor:
        x = self._check_input(x)
        if torch.is_autocast_enabled(x.device.type):
            # matrix functions run in the layer's dtype, never autocast's
            with torch.autocast(x.device.type, enabled=False):
                return self._normalize(x)
        return self._normalize(x)

    def _normalize(self, x: Tensor) -> Tensor:
        with self.geometry.forward_scope():
            return self._normalize_in_scope(x)

    def _normalize_in_scope(self, x: Tensor) -> Tensor:
        out_dtype = x.dtype
        work = compute_dtype(x.dtype)
        x = _as(x, work)
        g = self.geometry
        running = [_as(self.running_mean, work)] if self.track_running_stats else []
        z, point, *current = self._encode_all(x, [_as(self.bias, work), *running])
        target_std = None if self.log_std is None else _as(self.target_std, work)
        if self.training or not self.track_running_stats:
            reduce = self._reduce()
            if target_std is not None and x.shape[0] < 2 and reduce is None:
                raise ValueError(
                    f"x: expected more than 1 point per channel in training mode to "
                    f"estimate a variance, got batch size {x.shape[0]}"
                )
            mean = g.mean(z.detach() if self.detach_stats else z, reduce=reduce, steps=self.karcher_steps)
            out, batch_var = g.normalize_and_decode(
                z, mean, point, target_std=target_std, eps=self.eps, detach_var=self.detach_stats, reduce=reduce
            )
            if self.training and self.track_running_stats:
                self._update_running_stats(
                    current[0].detach(), mean.detach(), None if batch_var is None else batch_var.detach()
                )
        else:
            mean = current[0]
            var = None if target_std is None else _as(self.running_var, work)
            out, _ = g.normalize_and_decode(z, mean, point, target_std=target_std, eps=self.eps, var=var)
        return _as(out, out_dtype)

    def _update_running_stats(self, current: Tensor, mean: Tensor, var: Tensor | None) -> None:
        """Move the running mean (coordinates ``current``) towards the batch ``mean``; average the variance."""
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            step = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            g = self.geometry
            self.running_mean.copy_(g.decode(g.interpolate(current, mean, step)))  # not 0-dim: no _write
            if var is not None:
                _write(self.running_var, torch.lerp(_as(self.running_var, var.dtype), var, step))


def _as(t: Tensor, dtype: torch.dtype) -> Tensor:
    """``t.to(dtype)``, without the call when it is one already (a dispatch saved per use)."""
    return t if t.dtype == dtype else t.to(dtype)


def _write(buffer: Tensor, value: Tensor) -> None:
    """``buffer[:] = value`` through a flat view.

    A plain ``copy_`` into a 0-dim float64 buffer is dropped by
    ``torch.compile`` (torch 2.13, aot_eager and inductor: the running
    variance then stays 1 while eager updates it); writing through a view is
    kept, so compiled and eager modules hold the same running statistics.
    """
    buffer.view(-1).copy_(value.reshape(-1))  # copy_ casts to the buffer's dtype
