"""pytest plugin of geonorm: dtype, tolerance and random-generator fixtures.

Loaded automatically through the ``pytest11`` entry point ``geonorm`` once
geonorm is installed (disable with ``-p no:geonorm``). It changes no global
state: fixtures hand out objects, and the one fixture that sets torch's
default dtype restores it afterwards.

Fixtures
--------
``float_dtype``
    Parametrized over ``torch.float32`` and ``torch.float64`` (test ids
    ``float32`` / ``float64``).
``tolerances``
    ``{"rtol": ..., "atol": ...}`` for ``float_dtype``, from
    :func:`geonorm._numerics.default_tolerances`.
``geonorm_seed``
    The integer seed of the run (``--geonorm-seed``, default 0).
``torch_generator``
    A fresh CPU ``torch.Generator`` seeded with ``geonorm_seed``.
``float64_default``
    Sets ``torch.set_default_dtype(torch.float64)`` for one test and restores
    the previous default afterwards; yields ``torch.float64``.

Example
-------
.. code-block:: python

    def test_logm_equivariant(float_dtype, tolerances, torch_generator):
        x = make_spd(4, generator=torch_generator, dtype=float_dtype)
        ...
        torch.testing.assert_close(y, expected, **tolerances)
"""

from __future__ import annotations

from typing import Iterator

import pytest
import torch

from .._numerics import default_tolerances

__all__ = [
    "float_dtype",
    "tolerances",
    "geonorm_seed",
    "torch_generator",
    "float64_default",
    "FLOAT_DTYPES",
]

#: The dtypes ``float_dtype`` is parametrized over.
FLOAT_DTYPES: tuple[torch.dtype, ...] = (torch.float32, torch.float64)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("geonorm")
    group.addoption(
        "--geonorm-seed",
        type=int,
        default=0,
        help="seed of the geonorm torch_generator fixture (default 0)",
    )


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: str(d).replace("torch.", ""))
def float_dtype(request: pytest.FixtureRequest) -> torch.dtype:
    """A floating dtype: ``torch.float32``, then ``torch.float64``."""
    return request.param


@pytest.fixture
def tolerances(float_dtype: torch.dtype) -> dict[str, float]:
    """Default ``rtol``/``atol`` for ``float_dtype`` (pass to ``assert_close``)."""
    return default_tolerances(float_dtype)


@pytest.fixture
def geonorm_seed(request: pytest.FixtureRequest) -> int:
    """The run's seed, from ``--geonorm-seed`` (default 0)."""
    return int(request.config.getoption("--geonorm-seed", default=0))


@pytest.fixture
def torch_generator(geonorm_seed: int) -> torch.Generator:
    """A CPU ``torch.Generator`` seeded with ``geonorm_seed``, fresh for each test."""
    return torch.Generator().manual_seed(geonorm_seed)


@pytest.fixture
def float64_default() -> Iterator[torch.dtype]:
    """Make float64 torch's default dtype for one test, then restore the previous one."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(previous)
