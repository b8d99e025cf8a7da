"""Validation of metric hyper-parameters shared by the SPD geometries."""

from __future__ import annotations

import math

from .._checks import check_int, check_real


def check_theta(theta: float) -> float:
    """The power deformation θ must be a finite non-zero real number."""
    if isinstance(theta, bool) or not isinstance(theta, (int, float)):
        raise TypeError(f"theta: expected a float, got {type(theta).__name__}")
    if theta == 0 or not math.isfinite(theta):
        raise ValueError(f"theta: expected a finite non-zero float, got {theta!r}")
    return float(theta)


def check_alpha_beta(alpha: float, beta: float) -> tuple[float, float]:
    """α > 0 and β finite; the dimension-dependent bound is :func:`check_beta_bound`."""
    for name, value in (("alpha", alpha), ("beta", beta)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name}: expected a float, got {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite float, got {value!r}")
    if not alpha > 0:
        raise ValueError(f"alpha: expected alpha > 0, got {alpha!r}")
    return float(alpha), float(beta)


def check_beta_bound(alpha: float, beta: float, n: int) -> None:
    r"""The (α, β) inner product is positive definite iff α > 0 and β > −α/n."""
    if not beta > -alpha / n:
        raise ValueError(
            f"beta: expected beta > -alpha/n = {-alpha / n:.6g} for n = {n} "
            f"(so that the (alpha, beta) inner product is positive definite), got {beta!r}"
        )


def check_steps(steps: int, name: str = "karcher_steps") -> int:
    return check_int(steps, name)


def check_tol(tol: float, name: str = "tol") -> float:
    return check_real(tol, name, low=0.0)
