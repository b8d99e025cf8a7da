"""The benchmark cases: what one case is, and where cases are collected.

A :class:`Case` pairs geonorm's implementation of an operation with one or
more peers (other libraries, or a naive baseline). Each implementation is an
``Impl``: called once with the case's inputs, it does any imports and set-up
it needs and returns a ``Runner``, a function of no arguments that performs
one repetition of the work being timed. A peer whose ``Impl`` raises
``ImportError`` is reported as unavailable, so peers must import their
library inside the ``Impl``, never at the top of a ``bench_*`` module.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

Runner = Callable[[], object]
# An Impl receives whatever the case's setup returned (a dataclass of tensors).
Impl = Callable[[Any], Runner]

__all__ = ["Case", "Impl", "Runner", "register", "load_cases"]


@dataclass(frozen=True)
class Case:
    """One operation timed for geonorm and its peers on the same inputs.

    Parameters
    ----------
    name : str
        Unique within its group, ``op/mode/size`` by convention
        (``"sym_logm/fwd+bwd/n=16"``), so ``--filter`` can select any part.
    group : str
        The area, named after its module (``"linalg"`` for ``bench_linalg``).
    setup : callable
        ``setup(dtype)`` builds the inputs once per case, seeded.
    ours : Impl
        geonorm's implementation.
    peers : mapping of str to Impl
        Peer implementations by display name (``"spd-learn"``).
    heavy : bool
        A peer call takes seconds: ``--quick`` skips the case (the smaller
        sizes of the same operation still run).
    """

    name: str
    group: str
    setup: Callable[[torch.dtype], Any]
    ours: Impl
    peers: Mapping[str, Impl] = field(default_factory=dict)
    heavy: bool = False

    def __post_init__(self) -> None:
        if "ours" in self.peers:
            raise ValueError(f"case {self.group}/{self.name}: 'ours' is not a peer name")


_CASES: dict[tuple[str, str], Case] = {}


def register(case: Case) -> Case:
    """Add ``case`` to the registry; names must be unique within a group."""
    key = (case.group, case.name)
    if key in _CASES:
        raise ValueError(f"case {case.group}/{case.name} is registered twice")
    _CASES[key] = case
    return case


def load_cases() -> list[Case]:
    """Import every ``benchmarks.bench_*`` module and return its cases in order."""
    package = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("bench_"):
            importlib.import_module(f"{__package__}.{info.name}")
    return list(_CASES.values())
