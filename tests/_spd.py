"""Seeded SPD test matrices with a chosen spectrum (float64)."""

from __future__ import annotations

import torch


def random_orthogonal(n: int, gen: torch.Generator, batch: tuple[int, ...] = ()) -> torch.Tensor:
    a = torch.randn(*batch, n, n, generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)


def spd_with_spectrum(eigvals: torch.Tensor, gen: torch.Generator, batch: tuple[int, ...] = ()) -> torch.Tensor:
    """Q diag(eigvals) Q^T with Haar-random Q, exactly symmetric."""
    q = random_orthogonal(eigvals.shape[-1], gen, batch)
    x = (q * eigvals.to(torch.float64)) @ q.transpose(-1, -2)
    return 0.5 * (x + x.transpose(-1, -2))


def random_spd(n: int, gen: torch.Generator, batch: tuple[int, ...] = (), cond: float = 10.0) -> torch.Tensor:
    ev = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=torch.float64)
    return spd_with_spectrum(ev, gen, batch)


# -- tolerances from the conditioning ------------------------------------------------
#
# A backward-stable algorithm (Cholesky, a symmetric eigensolver, Bartels-Stewart,
# a matrix product) returns the exact result for an input perturbed by about
# n * eps relative (Higham, "Accuracy and Stability of Numerical Algorithms",
# 2nd ed., 2002, ch. 1.6, 10, 11). The forward error is then at most the
# problem's relative condition number kappa times that: |computed - exact| /
# |exact| <~ kappa * n * eps. A test comparing two implementations allows the
# sum of both errors; ``ROUNDING_CONSTANT`` covers the algorithms' constants:
# the measured error / (max(kappa, 1) * n * eps) of the comparisons in this
# suite is at most about 1.5 where they were written, so 16 leaves a tenfold
# margin for another BLAS or CPU.

ROUNDING_CONSTANT = 16.0


def rounding_bound(n: int, kappa: float = 1.0, dtype: torch.dtype = torch.float64) -> float:
    """Normwise relative forward-error bound ``ROUNDING_CONSTANT * n * max(kappa, 1) * eps``.

    ``max(kappa, 1)``: storing the result rounds it by eps even where the
    problem is better conditioned than that.
    """
    return ROUNDING_CONSTANT * n * max(kappa, 1.0) * torch.finfo(dtype).eps


def rel_error(a: torch.Tensor, b) -> float:
    """Frobenius-norm error of ``a`` relative to ``|b|`` (``b`` a tensor or an array)."""
    a = a.detach()
    b = torch.as_tensor(b.detach() if isinstance(b, torch.Tensor) else b, dtype=a.dtype)
    return float((a - b).norm() / b.norm())


def function_condition(eigvals: torch.Tensor, f, df) -> float:
    r"""Relative condition number of the matrix function :math:`F(X) = U f(\Lambda) U^\top`.

    For symmetric :math:`X` the Frechet derivative is the Schur product with the
    Loewner matrix :math:`f[\lambda_i, \lambda_j]` (Daleckii-Krein), whose
    Frobenius operator norm is :math:`\max_{ij} |f[\lambda_i, \lambda_j]|`; so
    :math:`\kappa_F = \max_{ij}|f[\lambda_i,\lambda_j]|\, \|X\|_F / \|F(X)\|_F`
    (Higham, "Functions of Matrices", 2008, Thm 3.14), with the error measured
    relative to :math:`\max(\|F(X)\|_F, 1)` (the log of the identity is zero).
    Computed here from the eigenvalues alone, independently of geonorm.
    """
    s = eigvals.to(torch.float64)
    a, b = s[:, None], s[None, :]
    close = (a - b).abs() <= 1e-6 * torch.maximum(a.abs(), b.abs())
    quotient = (f(a) - f(b)) / torch.where(close, torch.ones_like(a), a - b)
    loewner = torch.where(close, 0.5 * (df(a) + df(b)), quotient)
    return float(loewner.abs().max() * s.norm() / f(s).norm().clamp_min(1.0))


def graph_reaches(node, target) -> bool:
    """Whether the autograd node ``target`` is reachable backward from ``node`` (a ``grad_fn``)."""
    seen, stack = set(), [node]
    while stack:
        n = stack.pop()
        if n is None or n in seen:
            continue
        if n is target:
            return True
        seen.add(n)
        stack.extend(f for f, _ in n.next_functions)
    return False
