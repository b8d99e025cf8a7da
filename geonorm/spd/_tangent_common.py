"""Helpers shared by :mod:`geonorm.spd.tangent` and :mod:`geonorm.spd.tangent_bw`."""

from __future__ import annotations

import functools
from typing import Callable, TypeVar

import torch

from .._numerics import compute_dtype
from .._checks import check_spd, check_sym_matrix
from ..linalg import sym_powm
from ..linalg.differential import spectral_differential, spectral_differential_inverse
from ..linalg.spectral import power_function

Tensor = torch.Tensor
F = TypeVar("F", bound=Callable[..., Tensor])


def half_in_float32(fn: F) -> F:
    """Run ``fn`` in the compute dtype of its first tensor argument, with autocast off.

    When that argument is half precision, every floating tensor argument
    (positional or keyword, e.g. ``metric``) is cast to float32; autocast is
    disabled inside (it would turn the products back into half-precision
    ones); tensor results (or tuples of them) are cast back to the argument's
    dtype. float32/float64 inputs outside autocast pass through untouched.
    Serves functions and methods alike (``self`` is not a tensor).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = next((a for a in args if isinstance(a, Tensor) and a.is_floating_point()), None)
        if first is None:
            return fn(*args, **kwargs)
        work = compute_dtype(first.dtype)
        if work == first.dtype and not torch.is_autocast_enabled(first.device.type):
            return fn(*args, **kwargs)

        def cast(a, dtype):
            return a.to(dtype) if isinstance(a, Tensor) and a.is_floating_point() else a

        args = tuple(cast(a, work) for a in args)
        kwargs = {k: cast(v, work) for k, v in kwargs.items()}
        with torch.autocast(first.device.type, enabled=False):
            out = fn(*args, **kwargs)
        if isinstance(out, tuple):
            return tuple(cast(o, first.dtype) for o in out)
        return cast(out, first.dtype)

    return wrapper  # type: ignore[return-value]


def check_points(**points: Tensor) -> None:
    """SPD check (one Cholesky) of each named point."""
    for name, x in points.items():
        check_spd(x, name)


def check_tangents(**vectors: Tensor) -> None:
    """Symmetric-matrix check of each named tangent vector."""
    for name, v in vectors.items():
        check_sym_matrix(v, name)


def power_differential(x: Tensor, v: Tensor, theta: float, *, inverse: bool = False) -> Tensor:
    r""":math:`D(\cdot)^\theta_x[v]` (or its inverse); the identity map when :math:`\theta = 1`."""
    if theta == 1.0:
        return v
    fn = power_function(theta)
    if inverse:
        return spectral_differential_inverse(x, v, fn, check=False)
    return spectral_differential(x, v, fn, check=False)


def power(x: Tensor, p: float) -> Tensor:
    """:math:`x^p` (``x`` itself when :math:`p = 1`)."""
    return x if p == 1.0 else sym_powm(x, p, check=False)


