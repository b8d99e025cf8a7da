r"""Poincaré-ball batch norm against hypll's ``HBatchNorm``.

Forward+backward in train mode, batch 256, dim 16 and 64 (run with
``--dtype float32`` for the issue's figures), curvature c = 1 on both sides
(hypll's ``Curvature(v)`` is ``softplus(v)``, so it gets ``v = log(e - 1)``).
Peers:

- ``hypll``: ``hypll.nn.HBatchNorm(use_midpoint=...)`` for the same mean;
- ``geonorm frechet`` (on the midpoint cases): geonorm's own Fréchet-mean
  layer, so ``ours/peer`` there is the midpoint/Fréchet speed ratio.

Targets (issue #8): at most 0.5x hypll for the midpoint, 0.7x for Fréchet.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch

from .inputs import random_ball
from .modes import forward_backward
from .registry import Case, register

BATCH = 256
SIZES = (16, 64)


def _ours(mean: str) -> Callable[[], Callable]:
    def make():
        from geonorm.nn import PoincareBatchNorm

        holder: dict[str, torch.nn.Module] = {}

        def op(x: torch.Tensor) -> torch.Tensor:
            if "m" not in holder:
                holder["m"] = PoincareBatchNorm(x.shape[-1], c=1.0, mean=mean, dtype=x.dtype)
            return holder["m"](x)

        return op

    return make


def _hypll(mean: str) -> Callable[[], Callable]:
    def make():
        from hypll.manifolds.poincare_ball import Curvature, PoincareBall  # ImportError: unavailable
        from hypll.nn import HBatchNorm
        from hypll.tensors import ManifoldTensor

        manifold = PoincareBall(c=Curvature(math.log(math.e - 1.0)))  # softplus -> c = 1
        holder: dict[str, torch.nn.Module] = {}

        def op(x: torch.Tensor) -> torch.Tensor:
            if "m" not in holder:
                holder["m"] = HBatchNorm(x.shape[-1], manifold=manifold, use_midpoint=mean == "midpoint").to(x.dtype)
            return holder["m"](ManifoldTensor(x, manifold=manifold)).tensor

        return op

    return make


for _mean in ("midpoint", "frechet"):
    for _d in SIZES:
        _peers = {"hypll": forward_backward(_hypll(_mean))}
        if _mean == "midpoint":
            _peers["geonorm frechet"] = forward_backward(_ours("frechet"))
        register(
            Case(
                name=f"poincare-bn-{_mean}/fwd+bwd/d={_d}",
                group="hyperbolic",
                setup=partial(random_ball, BATCH, _d, seed=_d),
                ours=forward_backward(_ours(_mean)),
                peers=_peers,
            )
        )
