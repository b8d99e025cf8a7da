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
    """Compute half-precision inputs in float32 and cast the result back.

    The dtype of the first argument decides (as in :func:`geonorm.linalg.apply_spectral`);
    other floating tensors (positional, or the ``metric`` keyword) follow it. Inputs in
    float32 or float64 pass through unchanged.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = args[0] if args else None
        if not (isinstance(first, Tensor) and first.is_floating_point()):
            return fn(*args, **kwargs)
        work = compute_dtype(first.dtype)
        if work == first.dtype:
            return fn(*args, **kwargs)

        def cast(a):
            return a.to(work) if isinstance(a, Tensor) and a.is_floating_point() else a

        args = tuple(cast(a) for a in args)
        if "metric" in kwargs:
            kwargs["metric"] = cast(kwargs["metric"])
        return fn(*args, **kwargs).to(first.dtype)

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


