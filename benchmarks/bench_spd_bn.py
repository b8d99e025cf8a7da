r"""SPD batch norms against spd-learn, and against the eigh-based logm floor.

Forward+backward in train mode, float64 by default, batch 64, n in {16, 32},
LieBN defaults (one Karcher step, detached statistics) on both sides. Peers:

- ``spd-learn``: ``spd_learn.modules.SPDBatchNormLie`` for the same metric
  (``SPDBatchNormMean`` for SPDNetBN); it has no Bures–Wasserstein layer;
- ``logm floor``: one batched eigh-based matrix logarithm, forward+backward,
  on the same batch — the least any layer that takes a matrix log of every
  input pays, so ``ours/peer`` against it is the layer's cost in logms.

Targets (issue #3): at most 1.0x spd-learn for every metric, 0.7x for AIM.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from .inputs import random_spd
from .modes import forward_backward
from .registry import Case, register

BATCH = 64
SIZES = (16, 32)


def _ours(kind: str, theta: float) -> Callable[[], Callable]:
    def make():
        from geonorm.nn import BuresWassersteinBatchNorm, LieBatchNorm, SPDBatchNorm

        if kind == "gbw":
            return _layer(BuresWassersteinBatchNorm, theta=theta)
        if kind == "spdbn":
            return _layer(SPDBatchNorm)
        return _layer(LieBatchNorm, metric=kind, theta=theta)

    return make


def _spd_learn(kind: str, theta: float) -> Callable[[], Callable]:
    def make():
        from spd_learn.modules import SPDBatchNormLie, SPDBatchNormMean  # ImportError: unavailable

        if kind == "spdbn":
            return _layer(SPDBatchNormMean)
        return _layer(SPDBatchNormLie, metric=kind.upper(), theta=theta)

    return make


def _layer(cls, **kwargs) -> Callable[[torch.Tensor], torch.Tensor]:
    """Build the layer lazily on the first call, in the input's dtype."""
    holder: dict[str, torch.nn.Module] = {}

    def op(x: torch.Tensor) -> torch.Tensor:
        if "m" not in holder:
            holder["m"] = cls(x.shape[-1], dtype=x.dtype, **kwargs).train()
        return holder["m"](x)

    return op


def _logm_floor() -> Callable[[torch.Tensor], torch.Tensor]:
    def op(x: torch.Tensor) -> torch.Tensor:
        s, u = torch.linalg.eigh(x)  # [batch, n], [batch, n, n]
        return (u * torch.log(s).unsqueeze(-2)) @ u.mT

    return op


VARIANTS = {
    "lie-aim": ("aim", 1.0),
    "lie-aim(theta=0.5)": ("aim", 0.5),
    "lie-lem": ("lem", 1.0),
    "lie-lcm": ("lcm", 1.0),
    "lie-lcm(theta=0.5)": ("lcm", 0.5),
    "spdbn": ("spdbn", 1.0),
    "gbw": ("gbw", 1.0),
}

for _name, (_kind, _theta) in VARIANTS.items():
    for _n in SIZES:
        _peers = {"logm floor": forward_backward(_logm_floor)}
        if _kind != "gbw":
            _peers = {"spd-learn": forward_backward(_spd_learn(_kind, _theta)), **_peers}
        register(
            Case(
                name=f"{_name}/fwd+bwd/n={_n}",
                group="spd_bn",
                setup=partial(random_spd, BATCH, _n, seed=_n, cond=20.0),
                ours=forward_backward(_ours(_kind, _theta)),
                peers=_peers,
            )
        )
