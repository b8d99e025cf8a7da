"""pytest plugin of geonorm: dtype, tolerance and random-generator fixtures.

Loaded automatically through the ``pytest11`` entry point ``geonorm`` once
geonorm is installed (disable with ``-p no:geonorm``). Loading it imports
nothing heavy — not torch, e3nn or geoopt (``import geonorm`` and
``geonorm.testing`` are lazy) — and emits no warning, so projects that run
pytest with ``-W error`` or ``filterwarnings = error`` are unaffected; torch
is imported when a test first uses one of the fixtures. It changes no global
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
``equivariance_case``
    Parametrized over the dtype of the check and the module mode
    (ids ``float32-train``, ``float32-eval``, ``float64-train``,
    ``float64-eval``): an :class:`EquivarianceCase` whose ``check(f, ...)``
    runs :func:`~geonorm.testing.assert_equivariant` with that ``dtype`` and
    ``mode`` (``kwargs`` holds them for other calls).

Example
-------
.. code-block:: python

    def test_logm_equivariant(float_dtype, tolerances, torch_generator):
        x = make_spd(4, generator=torch_generator, dtype=float_dtype)
        ...
        torch.testing.assert_close(y, expected, **tolerances)

    def test_my_layer_equivariant(equivariance_case):
        equivariance_case.check(MyLayer("8x0e+4x1o"))   # actions from irreps_in/out
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterator

import pytest

__all__ = [
    "float_dtype",
    "tolerances",
    "geonorm_seed",
    "torch_generator",
    "float64_default",
    "equivariance_case",
    "EquivarianceCase",
    "FLOAT_DTYPES",
]

# Names of the dtypes ``float_dtype`` is parametrized over (torch is imported lazily).
_FLOAT_DTYPE_NAMES = ("float32", "float64")
_MODES = ("train", "eval")


def __getattr__(name: str) -> Any:
    if name == "FLOAT_DTYPES":  # the dtypes float_dtype is parametrized over
        import torch

        return tuple(getattr(torch, n) for n in _FLOAT_DTYPE_NAMES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("geonorm")
    group.addoption(
        "--geonorm-seed",
        type=int,
        default=0,
        help="seed of the geonorm torch_generator fixture (default 0)",
    )


@pytest.fixture(params=_FLOAT_DTYPE_NAMES)
def float_dtype(request: pytest.FixtureRequest):
    """A floating dtype: ``torch.float32``, then ``torch.float64``."""
    import torch

    return getattr(torch, request.param)


@pytest.fixture
def tolerances(float_dtype) -> dict[str, float]:
    """Default ``rtol``/``atol`` for ``float_dtype`` (pass to ``assert_close``)."""
    from .._numerics import default_tolerances

    return default_tolerances(float_dtype)


@pytest.fixture
def geonorm_seed(request: pytest.FixtureRequest) -> int:
    """The run's seed, from ``--geonorm-seed`` (default 0)."""
    return int(request.config.getoption("--geonorm-seed", default=0))


@pytest.fixture
def torch_generator(geonorm_seed: int):
    """A CPU ``torch.Generator`` seeded with ``geonorm_seed``, fresh for each test."""
    import torch

    return torch.Generator().manual_seed(geonorm_seed)


@pytest.fixture
def float64_default() -> Iterator[Any]:
    """Make float64 torch's default dtype for one test, then restore the previous one."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield torch.float64
    finally:
        torch.set_default_dtype(previous)


@dataclasses.dataclass(frozen=True)
class EquivarianceCase:
    """One (dtype, mode) combination of an equivariance check; see ``equivariance_case``."""

    dtype: Any
    mode: str

    @property
    def kwargs(self) -> dict[str, Any]:
        """``{"dtype": ..., "mode": ...}`` for :func:`~geonorm.testing.equivariance_error`."""
        return {"dtype": self.dtype, "mode": self.mode}

    def check(self, f, action=None, inputs=None, out_action=None, **kwargs):
        """:func:`~geonorm.testing.assert_equivariant` in this case's dtype and mode."""
        from .assertions import assert_equivariant

        return assert_equivariant(f, action, inputs, out_action, **{**self.kwargs, **kwargs})


@pytest.fixture(params=[(d, m) for d in _FLOAT_DTYPE_NAMES for m in _MODES],
                ids=[f"{d}-{m}" for d in _FLOAT_DTYPE_NAMES for m in _MODES])
def equivariance_case(request: pytest.FixtureRequest) -> EquivarianceCase:
    """Parametrizes a test over the check's dtype (float32, float64) and mode (train, eval)."""
    import torch

    name, mode = request.param
    return EquivarianceCase(getattr(torch, name), mode)
