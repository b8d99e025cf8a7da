r"""A whole SPDNet training step, geonorm against the same network from spd-learn's modules.

One call is one optimisation step of a classifier on SPD matrices: forward,
cross-entropy loss, backward, ``geoopt.optim.RiemannianAdam`` step (lr 1e-3),
``zero_grad`` — what a user's training loop pays per batch, input checks
included. The architecture is the EEG network of issue 11, the same module
by module on both sides (each library's modules with their default options):

``BiMap(n, d1) -> ReEig -> LieBN-AIM(d1) -> BiMap(d1, d2) -> ReEig -> LogEig -> Linear(d2(d2+1)/2, 4)``

with :math:`d_1 = \max(2, \operatorname{round}(16 n / 22))` and
:math:`d_2 = \max(2, \operatorname{round}(d_1 / 2))`, so that n = 22 gives the
issue's 22 → 16 → 8 (n = 8: 8 → 6 → 3; n = 32: 32 → 23 → 12; n = 5: 5 → 4 → 2).
geonorm: :class:`~geonorm.nn.BiMap` (Cayley parametrization),
:class:`~geonorm.nn.ReEig` (eps 1e-4), :class:`~geonorm.nn.LieBatchNorm`
(``metric="aim"``), :class:`~geonorm.nn.LogEig` (``"triu"``); spd-learn:
``BiMap`` (Cayley parametrization), ``ReEig(threshold=1e-4)``,
``SPDBatchNormLie(metric="AIM")``, ``LogEig(upper=True)``. The input is a
seeded batch of SPD matrices with condition number at most 100, labels are
seeded, and each side starts from ``torch.manual_seed(0)``.

Sizes: n in {8, 22, 32} at batch 32 and 64, and the UEA sizes n = 5..10
(BasicMotions has 6 channels, JapaneseVowels 12 → these are the covariance
sizes of small multivariate series) at batch 32.

``train-step-compiled``: the same step with each network's forward under
``torch.compile`` (inductor; autograd compiles the backward with it), against
spd-learn eager and compiled. At small n the eager step is Python dispatch,
which compiling removes; geonorm's network is one graph without breaks, and
its value checks (host synchronisations) are skipped under compile, while its
shape and dtype checks run at trace time. These cases are heavy (``--quick``
skips them): every size compiles for tens of seconds.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch

from .inputs import MatrixInputs, random_spd
from .registry import Case, Runner, register

N_CLASSES = 4
LR = 1e-3
REEIG_EPS = 1e-4


def block_sizes(n: int) -> tuple[int, int]:
    """``(d1, d2)`` of the two BiMaps for input size ``n`` (22 -> (16, 8))."""
    d1 = max(2, round(16 * n / 22))
    return d1, max(2, round(d1 / 2))


def _geonorm_net(n: int, dtype: torch.dtype) -> torch.nn.Module:
    from geonorm.nn import BiMap, LieBatchNorm, LogEig, ReEig

    d1, d2 = block_sizes(n)
    return torch.nn.Sequential(
        BiMap(n, d1, dtype=dtype),
        ReEig(REEIG_EPS),
        LieBatchNorm(d1, metric="aim", dtype=dtype),
        BiMap(d1, d2, dtype=dtype),
        ReEig(REEIG_EPS),
        LogEig("triu"),
        torch.nn.Linear(d2 * (d2 + 1) // 2, N_CLASSES, dtype=dtype),
    )


def _spd_learn_net(n: int, dtype: torch.dtype) -> torch.nn.Module:
    from spd_learn.modules import BiMap, LogEig, ReEig, SPDBatchNormLie  # ImportError: peer unavailable

    d1, d2 = block_sizes(n)
    return torch.nn.Sequential(
        BiMap(n, d1, dtype=dtype),
        ReEig(threshold=REEIG_EPS),
        SPDBatchNormLie(d1, metric="AIM", dtype=dtype),
        BiMap(d1, d2, dtype=dtype),
        ReEig(threshold=REEIG_EPS),
        LogEig(upper=True),
        torch.nn.Linear(d2 * (d2 + 1) // 2, N_CLASSES, dtype=dtype),
    )


def train_step(
    build: Callable[[int, torch.dtype], torch.nn.Module], *, compile: bool = False
) -> Callable[[MatrixInputs], Runner]:
    """An ``Impl`` timing one optimisation step of the network ``build(n, dtype)`` (its forward compiled if asked)."""

    def make(inputs: MatrixInputs) -> Runner:
        import geoopt

        x = inputs.x  # [batch, n, n]
        torch.manual_seed(0)
        net = build(x.shape[-1], x.dtype).train()
        labels = torch.randint(N_CLASSES, (x.shape[0],), generator=torch.Generator().manual_seed(1))
        optimizer = geoopt.optim.RiemannianAdam(net.parameters(), lr=LR)
        loss_fn = torch.nn.CrossEntropyLoss()
        forward = torch.compile(net) if compile else net

        def run() -> None:
            loss = loss_fn(forward(x), labels)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()

        return run

    return make


def _register(n: int, batch: int, *, compiled: bool = False) -> None:
    peers = {"spd-learn": train_step(_spd_learn_net)}
    if compiled:
        peers["spd-learn, compiled"] = train_step(_spd_learn_net, compile=True)
    register(
        Case(
            name=f"spdnet[lie-aim]/train-step{'-compiled' if compiled else ''}/n={n}/batch={batch}",
            group="spd_network",
            setup=partial(random_spd, batch, n, seed=n, cond=100.0),
            ours=train_step(_geonorm_net, compile=compiled),
            peers=peers,
            heavy=compiled,
        )
    )


for _n in (8, 22, 32):
    for _batch in (32, 64):
        _register(_n, _batch)
for _n in (5, 6, 7, 9, 10):  # n = 8 at batch 32 is registered above
    _register(_n, 32)
for _n in (5, 8, 22):
    _register(_n, 32, compiled=True)
