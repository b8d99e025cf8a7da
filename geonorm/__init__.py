"""geonorm: manifold-aware and equivariant normalization layers for PyTorch.

Importing ``geonorm`` is cheap: the rooms (``geonorm.linalg``, ``geonorm.nn``,
``geonorm.o3``, ``geonorm.spd``, ``geonorm.models``, …) and
:func:`geonorm.get_geometry` are imported on first attribute access (PEP 562
module ``__getattr__``), so tools that only need a corner of geonorm — the
pytest plugin, the testing CLI — do not import e3nn or geoopt.

>>> import geonorm
>>> geonorm.get_geometry is geonorm.riemannian.get_geometry
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0.dev0"

# Public subpackages, imported on first access.
_SUBMODULES = ("clifford", "datasets", "hyperbolic", "linalg", "models", "nn", "o3", "riemannian", "spd", "testing")
# Public functions: name -> the subpackage that defines it.
_FUNCTIONS = {"get_geometry": "riemannian"}

__all__ = [
    "__version__",
    "clifford",
    "datasets",
    "get_geometry",
    "hyperbolic",
    "linalg",
    "models",
    "nn",
    "o3",
    "riemannian",
    "spd",
    "testing",
]

if TYPE_CHECKING:  # static tools see the eager imports
    from . import clifford, datasets, hyperbolic, linalg, models, nn, o3, riemannian, spd, testing
    from .riemannian import get_geometry


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _FUNCTIONS:
        value = getattr(importlib.import_module(f".{_FUNCTIONS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'geonorm' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
