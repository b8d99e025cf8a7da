r"""Weighted statistics on the Poincaré ball: gyromidpoint, Fréchet mean and variance.

Conventions (those of every geonorm geometry, :mod:`geonorm.spd.protocol`):
points are ``[B, *batch, d]`` and statistics reduce over dimension 0, so the
result is ``[*batch, d]`` (``[*batch]`` for the variance); ``weights`` are
non-negative, ``[B]`` or ``[B, *batch]``, and normalised to sum to one;
``reduce`` (default the identity) is applied to every per-batch *sum* before
it is divided by the total weight, :math:`\mathrm{reduce}(\sum_b w_b v_b) /
\mathrm{reduce}(\sum_b w_b)`, so that an all-reduce over ranks
(:func:`geonorm.distributed.sum_across_ranks`) gives the statistics of the
pooled batch. The curvature is :math:`-c`, ``c > 0`` as passed.

Gyromidpoint
------------
With :math:`\lambda_i = 2 / (1 - c\|x_i\|^2)` (van Spengler, Berkhout &
Mettes, *Poincaré ResNet*, ICCV 2023; Ungar 2008, gyromidpoints),

.. math::

    m = \tfrac12 \otimes_c \frac{\sum_i w_i \lambda_i x_i}{\sum_i w_i (\lambda_i - 1)}
      = \frac{k}{1 + \sqrt{1 - c\|k\|^2}},
    \qquad k = \frac{\sum_i w_i \lambda_i x_i}{\sum_i w_i (\lambda_i - 1)} .

:math:`k` *is* the weighted Einstein midpoint in Klein coordinates: the Klein
image of :math:`x_i` is :math:`\kappa_i = 2x_i / (1 + c\|x_i\|^2)`, its Lorentz
factor :math:`\gamma_i = (1 - c\|\kappa_i\|^2)^{-1/2} = \lambda_i - 1`, and
:math:`\gamma_i \kappa_i = \lambda_i x_i`, so :math:`k = \sum w_i\gamma_i\kappa_i
/ \sum w_i \gamma_i`; :math:`k \mapsto k / (1 + \sqrt{1 - c\|k\|^2})` is the
Klein-to-Poincaré map, and equals :math:`\tfrac12 \otimes_c k` because
:math:`\tanh(a/2) = \tanh a / (1 + \sqrt{1 - \tanh^2 a})`.

Fréchet mean
------------
:math:`\mu = \arg\min_y \sum_i w_i d_c^2(x_i, y)`, characterised by
:math:`\sum_i w_i \log_\mu x_i = 0`. It is computed by the
majorise–minimise iteration of Lou, Katsman, Jiang, Belongie, Lim & De Sa,
*Differentiating through the Fréchet Mean*, ICML 2020 (their Poincaré-ball
algorithm, with the curvature scaled in): with :math:`u_i = c\|x_i - y\|^2 /
((1 - c\|x_i\|^2)(1 - c\|y\|^2))`, :math:`d_c^2 = \ell(u_i)/c`,
:math:`\ell(u) = \operatorname{arcosh}^2(1 + 2u)` concave, so the tangent
majoriser with :math:`\alpha_i = w_i \ell'(u_i) / (1 - c\|x_i\|^2)` is
minimised in closed form, :math:`y \leftarrow \eta\, b` with
:math:`a = \sum\alpha_i`, :math:`b = \sum\alpha_i x_i`,
:math:`C = \sum \alpha_i c\|x_i\|^2`,
:math:`\eta = 2 / (a + C + \sqrt{(a + C)^2 - 4c\|b\|^2})`. Each step decreases
the objective, and Lou et al. prove convergence to the minimiser (unique:
the ball is a Hadamard manifold). The gradient is by *implicit differentiation* of
:math:`G(\mu, x, w) = \sum_i w_i \log_\mu x_i = 0`:
:math:`\mathrm{d}\mu = -(\partial_\mu G)^{-1}(\partial_x G\,\mathrm{d}x +
\partial_w G\,\mathrm{d}w)`, one ``d × d`` solve per batch element, not by
unrolling the iterations.

Isometries and centring
-----------------------
Batch norm centres a batch by the left translation :math:`x \mapsto (-\mu)
\oplus_c x`. Apply a ball isometry :math:`g(x) = a \oplus_c Ox`
(:math:`O \in O(d)`) to the whole batch. Both means are equivariant,
:math:`\mu_g = a \oplus_c O\mu`, and by the gyrotranslation theorem (Ungar
2008, ch. 3), :math:`-(a \oplus b) \oplus (a \oplus x) =
\operatorname{gyr}[a, b](-b \oplus x)`, with :math:`b = O\mu` and
:math:`O` an automorphism of :math:`\oplus_c`,

.. math::

    (-\mu_g) \oplus_c g(x) = \operatorname{gyr}[a, O\mu]\; O\,\bigl((-\mu) \oplus_c x\bigr) .

So the centred batch is *invariant up to the rotation*
:math:`\operatorname{gyr}[a, O\mu]\,O` (a pure translation, :math:`O = I`,
rotates it by :math:`\operatorname{gyr}[a, \mu]`). The scaling
:math:`r \otimes_c` commutes with rotations; a batch-norm output therefore
transforms by that rotation before the bias is added.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .._checks import check_floating, check_int
from .._numerics import ball_margin, iteration_tol, safe_sqrt
from ..riemannian.stats import Reduce, normalise_weights, weighted_sum
from .ball import _c, _sqrt, check_curvature, conformal_factor, distance, logmap

Tensor = torch.Tensor

__all__ = ["gyromidpoint", "frechet_mean", "frechet_variance"]

#: Iteration cap of :func:`frechet_mean` when ``max_iter`` is None.
DEFAULT_MAX_ITER = 1000


def _check_points(x: object, name: str = "x") -> Tensor:
    check_floating(x, name)
    assert isinstance(x, Tensor)
    if x.ndim < 2 or x.shape[0] == 0 or x.shape[-1] == 0:
        raise ValueError(
            f"{name}: expected points of shape [B, *batch, d] with B, d >= 1, "
            f"got shape {list(x.shape)}"
        )
    return x


def _one_minus_cx2(x: Tensor, c) -> Tensor:
    """:math:`1 - c\\|x\\|^2` ``[...]``, floored at its value on the margin sphere."""
    m = ball_margin(x.dtype)
    return (1.0 - c * (x * x).sum(-1)).clamp_min(m * (2.0 - m))


def gyromidpoint(
    x: Tensor, weights: Tensor | None = None, *, c: float | Tensor, reduce: Reduce | None = None
) -> Tensor:
    r"""Weighted gyromidpoint (Einstein midpoint) over dimension 0: ``[B, *batch, d] -> [*batch, d]``.

    :math:`\tfrac12 \otimes_c \bigl(\sum_i w_i\lambda_i x_i / \sum_i w_i(\lambda_i - 1)\bigr)`;
    see the module notes for why it is the Klein-coordinate Einstein midpoint.
    Equivariant under every ball isometry; for two points it is the midpoint
    of the geodesic between them. Closed form, differentiable by autograd.

    Parameters
    ----------
    x : Tensor
        Points ``[B, *batch, d]`` inside the ball.
    weights : Tensor, optional
        Non-negative ``[B]`` or ``[B, *batch]``; default uniform.
    c : float or 0-dim Tensor
        Curvature magnitude (> 0).
    reduce : callable, optional
        Applied to the two per-batch sums (cross-rank all-reduce).

    Examples
    --------
    >>> x = torch.tensor([[0.2, 0.0], [0.0, 0.2]], dtype=torch.float64)
    >>> m = gyromidpoint(x, c=1.0)
    >>> bool(torch.isclose(distance(m, x[0], c=1.0), distance(m, x[1], c=1.0)))
    True
    """
    x = _check_points(x)
    cc = _c(c, x)
    reduce = reduce or _identity
    one_minus = _one_minus_cx2(x, cc)  # 1 - c|x|^2, [B, *batch]
    lam = 2.0 / one_minus  # conformal factors
    gamma = (2.0 - one_minus) / one_minus  # lam - 1 = (1 + c|x|^2) / (1 - c|x|^2)
    if weights is not None:
        w = normalise_weights(x, weights, point_ndim=1)  # [B, *batch'] broadcastable
        lam, gamma = w * lam, w * gamma
    # the ratio of the two sums is the Klein midpoint: the total weight cancels
    num = reduce((lam.unsqueeze(-1) * x).sum(0))  # [*batch, d]
    den = reduce(gamma.sum(0))  # [*batch]
    k = num / den.unsqueeze(-1)  # Klein coordinates, [*batch, d]
    return k / (1.0 + safe_sqrt(1.0 - cc * (k * k).sum(-1, keepdim=True)))


def _identity(t: Tensor) -> Tensor:
    return t


def _asinh_ratio(s: Tensor) -> Tensor:
    """asinh(s)/s for s >= 0, by its series below s = eps^(1/4) (error < s^4/20 there)."""
    small = s < torch.finfo(s.dtype).eps ** 0.25
    safe = torch.where(small, torch.ones_like(s), s)
    return torch.where(small, 1.0 - s * s / 6.0, torch.asinh(safe) / safe)


def _lou_step(x: Tensor, xc: Tensor, cx2: Tensor, w: Tensor, mu: Tensor, c, reduce) -> Tensor:
    """One majorise-minimise step of Lou et al. (2020) at curvature -c."""
    reduce = reduce or _identity
    diff2 = ((x - mu) ** 2).sum(-1)  # [B, *batch]
    u = c * diff2 / (xc * _one_minus_cx2(mu, c))  # [B, *batch]
    s = safe_sqrt(u)
    dl = 4.0 * _asinh_ratio(s) / torch.sqrt(1.0 + u)  # l'(u), l(u) = arcosh(1 + 2u)^2
    alpha = w * dl / xc  # [B, *batch]
    a = reduce(alpha.sum(0))  # [*batch]
    b = reduce((alpha.unsqueeze(-1) * x).sum(0))  # [*batch, d]
    cterm = reduce((alpha * cx2).sum(0))  # [*batch]
    big = a + cterm
    disc = (big * big - 4.0 * c * (b * b).sum(-1)).clamp_min(0.0)
    eta = 2.0 / (big + torch.sqrt(disc))  # [*batch]
    return eta.unsqueeze(-1) * b


def _solve(x, w, c, init, max_iter, tol, reduce) -> Tensor:
    cx2 = c * (x * x).sum(-1)  # [B, *batch]
    xc = _one_minus_cx2(x, c)  # [B, *batch]
    w = w * torch.ones_like(cx2)  # [B, *batch]
    mu = init
    sc = _sqrt(c)
    for _ in range(max_iter):
        new = _lou_step(x, xc, cx2, w, mu, c, reduce)
        step = float((sc * (new - mu)).norm(dim=-1).amax()) if new.numel() else 0.0
        mu = new
        if not step > tol:  # also stops on NaN (reported by the caller's checks)
            break
    return mu


def _dl_ddl(u: Tensor) -> tuple[Tensor, Tensor]:
    r"""First and second derivatives of :math:`\ell(u) = \operatorname{arcosh}^2(1 + 2u)`.

    With :math:`s = \sqrt{u}`: :math:`\ell' = 4 h`, :math:`h = \operatorname{asinh}(s) /
    (s\sqrt{1 + s^2})`, and :math:`\ell'' = 2(s - \operatorname{asinh}(s)(1 + 2s^2) /
    \sqrt{1 + s^2}) / (s^3 (1 + s^2))`. The second cancels for small ``u``; below
    :math:`u = \epsilon^{1/4}` its series :math:`-8/3 + 64u/15 - 192u^2/35` is used
    (truncation and cancellation errors both about :math:`\epsilon^{3/4}` there).
    """
    s = safe_sqrt(u)
    root = torch.sqrt(1.0 + u)
    dl = 4.0 * _asinh_ratio(s) / root
    small = u < torch.finfo(u.dtype).eps ** 0.25
    ss = torch.where(small, torch.ones_like(s), s)
    direct = 2.0 * (ss - torch.asinh(ss) * (1.0 + 2.0 * ss * ss) / torch.sqrt(1.0 + ss * ss)) / (
        ss**3 * (1.0 + ss * ss))
    series = -8.0 / 3.0 + u * (64.0 / 15.0 - u * (192.0 / 35.0))
    return dl, torch.where(small, series, direct)


def _objective_hessian(x: Tensor, w: Tensor, mu: Tensor, c) -> Tensor:
    r"""Euclidean Hessian of :math:`\sum_i w_i d_c^2(x_i, \mu)` in :math:`\mu`: ``[*batch, d, d]``.

    :math:`d_c^2 = \ell(u)/c` with :math:`u = cD/(pq)`, :math:`D = \|\mu - x\|^2`,
    :math:`p = 1 - c\|\mu\|^2`, :math:`q = 1 - c\|x\|^2`, so the Hessian is
    :math:`\sum_i w_i (\ell''\,\nabla u \nabla u^\top + \ell'\,\nabla^2 u)/c` with
    :math:`\nabla u = \frac{2c}{pq}(\delta + \frac{cD}{p}\mu)`, :math:`\delta = \mu - x`, and
    :math:`\nabla^2 u = \frac{c}{q}\bigl[(\frac{2}{p} + \frac{2cD}{p^2}) I
    + \frac{4c}{p^2}(\delta\mu^\top + \mu\delta^\top) + \frac{8c^2 D}{p^3}\mu\mu^\top\bigr]`.
    Summed over dimension 0 (the caller reduces across ranks).
    """
    p = _one_minus_cx2(mu, c)  # [*batch]
    q = _one_minus_cx2(x, c)  # [B, *batch]
    delta = mu - x  # [B, *batch, d]
    dd = (delta * delta).sum(-1)  # D, [B, *batch]
    dl, ddl = _dl_ddl(c * dd / (p * q))
    grad_u = (2.0 * c / (p * q)).unsqueeze(-1) * (delta + (c * dd / p).unsqueeze(-1) * mu)
    a1 = w * dl * c / q  # weight of the second-derivative terms of u, [B, *batch]
    eye_coef = (a1 * (2.0 / p + 2.0 * c * dd / p**2)).sum(0)  # [*batch]
    cross = ((a1 * 4.0 * c / p**2).unsqueeze(-1) * delta).sum(0)  # [*batch, d]
    mm_coef = (a1 * 8.0 * c * c * dd / p**3).sum(0)  # [*batch]
    outer = torch.einsum("b...i,b...j->...ij", (w * ddl).unsqueeze(-1) * grad_u, grad_u)
    eye = torch.eye(mu.shape[-1], dtype=mu.dtype, device=mu.device)
    mu_cross = mu.unsqueeze(-1) * cross.unsqueeze(-2)  # mu cross^T, [*batch, d, d]
    hess = (eye_coef[..., None, None] * eye + mu_cross + mu_cross.mT
            + mm_coef[..., None, None] * (mu.unsqueeze(-1) * mu.unsqueeze(-2)) + outer)
    return hess / c  # [*batch, d, d]


class _FrechetMean(torch.autograd.Function):
    r"""Fréchet mean forward by Lou et al.'s iteration; implicit-function backward.

    At the minimiser the Euclidean gradient :math:`\nabla F = -2\lambda_\mu^2 G`
    vanishes, so :math:`\partial_\mu G = -\nabla^2 F / (2\lambda_\mu^2)`: symmetric,
    and computed in closed form (:func:`_objective_hessian`).
    """

    @staticmethod
    def forward(ctx, x, w, c_t, c, init, max_iter, tol, reduce):  # type: ignore[override]
        cc = c_t if c_t is not None else c
        mu = _solve(x, w, cc, init, max_iter, tol, reduce)
        ctx.save_for_backward(x, w, mu, c_t if c_t is not None else torch.empty(0))
        ctx.c, ctx.has_ct, ctx.reduce = c, c_t is not None, reduce
        return mu

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_mu):  # type: ignore[override]
        x, w, mu, c_t = ctx.saved_tensors
        reduce = ctx.reduce or _identity
        cc = c_t if ctx.has_ct else ctx.c
        hess = reduce(_objective_hessian(x, w * torch.ones_like(x[..., 0]), mu, cc))
        gmu = reduce(grad_mu)  # gradient of the total loss, [*batch, d]
        lam2 = conformal_factor(mu, c=cc, keepdim=True) ** 2  # [*batch, 1]
        # dG/dmu = -hess / (2 lam^2);  v = (dG/dmu)^{-T} g
        v = -2.0 * lam2 * torch.linalg.solve(hess, gmu.unsqueeze(-1)).squeeze(-1)
        with torch.enable_grad():
            xd = x.detach().requires_grad_(ctx.needs_input_grad[0])
            wd = w.detach().requires_grad_(ctx.needs_input_grad[1])
            cd = c_t.detach().requires_grad_(ctx.needs_input_grad[2]) if ctx.has_ct else ctx.c
            inputs = (xd, wd, cd)
            wanted = [t for t, need in zip(inputs, ctx.needs_input_grad[:3], strict=True)
                      if need and isinstance(t, Tensor)]
            if wanted:
                g_sum = (wd.unsqueeze(-1) * logmap(mu, xd, c=cd)).sum(0)  # G, [*batch, d]
                grads = iter(torch.autograd.grad(g_sum, wanted, -v))
        out = [next(grads) if need and isinstance(t, Tensor) else None
               for t, need in zip(inputs, ctx.needs_input_grad[:3], strict=True)]
        return (*out, None, None, None, None, None)


def frechet_mean(
    x: Tensor,
    weights: Tensor | None = None,
    *,
    c: float | Tensor,
    init: Tensor | None = None,
    max_iter: int | None = None,
    tol: float | None = None,
    reduce: Reduce | None = None,
) -> Tensor:
    r"""Weighted Fréchet mean over dimension 0: ``[B, *batch, d] -> [*batch, d]``.

    :math:`\mu = \arg\min_y \sum_i w_i d_c^2(x_i, y)`, by the convergent
    majorise–minimise iteration of Lou et al. (ICML 2020), see the module
    notes. Gradients with respect to ``x``, ``weights`` and a tensor ``c``
    come from implicit differentiation of :math:`\sum_i w_i \log_\mu x_i = 0`
    (a ``d × d`` solve per batch element); the iterations are not unrolled.

    Parameters
    ----------
    x : Tensor
        Points ``[B, *batch, d]`` inside the ball.
    weights : Tensor, optional
        Non-negative ``[B]`` or ``[B, *batch]``; default uniform.
    c : float or 0-dim Tensor
        Curvature magnitude (> 0).
    init : Tensor, optional
        Warm start ``[*batch, d]`` (e.g. the running mean); default the
        gyromidpoint, which is already close.
    max_iter : int, optional
        Iteration cap; default :data:`DEFAULT_MAX_ITER`.
    tol : float, optional
        Stop when :math:`\sqrt{c}\,\|\mu_{k+1} - \mu_k\|` (the largest over
        the batch) is at most ``tol``; default
        :func:`geonorm._numerics.iteration_tol` of the dtype.
    reduce : callable, optional
        Applied to every per-batch sum of every iteration; in the backward
        to the Hessian sum and to the incoming gradient (so an all-reduce
        gives each rank the gradient of the total loss, as
        ``torch.nn.SyncBatchNorm`` does).

    Examples
    --------
    >>> x = torch.tensor([[0.5, 0.0], [0.0, 0.3], [-0.2, -0.2]], dtype=torch.float64)
    >>> mu = frechet_mean(x, c=1.0)
    >>> float(logmap(mu, x, c=1.0).sum(0).norm()) < 1e-10
    True
    """
    x = _check_points(x)
    cc = _c(c, x)
    w = normalise_weights(x, weights, point_ndim=1)  # [B, *batch'] broadcastable
    max_iter = DEFAULT_MAX_ITER if max_iter is None else check_int(max_iter, "max_iter")
    if tol is None:
        tol = iteration_tol(x.dtype)
    elif isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol: expected a non-negative float or None, got {tol!r}")
    if init is None:
        with torch.no_grad():
            init = gyromidpoint(x.detach(), w.detach(), c=cc, reduce=reduce)
    else:
        if not isinstance(init, Tensor) or init.shape != x.shape[1:]:
            got = list(init.shape) if isinstance(init, Tensor) else type(init).__name__
            raise ValueError(f"init: expected shape {list(x.shape[1:])} ([*batch, d]), got {got}")
        init = init.detach().to(x)
    c_t = cc if isinstance(cc, Tensor) else None
    return _FrechetMean.apply(x, w, c_t, cc, init, max_iter, float(tol), reduce)


def frechet_variance(
    x: Tensor,
    mean: Tensor | None = None,
    weights: Tensor | None = None,
    *,
    c: float | Tensor,
    reduce: Reduce | None = None,
) -> Tensor:
    r"""Weighted Fréchet variance :math:`\sum_i w_i d_c^2(x_i, \text{mean})`: ``[B, *batch, d] -> [*batch]``.

    ``mean=None`` means the origin (a centred batch). Weights are normalised
    to sum to one.

    >>> x = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64)
    >>> float(frechet_variance(x, c=1.0))  # d(0, ±1/2) = log 3
    1.206948960812...
    """
    x = _check_points(x)
    cc = check_curvature(c)
    w = normalise_weights(x, weights, point_ndim=1)
    ref = torch.zeros_like(x) if mean is None else mean
    if mean is not None and (not isinstance(mean, Tensor) or mean.shape != x.shape[1:]):
        got = list(mean.shape) if isinstance(mean, Tensor) else type(mean).__name__
        raise ValueError(f"mean: expected shape {list(x.shape[1:])} ([*batch, d]), got {got}")
    d2 = distance(ref, x, c=cc) ** 2  # [B, *batch]
    return weighted_sum(d2, w, reduce, 0)
