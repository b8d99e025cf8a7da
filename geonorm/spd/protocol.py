r"""SPD matrices as a :class:`~geonorm.riemannian.Geometry`.

:class:`SPDGeometry` fixes what every SPD metric shares — points are
``[..., n, n]``, the origin is the identity matrix, a learned bias lives on
geoopt's ``SymmetricPositiveDefinite`` manifold, membership is symmetry plus
positive definiteness — and adds the maps at the identity
(:meth:`~SPDGeometry.log_identity`, :meth:`~SPDGeometry.exp_identity`,
:meth:`~SPDGeometry.inner_identity`) that tangent-space features at ``I``
use. Each metric (one file per metric) implements the batch-norm steps in its
chart and the Riemannian maps at any base point.
"""

from __future__ import annotations

import abc

import geoopt
import torch

from .._checks import check_spd, check_sym_matrix
from ..linalg import cholesky, sym, sym_sqrtm
from ..riemannian.protocol import Geometry

Tensor = torch.Tensor

__all__ = ["SPDGeometry", "SPDManifold"]


class SPDManifold(geoopt.SymmetricPositiveDefinite):
    r"""geoopt's affine-invariant SPD manifold with a parallel transport through Cholesky.

    The transport from :math:`x` to :math:`y` is :math:`v \mapsto E v E^\top`
    with :math:`E = (y x^{-1})^{1/2}` (Sra & Hosseini 2015); geoopt forms
    :math:`E = x^{1/2} \exp(\tfrac12 \log(x^{-1/2} y x^{-1/2})) x^{-1/2}` with
    three eigendecompositions. For :math:`x = L L^\top`, :math:`E = L\, (L^{-1}
    y L^{-\top})^{1/2} L^{-1}` is the same matrix (it squares to
    :math:`y x^{-1}` and has positive eigenvalues): one Cholesky factorization
    and one eigendecomposition. ``RiemannianAdam`` transports its first moment
    with it at every step; everything else is geoopt's.

    >>> m = SPDManifold()
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(m.transp(x, 4.0 * x, torch.eye(2, dtype=torch.float64)))
    tensor([4., 4.], dtype=torch.float64)
    """

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        factor = cholesky(x, check=False)
        eye = torch.eye(x.shape[-1], dtype=factor.dtype, device=factor.device).expand_as(factor)
        inverse = torch.linalg.solve_triangular(factor, eye, upper=False)
        e = factor @ sym_sqrtm(sym(inverse @ y @ inverse.mT), check=False) @ inverse
        return sym(e @ sym(v) @ e.mT)


class SPDGeometry(Geometry):
    r"""A Riemannian geometry on SPD matrices ``[..., n, n]``.

    The origin is the identity matrix; :meth:`neutral` is its role in the
    chart (``I`` or ``0``, see each metric). The metric methods
    (:meth:`distance`, :meth:`log`, :meth:`exp`, :meth:`transport`,
    :meth:`frechet_mean`, :meth:`geodesic`) work on SPD matrices directly.
    """

    point_ndim = 2

    def point_shape(self, dim: int) -> tuple[int, int]:
        return (dim, dim)

    def origin(self, dim: int, *, dtype: torch.dtype | None = None, device=None) -> Tensor:
        """The identity matrix ``[n, n]``."""
        return torch.eye(dim, dtype=dtype, device=device)

    @property
    def manifold(self) -> geoopt.SymmetricPositiveDefinite:
        return SPDManifold()

    def check_point(self, x: Tensor, name: str, *, strict: bool = False) -> Tensor:
        """Finite and symmetric (one reduction); ``strict`` adds positive definiteness (one Cholesky)."""
        return check_spd(x, name) if strict else check_sym_matrix(x, name)

    # -- maps at the identity of the SPD manifold ---------------------------------
    @abc.abstractmethod
    def log_identity(self, x: Tensor) -> Tensor:
        """Riemannian logarithm at the identity: SPD ``x`` -> symmetric tangent vector."""

    @abc.abstractmethod
    def exp_identity(self, v: Tensor) -> Tensor:
        """Riemannian exponential at the identity: symmetric ``v`` -> SPD matrix."""

    @abc.abstractmethod
    def inner_identity(self, u: Tensor, v: Tensor) -> Tensor:
        """The metric at the identity, :math:`g_I(u, v)`, for symmetric ``[..., n, n]``."""
