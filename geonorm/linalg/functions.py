r"""Named symmetric matrix functions: log, exp, square roots, real powers.

All of them are :math:`F(X) = U f(\Lambda) U^\top` computed by
:func:`geonorm.linalg.apply_spectral`, so they share its Daleckii–Krein
backward (exact and finite for repeated eigenvalues), its float32 path for
half precision, and its input checks.

Clamping
--------
``clamp_min`` (where offered) raises eigenvalues below it to ``clamp_min``
before the function is applied, :math:`F(X) = U f(\max(\Lambda, c)) U^\top`.
It is a regularisation of ill-conditioned or rank-deficient input (the
"ReEig" of SPDNet built into the function): the result is the function of the
nearest matrix, in the spectral sense, whose eigenvalues are at least ``c``,
and the derivative is that of the clamped function (zero along directions
that only move clamped eigenvalues). With ``clamp_min`` set, non-positive
eigenvalues are allowed as input.
"""

from __future__ import annotations

from typing import Callable

import torch

from .._checks import check_floating, check_square, check_sym_and_spectrum
from .eig import apply_spectral, sym
from .spectral import (
    SpectralFunction,
    clamped,
    exp_function,
    log_function,
    power_function,
)

Tensor = torch.Tensor

__all__ = [
    "sym_logm",
    "sym_expm",
    "sym_sqrtm",
    "sym_invsqrtm",
    "sym_sqrtm_invsqrtm",
    "sym_powm",
    "sym_func",
]

_LOG = log_function()
_EXP = exp_function()
_SQRT = power_function(0.5)
_INVSQRT = power_function(-0.5)
_MATMUL_POWER_MAX = 8  # integer powers up to this one are matrix products (at most 4 of them)


def _maybe_clamped(fn: SpectralFunction, clamp_min: float | None) -> SpectralFunction:
    if clamp_min is None:
        return fn
    if not clamp_min > 0:
        raise ValueError(f"clamp_min: expected a positive float, got {clamp_min!r}")
    return clamped(fn, clamp_min)


def sym_logm(x: Tensor, *, clamp_min: float | None = None, check: bool = True) -> Tensor:
    r"""Matrix logarithm of SPD matrices, :math:`\log X = U \log(\Lambda) U^\top`.

    Parameters
    ----------
    x : Tensor
        ``[..., n, n]`` symmetric positive definite matrices.
    clamp_min : float, optional
        Raise eigenvalues below this value to it first (see module notes).
    check : bool
        Validate the input (raises ``ValueError`` for non-square, non-symmetric,
        non-finite or non-positive-definite input).

    Examples
    --------
    >>> x = torch.diag(torch.tensor([1.0, torch.e], dtype=torch.float64))
    >>> torch.diagonal(sym_logm(x))
    tensor([0., 1.], dtype=torch.float64)
    """
    fn = _maybe_clamped(_LOG, clamp_min)
    return apply_spectral(x, [fn], check=check)[0]


def sym_expm(x: Tensor, *, check: bool = True) -> Tensor:
    r"""Matrix exponential of symmetric matrices, :math:`U \exp(\Lambda) U^\top`.

    Examples
    --------
    >>> torch.diagonal(sym_expm(torch.zeros(2, 2, dtype=torch.float64)))
    tensor([1., 1.], dtype=torch.float64)
    """
    return apply_spectral(x, [_EXP], check=check)[0]


def sym_sqrtm(x: Tensor, *, clamp_min: float | None = None, check: bool = True) -> Tensor:
    r"""Principal square root of SPD matrices, :math:`U \Lambda^{1/2} U^\top`.

    Examples
    --------
    >>> torch.diagonal(sym_sqrtm(torch.diag(torch.tensor([4.0, 9.0]))))
    tensor([2., 3.])
    """
    fn = _maybe_clamped(_SQRT, clamp_min)
    return apply_spectral(x, [fn], check=check)[0]


def sym_invsqrtm(
    x: Tensor, *, clamp_min: float | None = None, check: bool = True
) -> Tensor:
    r"""Inverse principal square root of SPD matrices, :math:`U \Lambda^{-1/2} U^\top`.

    Examples
    --------
    >>> torch.diagonal(sym_invsqrtm(torch.diag(torch.tensor([4.0, 0.25]))))
    tensor([0.5000, 2.0000])
    """
    fn = _maybe_clamped(_INVSQRT, clamp_min)
    return apply_spectral(x, [fn], check=check)[0]


def sym_sqrtm_invsqrtm(
    x: Tensor, *, clamp_min: float | None = None, check: bool = True, eig: tuple[Tensor, Tensor] | None = None
) -> tuple[Tensor, Tensor]:
    r""":math:`X^{1/2}` and :math:`X^{-1/2}` from one eigendecomposition.

    Both outputs are differentiable; their gradients are summed in one
    Daleckii–Krein backward. ``eig``: ``x``'s eigendecomposition, if already
    computed (as for :func:`~geonorm.linalg.apply_spectral`).
    """
    fns = [_maybe_clamped(_SQRT, clamp_min), _maybe_clamped(_INVSQRT, clamp_min)]
    sq, isq = apply_spectral(x, fns, check=check, eig=eig)
    return sq, isq


def sym_powm(
    x: Tensor, p: float, *, clamp_min: float | None = None, check: bool = True
) -> Tensor:
    r"""Real power of SPD matrices, :math:`X^p = U \Lambda^p U^\top`, any real ``p``.

    Integer powers from 2 to 8 (without ``clamp_min``) are computed as
    matrix products (``torch.linalg.matrix_power``; float32/float64 outside
    autocast), the same matrix without
    an eigendecomposition, differentiated by autograd; a chart such as
    :math:`P \mapsto P^{1/2}` then costs one eigendecomposition, not two.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([4.0, 16.0], dtype=torch.float64))
    >>> torch.diagonal(sym_powm(x, -1.5))
    tensor([0.1250, 0.0156], dtype=torch.float64)
    """
    if isinstance(p, torch.Tensor) or not isinstance(p, (int, float)):
        raise TypeError(f"p: expected a Python int or float, got {type(p).__name__}")
    if (
        clamp_min is None and float(p).is_integer() and 1 <= p <= _MATMUL_POWER_MAX
        and x.dtype in (torch.float32, torch.float64) and not torch.is_autocast_enabled(x.device.type)
    ):
        # X^k by repeated squaring: exact for symmetric X, no eigendecomposition
        # (validation, when asked, still reads the spectrum: SPD as for any p)
        if check:
            check_floating(x, "x")
            check_square(x, "x")
            s = torch.linalg.eigvalsh(sym(x.detach()))
            check_sym_and_spectrum(x, s, "x", what=f" for pow({float(p)})")
        return x if p == 1 else sym(torch.linalg.matrix_power(x, int(p)))
    fn = _maybe_clamped(power_function(p), clamp_min)
    return apply_spectral(x, [fn], check=check)[0]


def sym_func(
    x: Tensor,
    f: Callable[[Tensor], Tensor],
    df: Callable[[Tensor], Tensor],
    *,
    d2f: Callable[[Tensor], Tensor] | None = None,
    positive: bool = False,
    check: bool = True,
) -> Tensor:
    r"""A general symmetric matrix function :math:`U f(\Lambda) U^\top`.

    Parameters
    ----------
    x : Tensor
        ``[..., n, n]`` symmetric matrices.
    f, df : callable
        The scalar function and its derivative, elementwise on eigenvalues.
    d2f : callable, optional
        Second derivative; needed only for double backward.
    positive : bool
        ``f`` is defined on positive eigenvalues only; the input must then be
        positive definite (checked when ``check``).
    check : bool
        Validate the input.

    Notes
    -----
    The backward uses divided differences :math:`(f(a) - f(b)) / (a - b)`,
    switched to :math:`(f'(a) + f'(b)) / 2` below the relative gap
    :func:`geonorm._numerics.loewner_rtol`; both branches stay within about
    :math:`\epsilon^{2/3}` of the exact value for smooth ``f``.

    Examples
    --------
    >>> x = torch.diag(torch.tensor([-1.0, 2.0], dtype=torch.float64))
    >>> torch.diagonal(sym_func(x, torch.tanh, lambda s: 1 - torch.tanh(s) ** 2))
    tensor([-0.7616,  0.9640], dtype=torch.float64)
    """
    fn = SpectralFunction(name=getattr(f, "__name__", "f"), f=f, df=df, d2f=d2f, positive=positive)
    return apply_spectral(x, [fn], check=check)[0]
