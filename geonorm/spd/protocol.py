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
from torch.utils.weak import WeakIdKeyDictionary

from .._checks import check_spd, check_sym_matrix
from ..linalg import sym, sym_sqrtm
from ..linalg.cholesky import factor_and_inverse
from ..riemannian.protocol import Geometry
from .layers import reeig_output

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
    and one eigendecomposition. :meth:`retr_transp`, which ``RiemannianAdam``
    calls at every step, takes geoopt's retraction and this transport from one
    Cholesky factor and one eigendecomposition. :meth:`inner`, which it calls
    before (for the second moment), is :math:`\operatorname{tr}(x^{-1} u x^{-1} v)
    = \langle L^{-1} u L^{-\top}, L^{-1} v L^{-\top} \rangle_F` from the same
    factor (geoopt's inverts :math:`x` by an eigendecomposition); a point's
    factor is kept for the next call on that same, unmodified tensor.
    Everything else is geoopt's.

    >>> m = SPDManifold()
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(m.transp(x, 4.0 * x, torch.eye(2, dtype=torch.float64)))
    tensor([4., 4.], dtype=torch.float64)
    """

    def inner(self, x: Tensor, u: Tensor, v: Tensor | None = None, keepdim: bool = False) -> Tensor:
        r""":math:`\operatorname{tr}(x^{-1} u x^{-1} v)` (``v`` defaults to ``u``) from the Cholesky factor of ``x``.

        >>> m = SPDManifold()
        >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
        >>> m.inner(x, torch.eye(2, dtype=torch.float64)).item()  # 1 + 1/16
        1.0625
        """
        inverse = self._factor_and_inverse(x)[1]
        a = inverse @ u @ inverse.mT
        b = a if v is None else inverse @ v @ inverse.mT
        ret = (a * b.mT).sum((-1, -2))  # tr(a b)
        return ret[..., None, None] if keepdim else ret

    def _factor_and_inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """:func:`~geonorm.linalg.cholesky.factor_and_inverse`, reused while ``x`` is the same tensor, unmodified (an optimizer step).

        Only a factor without a graph is kept (no grad mode, or ``x`` needs no
        gradient; nothing under ``torch.compile``), in a table keyed by the
        tensor's identity whose entry dies with the tensor; an in-place change
        (its version) or new storage makes it stale.
        """
        if (x.requires_grad and torch.is_grad_enabled()) or torch.compiler.is_compiling():
            # the factor carries a graph, or a compiled graph computes it: never cached
            return factor_and_inverse(x)
        key = (x.data_ptr(), x._version, x.shape, x.dtype, x.device)
        cached = _FACTORS.get(x)
        if cached is not None and cached[0] == key:
            return cached[1]
        pair = factor_and_inverse(x)
        _FACTORS[x] = (key, pair)
        return pair

    def transp(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        factor, inverse = self._factor_and_inverse(x)
        e = factor @ sym_sqrtm(inverse @ y @ inverse.mT, check=False) @ inverse  # it symmetrizes
        return sym(e @ sym(v) @ e.mT)

    def retr_transp(self, x: Tensor, u: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        r"""geoopt's retraction :math:`y = x + u + \tfrac12 u x^{-1} u` and :meth:`transp` of ``v`` to it.

        With :math:`x = L L^\top` and :math:`A = L^{-1} u L^{-\top} = W \operatorname{diag}(a) W^\top`:
        :math:`L^{-1} y L^{-\top} = I + A + \tfrac12 A^2 = W \operatorname{diag}(q) W^\top` with
        :math:`q = 1 + a + a^2/2 = ((1 + a)^2 + 1)/2 \ge \tfrac12` (so :math:`y` is SPD for every
        step ``u``), and the transport factor is :math:`E = L W \operatorname{diag}(\sqrt q)
        W^\top L^{-1}`: one Cholesky factorization and one eigendecomposition for what
        ``RiemannianAdam`` does at every step (geoopt's retraction and transport: three).
        """
        factor, inverse = self._factor_and_inverse(x)
        s, w = torch.linalg.eigh(inverse @ u @ inverse.mT)  # symmetric up to rounding: eigh reads one triangle
        q = torch.addcmul(s + 1.0, s, s, value=0.5)  # 1 + a + a²/2
        lw = factor @ w
        y = sym((lw * q.unsqueeze(-2)) @ lw.mT)
        e = (lw * q.sqrt().unsqueeze(-2)) @ (w.mT @ inverse)
        return y, sym(e @ v @ e.mT)  # = E sym(v) Eᵀ


_FACTORS = WeakIdKeyDictionary()  # point -> (its identity and version, its factor and inverse); dies with it


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
        """Finite and symmetric (one reduction); ``strict`` adds positive definiteness (one Cholesky).

        An unmodified :class:`~geonorm.nn.ReEig` output is SPD by construction
        (its eigenvalues are at least ReEig's ``eps`` > 0) and is not checked again.
        """
        if reeig_output(x):
            return x
        return check_spd(x, name) if strict else check_sym_matrix(x, name)

    def encode_checked(self, x: Tensor, name: str) -> Tensor:
        """:meth:`encode` after confirming membership: nothing to confirm for a ReEig output.

        Metrics whose chart factorizes ``x`` anyway read the factorization's
        verdict in :meth:`_encode_and_check`; :meth:`_encode_reeig_output` may
        reuse ReEig's eigendecomposition.
        """
        if reeig_output(x):
            return self._encode_reeig_output(x)
        return self._encode_and_check(x, name)

    #: Whether :meth:`encode` costs a factorization per call (a matrix function, a Cholesky), so that
    #: :meth:`encode_many` stacks the points onto the batch and pays one call. Per metric (and θ).
    _encode_factorizes: bool = False

    def encode_many(self, x: Tensor, name: str, *points: Tensor, check: bool = True) -> tuple[Tensor, ...]:
        """One encoding of ``x`` and the per-channel points stacked along dimension 0, when the chart factorizes.

        Each matrix is factorized on its own in the stacked call, so the
        values are those of separate calls. A failed check of the stack is
        retried call by call, so the error names ``x`` only when ``x`` is at
        fault (a point is encoded unchecked, as :meth:`encode` does). A ReEig
        output keeps :meth:`_encode_reeig_output` (its spectrum is reused);
        the points are then stacked together.
        """
        if not points or not self._encode_factorizes:
            return super().encode_many(x, name, *points, check=check)
        if check and reeig_output(x):
            return (self._encode_reeig_output(x), *self.encode(torch.stack(points)).unbind(0))
        k = x.shape[0]
        stacked = torch.cat([x, *(p.unsqueeze(0) for p in points)])  # [B + K, *batch, n, n]
        try:
            zs = self._encode_and_check(stacked, name) if check else self.encode(stacked)
        except ValueError:
            return super().encode_many(x, name, *points, check=check)  # raises for x, or x alone was fine
        z, *rest = zs.split([k] + [1] * len(points))  # one backward node joins the gradients
        return (z, *(r.squeeze(0) for r in rest))

    def _encode_and_check(self, x: Tensor, name: str) -> Tensor:
        """The strict :meth:`check_point`, then :meth:`encode` (overridden where the chart checks for free)."""
        return super().encode_checked(x, name)

    def _encode_reeig_output(self, x: Tensor) -> Tensor:
        """:meth:`encode` of a ReEig output (overridden where the chart can reuse its spectrum)."""
        return self.encode(x)

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
