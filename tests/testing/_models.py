"""Equivariant and deliberately broken models for the testing kit's self-tests.

Module-level factories (no arguments) double as CLI targets:
``python -m geonorm.testing check tests.testing._models:linear ...``.
"""

from __future__ import annotations

import torch
from e3nn import nn as e3nn_nn
from e3nn import o3
from torch import nn

from geonorm.linalg import sym_logm

IRREPS_IN = "2x0e+2x1o+1x2e"
IRREPS_OUT = "1x0e+1x1o+1x2e"


def _seeded(build):
    """Build with torch's RNG seeded to 0 inside a fork (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return build()


def linear() -> nn.Module:
    """e3nn o3.Linear: O(3)-equivariant."""
    return _seeded(lambda: o3.Linear(IRREPS_IN, IRREPS_OUT))


def gated() -> nn.Module:
    """Norm-gated nonlinearity: each irrep scaled by a function of its norm."""
    return e3nn_nn.NormActivation(IRREPS_IN, torch.tanh)


class VectorBias(nn.Module):
    """Adds a fixed bias to the 1o components: breaks rotations."""

    def __init__(self, irreps: str = "1x0e+1x1o") -> None:
        super().__init__()
        self.irreps = o3.Irreps(irreps)
        bias = torch.zeros(self.irreps.dim)
        bias[1:4] = torch.tensor([0.3, -0.2, 0.5])
        self.bias = nn.Parameter(bias)

    def forward(self, x):
        return x + self.bias


def vector_bias() -> nn.Module:
    return VectorBias()


def cross_product(x: torch.Tensor) -> torch.Tensor:
    """'1x1o+1x1o' -> cross product, a 1e (pseudo)vector: wrong if declared 1o."""
    return torch.cross(x[..., :3], x[..., 3:], dim=-1)


def cross_product_factory():
    return cross_product


class TrainOnlyBreak(nn.Module):
    """Per-coordinate BatchNorm on vectors: identity-like in eval (fresh stats),
    per-axis standardisation (not rotation equivariant) in train."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(3)

    def forward(self, x):  # [batch, 3] a 1o feature
        return self.bn(x)


def train_only_break() -> nn.Module:
    return TrainOnlyBreak()


def centre(x: torch.Tensor) -> torch.Tensor:
    """Positions [..., N, 3] -> positions relative to the centroid (vectors)."""
    return x - x.mean(dim=-2, keepdim=True)


def centre_factory():
    return centre


def tanh_factory():
    return torch.tanh


def logm_factory():
    return sym_logm


def add_fixed_matrix(x: torch.Tensor) -> torch.Tensor:
    """X + diag(1, 2, ..., n): SPD to SPD, not O(n)-equivariant."""
    n = x.shape[-1]
    return x + torch.diag(torch.arange(1, n + 1, dtype=x.dtype))


def add_fixed_matrix_factory():
    return add_fixed_matrix


class DeepSets(nn.Module):
    """Permutation-equivariant layer x W1 + mean_set(x) W2 (set axis 1)."""

    def __init__(self, features: int = 4) -> None:
        super().__init__()
        self.own = nn.Linear(features, features)
        self.pooled = nn.Linear(features, features, bias=False)

    def forward(self, x):  # [batch, set, features]
        return torch.relu(self.own(x) + self.pooled(x.mean(dim=1, keepdim=True)))


def deepsets() -> nn.Module:
    return _seeded(DeepSets)


def sum_pool_factory():
    """Sum over the set axis: permutation invariant."""
    return lambda x: x.sum(dim=1)


def cumsum_factory():
    """Cumulative sum along the set axis: depends on the order."""
    return lambda x: torch.cumsum(x, dim=1)


def raises_factory():
    def broken(x):
        raise RuntimeError("boom")

    return broken


def _graph_features(pos, feats, batch, centred: bool):
    """'1x0e+1x1o' per atom from positions [N, 3], features '1x0e+...' [N, F], molecule ids [N]."""
    m = int(batch.max()) + 1
    counts = torch.bincount(batch, minlength=m).to(pos.dtype)  # [M]
    centroid = pos.new_zeros(m, 3).index_add(0, batch, pos) / counts[:, None]  # [M, 3]
    rel = pos - centroid[batch] if centred else pos  # [N, 3]
    s = feats[:, :1]  # [N, 1] the first scalar
    return torch.cat([s * rel.norm(dim=-1, keepdim=True), s * rel], dim=-1)  # [N, 4]


def graph_model_factory():
    """(positions, features, batch) -> '1x0e+1x1o': E(3)-equivariant (centred per molecule)."""
    return lambda pos, feats, batch: _graph_features(pos, feats, batch, True)


def uncentred_graph_model_factory():
    """The same without centring: breaks translations only."""
    return lambda pos, feats, batch: _graph_features(pos, feats, batch, False)
