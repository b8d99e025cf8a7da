"""One registry of geometries for every room: ``get_geometry("aim", theta=0.5)``.

Built-in entries are looked up lazily (``"module:attribute"``), so asking for
``"poincare"`` does not import the SPD room and vice versa. A geometry whose
constructor needs the point size (the generalized Bures–Wasserstein metric
holds one :math:`M` per channel) is registered with the name of that keyword
(``size_keyword="n"``); :func:`build_geometry` then passes the batch norm's
size, channels, device and dtype to it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .protocol import Geometry

__all__ = ["available_geometries", "build_geometry", "get_geometry", "register_geometry"]


@dataclass(frozen=True)
class _Entry:
    factory: Callable[..., Geometry] | str  # a callable, or "module:attribute"
    size_keyword: str | None = None  # the constructor's size argument, if it needs one

    def resolve(self) -> Callable[..., Geometry]:
        if callable(self.factory):
            return self.factory
        module, attr = self.factory.split(":")
        return getattr(importlib.import_module(module), attr)


_REGISTRY: dict[str, _Entry] = {
    "aim": _Entry("geonorm.spd.aim:AffineInvariant"),
    "lem": _Entry("geonorm.spd.lem:LogEuclidean"),
    "lcm": _Entry("geonorm.spd.lcm:LogCholesky"),
    "bw": _Entry("geonorm.spd.bw:BuresWasserstein"),
    "gbw": _Entry("geonorm.spd.bw:GeneralizedBuresWasserstein", size_keyword="n"),
    "poincare": _Entry("geonorm.hyperbolic.geometry:PoincareBall"),
}


def available_geometries() -> list[str]:
    """Names accepted by :func:`get_geometry`.

    >>> available_geometries()
    ['aim', 'bw', 'gbw', 'lcm', 'lem', 'poincare']
    """
    return sorted(_REGISTRY)


def register_geometry(
    name: str, factory: Callable[..., Geometry], *, size_keyword: str | None = None
) -> None:
    """Add a geometry factory under ``name`` (lower case); refuses to overwrite.

    ``size_keyword`` names the factory's size argument when it needs one (see
    the module notes).
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name: expected a non-empty str, got {name!r}")
    if not callable(factory):
        raise TypeError(f"factory: expected a callable returning a Geometry, got {type(factory).__name__}")
    key = name.lower()
    if key in _REGISTRY:
        raise ValueError(f"name: geometry {key!r} is already registered")
    _REGISTRY[key] = _Entry(factory, size_keyword)


def _entry(name: str) -> _Entry:
    if not isinstance(name, str):
        raise TypeError(f"geometry: expected a name or a Geometry, got {type(name).__name__}")
    key = name.lower()
    if key not in _REGISTRY:
        raise ValueError(f"geometry: expected one of {available_geometries()}, got {name!r}")
    return _REGISTRY[key]


def get_geometry(name: str | Geometry, **kwargs) -> Geometry:
    """Build a geometry by name (case-insensitive), passing keyword options on.

    A :class:`~geonorm.riemannian.Geometry` instance is returned unchanged
    (options must then be empty).

    Examples
    --------
    >>> get_geometry("AIM", theta=0.5, beta=0.1)
    AffineInvariant(theta=0.5, alpha=1, beta=0.1, karcher_steps=50, translation='cholesky')
    >>> get_geometry("gbw", n=3).metric.shape
    torch.Size([3, 3])
    """
    if isinstance(name, Geometry):
        if kwargs:
            raise TypeError(f"options {sorted(kwargs)} given with a geometry instance; set them on the instance")
        return name
    return _entry(name).resolve()(**kwargs)


def build_geometry(
    name: str | Geometry, dim: int, *, channels: int | None = None, device=None, dtype=None
) -> Geometry:
    """The geometry a batch norm of size ``dim`` runs on (see the module notes)."""
    if isinstance(name, Geometry):
        return name
    entry = _entry(name)
    if entry.size_keyword is None:
        return entry.resolve()()
    return entry.resolve()(**{entry.size_keyword: dim}, channels=channels, device=device, dtype=dtype)
