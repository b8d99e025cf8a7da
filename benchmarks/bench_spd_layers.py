r"""SPDNet layers (BiMap, ReEig, LogEig) against spd-learn's, forward+backward.

Batch 64, float64 by default, n in {16, 32} (BiMap maps n to n/2). Both
libraries' layers are built once with their default options (both BiMaps
use a Cayley orthogonal parametrization, recomputed on every call; geonorm's
``parametrization="stiefel"``, a geoopt Stiefel parameter, skips that, see
the docs page *SPD networks*; spd-learn's LogEig keeps the upper triangle, as geonorm's default
``vectorize="triu"`` does). Target (issue #5): at most 1.0x spd-learn.

Whole networks (``spdnet/...``): geonorm's reference ``SPDNet(n, 4,
dims=(n/2,), batchnorm=...)`` against the same stack of spd-learn modules,
``BiMap -> [SPDBatchNormLie(AIM)] -> ReEig -> LogEig -> Linear``, one
training-mode forward+backward of the whole network per call (batch 64,
n in {6, 12}: the small networks of EEG/UEA work), so the per-layer ratios
above can be compared with what a user's training step sees. Both include
their input checks (geonorm's ReEig/LogEig read symmetry and definiteness off
the spectrum they compute).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from .inputs import random_spd
from .registry import Case, register

BATCH = 64
SIZES = (16, 32)


def _lazy(build: Callable[[torch.Tensor], torch.nn.Module]) -> Callable[[torch.Tensor], torch.Tensor]:
    holder: dict[str, torch.nn.Module] = {}

    def op(x: torch.Tensor) -> torch.Tensor:
        if "m" not in holder:
            torch.manual_seed(0)
            holder["m"] = build(x)
        return holder["m"](x)

    return op


def _ours(layer: str) -> Callable[[], Callable]:
    def make():
        from geonorm.nn import BiMap, LogEig, ReEig

        return _lazy(
            {
                "bimap": lambda x: BiMap(x.shape[-1], x.shape[-1] // 2, dtype=x.dtype),
                "reeig": lambda x: ReEig(1e-4),
                "logeig": lambda x: LogEig("triu"),
            }[layer]
        )

    return make


def _spd_learn(layer: str) -> Callable[[], Callable]:
    def make():
        from spd_learn.modules import BiMap, LogEig, ReEig  # ImportError: peer unavailable

        return _lazy(
            {
                "bimap": lambda x: BiMap(x.shape[-1], x.shape[-1] // 2, dtype=x.dtype),
                "reeig": lambda x: ReEig(threshold=1e-4),
                "logeig": lambda x: LogEig(upper=True),
            }[layer]
        )

    return make


def _backward_any_shape(make_op):
    """forward_backward needs an upstream gradient shaped like the output."""

    def build(inputs):
        op = make_op()
        leaf = inputs.x.detach().clone().requires_grad_(True)
        grad = {}

        def run():
            leaf.grad = None
            out = op(leaf)
            if "g" not in grad:
                grad["g"] = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
            out.backward(grad["g"])

        return run

    return build


def _register(name: str, n: int, ours, peer) -> None:
    """One forward+backward case at size ``n`` against spd-learn."""
    register(
        Case(
            name=f"{name}/fwd+bwd/n={n}",
            group="spd_layers",
            setup=partial(random_spd, BATCH, n, seed=n, cond=1e3),
            ours=_backward_any_shape(ours),
            peers={"spd-learn": _backward_any_shape(peer)},
        )
    )


for _layer in ("bimap", "reeig", "logeig"):
    for _n in SIZES:
        _register(_layer, _n, _ours(_layer), _spd_learn(_layer))


NET_SIZES = (6, 12)
N_CLASSES = 4


def _ours_net(batchnorm: str | None) -> Callable[[], Callable]:
    def make():
        from geonorm.models import SPDNet

        return _lazy(lambda x: SPDNet(x.shape[-1], N_CLASSES, dims=(x.shape[-1] // 2,), batchnorm=batchnorm, dtype=x.dtype))

    return make


def _spd_learn_net(batchnorm: str | None) -> Callable[[], Callable]:
    def make():
        from spd_learn.modules import BiMap, LogEig, ReEig, SPDBatchNormLie  # ImportError: peer unavailable

        def build(x: torch.Tensor) -> torch.nn.Module:
            n, d = x.shape[-1], x.shape[-1] // 2
            norm = [SPDBatchNormLie(d, metric="AIM", dtype=x.dtype)] if batchnorm else []
            return torch.nn.Sequential(
                BiMap(n, d, dtype=x.dtype), *norm, ReEig(threshold=1e-4), LogEig(upper=True),
                torch.nn.Linear(d * (d + 1) // 2, N_CLASSES, dtype=x.dtype),
            )

        return _lazy(build)

    return make


for _bn, _label in ((None, "none"), ("lie-aim", "lie-aim")):
    for _n in NET_SIZES:
        _register(f"spdnet[{_label}]", _n, _ours_net(_bn), _spd_learn_net(_bn))
