"""Tests of geonorm.hyperbolic; shared point generator."""

from __future__ import annotations

import math

import torch


def ball_points(shape, c, *, radius=0.8, seed=0, dtype=torch.float64):
    """Seeded points ``shape = [..., d]`` with sqrt(c)|x| uniform in (0, radius).

    Their conformal factors are at most 2 / (1 - radius^2).
    """
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(*shape, generator=g, dtype=torch.float64)
    r = radius * torch.rand(*shape[:-1], 1, generator=g, dtype=torch.float64)
    return (d / d.norm(dim=-1, keepdim=True) * r / math.sqrt(c)).to(dtype)
