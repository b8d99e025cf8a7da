r"""Symmetric matrix functions: geonorm.linalg against raw eigh autograd and spd-learn.

Every op runs on a batch of 64 well-conditioned random SPD matrices of size
16 and 32, forward only and forward+backward. The peers are

- ``eigh autograd``: :math:`U f(\Lambda) U^\top` differentiated through
  ``torch.linalg.eigh``'s own backward (what a user would write by hand; it
  returns NaN on repeated eigenvalues, which these inputs avoid);
- ``spd-learn``: the autograd Functions of ``spd_learn.functional``.

geonorm's functions run with their default ``check=True`` (input validation
included in the time), as users call them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Callable, Iterator

import torch

from geonorm.linalg import sym_expm, sym_invsqrtm, sym_logm, sym_powm, sym_sqrtm

from .inputs import random_spd
from .modes import MODES, Op
from .registry import Case, register

BATCH = 64
SIZES = (16, 32)
POWER = 0.3


@dataclass(frozen=True)
class _Spec:
    """One matrix function as geonorm, raw eigh and spd-learn compute it."""

    ours: Op
    on_eigenvalues: Callable[[torch.Tensor], torch.Tensor]
    spd_learn_name: str
    spd_learn_args: tuple[float, ...] = ()

    def make_ours(self) -> Op:
        return self.ours

    def make_eigh(self) -> Op:
        return partial(_eigh_autograd, f=self.on_eigenvalues)

    def make_spd_learn(self) -> Op:
        from spd_learn import functional  # ImportError: peer unavailable

        function = getattr(functional, self.spd_learn_name)
        return partial(_apply, function, args=self.spd_learn_args)


def _eigh_autograd(x: torch.Tensor, f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    s, u = torch.linalg.eigh(x)  # [batch, n], [batch, n, n]
    return (u * f(s).unsqueeze(-2)) @ u.mT  # [batch, n, n]


def _apply(
    function: type[torch.autograd.Function], x: torch.Tensor, args: tuple[float, ...]
) -> torch.Tensor:
    return function.apply(x, *args)


_SPECS = {
    "sym_logm": _Spec(sym_logm, torch.log, "matrix_log"),
    "sym_sqrtm": _Spec(sym_sqrtm, torch.sqrt, "matrix_sqrt"),
    "sym_invsqrtm": _Spec(sym_invsqrtm, torch.rsqrt, "matrix_inv_sqrt"),
    f"sym_powm(p={POWER})": _Spec(
        partial(sym_powm, p=POWER),
        partial(torch.pow, exponent=POWER),
        "matrix_power",
        (POWER,),
    ),
    "sym_expm": _Spec(sym_expm, torch.exp, "matrix_exp"),
}


def _cases() -> Iterator[Case]:
    for op_name, spec in _SPECS.items():
        for n in SIZES:
            for mode_name, mode in MODES.items():
                yield Case(
                    name=f"{op_name}/{mode_name}/n={n}",
                    group="linalg",
                    setup=partial(random_spd, BATCH, n, seed=n),
                    ours=mode(spec.make_ours),
                    peers={
                        "eigh autograd": mode(spec.make_eigh),
                        "spd-learn": mode(spec.make_spd_learn),
                    },
                )


for _case in _cases():
    register(_case)
