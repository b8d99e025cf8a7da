"""Seeded inputs shared by benchmark cases."""

from __future__ import annotations

from dataclasses import dataclass

import torch

Tensor = torch.Tensor

__all__ = ["MatrixInputs", "random_spd"]


@dataclass(frozen=True)
class MatrixInputs:
    """A batch of matrices and a fixed upstream gradient of the same shape."""

    x: Tensor  # [batch, n, n]
    grad: Tensor  # [batch, n, n]


def random_spd(
    batch: int, n: int, dtype: torch.dtype, *, seed: int, cond: float = 4.0
) -> MatrixInputs:
    r"""Well-conditioned random SPD matrices and a random symmetric gradient.

    The matrices are :math:`Q \operatorname{diag}(s) Q^\top` with Haar-random
    :math:`Q` and eigenvalues spread log-uniformly over
    :math:`[c^{-1/2}, c^{1/2}]` (condition number at most ``cond``), distinct
    with probability one. Everything is drawn in float64 and then cast, so a
    float32 run times the same matrices.
    """
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    q, _ = torch.linalg.qr(torch.randn(batch, n, n, generator=gen, dtype=f64))
    s = cond ** (torch.rand(batch, n, generator=gen, dtype=f64) - 0.5)  # [batch, n]
    x = (q * s.unsqueeze(-2)) @ q.mT  # [batch, n, n]
    g = torch.randn(batch, n, n, generator=gen, dtype=f64)
    return MatrixInputs(x=(0.5 * (x + x.mT)).to(dtype), grad=(0.5 * (g + g.mT)).to(dtype))


def random_ball(batch: int, d: int, dtype: torch.dtype, *, seed: int, radius: float = 0.8) -> MatrixInputs:
    """Points of the unit Poincaré ball (c = 1) and a random upstream gradient.

    Directions are uniform and Euclidean norms spread up to ``radius``
    (hyperbolic distances from the origin up to about 2.2 for 0.8); drawn in
    float64 and cast, so every dtype times the same points.
    """
    gen = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    u = torch.randn(batch, d, generator=gen, dtype=f64)
    r = radius * torch.rand(batch, 1, generator=gen, dtype=f64) ** 0.5
    x = u / u.norm(dim=-1, keepdim=True) * r  # [batch, d]
    grad = torch.randn(batch, d, generator=gen, dtype=f64)
    return MatrixInputs(x.to(dtype), grad.to(dtype))
