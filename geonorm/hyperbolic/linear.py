r"""The Poincaré fully-connected layer of HNN++ (Shimizu, Mukuta & Harada, ICLR 2021).

For a point :math:`x` of the ball of curvature :math:`-c`, hyperplane
orientations :math:`z_k \in \mathbb{R}^n` (the columns of ``weight``
``[n, m]``) and offsets :math:`r_k`, the layer first computes the signed
distances to the Poincaré hyperplanes (scaled by :math:`\|z_k\|`),

.. math::

    v_k(x) = \frac{2\|z_k\|}{\sqrt{c}} \operatorname{arsinh}\Bigl(
        \sqrt{c}\,\lambda_x \bigl\langle x, \tfrac{z_k}{\|z_k\|}\bigr\rangle
        \cosh(2\sqrt{c}\,r_k) - (\lambda_x - 1)\sinh(2\sqrt{c}\,r_k)\Bigr),
    \qquad \lambda_x = \frac{2}{1 - c\|x\|^2},

and maps them back to the ball,

.. math::

    w = \frac{\sinh(\sqrt{c}\,v)}{\sqrt{c}}, \qquad
    y = \frac{w}{1 + \sqrt{1 + c\|w\|^2}} .

:math:`v` (the Poincaré multinomial logistic regression of HNN++) is the
classifier head of Poincaré ResNet (van Spengler, Berkhout & Mettes,
ICCV 2023). With ``weight`` :math:`= \tfrac12 I` and :math:`r = 0`,
:math:`\sqrt{c}v_k = \operatorname{arsinh}(\sqrt{c}\lambda_x x_k)`, so
:math:`w = \lambda_x x` and :math:`1 + \sqrt{1 + c\|w\|^2} = \lambda_x`:
the layer is exactly the identity (for :math:`n = m`; a coordinate
projection for :math:`m < n`). That is the paper's *identity
initialisation* (``id_init=True``), the alternative being HNN++'s
:math:`\mathcal{N}(0, (2nm)^{-1})`. For :math:`m > n` the extra columns
are drawn from the HNN++ law (zero columns would give outputs stuck at 0
under the tangent ReLU; a geonorm choice, see :func:`init_hnn_weight`).

Numerics. :math:`\sinh(\sqrt{c}v)` overflows for moderate :math:`v` in
float32, so where :math:`M = \max_k |\sqrt{c}v_k|` is that large :math:`y`
is evaluated with every :math:`\sinh` scaled by :math:`e^{-M}` (the scale
cancels between numerator and denominator, so the value and its gradient
are unchanged), elsewhere with ``sinh`` itself (accurate for small
arguments); and the result is kept at :math:`\sqrt{c}\|y\| \le 1 - m`
(:func:`~geonorm._numerics.ball_margin`) by a floor on the denominator,
never by a separate projection.
"""

from __future__ import annotations

import math

import geoopt
import torch
from torch.autograd.function import once_differentiable

from .._checks import check_floating, check_int
from .._numerics import ball_margin, safe_sqrt
from .ball import _c, _check_squared_norms, _sqrt
from .geometry import PoincareBall

Tensor = torch.Tensor

__all__ = ["PoincareLinear", "poincare_fc", "hyperplane_distances"]


def _distances(xz: Tensor, cx2: Tensor, weight: Tensor, bias: Tensor | None, c, dim: int = -1) -> Tensor:
    r""":math:`v_k` from :math:`\langle x, z_k\rangle` (``m`` along ``dim``) and :math:`c\|x\|^2` (size 1 there)."""
    sc = _sqrt(c)
    m = ball_margin(xz.dtype)
    shape = [1] * xz.ndim
    shape[dim] = -1  # per-hyperplane vectors broadcast along dim
    lam = 2.0 / (1.0 - cx2).clamp_min(m * (2.0 - m))  # conformal factor, size 1 along dim
    z_norm = safe_sqrt((weight * weight).sum(0)).view(shape)  # [m] along dim
    arg = sc * lam * xz / z_norm
    if bias is not None:
        two_r = (2.0 * sc * bias).view(shape)
        arg = arg * torch.cosh(two_r) - (lam - 1.0) * torch.sinh(two_r)
    return (2.0 / sc) * z_norm * torch.asinh(arg)


def _sinh_limit(dtype: torch.dtype) -> float:
    """Largest argument whose sinh, squared and summed over a few thousand terms, stays finite."""
    return 0.5 * math.log(torch.finfo(dtype).max) - 5.0


def _to_ball(v: Tensor, c, dim: int = -1) -> Tensor:
    r""":math:`y = w / (1 + \sqrt{1 + c\|w\|^2})`, :math:`w = \sinh(\sqrt{c}v)/\sqrt{c}`, overflow-free, along ``dim``."""
    sc = _sqrt(c)
    a = sc * v
    limit = _sinh_limit(v.dtype)
    peak = a.detach().abs().amax(dim, keepdim=True)
    scaled = peak > limit  # rows whose sinh would overflow: scale by e^{-M}, M = max |a|
    if not torch.compiler.is_compiling() and not bool(scaled.any()):  # the common case: plain sinh
        e = torch.sinh(a)
        sq = (e * e).sum(dim, keepdim=True)  # c|w|^2
        den, e_norm = 1.0 + torch.sqrt(1.0 + sq), safe_sqrt(sq)
        return e / (sc * torch.maximum(den, e_norm / (1.0 - ball_margin(v.dtype))))
    big = torch.where(scaled, peak, torch.zeros_like(peak))  # the value does not depend on it
    e = torch.where(
        scaled,
        0.5 * (torch.exp(a - big) - torch.exp(-a - big)),  # sinh(a) e^{-M}, no overflow
        torch.sinh(a.clamp(-limit, limit)),  # accurate for small a (no cancellation)
    )
    e_norm = safe_sqrt((e * e).sum(dim, keepdim=True))  # size 1 along dim
    tail = torch.exp(-big)
    den = tail + safe_sqrt(tail * tail + e_norm * e_norm)  # (1 + sqrt(1 + c|w|^2)) e^{-M}
    den = torch.maximum(den, e_norm / (1.0 - ball_margin(v.dtype)))  # sqrt(c)|y| <= 1 - m
    return e / (sc * den)


def _sum_except(t: Tensor, dim: int) -> Tensor:
    """Sum over every dimension but ``dim``: ``[..., m, ...] -> [m]``."""
    dim = dim % t.ndim
    return t.sum([d for d in range(t.ndim) if d != dim])


def _asinh(z: Tensor, root: Tensor) -> Tensor:
    r""":math:`\operatorname{arsinh} z = \operatorname{sign}(z)\,\log1p(|z|(1 + |z|/(1 + \sqrt{1 + z^2})))`, given the root.

    No cancellation (relative error a few ulp for every ``z``), no overflow of
    :math:`z^2`, and several times faster than ``torch.asinh`` on CPU.
    """
    a = z.abs()
    return torch.copysign(torch.log1p(a * (1.0 + a / (1.0 + root))), z)


def _map_forward(xz: Tensor, cx2: Tensor, weight: Tensor, bias: Tensor | None, c, dim: int):
    """Forward of :class:`_FCMap`: the output and the tensors its backward needs."""
    sc = _sqrt(c)
    m = ball_margin(xz.dtype)
    floor = m * (2.0 - m)
    shape = [1] * xz.ndim
    shape[dim] = -1  # per-hyperplane vectors broadcast along dim
    one_minus = 1.0 - cx2
    lam = 2.0 / one_minus.clamp_min(floor)  # conformal factor, size 1 along dim
    zn = safe_sqrt((weight * weight).sum(0))  # [m]
    znv = zn.view(shape)
    big_a = xz * (sc / znv) * lam  # sqrt(c) lam <x, z/|z|>
    if bias is not None:
        two_r = (2.0 * sc * bias).view(shape)
        ch, sh = torch.cosh(two_r), torch.sinh(two_r)
        arg = big_a * ch - (lam - 1.0) * sh
    else:
        ch = sh = None
        arg = big_a
    root1 = torch.sqrt(1.0 + arg * arg) if xz.dtype == torch.float64 else torch.hypot(arg, torch.ones_like(arg[:1]))
    ash = _asinh(arg, root1)
    a = (2.0 * znv) * ash  # sqrt(c) v
    limit = _sinh_limit(xz.dtype)
    peak = a.abs().amax(dim, keepdim=True)
    top = float(peak.max()) if peak.numel() else 0.0  # the one host sync
    if not top > limit:  # the common case: plain sinh and cosh
        e = torch.sinh(a)
        e2 = e * e
        ct = torch.sqrt(1.0 + e2)  # cosh(a)
        s2 = e2.sum(dim, keepdim=True)  # c|w|^2
        root = torch.sqrt(1.0 + s2)
        den = 1.0 + root
    else:
        scaled = peak > limit
        big = torch.where(scaled, peak, torch.zeros_like(peak))
        up, down = torch.exp(a - big), torch.exp(-a - big)
        ac = a.clamp(-limit, limit)
        e = torch.where(scaled, 0.5 * (up - down), torch.sinh(ac))  # sinh(a) e^{-M}
        ct = torch.where(scaled, 0.5 * (up + down), torch.cosh(ac))  # cosh(a) e^{-M}
        tail = torch.exp(-big)
        s2 = (e * e).sum(dim, keepdim=True)
        root = torch.sqrt(tail * tail + s2)
        den = tail + root  # (1 + sqrt(1 + c|w|^2)) e^{-M}
    # the floor sqrt(c)|y| <= 1 - m binds only where |w| is near 1/m: not for small peaks
    if top > limit or not math.exp(top) * math.sqrt(e.shape[dim]) * m < 0.5 * (1.0 - m):
        e_norm = safe_sqrt(s2)
        cap = e_norm / (1.0 - m)
        floored = cap > den
        den = torch.where(floored, cap, den)
        root = torch.where(floored, (1.0 - m) * e_norm, root)  # d den / d e_k = e_k / (den-scale * root)
    y = e / (sc * den)
    saved = (weight, zn, lam, one_minus, big_a, root1, ash, e, ct, den, root)
    return y, saved + ((ch, sh) if bias is not None else ())


def _map_backward(saved: tuple, gy: Tensor, c, dim: int, needs: tuple[bool, bool, bool, bool]):
    """Backward of :class:`_FCMap`: gradients for ``xz``, ``cx2``, ``weight`` (through the norms) and ``bias``."""
    weight, zn, lam, one_minus, big_a, root1, ash, e, ct, den, root, *chsh = saved
    sc = _sqrt(c)
    floor = ball_margin(e.dtype) * (2.0 - ball_margin(e.dtype))
    shape = [1] * e.ndim
    shape[dim] = -1
    znv = zn.view(shape)
    dot = (gy * e).sum(dim, keepdim=True)
    ga = (ct / (sc * den)) * (gy - dot * e / (den * root))  # dL/da
    g_zn = _sum_except(ga * ash, dim) * 2.0  # a = 2|z| asinh(arg)
    g_arg = ga * (2.0 * znv) / root1
    g_bias = None
    if chsh:
        ch, sh = chsh
        g_a = g_arg * ch
        g_lam = -(g_arg * sh).sum(dim, keepdim=True)
        if needs[3]:
            g_ch = _sum_except(g_arg * big_a, dim)
            g_sh = -_sum_except(g_arg * (lam - 1.0), dim)
            g_bias = (2.0 * sc) * (g_ch * sh.reshape(-1) + g_sh * ch.reshape(-1))
    else:
        g_a, g_lam = g_arg, None
    g_xz = g_a * (sc / znv) * lam if needs[0] else None
    g_weight = g_cx2 = None
    ga_big = g_a * big_a if needs[1] or needs[2] else None
    if needs[1]:
        g_lam_a = ga_big.sum(dim, keepdim=True) / lam
        g_lam = g_lam_a if g_lam is None else g_lam + g_lam_a
        g_cx2 = torch.where(one_minus > floor, g_lam * lam * lam * 0.5, 0.0)  # lam = 2 / (1 - cx2)
    if needs[2]:
        g_zn = g_zn - _sum_except(ga_big, dim) / zn
        g_weight = weight * (g_zn / zn)
    return g_xz, g_cx2, g_weight, g_bias


class _FCMap(torch.autograd.Function):
    r"""``_to_ball(_distances(xz, cx2, weight, bias, c, dim), c, dim)`` with a hand-written backward.

    The forward runs without recording a graph; the backward is the chain rule
    written out (module notes for the forward). With :math:`e_k = \sinh a_k`,
    :math:`a_k = \sqrt{c}v_k`, :math:`S = \sum_k e_k^2` and
    :math:`D = 1 + \sqrt{1 + S}`, :math:`y = e / (\sqrt{c} D)` has
    :math:`\partial L/\partial a_k = \frac{\cosh a_k}{\sqrt{c}D}\bigl(g_k -
    \frac{\langle g, e\rangle\, e_k}{D\sqrt{1 + S}}\bigr)`; every factor is
    evaluated in the :math:`e^{-M}`-scaled quantities of the forward, in which
    it is the same expression. Gradients reach ``xz`` and ``cx2`` (so the
    caller's matmul or convolution and norm are differentiated by autograd),
    ``weight`` (through :math:`\|z_k\|`) and ``bias``; the curvature is a
    constant here (a learnable one takes the composite path).
    """

    @staticmethod
    def forward(ctx, xz, cx2, weight, bias, c, dim):  # type: ignore[override]
        y, saved = _map_forward(xz, cx2, weight, bias, c, dim)
        ctx.dim, ctx.c = dim, c
        ctx.save_for_backward(*saved)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):  # type: ignore[override]
        grads = _map_backward(ctx.saved_tensors, gy, ctx.c, ctx.dim, ctx.needs_input_grad[:4])
        return (*grads, None, None)


class _FCLayer(torch.autograd.Function):
    r""":func:`poincare_fc` of points ``x`` ``[..., n]``: the matmul and :math:`\|x\|^2` inside :class:`_FCMap`'s map.

    One graph node for the whole layer; the membership check (``validate``)
    reuses the squared norms. Backward: :math:`g_x = g_{xz} W^\top + 2c\,g_{c\|x\|^2}\,x`,
    :math:`g_W = x^\top g_{xz}` plus the part through :math:`\|z_k\|`.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, c, validate):  # type: ignore[override]
        sq = (x * x).sum(-1, keepdim=True)  # [..., 1]
        if validate and x.numel():
            _check_squared_norms(sq, x, "x", c)
        y, saved = _map_forward(x @ weight, c * sq, weight, bias, c, x.ndim - 1)
        ctx.c = c
        ctx.save_for_backward(x, *saved)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):  # type: ignore[override]
        x, *saved = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        g_xz, g_cx2, g_w, g_b = _map_backward(tuple(saved), gy, ctx.c, x.ndim - 1, (need_x or need_w, need_x, need_w, need_b))
        weight = saved[0]
        g_x = None
        if need_x:
            g_x = g_xz @ weight.mT + (2.0 * ctx.c) * g_cx2 * x
        if need_w:
            g_w = g_w + x.reshape(-1, x.shape[-1]).mT @ g_xz.reshape(-1, g_xz.shape[-1])  # [n, m]
        return g_x, g_w, g_b, None, None


def _fc_map(xz: Tensor, cx2: Tensor, weight: Tensor, bias: Tensor | None, c, dim: int = -1) -> Tensor:
    """The FC layer's map from :math:`\\langle x, z_k\\rangle` and :math:`c\\|x\\|^2` to the ball, along ``dim``.

    The fused :class:`_FCMap` unless the curvature needs a gradient or the call
    is being compiled (then the composite, autograd-differentiated path).
    """
    if torch.compiler.is_compiling() or (isinstance(c, Tensor) and c.requires_grad):
        return _to_ball(_distances(xz, cx2, weight, bias, c, dim), c, dim)
    if isinstance(c, Tensor):
        c = c.detach()
    return _FCMap.apply(xz, cx2, weight, bias, c, dim % xz.ndim)


def _fc_points(x: Tensor, weight: Tensor, bias: Tensor | None, c, validate: bool) -> Tensor:
    """:func:`poincare_fc` (with the membership check when ``validate``): one fused node, or the composite path."""
    if torch.compiler.is_compiling() or (isinstance(c, Tensor) and c.requires_grad):
        sq = (x * x).sum(-1, keepdim=True)  # [..., 1]
        if validate and not torch.compiler.is_compiling() and x.numel():
            _check_squared_norms(sq, x, "x", c)
        return _fc_map(x @ weight, c * sq, weight, bias, c)
    return _FCLayer.apply(x, weight, bias, c.detach() if isinstance(c, Tensor) else c, bool(validate))


def hyperplane_distances(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, c: object) -> Tensor:
    r"""HNN++ scaled signed hyperplane distances :math:`v_k(x)`: ``[..., n] -> [..., m]``.

    ``weight`` is ``[n, m]`` (column :math:`k` is :math:`z_k`), ``bias`` ``[m]``
    (the offsets :math:`r_k`). These are the logits of the Poincaré MLR.

    >>> x = torch.tensor([[0.1, 0.0]], dtype=torch.float64)
    >>> hyperplane_distances(x, 0.5 * torch.eye(2, dtype=torch.float64), c=1.0)
    tensor([[0.2007, 0.0000]], dtype=torch.float64)
    """
    cc = _c(c, x)
    xz = x @ weight  # [..., m]
    return _distances(xz, cc * (x * x).sum(-1, keepdim=True), weight, bias, cc)


def poincare_fc(x: Tensor, weight: Tensor, bias: Tensor | None = None, *, c: object) -> Tensor:
    r"""The HNN++ Poincaré fully-connected map (module notes): ``[..., n] -> [..., m]``.

    >>> x = torch.tensor([[0.1, -0.05]], dtype=torch.float64)
    >>> y = poincare_fc(x, 0.5 * torch.eye(2, dtype=torch.float64), c=1.0)
    >>> torch.allclose(y, x, atol=1e-3)  # identity initialisation: close to x on small inputs
    True
    """
    return _fc_points(x, weight, bias, _c(c, x), False)


def init_hnn_weight(weight: Tensor, *, id_init: bool) -> None:
    r"""In place: identity init (:math:`\tfrac12 I`) or HNN++'s :math:`\mathcal{N}(0, (2nm)^{-1})`.

    With ``id_init`` and more outputs than inputs (:math:`m > n`), the
    columns beyond :math:`n` are drawn from the HNN++ normal law instead of
    left at zero: a zero column gives an output coordinate that is exactly
    0, which the tangent ReLU (derivative 0 at 0) would never let train.
    """
    n, m = weight.shape
    with torch.no_grad():
        weight.normal_(0.0, (2.0 * n * m) ** -0.5)
        if id_init:
            k = min(n, m)
            weight[:, :k] = 0.5 * torch.eye(n, k, dtype=weight.dtype, device=weight.device)


def layer_ball(c: float, learnable: bool, ball: geoopt.PoincareBall | None, device, dtype) -> PoincareBall:
    """The curvature holder of a ball layer: an owned ball in the layer's dtype, or a shared one."""
    geometry = PoincareBall(c, learnable=learnable, ball=ball)
    if ball is None:
        geometry.ball.to(device=device, dtype=dtype)
        geometry.reset_curvature(c)
    return geometry


class PoincareLinear(torch.nn.Module):
    r"""Poincaré fully-connected layer (HNN++), points ``[..., in_features] -> [..., out_features]``.

    ``weight`` (``[in, out]``, the orientations :math:`z_k`) and ``bias``
    are Euclidean parameters, as in HNN++; the curvature, when learnable,
    is the ball's parameter.

    Parameters
    ----------
    in_features, out_features : int
        Dimensions of the input and output balls.
    c : float
        Curvature magnitude (the ball has curvature :math:`-c`), used as given.
    bias : bool
        Learn the hyperplane offsets :math:`r_k` (started at 0).
    id_init : bool
        The identity initialisation of Poincaré ResNet (``weight = I/2``);
        otherwise HNN++'s normal initialisation.
    learnable_curvature : bool
        Train ``c`` (geoopt's softplus parametrisation, started at ``c``).
    ball : geoopt.PoincareBall, optional
        Share one ball (and its curvature) with other layers.
    validate : bool
        Check that inputs are inside the ball (one norm and one host sync);
        skipped under ``torch.compile``.

    Examples
    --------
    >>> layer = PoincareLinear(3, 3, dtype=torch.float64)
    >>> x = torch.tensor([[0.01, 0.02, -0.01]], dtype=torch.float64)
    >>> torch.allclose(layer(x), x, rtol=1e-3)
    True
    >>> layer(torch.zeros(1, 3, dtype=torch.float64))
    tensor([[0., 0., 0.]], dtype=torch.float64, grad_fn=<_FCLayerBackward>)
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        c: float = 1.0,
        bias: bool = True,
        id_init: bool = True,
        learnable_curvature: bool = False,
        ball: geoopt.PoincareBall | None = None,
        validate: bool = True,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.in_features = check_int(in_features, "in_features")
        self.out_features = check_int(out_features, "out_features")
        self.id_init = bool(id_init)
        self.validate = bool(validate)
        self.geometry = layer_ball(c, learnable_curvature, ball, device, dtype)
        self.weight = torch.nn.Parameter(torch.empty(self.in_features, self.out_features, **factory))
        self.bias = torch.nn.Parameter(torch.empty(self.out_features, **factory)) if bias else None
        self.reset_parameters()

    @property
    def c(self) -> float | Tensor:
        """The curvature magnitude."""
        return self.geometry.c

    def reset_parameters(self) -> None:
        init_hnn_weight(self.weight, id_init=self.id_init)
        if self.bias is not None:
            torch.nn.init.zeros_(self.bias)

    def extra_repr(self) -> str:
        return (
            f"{self.in_features}, {self.out_features}, bias={self.bias is not None}, "
            f"id_init={self.id_init}, {self.geometry.extra_repr()}"
        )

    def _check(self, x: Tensor) -> Tensor:
        check_floating(x, "x")
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected points of shape [..., {self.in_features}], got {list(x.shape)}")
        return x

    def distances(self, x: Tensor) -> Tensor:
        """The hyperplane distances :math:`v_k(x)` ``[..., out]`` (Poincaré MLR logits)."""
        x, cc = self._check(x), _c(self.c, x)
        sq = (x * x).sum(-1, keepdim=True)  # [..., 1]
        if self.validate and not torch.compiler.is_compiling() and x.numel():
            _check_squared_norms(sq, x, "x", cc)  # the norms computed anyway
        return _distances(x @ self.weight, cc * sq, self.weight, self.bias, cc)

    def forward(self, x: Tensor) -> Tensor:
        return _fc_points(self._check(x), self.weight, self.bias, _c(self.c, x), self.validate)

