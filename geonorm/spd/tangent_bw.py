r"""Bures–Wasserstein log, exp, inner product and parallel transport at any base point.

The (generalized, power-deformed) Bures–Wasserstein metric is the pullback of
the BW metric :math:`g_P(U, V) = \tfrac12 \mathrm{tr}(\mathcal{L}_P[U]\, V)`
(:math:`\mathcal{L}_P[U]` solves :math:`PL + LP = U`) by the chart
:math:`\psi(P) = M^{-1/2} P^\theta M^{-1/2}`, divided by :math:`\theta^2`
(Han et al. 2021; Wang et al., CVPR 2025, GBWBN), as in
:mod:`geonorm.spd.bw`. In the chart (Malagò, Montrucchio & Pistone, Inf.
Geom. 2018; Bhatia, Jain & Lim 2019),

.. math::

    \mathrm{Log}_P(Q) = (PQ)^{1/2} + (QP)^{1/2} - 2P, \qquad
    \mathrm{Exp}_P(V) = (I + \mathcal{L}_P[V])\, P\, (I + \mathcal{L}_P[V]) .

Parallel transport has no closed form. :func:`bw_transport` integrates the
Levi-Civita parallel-transport equation :math:`\dot w = -\Gamma_{\gamma}(\dot\gamma, w)`
along the geodesic with the classical Runge–Kutta scheme (RK4). The
Christoffel map follows from the Koszul formula with
:math:`D_X g(Y, Z) = -\tfrac12 \mathrm{tr}\big(X(L_Y L_Z + L_Z L_Y)\big)`,
:math:`L_\bullet = \mathcal{L}_P[\bullet]`:

.. math::

    \Gamma_P(X, Y) = -\tfrac12\big(X L_Y + L_Y X + Y L_X + L_X Y\big)
        + \tfrac12 (S P + P S), \qquad S = L_X L_Y + L_Y L_X,

which gives :math:`\Gamma_P(V, V) = -2 L_V P L_V = -\ddot\gamma(0)` on the
geodesic :math:`\gamma(t) = (I + tL_V) P (I + tL_V)`; along it
:math:`\mathcal{L}_{\gamma(t)}[\dot\gamma(t)] = H (I + tH)^{-1}` with
:math:`H = \mathcal{L}_P[\mathrm{Log}_P Q]`.
"""

from __future__ import annotations

import torch

from .._checks import check_int, check_spd
from .._numerics import compute_dtype
from ..linalg import cholesky, solve_lyapunov, sym, sym_sqrtm, sym_sqrtm_invsqrtm
from ._params import check_theta
from ._tangent_common import check_points, check_tangents, half_in_float32, power, power_differential

Tensor = torch.Tensor

__all__ = [
    "bw_log",
    "bw_exp",
    "bw_transport",
    "bw_inner",
    "bw_christoffel",
    "bw_chart_log",
    "bw_chart_exp",
]


def _eye_like(x: Tensor) -> Tensor:
    return torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)


class _Chart:
    r"""The chart :math:`\psi(P) = M^{-1/2} P^\theta M^{-1/2}` and its differential."""

    def __init__(self, theta: float, metric: Tensor | None, like: Tensor) -> None:
        self.theta = theta
        if metric is None:
            self.sq = self.isq = None
        else:
            self.sq, self.isq = sym_sqrtm_invsqrtm(metric.to(like.dtype), check=False)

    def _congruence(self, m: Tensor | None, z: Tensor) -> Tensor:
        return z if m is None else sym(m @ z @ m)

    def point(self, x: Tensor) -> Tensor:
        return self._congruence(self.isq, power(x, self.theta))

    def inverse_point(self, z: Tensor) -> Tensor:
        return power(self._congruence(self.sq, z), 1.0 / self.theta)

    def tangent(self, x: Tensor, v: Tensor) -> Tensor:
        """:math:`D\\psi_x v = M^{-1/2} D(\\cdot)^\\theta_x[v] M^{-1/2}`."""
        return self._congruence(self.isq, power_differential(x, v, self.theta))

    def inverse_tangent(self, x: Tensor, w: Tensor) -> Tensor:
        return power_differential(x, self._congruence(self.sq, w), self.theta, inverse=True)


def _check(metric: Tensor | None, **tangents: Tensor) -> None:
    if metric is not None:
        check_spd(metric, "metric")
    check_tangents(**tangents)


def bw_chart_log(p: Tensor, q: Tensor) -> Tensor:
    r"""Plain BW log :math:`\mathrm{Log}_P(Q) = (PQ)^{1/2} + (QP)^{1/2} - 2P` (no chart, no checks).

    The same map as ``BuresWasserstein._bw_log(q, p)`` of :mod:`geonorm.spd.bw`, public
    here so that both modules can share one copy.

    Examples
    --------
    >>> p = torch.eye(2, dtype=torch.float64)
    >>> bw_chart_log(p, 4.0 * p)  # 2 (Q^{1/2} - I) at P = I
    tensor([[2., 0.],
            [0., 2.]], dtype=torch.float64)
    """
    root = bw_cross_root(p, q)  # (P Q)^{1/2}
    return root + root.transpose(-1, -2) - 2.0 * p


def factor_and_inverse(p: Tensor) -> tuple[Tensor, Tensor]:
    """Lower Cholesky factor :math:`L` of SPD ``p`` ``[..., n, n]`` and :math:`L^{-1}`."""
    work = compute_dtype(p.dtype)  # no half-precision triangular solve
    factor = cholesky(p.to(work), check=False)
    eye = torch.eye(p.shape[-1], dtype=work, device=factor.device).expand_as(factor)
    inverse = torch.linalg.solve_triangular(factor, eye, upper=False)
    return factor.to(p.dtype), inverse.to(p.dtype)


def bw_cross_root(p: Tensor, q: Tensor) -> Tensor:
    r""":math:`(PQ)^{1/2} = L\,(L^\top Q L)^{1/2} L^{-1}` for SPD :math:`P = L L^\top` and :math:`Q`.

    The principal square root of :math:`PQ` (similar to an SPD matrix): the
    right side squares to :math:`PQ` and has positive eigenvalues, so it is
    the same matrix as :math:`P^{1/2} (P^{1/2} Q P^{1/2})^{1/2} P^{-1/2}`,
    with a Cholesky factorization of :math:`P` instead of an
    eigendecomposition. One batched square root of :math:`L^\top Q L`.

    >>> p = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(bw_cross_root(p, p))
    tensor([1., 4.], dtype=torch.float64)
    """
    factor, inverse = factor_and_inverse(p)
    return factor @ sym_sqrtm(sym(factor.mT @ q @ factor), check=False) @ inverse


@half_in_float32
def bw_log(
    x: Tensor, y: Tensor, *, theta: float = 1.0, metric: Tensor | None = None, check: bool = True
) -> Tensor:
    r"""Generalized θ-Bures–Wasserstein log at ``x``.

    .. math::

        \mathrm{Log}_x(y) = (D\psi_x)^{-1}\big((PQ)^{1/2} + (QP)^{1/2} - 2P\big),
        \qquad P = \psi(x),\ Q = \psi(y),

    pyRiemann's ``log_map_wasserstein`` for :math:`\theta = 1, M = I`.

    Parameters
    ----------
    x, y : Tensor
        ``[..., n, n]`` SPD matrices (broadcasting).
    theta : float
        Power deformation (non-zero).
    metric : Tensor, optional
        ``[..., n, n]`` SPD parameter :math:`M` of the generalized metric;
        ``None`` is :math:`M = I`.
    check : bool
        Validate the inputs.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> y = torch.diag(torch.tensor([4.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(bw_log(x, y))  # 2 (sqrt(x y) - x) for commuting x, y
    tensor([2., 0.], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x, y=y)
        _check(metric)
    chart = _Chart(theta, metric, x)
    return chart.inverse_tangent(x, bw_chart_log(chart.point(x), chart.point(y)))


def bw_chart_exp(p: Tensor, w: Tensor) -> Tensor:
    r"""Plain BW exp :math:`\mathrm{Exp}_P(W) = (I + H) P (I + H)`, :math:`PH + HP = W` (no checks).

    The same map as ``BuresWasserstein._bw_exp(w, p)`` of :mod:`geonorm.spd.bw`.

    Examples
    --------
    >>> p = torch.eye(2, dtype=torch.float64)
    >>> bw_chart_exp(p, 2.0 * p)  # (I + I) I (I + I)
    tensor([[4., 0.],
            [0., 4.]], dtype=torch.float64)
    """
    h = solve_lyapunov(p.expand_as(w), sym(w), check=False)
    step = _eye_like(h) + h
    return sym(step @ p @ step)


@half_in_float32
def bw_exp(
    x: Tensor, v: Tensor, *, theta: float = 1.0, metric: Tensor | None = None, check: bool = True
) -> Tensor:
    r"""Generalized θ-Bures–Wasserstein exp at ``x``.

    .. math::

        \mathrm{Exp}_x(v) = \psi^{-1}\big((I + H) P (I + H)\big),
        \qquad P = \psi(x),\ PH + HP = D\psi_x v .

    It is the Riemannian exponential while :math:`I + H` is positive
    definite (inside the cut locus); beyond it the formula is the image of
    the straight line in the quotient :math:`P = AA^\top`.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(bw_exp(x, torch.diag(torch.tensor([2.0, 0.0], dtype=torch.float64))))
    tensor([4., 4.], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x)
        _check(metric, v=v)
    chart = _Chart(theta, metric, x)
    return chart.inverse_point(bw_chart_exp(chart.point(x), chart.tangent(x, v)))


@half_in_float32
def bw_inner(
    x: Tensor, u: Tensor, v: Tensor, *, theta: float = 1.0, metric: Tensor | None = None
) -> Tensor:
    r"""Generalized θ-BW inner product :math:`\tfrac{1}{2\theta^2}\mathrm{tr}(\mathcal{L}_P[U]\, V)`,
    :math:`P = \psi(x)`, :math:`U = D\psi_x u`, :math:`V = D\psi_x v`; shape ``[...]``.

    Examples
    --------
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> bw_inner(x, torch.eye(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    tensor(0.5000, dtype=torch.float64)
    """
    theta = check_theta(theta)
    chart = _Chart(theta, metric, x)
    p = chart.point(x)
    du, dv = chart.tangent(x, u), chart.tangent(x, v)
    lu = solve_lyapunov(p.expand_as(du), sym(du), check=False)
    return 0.5 * (lu * dv).sum((-2, -1)) / theta**2


def _gamma(p: Tensor, x: Tensor, lx: Tensor, y: Tensor) -> Tensor:
    """Γ_P(X, Y) given :math:`L_X = \\mathcal{L}_P[X]` (see the module notes)."""
    ly = solve_lyapunov(p.expand_as(y), y, check=False)
    s = lx @ ly
    s = s + s.transpose(-1, -2)  # L_X L_Y + L_Y L_X
    a = x @ ly + y @ lx
    ps = p @ s
    return -0.5 * (a + a.transpose(-1, -2)) + 0.5 * (ps + ps.transpose(-1, -2))


def bw_christoffel(p: Tensor, x: Tensor, y: Tensor) -> Tensor:
    r"""The Bures–Wasserstein Christoffel map :math:`\Gamma_P(X, Y)` (module notes).

    The Levi-Civita connection is :math:`\nabla_X Y = DY[X] + \Gamma_P(X, Y)`;
    ``p`` ``[..., n, n]`` SPD, ``x``, ``y`` symmetric, broadcasting.

    Examples
    --------
    >>> p = torch.eye(2, dtype=torch.float64)
    >>> v = torch.diag(torch.tensor([2.0, 0.0], dtype=torch.float64))
    >>> torch.diagonal(bw_christoffel(p, v, v))  # -2 L_V P L_V, L_V = V / 2
    tensor([-2., 0.], dtype=torch.float64)
    """
    x, y = sym(x), sym(y)
    lx = solve_lyapunov(p.expand_as(x), x, check=False)
    return _gamma(p, x, lx, y)


def _transport_chart(p: Tensor, q: Tensor, w: Tensor, steps: int) -> Tensor:
    """RK4 for :math:`\\dot w = -\\Gamma_{\\gamma(t)}(\\dot\\gamma(t), w)` on :math:`t \\in [0, 1]`."""
    h_mat = solve_lyapunov(p, bw_chart_log(p, q), check=False)  # H = L_P[Log_P Q]
    eye = _eye_like(p)

    def field(t: float, w: Tensor) -> Tensor:
        a = eye + t * h_mat
        gamma = sym(a @ p @ a)
        dot = h_mat @ p @ a
        dot = dot + dot.transpose(-1, -2)  # γ'(t) = H P A + A P H
        l_dot = sym(torch.linalg.solve(a, h_mat))  # L_γ[γ'] = H (I + tH)^{-1}
        return -_gamma(gamma, dot, l_dot, w)

    dt = 1.0 / steps
    for k in range(steps):
        t = k * dt
        k1 = field(t, w)
        k2 = field(t + 0.5 * dt, w + 0.5 * dt * k1)
        k3 = field(t + 0.5 * dt, w + 0.5 * dt * k2)
        k4 = field(t + dt, w + dt * k3)
        w = w + (dt / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return sym(w)


@half_in_float32
def bw_transport(
    x: Tensor,
    y: Tensor,
    v: Tensor,
    *,
    theta: float = 1.0,
    metric: Tensor | None = None,
    steps: int = 16,
    check: bool = True,
) -> Tensor:
    r"""Levi-Civita parallel transport of the generalized θ-BW metric, by RK4.

    Transports ``v`` from ``x`` to ``y`` along the geodesic,
    :math:`(D\psi_y)^{-1}\, \Pi_{P \to Q}\, D\psi_x`, where :math:`\Pi` solves
    :math:`\dot w = -\Gamma_{\gamma(t)}(\dot\gamma(t), w)` on the chart's
    geodesic from :math:`P = \psi(x)` to :math:`Q = \psi(y)` with ``steps``
    classical Runge–Kutta steps (four Lyapunov solves each). This is the
    Levi-Civita transport up to the RK4 error, which falls as
    :math:`\mathrm{steps}^{-4}` (the tests check the order); it is *not* the
    isometry through the identity :math:`T_P \to T_I \to T_Q` that GBWBN
    uses for centring (that map is an isometry too but does not send
    :math:`\mathrm{Log}_x y` to :math:`-\mathrm{Log}_y x`).

    Parameters
    ----------
    x, y : Tensor
        ``[..., n, n]`` SPD end points (broadcasting).
    v : Tensor
        ``[..., n, n]`` symmetric tangent vectors at ``x``.
    theta, metric
        As for :func:`bw_log`.
    steps : int
        RK4 steps; the relative error of the result is about
        :math:`C\,\mathrm{steps}^{-4}` with :math:`C` growing with the
        distance from ``x`` to ``y`` relative to their eigenvalues.
    check : bool
        Validate the inputs.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> y = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64))
    >>> v = torch.diag(torch.tensor([1.0, 1.0], dtype=torch.float64))
    >>> torch.diagonal(bw_transport(x, y, v))  # diagonal: v * sqrt(y / x)
    tensor([2.0000, 1.5000], dtype=torch.float64)
    """
    theta = check_theta(theta)
    steps = check_int(steps, "steps")
    if check:
        check_points(x=x, y=y)
        _check(metric, v=v)
    chart = _Chart(theta, metric, x)
    p, q = chart.point(x), chart.point(y)
    shape = torch.broadcast_shapes(p.shape, q.shape)
    p, q = p.expand(shape), q.expand(shape)
    w = chart.tangent(x, v)
    out = _transport_chart(p, q, w.expand(torch.broadcast_shapes(shape, w.shape)), steps)
    return chart.inverse_tangent(y, out)
