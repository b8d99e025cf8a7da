r"""The (θ, α, β) affine-invariant metric on SPD matrices.

Thanwerdas & Pennec (2019) define the O(n)-invariant inner products
:math:`\langle V, W\rangle_{\alpha,\beta} = \alpha\,\mathrm{tr}(VW) +
\beta\,\mathrm{tr}(V)\,\mathrm{tr}(W)` (positive definite iff
:math:`\alpha > 0,\ \beta > -\alpha/n`); the affine-invariant metric they
induce has the distance

.. math::

    d_{\alpha,\beta}(P, Q)^2 = \alpha \lVert \log(P^{-1/2} Q P^{-1/2}) \rVert_F^2
        + \beta \left(\log\det(P^{-1} Q)\right)^2 .

Chen et al. (ICLR 2024, "A Lie Group Approach to Riemannian Batch
Normalization") deform it by the power :math:`P \mapsto P^\theta`:
:math:`d_{\theta,\alpha,\beta}(P, Q) = d_{\alpha,\beta}(P^\theta, Q^\theta) /
|\theta|`. The chart of this geometry is that power; centring and biasing are
the Lie-group translations :math:`X \mapsto L^{-1} X L^{-\top}` and
:math:`X \mapsto L X L^\top` by the Cholesky factor :math:`M = LL^\top`
(``translation="cholesky"``, LieBN), or the parallel transport along the
geodesic, :math:`X \mapsto M^{-1/2} X M^{-1/2}` (``translation="sqrt"``,
Brooks et al. 2019). Both are isometries and map the mean to the identity;
they differ by a rotation of the output.

Half precision (float16, bfloat16) is computed in float32
(:func:`geonorm._numerics.compute_dtype`) and returned in the input's dtype,
and inside an autocast region the geometry's matrix products run with
autocast disabled, as the numerics page promises (``half_in_float32``).
"""

from __future__ import annotations


import torch

from .._numerics import safe_sqrt, tiny_for
from ..linalg.cholesky import factor_and_inverse
from ..linalg import (
    cholesky,
    sym,
    sym_expm,
    sym_invsqrtm,
    sym_logm,
    sym_powm,
    sym_powm_tensor,
    sym_sqrtm,
)
from ._params import check_alpha_beta, check_beta_bound, check_steps, check_theta, check_tol
from ..riemannian.stats import Reduce, converged as _converged, normalise_weights, weighted_sum
from .inner import alpha_beta_inner
from ._tangent_common import half_in_float32
from .protocol import SPDGeometry
from .tangent import aim_exp, aim_log, aim_transport

Tensor = torch.Tensor

__all__ = ["AffineInvariant"]


def _lower_inverse(m: Tensor) -> Tensor:
    """Inverse of the lower Cholesky factor of SPD ``m`` ``[..., n, n]``."""
    return factor_and_inverse(m)[1]


class AffineInvariant(SPDGeometry):
    r"""The (θ, α, β)-AIM geometry (Chen et al. 2024; Thanwerdas & Pennec 2019).

    Parameters
    ----------
    theta : float
        Power deformation :math:`P \mapsto P^\theta` (``1`` is the standard AIM).
    alpha, beta : float
        Weights of the O(n)-invariant inner product (:math:`\alpha > 0`,
        :math:`\beta > -\alpha/n`, checked once ``n`` is known).
    karcher_steps : int
        Karcher-flow iterations of :meth:`mean` (warm-started by ``init``,
        otherwise started from the arithmetic mean).
    tol : float
        Stop the flow early once the mean tangent step has Frobenius norm at
        most ``tol`` in every channel (checked after the step is applied).
        The step size starts at 1 (so one step equals LieBN's) and is halved
        for a channel whenever its gradient norm grows.
    translation : {"cholesky", "sqrt"}
        Group translation by the Cholesky factor (LieBN) or parallel transport
        by the symmetric square root (SPDNetBN).

    Examples
    --------
    >>> g = AffineInvariant()
    >>> x = torch.diag_embed(torch.tensor([[1.0, 4.0], [4.0, 1.0]], dtype=torch.float64))
    >>> torch.diagonal(g.frechet_mean(x))
    tensor([2., 2.], dtype=torch.float64)
    >>> g.distance(x[0], x[1])  # sqrt(2) * log 4
    tensor(1.9605, dtype=torch.float64)
    """

    name = "aim"

    def __init__(
        self,
        *,
        theta: float = 1.0,
        alpha: float = 1.0,
        beta: float = 0.0,
        karcher_steps: int = 50,
        tol: float = 1e-10,
        translation: str = "cholesky",
    ) -> None:
        super().__init__()
        self.theta = check_theta(theta)
        self.alpha, self.beta = check_alpha_beta(alpha, beta)
        self.karcher_steps = check_steps(karcher_steps)
        self.tol = check_tol(tol)
        if translation not in ("cholesky", "sqrt"):
            raise ValueError(
                f"translation: expected 'cholesky' or 'sqrt', got {translation!r}"
            )
        self.translation = translation

    def extra_repr(self) -> str:
        return (
            f"theta={self.theta:g}, alpha={self.alpha:g}, beta={self.beta:g}, "
            f"karcher_steps={self.karcher_steps}, translation={self.translation!r}"
        )

    def check_dimension(self, n: int) -> None:
        check_beta_bound(self.alpha, self.beta, n)

    # -- chart ------------------------------------------------------------
    @property
    def _encode_factorizes(self) -> bool:
        return self.theta != 1.0  # a matrix power per call

    def encode(self, x: Tensor) -> Tensor:
        return x if self.theta == 1.0 else sym_powm(x, self.theta, check=False)

    def decode(self, z: Tensor) -> Tensor:
        return z if self.theta == 1.0 else sym_powm(z, 1.0 / self.theta, check=False)

    def _encode_and_check(self, x: Tensor, name: str) -> Tensor:
        """The power's eigendecomposition vouches for positive definiteness when θ ≠ 1."""
        if self.theta == 1.0:
            return super()._encode_and_check(x, name)
        return sym_powm(x, self.theta, check=True)

    def neutral(self, dim: int, *, dtype=None, device=None) -> Tensor:
        r"""The identity matrix (the chart :math:`P^\theta` fixes it)."""
        return torch.eye(dim, dtype=dtype, device=device)

    # -- statistics -------------------------------------------------------
    @half_in_float32
    def mean(
        self,
        z: Tensor,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
        init: Tensor | None = None,
        steps: int | None = None,
    ) -> Tensor:
        r"""Karcher flow :math:`G \leftarrow G^{1/2} \exp\big(\sum_b w_b
        \log(G^{-1/2} z_b G^{-1/2})\big) G^{1/2}` (Pennec 2006).

        Two points without ``init`` (and not distributed) take the closed form
        :math:`z_0 \#_{w_1} z_1 = z_0^{1/2}(z_0^{-1/2} z_1 z_0^{-1/2})^{w_1}
        z_0^{1/2}`.
        """
        steps = self.karcher_steps if steps is None else check_steps(steps)
        w = normalise_weights(z, weights, 2)
        if init is None and reduce is None and z.shape[0] == 2:
            return self.interpolate(z[0], z[1], w[1] / (w[0] + w[1]))
        g = weighted_sum(z, w, reduce, 2) if init is None else init
        # Step-size control (as in pyRiemann's mean_riemann): a unit step can
        # overshoot for widely spread batches; when the gradient norm grows,
        # halve the step of that channel, otherwise let it recover towards 1.
        nu = None  # the step size, 1 until the gradient norm first grows
        previous = None
        for k in range(steps):
            # any G = L Lᵀ gives the same step: L log(L⁻¹ z L⁻ᵀ) Lᵀ = G^½ log(G^-½ z G^-½) G^½
            # (L = G^½ O with O orthogonal, and log commutes with the rotation); the
            # Cholesky factor costs less than an eigendecomposition
            gs, gis = factor_and_inverse(g)
            step = weighted_sum(sym_logm(gis @ z @ gis.mT, check=False), w, reduce, 2)  # it symmetrizes
            if steps > 1:  # one step (LieBN's default) needs no criterion
                crit = torch.linalg.matrix_norm(step)  # [*batch]
                if previous is not None:
                    nu = torch.ones_like(crit) if nu is None else nu
                    nu = torch.where(crit > previous, 0.5 * nu, torch.clamp(1.5 * nu, max=1.0))
                previous = crit
            g = sym(gs @ sym_expm(step if nu is None else nu[..., None, None] * step, check=False) @ gs.mT)
            if self.tol > 0 and k + 1 < steps and _converged(crit, self.tol):
                break
        return g

    def _sq_dist_identity(self, log_eig: Tensor) -> Tensor:
        """α Σ log² λ + β (Σ log λ)², divided by θ², from ``[..., n]`` log-eigenvalues."""
        d2 = log_eig.square().sum(-1)
        if self.alpha != 1.0:
            d2 = self.alpha * d2
        if self.beta != 0.0:
            d2 = d2 + self.beta * log_eig.sum(-1).square()
        return d2 if self.theta == 1.0 else d2 / self.theta**2

    def _log_eigvals(self, c: Tensor) -> Tensor:
        lam = torch.linalg.eigvalsh(sym(c))
        return torch.log(torch.clamp(lam, min=tiny_for(lam.dtype)))

    @half_in_float32
    def variance(
        self,
        z: Tensor,
        mean: Tensor | None = None,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
    ) -> Tensor:
        c = z if mean is None else self.centre(z, mean)
        d2 = self._sq_dist_identity(self._log_eigvals(c))  # [B, *batch]
        return weighted_sum(d2, normalise_weights(z, weights, 2), reduce, 0)

    # -- group steps ------------------------------------------------------
    @half_in_float32
    def centre(self, z: Tensor, mean: Tensor) -> Tensor:
        if self.translation == "cholesky":
            inv = _lower_inverse(mean)
            return sym(inv @ z @ inv.transpose(-1, -2))
        isq = sym_invsqrtm(mean, check=False)
        return sym(isq @ z @ isq)

    @half_in_float32
    def bias(self, z: Tensor, point: Tensor) -> Tensor:
        if self.translation == "cholesky":
            factor = cholesky(point, check=False)
            return sym(factor @ z @ factor.transpose(-1, -2))
        sq = sym_sqrtm(point, check=False)
        return sym(sq @ z @ sq)

    @half_in_float32
    def scale(self, z: Tensor, factor: Tensor, *, eig=None) -> Tensor:
        """:math:`z^{s}`, the AIM geodesic rescaling about the identity."""
        return sym_powm_tensor(z, factor, eig=eig, check=False)

    @half_in_float32
    def interpolate(self, a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
        r""":math:`a^{1/2} (a^{-1/2} b a^{-1/2})^t a^{1/2} = L (L^{-1} b L^{-\top})^t L^\top`
        for :math:`a = L L^\top` (congruence invariance of the weighted geometric mean)."""
        sq, isq = factor_and_inverse(a)
        inner = isq @ b @ isq.mT  # the power symmetrizes it
        if isinstance(t, torch.Tensor):
            powered = sym_powm_tensor(inner, t, check=False)
        else:
            powered = sym_powm(inner, float(t), check=False)
        return sym(sq @ powered @ sq.mT)

    @half_in_float32
    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        c = self.centre(self.encode(y), self.encode(x))
        return safe_sqrt(self._sq_dist_identity(self._log_eigvals(c)))

    def log_identity(self, x: Tensor) -> Tensor:
        r""":math:`\log x` (the power deformation cancels at the identity)."""
        return sym_logm(x, check=False)

    def exp_identity(self, v: Tensor) -> Tensor:
        return sym_expm(v, check=False)

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        r""":math:`\mathrm{Log}_x(y)` of the θ-deformed AIM (α, β leave geodesics unchanged)."""
        return aim_log(x, y, theta=self.theta)

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        return aim_exp(x, v, theta=self.theta)

    def transport(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Parallel transport along the geodesic from ``x`` to ``y``."""
        return aim_transport(x, y, v, theta=self.theta)

    def inner_identity(self, u: Tensor, v: Tensor) -> Tensor:
        r""":math:`\alpha\,\mathrm{tr}(uv) + \beta\,\mathrm{tr}(u)\mathrm{tr}(v)`."""
        return alpha_beta_inner(self.alpha, self.beta, u, v)

    @half_in_float32
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
        """Centre, then one eigendecomposition serves the variance and :math:`C^{s}`."""
        zc = self.centre(z, mean)
        if target_std is None:
            return self.bias(zc, point), None
        with torch.no_grad():  # zc = sym(...) is exactly symmetric, in the compute dtype
            eig = torch.linalg.eigh(zc)
        batch_var = None
        if var is None:
            if detach_var:
                log_eig = torch.log(torch.clamp(eig[0], min=tiny_for(zc.dtype)))
            else:
                log_eig = self._log_eigvals(zc)
            d2 = self._sq_dist_identity(log_eig)  # [B, *batch]
            batch_var = weighted_sum(d2, normalise_weights(zc, None, 2), reduce, 0)
            var = batch_var
        factor = target_std / torch.sqrt(var + eps)
        return self.bias(self.scale(zc, factor, eig=eig), point), batch_var
