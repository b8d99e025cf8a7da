r"""Bures–Wasserstein and generalized Bures–Wasserstein (GBW) geometries.

The Bures–Wasserstein (BW) metric is the 2-Wasserstein distance between
centred Gaussians (Bhatia, Jain & Lim 2019):

.. math::

    d_{BW}(P, Q)^2 = \mathrm{tr} P + \mathrm{tr} Q
        - 2\, \mathrm{tr}\big(P^{1/2} Q P^{1/2}\big)^{1/2},

with :math:`\mathrm{Log}_P(Q) = (PQ)^{1/2} + (QP)^{1/2} - 2P`,
:math:`\mathrm{Exp}_P(V) = P + V + \mathcal{L}_P[V]\, P\, \mathcal{L}_P[V]`
(:math:`\mathcal{L}_P[V]` solves :math:`PL + LP = V`) and the inner product
:math:`g_P(U, V) = \tfrac12 \mathrm{tr}(\mathcal{L}_P[U] V)`. The generalized
metric of Han et al. (2021) with an SPD parameter :math:`M` is its pullback by
:math:`P \mapsto M^{-1/2} P M^{-1/2}`; Wang et al. (CVPR 2025, GBWBN) add the
power deformation :math:`P \mapsto P^\theta` (distances divided by
:math:`|\theta|`). This module's chart is
:math:`\hat P = M^{-1/2} P^\theta M^{-1/2}`, and batch normalization runs plain
BW in it, as GBWBN does.

Centring maps :math:`\mathrm{Log}_\mu(\hat P)` to the identity by the tangent
isometry :math:`T_\mu \to T_I` of GBWBN, :math:`V \mapsto U(\sqrt{2/(b_i+b_j)}
\,\tilde V_{ij})U^\top` for :math:`\mu = U \operatorname{diag}(b) U^\top`;
biasing maps :math:`T_I \to T_B` by :math:`\sqrt{(a_i+a_j)/2}` and applies
:math:`\mathrm{Exp}_B`. Both are isometries, so the Fréchet mean of the
centred batch is the identity and its variance is the batch's.
"""

from __future__ import annotations

import contextlib

import geoopt
import torch

from .._numerics import safe_sqrt, tiny_for
from ..linalg import eigh, solve_lyapunov, sym, sym_powm, sym_sqrtm, sym_sqrtm_invsqrtm
from ..linalg.operator import (
    BW_EXP_FACTOR,
    BW_TO_IDENTITY,
    apply_pair_operator,
)
from .._checks import check_int
from ..riemannian.stats import Reduce, converged as _converged, normalise_weights, weighted_sum
from ._params import check_steps, check_theta, check_tol
from .inner import trace as _trace
from .protocol import SPDGeometry
from .tangent_bw import bw_chart_exp, bw_chart_log, bw_cross_root, bw_exp, bw_log, bw_transport, factor_and_inverse

Tensor = torch.Tensor

__all__ = ["BuresWasserstein", "GeneralizedBuresWasserstein"]


def _eye_like(x: Tensor) -> Tensor:
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


def _log_to_identity_in_mean_basis(z: Tensor, mean: Tensor) -> tuple[Tensor, Tensor]:
    r"""``(V, U)`` with :math:`U V U^\top = \Gamma_{\mu \to I} \mathrm{Log}_\mu(z)`, :math:`\mu = U \operatorname{diag}(a) U^\top` constant.

    With :math:`z' = U^\top z U` and :math:`R = (D^{1/2} z' D^{1/2})^{1/2}`
    (:math:`D = \operatorname{diag}(a)`), :math:`(\mu z)^{1/2} = U D^{1/2} R
    D^{-1/2} U^\top`, so the log and the isometry :math:`\sqrt{2/(a_i+a_j)}`
    are entrywise in that basis:

    .. math::

        \Gamma_{\mu \to I} \mathrm{Log}_\mu(z) = U \Bigl(\sqrt{\tfrac{2}{a_i+a_j}}
        \bigl(\sqrt{a_i/a_j} + \sqrt{a_j/a_i}\bigr) R_{ij}
        - 2\sqrt{a_i}\,\delta_{ij}\Bigr) U^\top .

    One eigendecomposition of :math:`\mu`, one batched square root and two
    batched products (four with the rotation back), instead of a Cholesky
    cross root and the pair operator (nine). Differentiable in ``z`` only;
    ``U`` carries no gradient.
    """
    a, u = eigh(mean)  # [..., n], [..., n, n]: no gradient (mean is constant)
    root_a = a.clamp_min(tiny_for(a.dtype)).sqrt()
    zr = u.mT @ z @ u  # [..., n, n]; the square root symmetrizes (after a symmetric scaling)
    r = sym_sqrtm(zr * (root_a.unsqueeze(-1) * root_a.unsqueeze(-2)), check=False)
    ratio = root_a.unsqueeze(-1) / root_a.unsqueeze(-2)  # sqrt(a_i / a_j)
    weight = torch.sqrt(2.0 / (a.unsqueeze(-1) + a.unsqueeze(-2))) * (ratio + ratio.mT)
    return r * weight - torch.diag_embed(2.0 * root_a), u


class BuresWasserstein(SPDGeometry):
    r"""The θ-power Bures–Wasserstein geometry (chart :math:`P^\theta`).

    Parameters
    ----------
    theta : float
        Power deformation (GBWBN's θ; ``1`` is plain BW).
    karcher_steps : int
        Fixed-point iterations of the barycenter (:meth:`mean`).
    tol : float
        Stop early once a step moves the barycenter by at most ``tol``
        (relative Frobenius norm) in every channel.

    Examples
    --------
    >>> g = BuresWasserstein()
    >>> x = torch.diag_embed(torch.tensor([[1.0, 9.0], [9.0, 1.0]], dtype=torch.float64))
    >>> torch.diagonal(g.frechet_mean(x))  # ((1 + 3) / 2)^2
    tensor([4., 4.], dtype=torch.float64)
    >>> g.distance(x[0], x[1])  # sqrt(2) * |3 - 1|
    tensor(2.8284, dtype=torch.float64)
    """

    name = "bw"

    def __init__(self, *, theta: float = 1.0, karcher_steps: int = 50, tol: float = 1e-10) -> None:
        super().__init__()
        self.theta = check_theta(theta)
        self.karcher_steps = check_steps(karcher_steps)
        self.tol = check_tol(tol)

    def extra_repr(self) -> str:
        return f"theta={self.theta:g}, karcher_steps={self.karcher_steps}"

    # -- chart ------------------------------------------------------------
    @property
    def _encode_factorizes(self) -> bool:
        # a matrix power per call; GBW's whitening alone (θ = 1) gains nothing from stacking (A/B)
        return self.theta != 1.0

    def _power(self, x: Tensor, p: float) -> Tensor:
        return x if p == 1.0 else sym_powm(x, p, check=False)

    def encode(self, x: Tensor) -> Tensor:
        return self._power(x, self.theta)

    def decode(self, z: Tensor) -> Tensor:
        return self._power(z, 1.0 / self.theta)

    def _encode_and_check(self, x: Tensor, name: str) -> Tensor:
        """The power's eigendecomposition vouches for positive definiteness when θ ≠ 1."""
        if self.theta == 1.0:
            return super()._encode_and_check(x, name)
        return self._whiten(sym_powm(x, self.theta, check=True))

    def _whiten(self, x: Tensor) -> Tensor:
        r"""The chart after the power: the identity for BW, :math:`M^{-1/2} \cdot M^{-1/2}` for GBW."""
        return x

    def neutral(self, dim: int, *, dtype=None, device=None) -> Tensor:
        r"""The identity matrix of the chart (for GBW it decodes to :math:`M^{1/\theta}`, not to I)."""
        return torch.eye(dim, dtype=dtype, device=device)

    # -- BW maps in coordinates ------------------------------------------
    @staticmethod
    def _bw_log(z: Tensor, base: Tensor) -> Tensor:
        r""":math:`\mathrm{Log}_c(z) = (cz)^{1/2} + (zc)^{1/2} - 2c` for base :math:`c` (in the chart)."""
        return bw_chart_log(base, z)

    @staticmethod
    def _bw_exp(v: Tensor, base: Tensor) -> Tensor:
        r""":math:`\mathrm{Exp}_c(V) = (I + H) c (I + H)`, :math:`cH + Hc = V` (in the chart)."""
        return bw_chart_exp(base, v)

    @classmethod
    def _log_tangent_at_identity(cls, z: Tensor, mean: Tensor) -> Tensor:
        r""":math:`\Gamma_{\mu \to I}\, \mathrm{Log}_\mu(z)`, a tangent vector at I.

        For a constant :math:`\mu` (a batch norm's detached statistics) the
        whole map is taken in :math:`\mu`'s eigenbasis
        (:func:`_log_to_identity_in_mean_basis`); otherwise it is the log and
        the pair operator, each with its own backward in :math:`\mu`.
        """
        v, basis = cls._log_tangent_at_identity_in_basis(z, mean)
        return v if basis is None else basis @ v @ basis.mT

    @classmethod
    def _log_tangent_at_identity_in_basis(cls, z: Tensor, mean: Tensor) -> tuple[Tensor, Tensor | None]:
        r"""``(V, O)``: :math:`O V O^\top` is :meth:`_log_tangent_at_identity` (``O`` is ``None`` for the identity)."""
        if torch.is_grad_enabled() and mean.requires_grad:
            return apply_pair_operator(mean, cls._bw_log(z, mean), BW_TO_IDENTITY), None
        return _log_to_identity_in_mean_basis(z, mean)

    @staticmethod
    def _exp_step(v: Tensor, point: Tensor, basis: Tensor | None = None) -> Tensor:
        r""":math:`I + H`, :math:`H = \mathcal{L}_B[\Gamma_{I \to B} v]` (for ``v`` given in an
        orthogonal ``basis`` :math:`O`, of :math:`O v O^\top`): :math:`\mathrm{Exp}_B(\Gamma v) = (I + H) B (I + H)`."""
        h = apply_pair_operator(point, v, BW_EXP_FACTOR, basis=basis)
        return _eye_like(h) + h

    @classmethod
    def _exp_from_identity(cls, v: Tensor, point: Tensor, basis: Tensor | None = None) -> Tensor:
        r""":math:`\mathrm{Exp}_B(\Gamma_{I \to B} v) = (I + H) B (I + H)` (see :meth:`_exp_step`)."""
        step = cls._exp_step(v, point, basis)
        return sym(step @ point @ step.transpose(-1, -2))

    @staticmethod
    def _coords_exp_neutral(v: Tensor) -> Tensor:
        r"""BW exponential at the chart's identity, :math:`(I + v/2)^2`."""
        half = _eye_like(v) + 0.5 * v
        return sym(half @ half)

    @staticmethod
    def _coords_log_neutral(c: Tensor) -> Tensor:
        r"""BW logarithm at the chart's identity, :math:`2 c^{1/2} - 2I`."""
        return 2.0 * sym_sqrtm(c, check=False) - 2.0 * _eye_like(c)

    def _sq_dist(self, x: Tensor, y: Tensor) -> Tensor:
        sx = sym_sqrtm(x, check=False)
        cross = _trace(sym_sqrtm(sx @ y @ sx, check=False))  # it symmetrizes
        return torch.clamp(_trace(x) + _trace(y) - 2.0 * cross, min=0) / self.theta**2

    # -- statistics -------------------------------------------------------
    def mean(
        self,
        z: Tensor,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
        init: Tensor | None = None,
        steps: int | None = None,
    ) -> Tensor:
        r"""Barycenter by the fixed point of Álvarez-Esteban et al. (2016).

        :math:`G \leftarrow G^{-1/2}\big(\sum_b w_b (G^{1/2} z_b G^{1/2})^{1/2}
        \big)^2 G^{-1/2}`, from the arithmetic mean unless ``init`` is given.
        """
        steps = self.karcher_steps if steps is None else check_steps(steps)
        w = normalise_weights(z, weights, 2)
        g = weighted_sum(z, w, reduce, 2) if init is None else init
        for step in range(steps):
            # with G = L Lᵀ: G^-½ (Σ w (G^½ z G^½)^½)² G^-½ = L⁻ᵀ (Σ w (Lᵀ z L)^½)² L⁻¹
            # (G^½ = L Q, Q orthogonal): a Cholesky factorization, no eigendecomposition of G
            factor, inverse = factor_and_inverse(g)
            avg = weighted_sum(sym_sqrtm(factor.mT @ z @ factor, check=False), w, reduce, 2)  # it symmetrizes
            new = sym(inverse.mT @ avg @ avg @ inverse)
            if self.tol > 0 and step < steps - 1:  # the last step has nothing left to stop
                moved = torch.linalg.matrix_norm(new - g) / torch.linalg.matrix_norm(g)
                if _converged(moved, self.tol):
                    return new
            g = new
        return g

    def variance(
        self,
        z: Tensor,
        mean: Tensor | None = None,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
    ) -> Tensor:
        ref = _eye_like(z) if mean is None else mean
        d2 = self._sq_dist(ref, z)  # [B, *batch]; ref broadcasts
        return weighted_sum(d2, normalise_weights(z, weights, 2), reduce, 0)

    # -- group steps ------------------------------------------------------
    def centre(self, z: Tensor, mean: Tensor) -> Tensor:
        return self._coords_exp_neutral(self._log_tangent_at_identity(z, mean))

    def scale(self, z: Tensor, factor: Tensor) -> Tensor:
        f = factor.unsqueeze(-1).unsqueeze(-1)
        return self._coords_exp_neutral(f * self._coords_log_neutral(z))

    def bias(self, z: Tensor, point: Tensor) -> Tensor:
        return self._exp_from_identity(self._coords_log_neutral(z), point)

    def interpolate(self, a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
        r""":math:`(1-t)^2 a + t^2 b + t(1-t)\big((ab)^{1/2} + (ba)^{1/2}\big)`."""
        if isinstance(t, torch.Tensor):
            t = t.unsqueeze(-1).unsqueeze(-1)
        root = bw_cross_root(a, b)  # (ab)^{1/2}
        cross = root + root.transpose(-1, -2)
        return sym((1 - t) ** 2 * a + t**2 * b + t * (1 - t) * cross)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_sqrt(self._sq_dist(self.encode(x), self.encode(y)))

    # -- Riemannian maps on SPD matrices ----------------------------------------
    def _metric_or_none(self) -> Tensor | None:
        return None

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        return bw_log(x, y, theta=self.theta, metric=self._metric_or_none())

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        return bw_exp(x, v, theta=self.theta, metric=self._metric_or_none())

    def transport(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """See :func:`geonorm.spd.tangent.bw_transport` for which transport this is."""
        return bw_transport(x, y, v, theta=self.theta, metric=self._metric_or_none())

    def _chart_image_of_origin(self, like: Tensor) -> Tensor:
        """The chart image of the identity matrix (``I`` for BW)."""
        return _eye_like(like)

    def _chart_differential(self, v: Tensor, inverse: bool = False) -> Tensor:
        """The chart's differential at the identity (``θ v``) or its inverse."""
        return v / self.theta if inverse else self.theta * v

    def log_identity(self, x: Tensor) -> Tensor:
        base = self._chart_image_of_origin(x)
        return self._chart_differential(self._bw_log(self.encode(x), base), inverse=True)

    def exp_identity(self, v: Tensor) -> Tensor:
        base = self._chart_image_of_origin(v)
        return self.decode(self._bw_exp(self._chart_differential(v), base))

    def inner_identity(self, u: Tensor, v: Tensor) -> Tensor:
        r""":math:`\tfrac{1}{2\theta^2}\mathrm{tr}(\mathcal{L}_c[d\varphi\,u]\; d\varphi\,v)` at :math:`c = \varphi(I)`."""
        du, dv = self._chart_differential(u), self._chart_differential(v)
        base = self._chart_image_of_origin(u)
        lu = solve_lyapunov(base.expand_as(du), sym(du), check=False)
        return 0.5 * (lu * dv).sum((-2, -1)) / self.theta**2

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
        r"""Work in the tangent space at I: centre, scale and bias share one square root.

        The centred tangent vectors :math:`V_b = \Gamma_{\mu\to I}
        \mathrm{Log}_\mu z_b` give the variance :math:`\sum_b w_b \tfrac14
        \lVert V_b \rVert_F^2 / \theta^2` and the output
        :math:`\mathrm{Exp}_B(\Gamma_{I\to B}\, s V_b)`, equal to composing
        :meth:`centre`, :meth:`scale` and :meth:`bias` wherever
        :math:`\mathrm{Exp}_I` is invertible.
        """
        v, basis, batch_var = self._scaled_tangent(z, mean, target_std, eps, var, detach_var, reduce)
        return self._exp_from_identity(v, point, basis), batch_var

    def _scaled_tangent(self, z, mean, target_std, eps, var, detach_var, reduce):
        r"""``(s V, O, batch variance or None)`` of :meth:`normalize`, with :math:`O (s V) O^\top = s\,\Gamma_{\mu\to I} \mathrm{Log}_\mu z`."""
        # [B, *batch, n, n], in the mean's eigenbasis when that is cheaper (norms are the same)
        v, basis = self._log_tangent_at_identity_in_basis(z, mean)
        batch_var = None
        if target_std is not None:
            if var is None:
                vv = v.detach() if detach_var else v
                d2 = 0.25 * vv.square().sum((-2, -1)) / self.theta**2
                batch_var = weighted_sum(d2, normalise_weights(z, None, 2), reduce, 0)
                var = batch_var
            v = v * (target_std / torch.sqrt(var + eps)).unsqueeze(-1).unsqueeze(-1)
        return v, basis, batch_var


class GeneralizedBuresWasserstein(BuresWasserstein):
    r"""GBW with a learnable SPD metric parameter :math:`M` (Han et al. 2021; GBWBN).

    Chart: :math:`P \mapsto M^{-1/2} P^\theta M^{-1/2}`;
    :math:`d_M(P, Q) = d_{BW}(M^{-1/2} P^\theta M^{-1/2}, M^{-1/2} Q^\theta M^{-1/2}) / |\theta|`.
    :math:`M = I` is BW.

    Parameters
    ----------
    n : int
        Matrix size.
    channels : int, optional
        One :math:`M` per channel (shape ``[channels, n, n]``); default one.
    theta, karcher_steps, tol
        As for :class:`BuresWasserstein`.
    learn_metric : bool
        Make :math:`M` a geoopt ``ManifoldParameter`` on the SPD manifold
        (train it with ``geoopt.optim.RiemannianAdam``); otherwise a buffer.
    """

    name = "gbw"

    def __init__(
        self,
        n: int,
        *,
        channels: int | None = None,
        theta: float = 1.0,
        karcher_steps: int = 50,
        tol: float = 1e-10,
        learn_metric: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(theta=theta, karcher_steps=karcher_steps, tol=tol)
        check_int(n, "n")
        shape = (n, n) if channels is None else (channels, n, n)
        eye = torch.eye(n, device=device, dtype=dtype).expand(shape).clone()
        if learn_metric:
            self.metric = geoopt.ManifoldParameter(eye, manifold=geoopt.SymmetricPositiveDefinite())
        else:
            self.register_buffer("metric", eye)
        self.learn_metric = learn_metric
        self._shared_roots: dict | None = None  # the roots one forward shares (forward_scope)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", metric_shape={list(self.metric.shape)}, learn_metric={self.learn_metric}"

    def _roots(self, like: Tensor) -> tuple[Tensor, Tensor]:
        r""":math:`M^{1/2}, M^{-1/2}` in ``like``'s dtype, differentiable in :math:`M`.

        A batch norm's forward needs them four or five times (input, bias,
        output, running mean) and :math:`M` only changes with an optimizer
        step, so the eigendecomposition is kept until :math:`M` changes
        (its version counter, or its storage: the cache holds the storage it
        was computed from, so that address cannot be reused). Inside
        :meth:`forward_scope` (one batch-norm forward) the roots themselves,
        with their autograd node, are shared by the calls with the same
        dtype, and a call without grad mode (the running mean's) takes them
        detached (the same values); outside it each call builds its own node.
        Nothing is cached under ``torch.compile``.
        """
        m = self.metric.to(like.dtype)
        if torch.compiler.is_compiling():
            return sym_sqrtm_invsqrtm(m, check=False)
        source = self.metric.detach()
        key = (source._version, source.data_ptr(), like.dtype)
        shared = getattr(self, "_shared_roots", None)  # absent in a module pickled before it existed
        grad = torch.is_grad_enabled()
        hit = None if shared is None else shared.get(key)
        if hit is not None and (hit[0] or not grad):  # roots made without grad mode serve no graph
            return hit[1] if grad else (hit[1][0].detach(), hit[1][1].detach())
        cache = getattr(self, "_metric_eig", None)
        if cache is None or cache[0] != key:
            cache = self._metric_eig = (key, source, eigh(m))
        roots = sym_sqrtm_invsqrtm(m, check=False, eig=cache[2])
        if shared is not None:
            shared[key] = (grad, roots)
        return roots

    def forward_scope(self) -> contextlib.AbstractContextManager:
        r"""Share :math:`M^{\pm 1/2}` (and their backward) across one forward's calls (not under compile)."""
        if torch.compiler.is_compiling():
            return contextlib.nullcontext()
        return self._sharing_roots()

    @contextlib.contextmanager
    def _sharing_roots(self):
        outer = getattr(self, "_shared_roots", None)
        self._shared_roots = {}
        try:
            yield
        finally:
            self._shared_roots = outer

    def _whiten(self, x: Tensor) -> Tensor:
        _, isq = self._roots(x)
        return sym(isq @ x @ isq)

    def encode(self, x: Tensor) -> Tensor:
        return self._whiten(self._power(x, self.theta))

    def decode(self, z: Tensor) -> Tensor:
        sq, _ = self._roots(z)
        return self._power(sym(sq @ z @ sq), 1.0 / self.theta)

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
        r""":meth:`decode` of :meth:`normalize`: with :math:`S = M^{1/2}(I + H)`, :math:`(S B S^\top)^{1/\theta}`.

        :math:`M^{1/2}` is folded into the bias step's factor, so the output
        costs three batched products instead of four (and their backward).
        """
        v, basis, batch_var = self._scaled_tangent(z, mean, target_std, eps, var, detach_var, reduce)
        sq, _ = self._roots(v)
        s = sq @ self._exp_step(v, point, basis)  # M^1/2 (I + H)
        return self._power(sym(s @ point @ s.transpose(-1, -2)), 1.0 / self.theta), batch_var

    def _metric_or_none(self) -> Tensor | None:
        return self.metric

    def _chart_image_of_origin(self, like: Tensor) -> Tensor:
        """:math:`M^{-1}`, the chart image of the identity matrix."""
        return torch.linalg.inv(self.metric.to(like.dtype))

    def _chart_differential(self, v: Tensor, inverse: bool = False) -> Tensor:
        sq, isq = self._roots(v)
        if inverse:
            return sym(sq @ v @ sq) / self.theta
        return self.theta * sym(isq @ v @ isq)
