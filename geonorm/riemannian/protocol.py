r"""The geometry protocol that :class:`~geonorm.riemannian.RiemannianBatchNorm` runs on.

Every Riemannian batch norm in the literature is the same three steps —
move the batch mean to the origin (*centre*), rescale the dispersion about
it (*scale*), move to a learned point (*bias*) — with running statistics
updated along a geodesic (*interpolate*). A :class:`Geometry` supplies those
steps, the Fréchet mean and variance, and optionally a *chart*: a map
:meth:`~Geometry.encode` into coordinates in which the steps are cheap (the
power deformation :math:`P \mapsto P^\theta`, the matrix logarithm, the
log-Cholesky map), with its inverse :meth:`~Geometry.decode`. The batch norm
encodes once, works in coordinates, and decodes once; it knows nothing about
matrices or balls.

Manifold-level and chart-level objects are named apart:

* :meth:`~Geometry.origin` is the neutral point *on the manifold* (the
  identity matrix, the centre of the ball): where the bias starts and the
  running mean is reset to.
* :meth:`~Geometry.neutral` is the point *in coordinates* that
  :meth:`~Geometry.centre` moves the batch mean to (``I`` for AIM and BW,
  ``0`` for the flat SPD charts and the ball). For most geometries it is
  ``encode(origin)``; for the generalized Bures–Wasserstein metric the chart
  image of the origin is :math:`M^{-1}`, not ``neutral = I``.

Conventions: points are ``[B, *batch, *point_shape]``; statistics reduce
over dimension 0 only (per-channel statistics for ``[B, C, ...]``); weights
and the cross-rank ``reduce`` follow :mod:`geonorm.riemannian.stats`.
"""

from __future__ import annotations

import abc
import contextlib

import torch
from torch import nn

from .stats import Reduce

Tensor = torch.Tensor

__all__ = ["Geometry"]


class Geometry(nn.Module, abc.ABC):
    r"""A Riemannian geometry, as batch normalization needs it.

    Subclasses implement the statistics and group steps in *coordinates*
    (the image of :meth:`encode`; the default chart is the identity) and the
    Riemannian maps :meth:`log`, :meth:`exp`, :meth:`transport` and
    :meth:`distance` on manifold points. A geometry is an ``nn.Module`` so
    that learnable metric parameters (the :math:`M` of the generalized
    Bures–Wasserstein metric, a learnable curvature) train with the layer
    that holds it. :func:`geonorm.testing.check_geometry` states the contract
    as executable checks.
    """

    #: Registry name, e.g. ``"aim"``.
    name: str = "abstract"
    #: Number of trailing dimensions of one point: 2 for matrices, 1 for vectors.
    point_ndim: int = 0

    # -- points ---------------------------------------------------------------
    @abc.abstractmethod
    def point_shape(self, dim: int) -> tuple[int, ...]:
        """Shape of one point for size ``dim``: ``(n, n)`` or ``(d,)``."""

    @abc.abstractmethod
    def origin(self, dim: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
        """The neutral point on the manifold, of shape :meth:`point_shape`."""

    @property
    @abc.abstractmethod
    def manifold(self):
        """The geoopt manifold a learned bias point lives on."""

    @abc.abstractmethod
    def check_point(self, x: Tensor, name: str, *, strict: bool = False) -> Tensor:
        """Raise ``ValueError`` unless ``x`` holds points of this manifold.

        The default (``strict=False``) check is cheap (one reduction);
        ``strict=True`` may cost a factorization.
        """

    def check_dimension(self, dim: int) -> None:
        """Raise ``ValueError`` if the metric's parameters are invalid for size ``dim``."""

    # -- chart ------------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """Map manifold points into coordinates (default: identity)."""
        return x

    def decode(self, z: Tensor) -> Tensor:
        """Inverse of :meth:`encode`."""
        return z

    def forward_scope(self) -> contextlib.AbstractContextManager:
        """A context around one batch-norm forward, in which the geometry may share work between calls.

        The default shares nothing. A geometry whose chart depends on a
        parameter (the :math:`M` of GBW) computes what every call needs from
        it (with its graph) once per forward instead of once per call; the
        results are those of the separate calls.
        """
        return contextlib.nullcontext()

    def encode_checked(self, x: Tensor, name: str) -> Tensor:
        """:meth:`encode` after confirming membership, at the least extra cost.

        The default runs the strict :meth:`check_point`; geometries whose
        chart already factorizes ``x`` override this to read the
        factorization's own verdict instead.
        """
        self.check_point(x, name, strict=True)
        return self.encode(x)

    def encode_many(self, x: Tensor, name: str, *points: Tensor, check: bool = True) -> tuple[Tensor, ...]:
        """``(encode_checked(x, name), encode(p_1), …)``, with ``encode(x)`` when ``check=False``.

        ``x`` is a batch ``[B, *batch, *point]`` and each ``p_k`` one point
        per channel ``[*batch, *point]`` (a batch norm's bias and running
        mean). The default encodes them one by one; a geometry whose chart
        costs a factorization per call overrides this to encode them together
        (the same values), so a forward pays one call instead of three.
        """
        z = self.encode_checked(x, name) if check else self.encode(x)
        return (z, *(self.encode(p) for p in points))

    @abc.abstractmethod
    def neutral(self, dim: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
        """Coordinates that :meth:`centre` moves the mean to, of shape :meth:`point_shape`."""

    # -- statistics in coordinates ----------------------------------------------
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
        """Mean over dimension 0: ``[B, *batch, *point] -> [*batch, *point]``.

        ``init`` warm-starts and ``steps`` overrides the iteration count of
        iterative algorithms (``None``: the geometry's own); closed forms
        ignore both.
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
        r"""Dispersion :math:`\sum_b w_b\, d^2(z_b, \text{mean})`, shape ``[*batch]``.

        ``mean=None`` means :meth:`neutral` (for a batch that has been centred).
        """

    @abc.abstractmethod
    def centre(self, z: Tensor, mean: Tensor) -> Tensor:
        """Translate/transport ``mean`` to :meth:`neutral`, carrying ``z`` along."""

    @abc.abstractmethod
    def scale(self, z: Tensor, factor: Tensor) -> Tensor:
        """Geodesic rescaling about :meth:`neutral` by ``factor`` ``[*batch]``."""

    @abc.abstractmethod
    def bias(self, z: Tensor, point: Tensor) -> Tensor:
        """Translate/transport :meth:`neutral` to ``point``, carrying ``z`` along."""

    @abc.abstractmethod
    def interpolate(self, a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
        """Geodesic from ``a`` (t = 0) to ``b`` (t = 1) in coordinates."""

    # -- Riemannian maps on manifold points --------------------------------------
    @abc.abstractmethod
    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """Geodesic distance between manifold points, ``[...]``."""

    @abc.abstractmethod
    def log(self, x: Tensor, y: Tensor) -> Tensor:
        r"""Riemannian logarithm :math:`\mathrm{Log}_x(y)`, a tangent vector at ``x``."""

    @abc.abstractmethod
    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        r"""Riemannian exponential :math:`\mathrm{Exp}_x(v)`."""

    @abc.abstractmethod
    def transport(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Carry a tangent vector ``v`` at ``x`` to ``y`` (see each geometry for which transport)."""

    # -- the batch-norm step ------------------------------------------------------
    def normalize(
        self,
        z: Tensor,
        mean: Tensor,
        point: Tensor,
        *,
        target_std: Tensor | None,
        eps: float,
        var: Tensor | None = None,
        detach_var: bool = True,
        reduce: Reduce | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        r"""Centre at ``mean``, rescale the dispersion, bias to ``point``.

        With ``var=None`` the batch's variance about ``mean`` is computed
        (from detached input when ``detach_var``) and returned; the scale
        factor is :math:`s / \sqrt{v + \epsilon}` for the target standard
        deviation :math:`s` (``target_std``). ``target_std=None`` skips the
        scaling (Brooks et al. 2019). Geometries override this to share work
        between the steps; the result must equal this composition.
        """
        zc = self.centre(z, mean)
        if target_std is None:
            return self.bias(zc, point), None
        batch_var = None
        if var is None:
            batch_var = self.variance(zc.detach() if detach_var else zc, reduce=reduce)
            var = batch_var
        factor = target_std / torch.sqrt(var + eps)
        return self.bias(self.scale(zc, factor), point), batch_var

    def normalize_and_decode(
        self,
        z: Tensor,
        mean: Tensor,
        point: Tensor,
        *,
        target_std: Tensor | None,
        eps: float,
        var: Tensor | None = None,
        detach_var: bool = True,
        reduce: Reduce | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`decode` of :meth:`normalize`'s output (and its batch variance): what a batch norm returns.

        Geometries override this to fuse the last step with the decoding
        (GBW folds :math:`M^{1/2}` into the bias step); the result must equal
        the composition.
        """
        out, batch_var = self.normalize(
            z, mean, point, target_std=target_std, eps=eps, var=var, detach_var=detach_var, reduce=reduce
        )
        return self.decode(out), batch_var

    # -- conveniences on manifold points -------------------------------------------
    def frechet_mean(self, x: Tensor, weights: Tensor | None = None, *, steps: int | None = None) -> Tensor:
        """Mean of manifold points ``[B, *batch, *point]`` over dimension 0."""
        return self.decode(self.mean(self.encode(x), weights, steps=steps))

    def geodesic(self, x: Tensor, y: Tensor, t: float | Tensor) -> Tensor:
        """Point at time ``t`` on the geodesic from ``x`` to ``y``."""
        return self.decode(self.interpolate(self.encode(x), self.encode(y), t))
