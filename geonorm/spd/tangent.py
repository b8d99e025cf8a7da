r"""Riemannian log, exp, parallel transport and inner product at any base point.

Pure functions for every SPD geometry of :mod:`geonorm.spd`, batched over
``[..., n, n]`` with broadcasting base points (one mean per channel, a batch
of points), differentiable, and finite at repeated eigenvalues (every
eigen-function and differential goes through :mod:`geonorm.linalg`'s
Daleckii–Krein routines). They give tangent-space features at the batch mean,
as pyRiemann's ``TangentSpace`` does, for every metric.

Each geometry is a pullback :math:`g^\varphi_x(u, v) = c\, g_{\varphi(x)}
(D\varphi_x u, D\varphi_x v)` of a simpler metric by a chart :math:`\varphi`
(the power :math:`P^\theta`, the matrix logarithm, the log-Cholesky map) with a
constant :math:`c = 1/\theta^2`. A constant factor does not change the
Levi-Civita connection, and a diffeomorphism carries it over, so

.. math::

    \mathrm{Log}_x(y) = (D\varphi_x)^{-1}\, \mathrm{Log}_{\varphi(x)}(\varphi(y)),
    \quad \mathrm{Exp}_x(v) = \varphi^{-1}\big(\mathrm{Exp}_{\varphi(x)}(D\varphi_x v)\big),
    \quad \Gamma_{x \to y} = (D\varphi_y)^{-1}\, \Gamma_{\varphi(x) \to \varphi(y)}\, D\varphi_x .

The Bures–Wasserstein maps live in :mod:`geonorm.spd.tangent_bw` and are
re-exported here.
"""

from __future__ import annotations

import torch

from ..linalg import cholesky, cholesky_exp, cholesky_log, sym, sym_expm, sym_logm, sym_powm
from ..linalg import sym_sqrtm_invsqrtm
from ..linalg.differential import spectral_differential, spectral_differential_inverse
from ..linalg.spectral import log_function
from ._params import check_alpha_beta, check_theta
from .inner import alpha_beta_inner
from ._tangent_common import (
    half_in_float32,
    check_points,
    check_tangents,
    power,
    power_differential,
)
from .tangent_bw import bw_exp, bw_inner, bw_log, bw_transport

Tensor = torch.Tensor

__all__ = [
    "aim_log",
    "aim_exp",
    "aim_transport",
    "aim_inner",
    "lem_log",
    "lem_exp",
    "lem_transport",
    "lem_inner",
    "lcm_log",
    "lcm_exp",
    "lcm_transport",
    "lcm_inner",
    "bw_log",
    "bw_exp",
    "bw_transport",
    "bw_inner",
]

_LOG = log_function()


# -- affine-invariant -----------------------------------------------------------------


@half_in_float32
def aim_log(x: Tensor, y: Tensor, *, theta: float = 1.0, check: bool = True) -> Tensor:
    r"""Riemannian log of the (θ, α, β)-affine-invariant metric at ``x``.

    .. math::

        \mathrm{Log}_x(y) = (D\varphi_x)^{-1}\big(P^{1/2} \log(P^{-1/2} Q P^{-1/2})
        P^{1/2}\big), \qquad P = x^\theta,\ Q = y^\theta,\ \varphi(x) = x^\theta .

    The weights α, β of Thanwerdas & Pennec (2019) do not enter: every
    (α, β)-affine-invariant metric has the same Levi-Civita connection as
    the standard one (Thanwerdas & Pennec, "Is affine-invariance well defined
    on SPD matrices? A principled continuum of metrics", GSI 2019; the metric
    is the product metric of :math:`\mathrm{SPD}(n) \cong \mathrm{SPD}_1(n)
    \times \mathbb{R}_{>0}` (unit determinant times scale) with the factors
    weighted by α and :math:`\alpha + n\beta`, and reweighting the factors of a
    product metric keeps its connection). So log, exp and parallel transport
    are those of the θ-deformed AIM (Chen et al., ICLR 2024), and only the
    inner product (:func:`aim_inner`) sees α, β; the tests check the
    consequence :math:`\lVert \mathrm{Log}_x y \rVert_{\alpha,\beta} =
    d_{\alpha,\beta}(x, y)` for β ≠ 0.

    Parameters
    ----------
    x : Tensor
        ``[..., n, n]`` SPD base points.
    y : Tensor
        ``[..., n, n]`` SPD points (broadcasting against ``x``).
    theta : float
        Power deformation (non-zero).
    check : bool
        Validate the inputs (one Cholesky per point); internal callers that
        validated already pass ``False``.

    Returns
    -------
    Tensor
        ``[..., n, n]`` symmetric tangent vectors at ``x``.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> y = torch.diag(torch.tensor([2.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(aim_log(x, y))  # x log(x^{-1} y) for commuting x, y
    tensor([0.6931, 0.0000], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x, y=y)
    p, q = power(x, theta), power(y, theta)
    sq, isq = sym_sqrtm_invsqrtm(p, check=False)
    w = sym(sq @ sym_logm(sym(isq @ q @ isq), check=False) @ sq)  # Log^AIM_P(Q)
    return power_differential(x, w, theta, inverse=True)


@half_in_float32
def aim_exp(x: Tensor, v: Tensor, *, theta: float = 1.0, check: bool = True) -> Tensor:
    r"""Riemannian exp of the (θ, α, β)-affine-invariant metric at ``x``.

    .. math::

        \mathrm{Exp}_x(v) = \big(P^{1/2} \exp(P^{-1/2} W P^{-1/2}) P^{1/2}\big)^{1/\theta},
        \qquad P = x^\theta,\ W = D\varphi_x v .

    See :func:`aim_log` for why α, β do not enter.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> v = torch.diag(torch.tensor([0.5, 0.0], dtype=torch.float64))
    >>> torch.diagonal(aim_exp(x, v, theta=0.5))  # (1 * exp(0.5 * 0.5))^2, 4
    tensor([1.6487, 4.0000], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x)
        check_tangents(v=v)
    p = power(x, theta)
    w = power_differential(x, v, theta)
    sq, isq = sym_sqrtm_invsqrtm(p, check=False)
    return power(sym(sq @ sym_expm(sym(isq @ w @ isq), check=False) @ sq), 1.0 / theta)


@half_in_float32
def aim_transport(
    x: Tensor, y: Tensor, v: Tensor, *, theta: float = 1.0, check: bool = True
) -> Tensor:
    r"""Parallel transport of the (θ, α, β)-AIM along the geodesic from ``x`` to ``y``.

    .. math::

        \Gamma_{x \to y}(v) = (D\varphi_y)^{-1}\big(E\, (D\varphi_x v)\, E^\top\big),
        \qquad E = P^{1/2} (P^{-1/2} Q P^{-1/2})^{1/2} P^{-1/2},

    with :math:`P = x^\theta, Q = y^\theta` (Sra & Hosseini, SIAM J. Optim.
    2015, Eq. 3.4, for θ = 1; geoopt's ``SymmetricPositiveDefinite.transp``).
    An isometry :math:`T_x \to T_y` for every (α, β).

    Examples
    --------
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> y = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64))
    >>> aim_transport(x, y, torch.ones(2, 2, dtype=torch.float64))  # y^{1/2} v y^{1/2}
    tensor([[4., 6.],
            [6., 9.]], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x, y=y)
        check_tangents(v=v)
    p, q = power(x, theta), power(y, theta)
    sq, isq = sym_sqrtm_invsqrtm(p, check=False)
    middle = sym_powm(sym(isq @ q @ isq), 0.5, check=False)
    e = sq @ middle @ isq  # [..., n, n]
    w = e @ power_differential(x, v, theta) @ e.transpose(-1, -2)
    return power_differential(y, sym(w), theta, inverse=True)


@half_in_float32
def aim_inner(
    x: Tensor,
    u: Tensor,
    v: Tensor,
    *,
    theta: float = 1.0,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> Tensor:
    r"""The (θ, α, β)-AIM inner product at ``x``, shape ``[...]``.

    .. math::

        g_x(u, v) = \frac{1}{\theta^2}\Big(\alpha\,\mathrm{tr}(P^{-1} U P^{-1} V)
            + \beta\,\mathrm{tr}(P^{-1} U)\,\mathrm{tr}(P^{-1} V)\Big),
        \quad U = D\varphi_x u,\ V = D\varphi_x v,\ P = x^\theta .

    Examples
    --------
    >>> x = 2.0 * torch.eye(2, dtype=torch.float64)
    >>> aim_inner(x, torch.eye(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    tensor(0.5000, dtype=torch.float64)
    """
    theta = check_theta(theta)
    alpha, beta = check_alpha_beta(alpha, beta)
    p = power(x, theta)
    _, isq = sym_sqrtm_invsqrtm(p, check=False)
    du = sym(isq @ power_differential(x, u, theta) @ isq)  # P^{-1/2} U P^{-1/2}
    dv = sym(isq @ power_differential(x, v, theta) @ isq)
    return alpha_beta_inner(alpha, beta, du, dv) / theta**2


# -- Log-Euclidean --------------------------------------------------------------------


@half_in_float32
def lem_log(x: Tensor, y: Tensor, *, check: bool = True) -> Tensor:
    r"""Log-Euclidean log at ``x`` (Arsigny et al., SIAM J. Matrix Anal. Appl. 2007).

    .. math::

        \mathrm{Log}_x(y) = (D\log_x)^{-1}(\log y - \log x) = D\exp_{\log x}(\log y - \log x),

    pyRiemann's ``log_map_logeuclid``. α, β only scale the inner product
    (:func:`lem_inner`); the maps do not depend on them.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> y = torch.diag(torch.tensor([1.0, 2.0 * torch.e], dtype=torch.float64))
    >>> torch.diagonal(lem_log(x, y))  # x (log y - log x) for commuting x, y
    tensor([0., 2.], dtype=torch.float64)
    """
    if check:
        check_points(x=x, y=y)
    diff = sym_logm(y, check=False) - sym_logm(x, check=False)
    return spectral_differential_inverse(x, diff, _LOG, check=False)


@half_in_float32
def lem_exp(x: Tensor, v: Tensor, *, check: bool = True) -> Tensor:
    r"""Log-Euclidean exp at ``x``: :math:`\exp(\log x + D\log_x[v])`.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 2.0], dtype=torch.float64))
    >>> torch.diagonal(lem_exp(x, torch.diag(torch.tensor([0.0, 2.0], dtype=torch.float64))))
    tensor([1.0000, 5.4366], dtype=torch.float64)
    """
    if check:
        check_points(x=x)
        check_tangents(v=v)
    return sym_expm(sym_logm(x, check=False) + spectral_differential(x, v, _LOG, check=False), check=False)


@half_in_float32
def lem_transport(x: Tensor, y: Tensor, v: Tensor, *, check: bool = True) -> Tensor:
    r"""Log-Euclidean parallel transport :math:`(D\log_y)^{-1} D\log_x [v]`.

    The metric is flat in the coordinates :math:`\log P`, where transport is
    the identity; it is path-independent.

    Examples
    --------
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> y = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))
    >>> torch.diagonal(lem_transport(x, y, torch.eye(2, dtype=torch.float64)))
    tensor([2., 3.], dtype=torch.float64)
    """
    if check:
        check_points(x=x, y=y)
        check_tangents(v=v)
    return spectral_differential_inverse(y, spectral_differential(x, v, _LOG, check=False), _LOG, check=False)


@half_in_float32
def lem_inner(x: Tensor, u: Tensor, v: Tensor, *, alpha: float = 1.0, beta: float = 0.0) -> Tensor:
    r"""(α, β)-LEM inner product :math:`\alpha\,\mathrm{tr}(U V) + \beta\,\mathrm{tr}U\,\mathrm{tr}V`,
    :math:`U = D\log_x u`, :math:`V = D\log_x v`.

    Examples
    --------
    >>> x = 2.0 * torch.eye(2, dtype=torch.float64)
    >>> lem_inner(x, torch.eye(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    tensor(0.5000, dtype=torch.float64)
    """
    alpha, beta = check_alpha_beta(alpha, beta)
    du = spectral_differential(x, u, _LOG, check=False)
    dv = spectral_differential(x, v, _LOG, check=False)
    return alpha_beta_inner(alpha, beta, du, dv)


# -- Log-Cholesky ---------------------------------------------------------------------


def _lcm_to_chart(x: Tensor, v: Tensor, theta: float) -> Tensor:
    r""":math:`D\phi_x[v]` for :math:`\phi(x) = \lfloor L\rfloor + \log\mathbb{D}(L)`, :math:`LL^\top = x^\theta`.

    :math:`dL = L\,\Psi(L^{-1}\, dP\, L^{-\top})` with :math:`\Psi` the strictly
    lower part plus half the diagonal (Lin 2019, Prop. 4), then
    :math:`d\phi = \lfloor dL \rfloor + \mathbb{D}(L)^{-1}\mathbb{D}(dL)`.
    """
    dp = power_differential(x, v, theta)
    factor = cholesky(power(x, theta), check=False)
    factor = factor.expand(torch.broadcast_shapes(factor.shape, dp.shape))
    half = torch.linalg.solve_triangular(factor, dp, upper=False)  # L^{-1} dP
    inner = torch.linalg.solve_triangular(factor, half.transpose(-1, -2), upper=False)  # L^{-1} dP L^{-T}
    inner = sym(inner)
    psi = inner.tril(-1) + 0.5 * torch.diag_embed(torch.diagonal(inner, dim1=-2, dim2=-1))
    dl = factor @ psi  # lower triangular
    ratio = torch.diagonal(dl, dim1=-2, dim2=-1) / torch.diagonal(factor, dim1=-2, dim2=-1)
    return dl.tril(-1) + torch.diag_embed(ratio)


def _lcm_from_chart(x: Tensor, w: Tensor, theta: float) -> Tensor:
    r"""Inverse of :func:`_lcm_to_chart`: :math:`dL = \lfloor W\rfloor + \mathbb{D}(L)\mathbb{D}(W)`,
    :math:`dP = dL\,L^\top + L\,dL^\top`, then :math:`(D(\cdot)^\theta_x)^{-1}`."""
    factor = cholesky(power(x, theta), check=False)
    diag = torch.diagonal(factor, dim1=-2, dim2=-1) * torch.diagonal(w, dim1=-2, dim2=-1)
    dl = w.tril(-1) + torch.diag_embed(diag)
    cross = dl @ factor.transpose(-1, -2)
    return power_differential(x, cross + cross.transpose(-1, -2), theta, inverse=True)


@half_in_float32
def lcm_log(x: Tensor, y: Tensor, *, theta: float = 1.0, check: bool = True) -> Tensor:
    r"""θ-Log-Cholesky log at ``x`` (Lin 2019; power-deformed, Chen et al. 2024).

    The metric is Euclidean in the chart :math:`\phi(P) = \lfloor L \rfloor +
    \log\mathbb{D}(L)`, :math:`LL^\top = P^\theta`, so

    .. math::

        \mathrm{Log}_x(y) = (D\phi_x)^{-1}\big(\phi(y) - \phi(x)\big),

    pyRiemann's ``log_map_logchol`` for θ = 1.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> y = torch.diag(torch.tensor([1.0, 4.0 * torch.e**2], dtype=torch.float64))
    >>> torch.diagonal(lcm_log(x, y))  # 2 L dL: 2 * 2 * (2 * 1)
    tensor([0., 8.], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x, y=y)
    diff = cholesky_log(power(y, theta), check=False) - cholesky_log(power(x, theta), check=False)
    return _lcm_from_chart(x, diff, theta)


@half_in_float32
def lcm_exp(x: Tensor, v: Tensor, *, theta: float = 1.0, check: bool = True) -> Tensor:
    r"""θ-Log-Cholesky exp at ``x``: :math:`\big(\phi^{-1}(\phi(x) + D\phi_x v)\big)^{1/\theta}`.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> torch.diagonal(lcm_exp(x, torch.diag(torch.tensor([0.0, 8.0], dtype=torch.float64))))
    tensor([ 1.0000, 29.5562], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x)
        check_tangents(v=v)
    coords = cholesky_log(power(x, theta), check=False) + _lcm_to_chart(x, v, theta)
    return power(cholesky_exp(coords, check=False), 1.0 / theta)


@half_in_float32
def lcm_transport(
    x: Tensor, y: Tensor, v: Tensor, *, theta: float = 1.0, check: bool = True
) -> Tensor:
    r"""θ-Log-Cholesky parallel transport :math:`(D\phi_y)^{-1} D\phi_x [v]`.

    Flat in the chart, so transport is the identity there and does not
    depend on the path (Lin 2019, Prop. 7).

    Examples
    --------
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> y = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64))
    >>> lcm_transport(x, y, torch.eye(2, dtype=torch.float64))
    tensor([[4., 0.],
            [0., 9.]], dtype=torch.float64)
    """
    theta = check_theta(theta)
    if check:
        check_points(x=x, y=y)
        check_tangents(v=v)
    return _lcm_from_chart(y, _lcm_to_chart(x, v, theta), theta)


@half_in_float32
def lcm_inner(
    x: Tensor,
    u: Tensor,
    v: Tensor,
    *,
    theta: float = 1.0,
    alpha: float = 1.0,
    beta: float = 0.0,
) -> Tensor:
    r"""θ-LCM inner product :math:`(\alpha\langle U, V\rangle_F + \beta\,\mathrm{tr}U\,\mathrm{tr}V)/\theta^2`,
    :math:`U = D\phi_x u`, :math:`V = D\phi_x v`.

    Examples
    --------
    >>> x = torch.eye(2, dtype=torch.float64)
    >>> lcm_inner(x, torch.eye(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
    tensor(0.5000, dtype=torch.float64)
    """
    theta = check_theta(theta)
    alpha, beta = check_alpha_beta(alpha, beta)
    du, dv = _lcm_to_chart(x, u, theta), _lcm_to_chart(x, v, theta)
    return alpha_beta_inner(alpha, beta, du, dv) / theta**2
