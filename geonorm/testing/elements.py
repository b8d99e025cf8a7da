r"""The one type of group element shared by every action of the testing kit.

A :class:`GroupElement` is a small frozen record of *components*: an
orthogonal matrix, a translation, a permutation, and a mapping ``extra`` for
components added by later groups. Every action reads only the components it
needs, so one element acts on several kinds of data at once: an E(3) element
``(R, t)`` moves positions by :math:`x \mapsto R x + t`, rotates velocities by
:math:`v \mapsto R v`, and acts on e3nn irreps features by the Wigner
matrices :math:`D(R)` (the translation is ignored there).

Components
----------
``rotation``
    ``[d, d]`` orthogonal matrix :math:`R` (:math:`\det R = \pm 1`; improper
    elements of O(d) have :math:`\det R = -1`).
``translation``
    ``[d]`` vector :math:`t` of E(d) / SE(d).
``permutation``
    ``[m]`` integer index tensor :math:`\pi`; a permutation action reorders a
    set axis as ``x.index_select(dim, π)``.
``extra``
    ``{name: Tensor}`` for components of groups added later. Reserved names:
    ``"mobius"`` (a point :math:`a` of the Poincaré ball; the ball isometry is
    :math:`x \mapsto a \oplus R x`, with ``rotation`` holding :math:`R`) and
    ``"versor"`` (a Clifford-algebra versor :math:`V` acting by the twisted
    sandwich :math:`x \mapsto \hat V x V^{-1}`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping

import torch

Tensor = torch.Tensor

__all__ = ["GroupElement", "COMPONENTS"]

#: Names of the typed components of :class:`GroupElement` (``extra`` aside).
COMPONENTS: tuple[str, ...] = ("rotation", "translation", "permutation")


@dataclasses.dataclass(frozen=True, eq=False)
class GroupElement:
    r"""One group element, as the components the actions read.

    All components are optional; an action raises ``ValueError`` naming the
    component it needs when it is missing. Elements are immutable; use
    :meth:`merge` to combine the components of elements of two groups (a
    rotation and a permutation, for E(3) × S_N).

    Parameters
    ----------
    rotation : Tensor, optional
        ``[d, d]`` orthogonal matrix.
    translation : Tensor, optional
        ``[d]`` translation vector.
    permutation : Tensor, optional
        ``[m]`` integer (``torch.long``) index tensor, a permutation of
        ``0 .. m-1``.
    extra : Mapping[str, Tensor], optional
        Components of groups added later (see the module notes for the
        reserved names).

    Examples
    --------
    >>> g = GroupElement(rotation=-torch.eye(3, dtype=torch.float64))
    >>> g.det
    -1.0
    >>> g.describe()
    'rotation det -1, angle 0.0 deg'
    >>> g.merge(GroupElement(permutation=torch.tensor([1, 0]))).describe()
    'rotation det -1, angle 0.0 deg; permutation [1, 0]'
    """

    rotation: Tensor | None = None
    translation: Tensor | None = None
    permutation: Tensor | None = None
    extra: Mapping[str, Tensor] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in COMPONENTS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"{name}: expected a torch.Tensor or None, got {type(value).__name__}"
                )
        r, t, p = self.rotation, self.translation, self.permutation
        if r is not None and (r.ndim != 2 or r.shape[0] != r.shape[1]):
            raise ValueError(
                f"rotation: expected a square matrix of shape [d, d], got shape {list(r.shape)}"
            )
        if t is not None and t.ndim != 1:
            raise ValueError(
                f"translation: expected a vector of shape [d], got shape {list(t.shape)}"
            )
        if r is not None and t is not None and t.shape[0] != r.shape[0]:
            raise ValueError(
                f"translation: expected length {r.shape[0]} to match rotation "
                f"{list(r.shape)}, got length {t.shape[0]}"
            )
        if p is not None and (p.ndim != 1 or p.dtype != torch.long):
            raise ValueError(
                "permutation: expected a 1-D torch.long index tensor, got "
                f"dtype {p.dtype} and shape {list(p.shape)}"
            )
        if not isinstance(self.extra, Mapping):
            raise TypeError(f"extra: expected a mapping, got {type(self.extra).__name__}")

    @property
    def components(self) -> frozenset[str]:
        """Names of the components present (typed ones and ``extra`` keys)."""
        names = {n for n in COMPONENTS if getattr(self, n) is not None}
        return frozenset(names | set(self.extra))

    @property
    def det(self) -> float:
        """Determinant sign of ``rotation`` (``+1.0`` or ``-1.0``)."""
        r = self.require("rotation", "det")
        return 1.0 if float(torch.linalg.det(r.double())) > 0 else -1.0

    def require(self, name: str, user: str) -> Tensor:
        """Return component ``name``, or raise ``ValueError`` naming ``user``."""
        value = self.extra.get(name) if name not in COMPONENTS else getattr(self, name)
        if value is None:
            have = ", ".join(sorted(self.components)) or "none"
            raise ValueError(
                f"g: {user} needs a group element with a '{name}' component, got "
                f"an element with components: {have}"
            )
        return value

    def merge(self, other: "GroupElement") -> "GroupElement":
        """Element holding the components of both; they must not overlap."""
        if not isinstance(other, GroupElement):
            raise TypeError(f"other: expected a GroupElement, got {type(other).__name__}")
        clash = self.components & other.components
        if clash:
            raise ValueError(
                f"other: expected components disjoint from {sorted(self.components)}, "
                f"got overlapping {sorted(clash)}"
            )
        kwargs = {n: getattr(self, n) if getattr(self, n) is not None else getattr(other, n)
                  for n in COMPONENTS}
        return GroupElement(**kwargs, extra={**self.extra, **other.extra})

    def to(self, dtype: torch.dtype | None = None, device=None) -> "GroupElement":
        """Floating components cast to ``dtype``/``device`` (indices keep their dtype)."""

        def cast(v: Tensor | None) -> Tensor | None:
            if v is None:
                return None
            if v.is_floating_point():
                return v.to(dtype=dtype, device=device)
            return v.to(device=device)

        return GroupElement(
            rotation=cast(self.rotation),
            translation=cast(self.translation),
            permutation=cast(self.permutation),
            extra={k: cast(v) for k, v in self.extra.items()},  # type: ignore[misc]
        )

    def describe(self) -> str:
        """One-line summary: determinant and rotation angle, translation, permutation.

        For an improper 3-D element the angle is that of the rotation
        :math:`-R` (:math:`R` = inversion ∘ rotation).
        """
        parts = []
        if self.rotation is not None:
            r = self.rotation.detach().double().cpu()
            d = self.det
            text = f"rotation det {d:+.0f}"
            if r.shape[0] == 3:
                proper = d * r
                cos = float(((torch.trace(proper) - 1.0) / 2.0).clamp(-1.0, 1.0))
                text += f", angle {math.degrees(math.acos(cos)):.1f} deg"
            parts.append(text)
        if self.translation is not None:
            t = self.translation.detach().double().cpu()
            parts.append(f"translation |t| = {float(t.norm()):.3g}")
        if self.permutation is not None:
            p = self.permutation.tolist()
            shown = ", ".join(str(i) for i in p[:8]) + (", ..." if len(p) > 8 else "")
            parts.append(f"permutation [{shown}]")
        parts.extend(f"{k} {list(v.shape)}" for k, v in self.extra.items())
        return "; ".join(parts) if parts else "identity"

    def __repr__(self) -> str:
        return f"GroupElement({self.describe()})"
