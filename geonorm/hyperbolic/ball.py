r"""Maps of the Poincaré ball of curvature :math:`-c` (gyrovector formalism).

The ball is :math:`\mathbb{D}^d_c = \{x \in \mathbb{R}^d : c\|x\|^2 < 1\}`
with the metric :math:`g_x = \lambda_x^2 I`, conformal factor
:math:`\lambda_x = 2 / (1 - c\|x\|^2)`. ``c > 0`` is the curvature
*magnitude* the caller passes (a float or a 0-dim tensor, used as given:
no softplus), the convention of ``geoopt.PoincareBall(c)``. Points are
``[..., d]``; every function broadcasts over the leading dimensions.

Formulas (Ungar, *Analytic Hyperbolic Geometry and Albert Einstein's Special
Theory of Relativity*, 2008; Ganea, Bécigneul & Hofmann, *Hyperbolic Neural
Networks*, NeurIPS 2018):

.. math::

    x \oplus_c y &= \frac{(1 + 2c\langle x, y\rangle + c\|y\|^2)\,x
                          + (1 - c\|x\|^2)\,y}
                         {1 + 2c\langle x, y\rangle + c^2\|x\|^2\|y\|^2}, \\
    r \otimes_c x &= \tanh\bigl(r\,\operatorname{artanh}(\sqrt{c}\|x\|)\bigr)
                     \frac{x}{\sqrt{c}\|x\|}, \\
    \exp_x(v) &= x \oplus_c \tanh\Bigl(\frac{\sqrt{c}\lambda_x\|v\|}{2}\Bigr)
                 \frac{v}{\sqrt{c}\|v\|}, \qquad
    \log_x(y) = \frac{2}{\sqrt{c}\lambda_x}
                \operatorname{artanh}(\sqrt{c}\|u\|)\frac{u}{\|u\|},
                \quad u = -x \oplus_c y, \\
    d_c(x, y) &= \frac{2}{\sqrt{c}}\operatorname{artanh}
                 \bigl(\sqrt{c}\,\|-x \oplus_c y\|\bigr), \qquad
    P_{x \to y}(v) = \frac{\lambda_x}{\lambda_y}\operatorname{gyr}[y, -x]\,v .

Numerics. The denominators are evaluated as sums of non-negative terms,
:math:`1 + 2c\langle x,y\rangle + c^2\|x\|^2\|y\|^2
= (1 - c\|x\|^2)(1 - c\|y\|^2) + c\|x + y\|^2`, so they do not cancel near
the boundary; the arguments of :math:`\operatorname{artanh}` are clamped at
:math:`1 - m` and those of :math:`\tanh` so that results stay at
:math:`\sqrt{c}\|x\| \le 1 - m`, with the per-dtype margin
:math:`m` = :func:`geonorm._numerics.ball_margin`; norms go through
:func:`geonorm._numerics.safe_sqrt`, so the zero vector has finite
gradients. The maps check the curvature, not the points: validate points
with :func:`check_in_ball` (one norm).
"""

from __future__ import annotations

import math

import torch

from .._checks import check_finite, check_floating
from .._numerics import ball_margin, safe_sqrt, tiny_for

Tensor = torch.Tensor
Curvature = float | Tensor

__all__ = [
    "check_curvature",
    "check_in_ball",
    "conformal_factor",
    "project",
    "mobius_add",
    "mobius_scalar_mul",
    "gyration",
    "expmap",
    "logmap",
    "expmap0",
    "logmap0",
    "distance",
    "transport",
]


def check_curvature(c: object, name: str = "c") -> Curvature:
    """Return the curvature magnitude ``c`` if it is a finite positive number.

    Accepts an ``int``/``float`` (not a ``bool``) or a 0-dim floating tensor
    (e.g. a learnable parameter after a positive parametrisation). Raises
    ``TypeError`` for any other kind and ``ValueError`` for ``c <= 0`` or a
    non-finite value. Under ``torch.compile`` the value of a tensor ``c`` is
    not inspected (that would need a host sync); its kind is.

    >>> check_curvature(0.5)
    0.5
    >>> check_curvature(-1.0)
    Traceback (most recent call last):
    ...
    ValueError: c: expected a finite positive curvature magnitude (the ball has curvature -c), got -1.0
    """
    if isinstance(c, Tensor):
        if c.ndim != 0 or not c.is_floating_point():
            raise TypeError(
                f"{name}: expected a float or a 0-dim floating-point tensor, got a tensor "
                f"of shape {list(c.shape)} and dtype {c.dtype}"
            )
        if torch.compiler.is_compiling():
            return c
        value = float(c.detach())
    elif isinstance(c, (int, float)) and not isinstance(c, bool):
        value = float(c)
    else:
        raise TypeError(
            f"{name}: expected a float or a 0-dim floating-point tensor, got {type(c).__name__}"
        )
    if not (math.isfinite(value) and value > 0):
        raise ValueError(
            f"{name}: expected a finite positive curvature magnitude (the ball has "
            f"curvature -{name}), got {value!r}"
        )
    return c  # type: ignore[return-value]


def _c(c: object, like: Tensor) -> Curvature:
    """Checked curvature, as a float or a tensor in ``like``'s dtype and device."""
    c = check_curvature(c)
    if isinstance(c, Tensor):
        return c.to(dtype=like.dtype, device=like.device)
    return float(c)


def _sqrt(c: Curvature) -> Curvature:
    return c.sqrt() if isinstance(c, Tensor) else math.sqrt(c)


def _sq(x: Tensor, dim: int = -1) -> Tensor:
    return (x * x).sum(dim, keepdim=True)  # [..., 1]


def _artanh(z: Tensor) -> Tensor:
    """artanh with its argument clamped to ``[0, 1 - margin]`` (arguments are norms)."""
    return torch.atanh(z.clamp(0.0, 1.0 - ball_margin(z.dtype)))


def _max_tanh_arg(dtype: torch.dtype) -> float:
    """Largest tanh argument: ``tanh`` of it is ``1 - margin``."""
    return math.atanh(1.0 - ball_margin(dtype))


def check_in_ball(x: object, name: str, *, c: object) -> Tensor:
    r"""Return ``x`` if it is a finite floating tensor ``[..., d]`` of points with :math:`c\|x\|^2 < 1`.

    One reduction (the largest squared norm) and one host sync. Raises
    ``TypeError`` for a non-tensor or a non-floating dtype and ``ValueError``
    (naming ``name``) for a 0-dim tensor, non-finite entries, or a point on or
    outside the ball.

    >>> _ = check_in_ball(torch.tensor([[0.5, 0.0]]), "x", c=1.0)
    >>> check_in_ball(torch.tensor([[0.0, 1.0]]), "x", c=1.0)
    Traceback (most recent call last):
    ...
    ValueError: x: expected points strictly inside the Poincaré ball of radius 1/sqrt(c) = 1, got a point of norm 1
    """
    check_floating(x, name)
    assert isinstance(x, Tensor)
    if x.ndim == 0:
        raise ValueError(f"{name}: expected points of shape [..., d], got a 0-dim tensor")
    cc = _c(c, x)
    if x.numel() == 0:
        return x
    return _check_squared_norms((x.detach() * x.detach()).sum(-1), x, name, cc)


def _check_squared_norms(sq: Tensor, x: Tensor, name: str, c: Curvature) -> Tensor:
    """:func:`check_in_ball` from the squared norms ``sq`` of ``x`` that a layer computes anyway."""
    worst = float(sq.detach().amax())
    if not math.isfinite(worst):
        check_finite(x, name)
    c_value = float(c.detach()) if isinstance(c, Tensor) else float(c)
    if c_value * worst >= 1.0:
        raise ValueError(
            f"{name}: expected points strictly inside the Poincaré ball of radius "
            f"1/sqrt(c) = {1.0 / math.sqrt(c_value):.6g}, got a point of norm "
            f"{math.sqrt(worst):.6g}"
        )
    return x


def conformal_factor(x: Tensor, *, c: object, keepdim: bool = False) -> Tensor:
    r"""Conformal factor :math:`\lambda_x = 2 / (1 - c\|x\|^2)`: ``[..., d] -> [...]``.

    The denominator is floored at the value it takes on the margin sphere
    :math:`\sqrt{c}\|x\| = 1 - m`.

    >>> conformal_factor(torch.zeros(3), c=1.0)
    tensor(2.)
    """
    cc = _c(c, x)
    m = ball_margin(x.dtype)
    lam = 2.0 / (1.0 - cc * _sq(x)).clamp_min(m * (2.0 - m))  # [..., 1]
    return lam if keepdim else lam.squeeze(-1)


def project(x: Tensor, *, c: object, dim: int = -1) -> Tensor:
    r"""Radial projection onto :math:`\sqrt{c}\|x\| \le 1 - m` (:func:`~geonorm._numerics.ball_margin`).

    Points already inside are returned unchanged; ``dim`` is the ball dimension.

    >>> project(torch.tensor([3.0, 4.0]), c=1.0).norm() < 1
    tensor(True)
    """
    cc = _c(c, x)
    max_norm = (1.0 - ball_margin(x.dtype)) / _sqrt(cc)
    norm = safe_sqrt(_sq(x, dim))  # [..., 1]
    return torch.where(norm > max_norm, x * (max_norm / norm), x)


def _add(x: Tensor, y: Tensor, c: Curvature, dim: int = -1) -> Tensor:
    x2, y2 = _sq(x, dim), _sq(y, dim)
    s2 = _sq(x + y, dim)  # ||x + y||^2, [..., 1]
    one_x, one_y = 1.0 - c * x2, 1.0 - c * y2
    num = (one_x + c * s2) * x + one_x * y  # [..., d]
    den = one_x * one_y + c * s2  # [..., 1], a sum of non-negative terms
    return num / den.clamp_min(tiny_for(x.dtype))


def mobius_add(x: Tensor, y: Tensor, *, c: object) -> Tensor:
    r"""Möbius addition :math:`x \oplus_c y` (module formula), ``[..., d]``.

    The left translation :math:`y \mapsto x \oplus_c y` is an isometry of the
    ball sending 0 to ``x``; :math:`(-x) \oplus_c (x \oplus_c y) = y` (left
    cancellation). Ungar 2008; Ganea et al. 2018.

    >>> x = torch.tensor([0.3, -0.2], dtype=torch.float64)
    >>> y = torch.tensor([-0.1, 0.5], dtype=torch.float64)
    >>> torch.allclose(mobius_add(-x, mobius_add(x, y, c=1.0), c=1.0), y)
    True
    """
    return _add(x, y, _c(c, x))


def mobius_scalar_mul(r: Tensor | float, x: Tensor, *, c: object) -> Tensor:
    r"""Möbius scalar multiplication :math:`r \otimes_c x`; ``r`` broadcasts against ``[...]``.

    :math:`r \otimes_c x = \tanh(r\,\operatorname{artanh}(\sqrt{c}\|x\|))\,x / (\sqrt{c}\|x\|)`,
    the point at distance :math:`r\,d_c(0, x)` from the origin along ``x``
    (Ganea et al. 2018). Gives 0 at ``x = 0``.

    >>> x = torch.tensor([0.4, 0.0], dtype=torch.float64)
    >>> torch.allclose(mobius_scalar_mul(2.0, x, c=1.0), mobius_add(x, x, c=1.0))
    True
    """
    cc = _c(c, x)
    if isinstance(r, Tensor):
        r = r.to(dtype=x.dtype, device=x.device).unsqueeze(-1)  # [..., 1]
    sc_norm = safe_sqrt(cc * _sq(x))  # sqrt(c) ||x||, [..., 1]
    arg = (r * _artanh(sc_norm)).clamp(-_max_tanh_arg(x.dtype), _max_tanh_arg(x.dtype))
    return torch.tanh(arg) / sc_norm * x


def _gyr(u: Tensor, v: Tensor, w: Tensor, c: Curvature) -> Tensor:
    u2, v2 = _sq(u), _sq(v)
    uv, uw, vw = (u * v).sum(-1, keepdim=True), (u * w).sum(-1, keepdim=True), (
        v * w).sum(-1, keepdim=True)
    c2 = c * c
    a = -c2 * uw * v2 + c * vw + 2 * c2 * uv * vw  # [..., 1]
    b = -c2 * vw * u2 - c * uw  # [..., 1]
    den = (1.0 - c * u2) * (1.0 - c * v2) + c * _sq(u + v)  # = 1 + 2c<u,v> + c^2|u|^2|v|^2
    return w + 2 * (a * u + b * v) / den.clamp_min(tiny_for(u.dtype))


def gyration(u: Tensor, v: Tensor, w: Tensor, *, c: object) -> Tensor:
    r"""Gyration :math:`\operatorname{gyr}[u, v]\,w = -(u \oplus_c v) \oplus_c (u \oplus_c (v \oplus_c w))`.

    An orthogonal linear map of ``w`` (a rotation, :math:`\det = +1`) that
    measures the failure of associativity:
    :math:`u \oplus (v \oplus w) = (u \oplus v) \oplus \operatorname{gyr}[u, v] w`.
    Evaluated in closed form (Ungar 2008; the expanded expression of
    geoopt's ``gyration`` with :math:`\kappa = -c`).

    >>> u, v = torch.tensor([0.3, 0.1]), torch.tensor([-0.2, 0.4])
    >>> w = torch.tensor([1.0, 0.0])
    >>> float(gyration(u, v, w, c=1.0).norm())
    1.0
    """
    return _gyr(u, v, w, _c(c, u))


def expmap0(v: Tensor, *, c: object) -> Tensor:
    r"""Exponential map at the origin, :math:`\tanh(\sqrt{c}\|v\|)\,v / (\sqrt{c}\|v\|)`.

    The tanh argument is clamped so that the result stays inside the margin.

    >>> expmap0(torch.zeros(2), c=1.0)
    tensor([0., 0.])
    """
    cc = _c(c, v)
    sc_norm = safe_sqrt(cc * _sq(v))  # [..., 1]
    return torch.tanh(sc_norm.clamp_max(_max_tanh_arg(v.dtype))) / sc_norm * v


def logmap0(y: Tensor, *, c: object) -> Tensor:
    r"""Logarithmic map at the origin, :math:`\operatorname{artanh}(\sqrt{c}\|y\|)\,y / (\sqrt{c}\|y\|)`.

    >>> v = torch.tensor([0.7, -1.2], dtype=torch.float64)
    >>> torch.allclose(logmap0(expmap0(v, c=2.0), c=2.0), v)
    True
    """
    cc = _c(c, y)
    sc_norm = safe_sqrt(cc * _sq(y))  # [..., 1]
    return _artanh(sc_norm) / sc_norm * y


def expmap(x: Tensor, v: Tensor, *, c: object) -> Tensor:
    r"""Exponential map at ``x``: :math:`\exp_x(v) = x \oplus_c \exp_0(\lambda_x v / 2)`.

    ``v`` is a tangent vector at ``x`` in ambient coordinates (Ganea et al.
    2018).

    >>> x = torch.tensor([0.2, 0.3], dtype=torch.float64)
    >>> v = torch.tensor([0.5, -0.1], dtype=torch.float64)
    >>> torch.allclose(logmap(x, expmap(x, v, c=1.0), c=1.0), v)
    True
    """
    cc = _c(c, x)
    lam = conformal_factor(x, c=cc, keepdim=True)  # [..., 1]
    return _add(x, expmap0(0.5 * lam * v, c=cc), cc)


def logmap(x: Tensor, y: Tensor, *, c: object) -> Tensor:
    r"""Logarithmic map at ``x``: :math:`\log_x(y) = (2/\lambda_x)\log_0(-x \oplus_c y)`.

    The tangent vector at ``x`` (ambient coordinates) pointing to ``y``,
    of Riemannian length :math:`\lambda_x \|\log_x y\| = d_c(x, y)`.

    >>> x = torch.tensor([0.1, 0.0])
    >>> logmap(x, x, c=1.0)
    tensor([0., 0.])
    """
    cc = _c(c, x)
    lam = conformal_factor(x, c=cc, keepdim=True)  # [..., 1]
    return (2.0 / lam) * logmap0(_add(-x, y, cc), c=cc)


def distance(x: Tensor, y: Tensor, *, c: object) -> Tensor:
    r"""Geodesic distance :math:`d_c(x, y) = (2/\sqrt{c})\operatorname{artanh}(\sqrt{c}\|-x \oplus_c y\|)`.

    ``[..., d]`` pairs -> ``[...]``. The gradient at ``x = y`` is zero, not NaN.

    >>> distance(torch.zeros(2), torch.tensor([0.5, 0.0]), c=1.0)  # 2 artanh(1/2) = log 3
    tensor(1.0986)
    """
    cc = _c(c, x)
    sc_norm = safe_sqrt(cc * _sq(_add(-x, y, cc))).squeeze(-1)  # [...]
    return 2.0 / _sqrt(cc) * _artanh(sc_norm)


def transport(x: Tensor, y: Tensor, v: Tensor, *, c: object) -> Tensor:
    r"""Parallel transport of ``v`` in :math:`T_x` to :math:`T_y` along the geodesic.

    :math:`P_{x \to y}(v) = (\lambda_x / \lambda_y)\,\operatorname{gyr}[y, -x]\,v`
    (Ungar 2008; the formula of geoopt's ``transp``). It preserves the
    Riemannian norm :math:`\lambda\|v\|`, and transporting
    :math:`\log_x y` gives :math:`-\log_y x`.

    >>> x = torch.tensor([0.3, 0.1], dtype=torch.float64)
    >>> y = torch.tensor([-0.2, 0.4], dtype=torch.float64)
    >>> torch.allclose(transport(x, y, logmap(x, y, c=1.0), c=1.0), -logmap(y, x, c=1.0))
    True
    """
    cc = _c(c, x)
    ratio = conformal_factor(x, c=cc, keepdim=True) / conformal_factor(y, c=cc, keepdim=True)
    return _gyr(y, -x, v, cc) * ratio
