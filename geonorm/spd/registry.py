"""Look up SPD geometries by name: ``get_geometry("aim", theta=0.5)``."""

from __future__ import annotations

from typing import Callable

from .aim import AffineInvariant
from .bw import BuresWasserstein, GeneralizedBuresWasserstein
from .lcm import LogCholesky
from .lem import LogEuclidean
from .protocol import SPDGeometry

__all__ = ["get_geometry", "register_geometry", "available_geometries"]

_REGISTRY: dict[str, Callable[..., SPDGeometry]] = {
    "aim": AffineInvariant,
    "lem": LogEuclidean,
    "lcm": LogCholesky,
    "bw": BuresWasserstein,
    "gbw": GeneralizedBuresWasserstein,
}


def available_geometries() -> list[str]:
    """Names accepted by :func:`get_geometry`."""
    return sorted(_REGISTRY)


def register_geometry(name: str, factory: Callable[..., SPDGeometry]) -> None:
    """Add a geometry factory under ``name`` (lower case); refuses to overwrite."""
    key = name.lower()
    if key in _REGISTRY:
        raise ValueError(f"name: geometry {key!r} is already registered")
    _REGISTRY[key] = factory


def get_geometry(name: str | SPDGeometry, **kwargs) -> SPDGeometry:
    """Build a geometry by name (case-insensitive), passing keyword options on.

    An :class:`SPDGeometry` instance is returned unchanged (options must then
    be empty).

    Examples
    --------
    >>> get_geometry("AIM", theta=0.5, beta=0.1)
    AffineInvariant(theta=0.5, alpha=1, beta=0.1, karcher_steps=50, translation='cholesky')
    """
    if isinstance(name, SPDGeometry):
        if kwargs:
            raise TypeError(f"options {sorted(kwargs)} given with a geometry instance; set them on the instance")
        return name
    if not isinstance(name, str):
        raise TypeError(f"geometry: expected a name or an SPDGeometry, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"geometry: expected one of {available_geometries()}, got {name!r}")
    return _REGISTRY[key](**kwargs)
