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
