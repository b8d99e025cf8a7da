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

The named functions (log, exp, real powers) use closed forms with no
cancellation at all. Writing :math:`a = m e^{u}`, :math:`b = m e^{-u}`
(:math:`m = \sqrt{ab}`), with :math:`\operatorname{shc}(x) = \sinh(x)/x`:

.. math::

    \log[a, b] = \frac{1}{m \operatorname{shc}(u)}, \quad
    (\cdot)^p[a, b] = p\, m^{p-1}
        \frac{\operatorname{shc}(p u)}{\operatorname{shc}(u)}, \quad
    \exp[a, b] = e^{(a+b)/2} \operatorname{shc}\!\left(\frac{a-b}{2}\right).

A general function falls back to the divided difference with a switch to
derivatives below the relative gap :func:`geonorm._numerics.loewner_rtol`.
"""

from __future__ import annotations

from dataclasses import dataclass
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


def _shc(x: Tensor) -> Tensor:
    """sinh(x) / x, equal to 1 at x = 0 and accurate for small |x|."""
    safe = torch.where(x == 0, torch.ones_like(x), x)
    return torch.where(x == 0, torch.ones_like(x), torch.sinh(safe) / safe)


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
        Closed form of the first divided differences: maps eigenvalues
        ``[..., n]`` to ``[..., n, n]``. When absent, a thresholded generic
        formula is used.
    positive : bool
        The function is defined for positive eigenvalues only (log, real
        powers); eigenvalues are floored at the dtype's smallest normal number
        before evaluation, and callers that validate raise on non-positive
        ones.
    """

    name: str
    f: ScalarFn
    df: ScalarFn
    d2f: ScalarFn | None = None
    divided: Callable[[Tensor], Tensor] | None = None
    positive: bool = False

    def __repr__(self) -> str:
        return f"SpectralFunction({self.name})"


def _geometric_split(s: Tensor) -> tuple[Tensor, Tensor]:
    """For positive eigenvalues ``s`` return m = sqrt(a b) and u = log(a / b) / 2.

    Shapes: ``s`` is ``[..., n]``; both results are ``[..., n, n]`` with
    ``a = s[..., :, None]`` and ``b = s[..., None, :]``.
    """
    ls = torch.log(s)
    la, lb = ls.unsqueeze(-1), ls.unsqueeze(-2)  # [..., n, 1], [..., 1, n]
    return torch.exp(0.5 * (la + lb)), 0.5 * (la - lb)


def identity_function() -> SpectralFunction:
    """The identity :math:`f(x) = x` (useful clamped: ReEig)."""
    return SpectralFunction(
        name="id",
        f=lambda s: s,
        df=torch.ones_like,
        d2f=torch.zeros_like,
        divided=lambda s: torch.ones(s.shape + s.shape[-1:], dtype=s.dtype, device=s.device),
    )


def log_function() -> SpectralFunction:
    """The natural logarithm (positive eigenvalues)."""

    def divided(s: Tensor) -> Tensor:
        m, u = _geometric_split(s)
        return 1.0 / (m * _shc(u))  # [..., n, n]

    return SpectralFunction(
        name="log",
        f=torch.log,
        df=torch.reciprocal,
        d2f=lambda s: -1.0 / (s * s),
        divided=divided,
        positive=True,
    )


def exp_function() -> SpectralFunction:
    """The exponential (any real eigenvalues)."""

    def divided(s: Tensor) -> Tensor:
        a, b = s.unsqueeze(-1), s.unsqueeze(-2)
        return torch.exp(0.5 * (a + b)) * _shc(0.5 * (a - b))  # [..., n, n]

    return SpectralFunction(
        name="exp", f=torch.exp, df=torch.exp, d2f=torch.exp, divided=divided
    )


def power_function(p: float | Tensor) -> SpectralFunction:
    """The real power ``x ** p`` (positive eigenvalues).

    ``p`` is a float, or a tensor of shape ``[...]`` broadcastable to the
    leading (batch) dimensions of the matrices it is applied to: one exponent
    per matrix.
    """
    if isinstance(p, torch.Tensor):
        pv, pm = p.unsqueeze(-1), p.unsqueeze(-1).unsqueeze(-1)  # [..., 1], [..., 1, 1]
        name = "pow(tensor)"
    else:
        pv = pm = float(p)
        name = f"pow({pv:g})"

    def divided(s: Tensor) -> Tensor:
        m, u = _geometric_split(s)
        return pm * torch.pow(m, pm - 1.0) * _shc(pm * u) / _shc(u)  # [..., n, n]

    return SpectralFunction(
        name=name,
        f=lambda s: torch.pow(s, pv),
        df=lambda s: pv * torch.pow(s, pv - 1.0),
        d2f=lambda s: pv * (pv - 1.0) * torch.pow(s, pv - 2.0),
        divided=divided,
        positive=True,
    )


def clamped(fn: SpectralFunction, lo: float) -> SpectralFunction:
    r"""``fn`` applied to eigenvalues clamped from below: :math:`f(\max(\lambda, lo))`.

    The derivative is that of the clamped function: directions that only move
    eigenvalues below ``lo`` have zero derivative (as in ReEig, Huang & Van
    Gool, AAAI 2017). Divided differences use the generic thresholded formula.
    """
    lo = float(lo)

    def f(s: Tensor) -> Tensor:
        return fn.f(torch.clamp(s, min=lo))

    def df(s: Tensor) -> Tensor:
        return torch.where(s > lo, fn.df(torch.clamp(s, min=lo)), torch.zeros_like(s))

    d2f = None
    if fn.d2f is not None:
        inner_d2f = fn.d2f

        def d2f(s: Tensor) -> Tensor:
            return torch.where(
                s > lo, inner_d2f(torch.clamp(s, min=lo)), torch.zeros_like(s)
            )

    return SpectralFunction(
        name=f"{fn.name}∘clamp({lo:g})", f=f, df=df, d2f=d2f, positive=False
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
    if fn.divided is not None:
        return fn.divided(s)
    if fs is None:
        fs = fn.f(s)
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
