r"""Scalar functions applied to eigenvalues, with their divided differences.

A symmetric matrix function :math:`F(X) = U f(\Lambda) U^\top` has the
Daleckii–Krein derivative

.. math::

    DF(X)[E] = U \left( f^{[1]}(\Lambda) \circ (U^\top E U) \right) U^\top,
    \qquad f^{[1]}_{ij} = f[\lambda_i, \lambda_j] =
    \begin{cases} \dfrac{f(\lambda_i) - f(\lambda_j)}{\lambda_i - \lambda_j}
    & \lambda_i \ne \lambda_j \\ f'(\lambda_i) & \lambda_i = \lambda_j
    \end{cases}

(the Loewner matrix), and a second derivative built from the second divided
differences :math:`f[\lambda_i, \lambda_j, \lambda_k]` (Bhatia, *Matrix
Analysis*, 1997, §V.3). This module holds the :class:`SpectralFunction`
description of :math:`f` and computes both divided-difference tensors so that
they stay exact and finite when eigenvalues are equal or nearly equal.

The powers :math:`\tfrac12, -\tfrac12, -1` have closed forms without
cancellation (:math:`1/(\sqrt a + \sqrt b)`, :math:`-1/(\sqrt{ab}(\sqrt a +
\sqrt b))`, :math:`-1/(ab)`). The other named functions (log, exp, real
powers) split each pair of eigenvalues by its gap: well-separated pairs use
the quotient :math:`(f(a) - f(b))/(a - b)` (cancellation costs at most
:math:`\epsilon/\delta` relative, with :math:`\delta = 10^{-3}` the relative
gap of the switch), close pairs the
Taylor series about the geometric mean :math:`m = \sqrt{ab}` in
:math:`t = (a - b)/(a + b)`,

.. math::

    \log[a, b] \approx \frac{1}{m}\Big(1 - \frac{t^2}{6}\Big), \quad
    (\cdot)^p[a, b] \approx p\, m^{p-1}\Big(1 + \frac{(p^2 - 1)\, t^2}{6}\Big),

and for the exponential, about the arithmetic mean with :math:`d = a - b`,
:math:`\exp[a, b] \approx e^{(a+b)/2}(1 + d^2/24)`. Both branches stay within
about :math:`10^{-12}` (relative) of the exact value, equal eigenvalues
included (checked against 50-digit arithmetic in the tests). The diagonal
is :math:`f'(\lambda_i)` (where the series equals it); in eager mode the
close pairs off the diagonal (repeated eigenvalues) are found with
``nonzero`` and only they are evaluated by the series. Under
``torch.compile`` the branches are combined arithmetically, :math:`q (1 - c)
+ s\,c` with the 0/1 mask :math:`c` of close pairs (the quotient's
denominator is :math:`a - b + c`, finite everywhere). Neither uses
``torch.where``, whose boolean-mask kernel costs about ten elementwise passes
on CPU, and no transcendental function is evaluated on the ``[..., n, n]``
pairs.

A general function falls back to the divided difference with a switch to
derivatives below the relative gap :func:`geonorm._numerics.loewner_rtol`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from .._numerics import loewner_rtol, tiny_for

Tensor = torch.Tensor
ScalarFn = Callable[[Tensor], Tensor]

__all__ = [
    "SpectralFunction",
    "identity_function",
    "log_function",
    "exp_function",
    "power_function",
    "clamped",
    "first_divided_differences",
    "second_divided_differences",
]



@dataclass(frozen=True, eq=False)
class SpectralFunction:
    """A scalar function to apply to eigenvalues, with what its derivatives need.

    Parameters
    ----------
    name : str
        Short name for messages and ``repr``.
    f, df : callable
        The function and its derivative, applied elementwise to eigenvalues.
    d2f : callable, optional
        Second derivative, needed only for double backward (``gradgradcheck``,
        Hessian-vector products).
    divided : callable, optional
        Accurate first divided differences: ``divided(s, fs)`` maps
        eigenvalues ``[..., n]`` and their images ``f(s)`` to ``[..., n, n]``.
        When absent, a thresholded generic formula is used.
    positive : bool
        The function is defined for positive eigenvalues only (log, real
        powers); eigenvalues are floored at the dtype's smallest normal number
        before evaluation, and callers that validate raise on non-positive
        ones.
    recipe : tuple, optional
        ``(factory, args)`` that rebuilds this function: how it is pickled and
        deep-copied (its callables are closures, which pickle cannot store).
        The named functions below set it; a function built from arbitrary
        callables pickles only if they do.
    """

    name: str
    f: ScalarFn
    df: ScalarFn
    d2f: ScalarFn | None = None
    divided: Callable[[Tensor, Tensor], Tensor] | None = None
    positive: bool = False
    recipe: tuple | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"SpectralFunction({self.name})"

    def __reduce__(self):
        if self.recipe is None:
            return super().__reduce__()
        return self.recipe


_SERIES_GAP = 1e-3  # relative gap below which the named functions use their series


def _pairs(s: Tensor) -> tuple[Tensor, Tensor]:
    """``a = s[..., :, None]`` and ``b = s[..., None, :]`` (broadcast to ``[..., n, n]``)."""
    return s.unsqueeze(-1), s.unsqueeze(-2)


def _blend(close: Tensor, series: Tensor, quotient: Tensor) -> Tensor:
    """``series`` where ``close`` (a 0/1 float mask) is 1, ``quotient`` where it is 0."""
    return torch.addcmul(quotient * (1.0 - close), series, close)


Series = Callable[[Tensor, Tensor, "tuple[Tensor, ...] | None"], Tensor]


def _quotient_or_series(
    s: Tensor, fs: Tensor, level, series: Series, derivative: Tensor, *, relative: bool = True
) -> Tensor:
    r"""``(f(a) - f(b)) / (a - b)``, or ``series(a, b, lead)`` where :math:`|a - b| \le`
    ``level`` (times :math:`a + b` when ``relative``), over all pairs ``[..., n, n]``;
    ``derivative`` (``f'(s)``, ``[..., n]``) is the diagonal, where the series equals it.

    In eager mode the close pairs off the diagonal (repeated eigenvalues) are
    found with ``nonzero`` and only they are evaluated by the series
    (``lead``: their batch indices, for per-matrix parameters). Under
    ``torch.compile`` (no data-dependent shapes) both branches are evaluated
    everywhere and blended with a 0/1 mask (``lead`` is ``None``); the values
    are the same.
    """
    a, b = _pairs(s)
    gap = a - b
    width = gap.abs()
    if relative:  # level (a + b), from per-eigenvalue halves: one pass over the pairs
        half = s * level if not isinstance(level, Tensor) else s * level.squeeze(-1)
        limit = half.unsqueeze(-1) + half.unsqueeze(-2)
    else:
        limit = level
    numerator = fs.unsqueeze(-1) - fs.unsqueeze(-2)
    if torch.compiler.is_compiling():
        close = torch.sign(limit - width).clamp_(min=0.0)  # 0/1, cheaper than `<=` and a cast
        # the mask moves the close pairs' denominator away from 0; their quotient is discarded
        return _blend(close, series(a, b, None), numerator.div_(gap + close))
    close = width <= limit
    close.diagonal(dim1=-2, dim2=-1).fill_(False)
    idx = close.nonzero(as_tuple=True)
    gap.diagonal(dim1=-2, dim2=-1).fill_(1.0)
    if idx[0].numel():
        gap[idx] = 1.0
    out = numerator.div_(gap)
    out.diagonal(dim1=-2, dim2=-1).copy_(derivative)
    if idx[0].numel():
        lead = idx[:-2]
        out[idx] = series(s[lead + (idx[-2],)], s[lead + (idx[-1],)], lead)
    return out


def identity_function() -> SpectralFunction:
    """The identity :math:`f(x) = x` (useful clamped: ReEig)."""
    return SpectralFunction(
        name="id",
        f=lambda s: s,
        df=torch.ones_like,
        d2f=torch.zeros_like,
        divided=lambda s, fs: torch.ones(s.shape + s.shape[-1:], dtype=s.dtype, device=s.device),
        recipe=(identity_function, ()),
    )


def log_function() -> SpectralFunction:
    """The natural logarithm (positive eigenvalues)."""

    def series(a: Tensor, b: Tensor, lead) -> Tensor:
        t = (a - b) / (a + b)
        return torch.rsqrt(a * b) * (1.0 - t * t / 6.0)

    def divided(s: Tensor, fs: Tensor) -> Tensor:
        return _quotient_or_series(s, fs, 0.5 * _SERIES_GAP, series, torch.reciprocal(s))

    return SpectralFunction(
        name="log",
        f=torch.log,
        df=torch.reciprocal,
        d2f=lambda s: -1.0 / (s * s),
        divided=divided,
        positive=True,
        recipe=(log_function, ()),
    )


def exp_function() -> SpectralFunction:
    """The exponential (any real eigenvalues)."""

    def series(a: Tensor, b: Tensor, lead) -> Tensor:
        d = a - b
        return torch.exp(0.5 * (a + b)) * (1.0 + d * d / 24.0)

    def divided(s: Tensor, fs: Tensor) -> Tensor:
        return _quotient_or_series(s, fs, _SERIES_GAP, series, fs, relative=False)

    return SpectralFunction(
        name="exp", f=torch.exp, df=torch.exp, d2f=torch.exp, divided=divided,
        recipe=(exp_function, ()),
    )


def _pair_sum(v: Tensor) -> Tensor:
    """``v_i + v_j`` ``[..., n, n]`` for ``v`` ``[..., n]``."""
    a, b = _pairs(v)
    return a + b


def _pair_product(v: Tensor) -> Tensor:
    """``v_i v_j`` ``[..., n, n]`` for ``v`` ``[..., n]``."""
    a, b = _pairs(v)
    return a * b


#: Divided differences ``divided(s, fs)`` of :math:`x^p` in closed form, for the powers
#: whose quotient factors without a difference: nothing cancels, equal eigenvalues
#: included (the value there is :math:`f'`), so there is no branch and no series.
_CLOSED_POWER_DIVIDED: dict[float, Callable[[Tensor, Tensor], Tensor]] = {
    # (√a − √b) / (a − b) = 1 / (√a + √b)
    0.5: lambda s, fs: torch.reciprocal(_pair_sum(fs)),
    # (1/√a − 1/√b) / (a − b) = −(1/√a)(1/√b) / (√a + √b)
    -0.5: lambda s, fs: _pair_product(fs).div_(_pair_sum(s.sqrt())).neg_(),
    # (1/a − 1/b) / (a − b) = −(1/a)(1/b)
    -1.0: lambda s, fs: _pair_product(fs).neg_(),
}


def power_function(p: float | Tensor) -> SpectralFunction:
    r"""The real power ``x ** p`` (positive eigenvalues).

    ``p`` is a float, or a tensor of shape ``[...]`` broadcastable to the
    leading (batch) dimensions of the matrices it is applied to: one exponent
    per matrix. For :math:`p \in \{\tfrac12, -\tfrac12, -1\}` the divided
    differences are closed forms without cancellation (e.g.
    :math:`(\sqrt a - \sqrt b)/(a - b) = 1/(\sqrt a + \sqrt b)`); other
    powers switch between the quotient and the series by the gap.
    """
    if isinstance(p, torch.Tensor):
        pv, pm = p.unsqueeze(-1), p.unsqueeze(-1).unsqueeze(-1)  # [..., 1], [..., 1, 1]
        # the series' next term grows like p^4 t^4: shrink the switch for large |p|
        level = 0.5 * _SERIES_GAP / torch.clamp(pm.abs(), min=1.0)
        name = "pow(tensor)"
    else:
        pv = pm = float(p)
        level = 0.5 * _SERIES_GAP / max(1.0, abs(pv))
        name = f"pow({pv})"  # not :g, which a traced (symbolic) float refuses

    def df(s: Tensor) -> Tensor:
        return pv * torch.pow(s, pv - 1.0)

    def divided(s: Tensor, fs: Tensor) -> Tensor:
        closed = None if isinstance(p, torch.Tensor) else _CLOSED_POWER_DIVIDED.get(pv)
        if closed is not None:
            return closed(s, fs)

        def series(a: Tensor, b: Tensor, lead) -> Tensor:
            q = pm
            if lead is not None and isinstance(p, torch.Tensor):  # the close pairs' exponents
                q = p.expand(s.shape[:-1])[lead]
            t = (a - b) / (a + b)
            return q * torch.pow(a * b, 0.5 * (q - 1.0)) * (1.0 + (q * q - 1.0) * t * t / 6.0)

        return _quotient_or_series(s, fs, level, series, df(s))

    return SpectralFunction(
        name=name,
        f=lambda s: torch.pow(s, pv),
        df=df,
        d2f=lambda s: pv * (pv - 1.0) * torch.pow(s, pv - 2.0),
        divided=divided,
        positive=True,
        recipe=(power_function, (p,)),
    )


def clamped(fn: SpectralFunction, lo: float) -> SpectralFunction:
    r"""``fn`` applied to eigenvalues clamped from below: :math:`f(\max(\lambda, lo))`.

    The derivative is that of the clamped function: directions that only move
    eigenvalues below ``lo`` have zero derivative (as in ReEig, Huang & Van
    Gool, AAAI 2017). Divided differences are exact: ``fn``'s own where both
    eigenvalues are above ``lo``, zero where both are at or below it, and the
    quotient :math:`(f(\max(a, lo)) - f(\max(b, lo)))/(a - b)` across ``lo``
    (there :math:`a \ne b`, and nothing cancels).
    """
    lo = float(lo)
    inner_is_identity = fn.recipe is not None and fn.recipe[0] is identity_function

    def f(s: Tensor) -> Tensor:
        return fn.f(torch.clamp(s, min=lo))

    def df(s: Tensor) -> Tensor:
        return torch.where(s > lo, fn.df(torch.clamp(s, min=lo)), torch.zeros_like(s))

    def divided(s: Tensor, fs: Tensor) -> Tensor:
        a, b = _pairs(s)
        gap = a - b
        # a pair not both above lo with a == b is both below: numerator 0, so any denominator does
        across = (fs.unsqueeze(-1) - fs.unsqueeze(-2)).div_(gap - gap.abs().sign_().sub_(1.0))  # + (a == b)
        above = (s > lo).to(s.dtype)
        both = above.unsqueeze(-1) * above.unsqueeze(-2)  # [..., n, n], 0/1
        if inner_is_identity:  # f[a, b] = 1 above lo
            return torch.addcmul(both, across, 1.0 - both)
        return _blend(both, first_divided_differences(fn, torch.clamp(s, min=lo), fs), across)

    d2f = None
    if fn.d2f is not None:
        inner_d2f = fn.d2f

        def d2f(s: Tensor) -> Tensor:
            return torch.where(
                s > lo, inner_d2f(torch.clamp(s, min=lo)), torch.zeros_like(s)
            )

    return SpectralFunction(
        name=f"{fn.name}∘clamp({lo:g})", f=f, df=df, d2f=d2f, divided=divided, positive=False,
        recipe=(clamped, (fn, lo)),
    )


def _generic_first(fn: SpectralFunction, s: Tensor, fs: Tensor) -> Tensor:
    """Thresholded first divided differences, ``[..., n]`` -> ``[..., n, n]``."""
    a, b = s.unsqueeze(-1), s.unsqueeze(-2)
    gap = a - b
    scale = torch.clamp(torch.maximum(a.abs(), b.abs()), min=tiny_for(s.dtype))
    close = gap.abs() <= loewner_rtol(s.dtype) * scale
    dfs = fn.df(s)
    mean_df = 0.5 * (dfs.unsqueeze(-1) + dfs.unsqueeze(-2))
    quotient = (fs.unsqueeze(-1) - fs.unsqueeze(-2)) / torch.where(
        close, torch.ones_like(gap), gap
    )
    return torch.where(close, mean_df, quotient)


def first_divided_differences(
    fn: SpectralFunction, s: Tensor, fs: Tensor | None = None
) -> Tensor:
    """Loewner matrix ``f[s_i, s_j]`` of shape ``[..., n, n]`` for eigenvalues ``s``.

    ``fs`` (``fn.f(s)``) may be passed to avoid recomputing it.
    """
    if fs is None:
        fs = fn.f(s)
    if fn.divided is not None:
        return fn.divided(s, fs)
    return _generic_first(fn, s, fs)


def second_divided_differences(fn: SpectralFunction, s: Tensor) -> Tensor:
    r"""Second divided differences ``f[s_i, s_j, s_k]``, shape ``[..., n, n, n]``.

    Uses :math:`f[a, b, c] = (f[a, b] - f[b, c]) / (a - c)` with the pair of
    largest gap in the denominator (the value is symmetric in its arguments),
    and :math:`(f''(a) + f''(b) + f''(c)) / 6` when all three are within
    :func:`~geonorm._numerics.loewner_rtol` of each other.
    """
    if fn.d2f is None:
        raise RuntimeError(
            f"double backward through {fn!r} needs its second derivative d2f"
        )
    d1 = first_divided_differences(fn, s)  # [..., n, n]
    d2s = fn.d2f(s)
    si = s[..., :, None, None]
    sj = s[..., None, :, None]
    sk = s[..., None, None, :]
    # Three equivalent quotients, one per choice of denominator pair.
    d_ij = d1.unsqueeze(-1)  # f[s_i, s_j] at [..., i, j, k]
    d_jk = d1.unsqueeze(-3)  # f[s_j, s_k]
    d_ik = d1.unsqueeze(-2)  # f[s_i, s_k]
    gaps = torch.stack(
        torch.broadcast_tensors(si - sk, sj - sk, si - sj), dim=0
    )  # [3, ..., n, n, n]
    numerators = torch.stack(
        torch.broadcast_tensors(d_ij - d_jk, d_ij - d_ik, d_ik - d_jk), dim=0
    )
    best = gaps.abs().argmax(dim=0, keepdim=True)
    gap = torch.gather(gaps, 0, best).squeeze(0)
    num = torch.gather(numerators, 0, best).squeeze(0)
    scale = torch.clamp(
        torch.maximum(torch.maximum(si.abs(), sj.abs()), sk.abs()),
        min=tiny_for(s.dtype),
    )
    close = gap.abs() <= loewner_rtol(s.dtype) * scale
    mean_d2 = (
        d2s[..., :, None, None] + d2s[..., None, :, None] + d2s[..., None, None, :]
    ) / 6.0
    return torch.where(close, mean_d2, num / torch.where(close, torch.ones_like(gap), gap))
