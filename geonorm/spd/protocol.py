r"""The geometry protocol that :class:`~geonorm.spd.RiemannianBatchNorm` runs on.

Every Riemannian batch norm in the literature is the same three steps —
move the batch mean to the identity (*centre*), rescale the dispersion about
it (*scale*), move to a learned point (*bias*) — with running statistics
updated along a geodesic (*interpolate*). A geometry supplies those steps,
the Fréchet mean and variance, and optionally a *chart*: a map
:meth:`~SPDGeometry.encode` into coordinates in which all of the steps are
cheap (the power deformation :math:`P \mapsto P^\theta` of Chen et al. 2024,
the matrix logarithm of the Log-Euclidean metric, the log-Cholesky map), and
its inverse :meth:`~SPDGeometry.decode`. The batch norm encodes once, works
in coordinates, and decodes once.

Conventions
-----------
* Points are ``[B, *batch, n, n]``; statistics reduce over dimension 0 only,
  so ``[B, C, n, n]`` input gets per-channel statistics of shape ``[C, ...]``.
* ``weights`` (optional) are non-negative, of shape ``[B]`` or ``[B, *batch]``;
  they are normalised to sum to one over dimension 0.
* ``reduce`` (optional) is called on every per-batch *sum* before it is
  divided by the total weight. The default is the identity; the distributed
  batch norm passes an all-reduce across ranks, so every geometry is
  synchronised by the same few lines (:mod:`geonorm.distributed`).
"""

from __future__ import annotations

import abc
from typing import Callable

import torch
from torch import nn

Tensor = torch.Tensor
Reduce = Callable[[Tensor], Tensor]

__all__ = ["SPDGeometry", "weighted_sum", "normalise_weights"]


def _identity_reduce(t: Tensor) -> Tensor:
    return t


def normalise_weights(z: Tensor, weights: Tensor | None, point_ndim: int = 2) -> Tensor:
    """Weights of shape ``[B, *batch]`` broadcastable to ``z``'s leading dims.

    ``None`` gives uniform weights ``1``; the caller divides by the reduced
    total, so both cases sum to one after :func:`weighted_sum`.
    """
    lead = z.shape[: z.ndim - point_ndim]  # [B, *batch]
    if weights is None:
        return torch.ones(lead[:1], dtype=z.dtype, device=z.device).reshape(
            (lead[0],) + (1,) * (len(lead) - 1)
        )
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"weights: expected a torch.Tensor or None, got {type(weights).__name__}")
    if weights.ndim == 0 or weights.shape[0] != lead[0] or weights.ndim > len(lead):
        raise ValueError(
            f"weights: expected shape [{lead[0]}] or a prefix-compatible shape of "
            f"{list(lead)}, got {list(weights.shape)}"
        )
    if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
        raise ValueError("weights: expected finite non-negative values")
    w = weights.to(dtype=z.dtype, device=z.device)
    return w.reshape(w.shape + (1,) * (len(lead) - w.ndim))


def weighted_sum(
    values: Tensor, w: Tensor, reduce: Reduce | None, value_ndim: int
) -> Tensor:
    """``reduce(Σ_b w_b v_b) / reduce(Σ_b w_b)`` over dimension 0.

    ``values`` is ``[B, *batch, *value]`` with ``value_ndim`` trailing value
    dimensions; ``w`` is ``[B, *batch']`` (broadcastable, from
    :func:`normalise_weights`).
    """
    reduce = reduce or _identity_reduce
    wv = w.reshape(w.shape + (1,) * value_ndim)
    total = reduce((w * torch.ones_like(values[(...,) + (0,) * value_ndim])).sum(0))
    acc = reduce((wv * values).sum(0))  # [*batch, *value]
    return acc / total.reshape(total.shape + (1,) * value_ndim)


class SPDGeometry(nn.Module, abc.ABC):
    r"""A Riemannian geometry on SPD matrices, as batch normalization needs it.

    Subclasses implement the statistics and group steps in *coordinates*
    (the image of :meth:`encode`); the default chart is the identity. The
    metric methods (:meth:`distance`, :meth:`frechet_mean`, :meth:`geodesic`)
    work on SPD matrices directly. A geometry is an ``nn.Module`` so that a
    learnable metric (the :math:`M` of the generalized Bures–Wasserstein
    metric) trains with the layer that holds it.
    """

    #: Registry name, e.g. ``"aim"``.
    name: str = "abstract"

    # -- chart ------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Map SPD matrices ``[..., n, n]`` into coordinates (default: identity)."""
        return x

    def decode(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`encode`."""
        return z

    def check_dimension(self, n: int) -> None:
        """Raise ``ValueError`` if the metric's parameters are invalid for size ``n``."""

    @abc.abstractmethod
    def identity(self, n: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
        """Coordinates of the identity matrix, ``[n, n]``."""

    # -- statistics in coordinates -----------------------------------------
    @abc.abstractmethod
    def mean(
        self,
        z: Tensor,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
        init: Tensor | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """Fréchet mean over dimension 0: ``[B, *batch, n, n] -> [*batch, n, n]``.

        ``init`` warm-starts and ``steps`` overrides the iteration count of
        iterative algorithms; closed forms ignore both.
        """

    @abc.abstractmethod
    def variance(
        self,
        z: Tensor,
        mean: Tensor | None = None,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
    ) -> Tensor:
        r"""Fréchet variance :math:`\sum_b w_b\, d^2(z_b, \text{mean})`, shape ``[*batch]``.

        ``mean=None`` means the identity (for a batch that has been centred).
        """

    @abc.abstractmethod
    def centre(self, z: Tensor, mean: Tensor) -> Tensor:
        """Translate/transport ``mean`` to the identity, carrying ``z`` along."""

    @abc.abstractmethod
    def scale(self, z: Tensor, factor: Tensor) -> Tensor:
        r"""Geodesic rescaling about the identity, :math:`\mathrm{Exp}_I(s\,\mathrm{Log}_I z)`.

        ``factor`` is ``[*batch]`` (broadcast over dimension 0 and the matrix).
        """

    @abc.abstractmethod
    def bias(self, z: Tensor, point: Tensor) -> Tensor:
        """Translate/transport the identity to ``point``, carrying ``z`` along."""

    @abc.abstractmethod
    def interpolate(self, a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
        """Geodesic from ``a`` (t = 0) to ``b`` (t = 1) in coordinates."""

    @abc.abstractmethod
    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Geodesic distance between SPD matrices: ``[..., n, n]`` pairs -> ``[...]``."""

    @abc.abstractmethod
    def log_identity(self, x: Tensor) -> Tensor:
        """Riemannian logarithm at the identity: SPD ``x`` -> symmetric tangent vector."""

    @abc.abstractmethod
    def exp_identity(self, v: Tensor) -> Tensor:
        """Riemannian exponential at the identity: symmetric ``v`` -> SPD matrix."""

    @abc.abstractmethod
    def inner_identity(self, u: Tensor, v: Tensor) -> Tensor:
        """The metric at the identity, :math:`g_I(u, v)`, for symmetric ``[..., n, n]``."""

    # -- the batch-norm step -------------------------------------------------
    def normalize(
        self,
        z: Tensor,
        mean: Tensor,
        point: Tensor,
        *,
        shift: Tensor | None,
        eps: float,
        var: Tensor | None = None,
        detach_var: bool = True,
        reduce: Reduce | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        r"""Centre at ``mean``, rescale the dispersion, bias to ``point``.

        With ``var=None`` the batch's variance about ``mean`` is computed (from
        detached input when ``detach_var``) and returned; the scale factor is
        :math:`s / \sqrt{v + \epsilon}`. ``shift=None`` skips the scaling
        (Brooks et al. 2019). Geometries override this to share work between
        the steps; the result must equal this composition.
        """
        zc = self.centre(z, mean)
        if shift is None:
            return self.bias(zc, point), None
        batch_var = None
        if var is None:
            batch_var = self.variance(zc.detach() if detach_var else zc, reduce=reduce)
            var = batch_var
        factor = shift / torch.sqrt(var + eps)
        return self.bias(self.scale(zc, factor), point), batch_var

    # -- conveniences on SPD matrices --------------------------------------
    def frechet_mean(
        self, x: Tensor, weights: Tensor | None = None, *, steps: int | None = None
    ) -> Tensor:
        """Fréchet mean of SPD matrices ``[B, *batch, n, n]`` over dimension 0."""
        return self.decode(self.mean(self.encode(x), weights, steps=steps))

    def geodesic(self, x: Tensor, y: Tensor, t: float | Tensor) -> Tensor:
        """Point at time ``t`` on the geodesic from ``x`` to ``y``."""
        return self.decode(self.interpolate(self.encode(x), self.encode(y), t))
