r"""Isometries of the Poincaré ball: :class:`MobiusGroup` and :class:`MobiusAction`.

Every isometry of the ball :math:`\mathbb{D}^d_c` (curvature :math:`-c`) is
:math:`x \mapsto a \oplus_c O x` with :math:`a` in the ball and
:math:`O \in O(d)` (orientation-preserving for :math:`\det O = 1`, a
reflection composed with one otherwise; Ungar 2008). An element stores
:math:`O` as its ``rotation`` component and :math:`a` as ``extra["mobius"]``
(:mod:`geonorm.testing.elements`), so one element also rotates plain vectors
through the kit's O(d) actions.

Composition follows from :math:`O` being an automorphism of
:math:`\oplus_c` and the gyroassociative law,
:math:`a \oplus O(b \oplus Px) = (a \oplus Ob) \oplus \operatorname{gyr}[a, Ob]\,OPx`:

.. math::

    (a, O) \cdot (b, P) = \bigl(a \oplus_c Ob,\ \operatorname{gyr}[a, Ob]\,O P\bigr).
"""

from __future__ import annotations

import torch

from .._checks import check_int
from ..hyperbolic.ball import check_curvature, expmap0, gyration, mobius_add
from .actions import GroupAction
from .elements import GroupElement
from .groups import EuclideanGroup, Group, random_orthogonal

Tensor = torch.Tensor

__all__ = ["MobiusGroup", "MobiusAction"]


class MobiusGroup(Group):
    r"""The isometry group of the ball of curvature :math:`-c` in dimension ``dim``.

    Samples :math:`a = \exp_0(v)` with :math:`v \sim \mathcal{N}(0, s^2 I / d)`
    (so :math:`\sqrt{c}\,d_c(0, a) \approx 2 s`) and a Haar-random :math:`O`;
    unless ``proper``, the elements of even index have :math:`\det O = -1`.
    It contains O(d) (SO(d) when ``proper``), so it joins with them.

    >>> g = MobiusGroup(3, c=1.0)
    >>> g
    Mob(3, c=1)
    >>> sorted(g.sample(1, torch.Generator().manual_seed(0))[0].components)
    ['mobius', 'rotation']
    """

    def __init__(
        self, dim: int, *, c: float = 1.0, proper: bool = False, translation_scale: float = 1.0
    ) -> None:
        check_int(dim, "dim")
        check_curvature(c)
        if isinstance(translation_scale, bool) or not translation_scale > 0:
            raise ValueError(
                f"translation_scale: expected a positive float, got {translation_scale!r}"
            )
        self.dim = dim
        self.c = float(c)
        self.proper = bool(proper)
        self.translation_scale = float(translation_scale)
        self.name = f"{'S' if proper else ''}Mob({dim}, c={self.c:g})"
        self.components = frozenset({"rotation", "mobius"})

    def sample(self, n, generator=None, dtype=torch.float64):
        out = []
        for i in range(check_int(n, "n")):
            rot = random_orthogonal(self.dim, proper=self.proper or i % 2 == 1, generator=generator)
            v = torch.randn(self.dim, generator=generator, dtype=torch.float64)
            v = v * (self.translation_scale / (self.dim * self.c) ** 0.5)  # [d]
            a = expmap0(v, c=self.c)
            out.append(GroupElement(rotation=rot, extra={"mobius": a}).to(dtype))
        return out

    def join(self, other: Group) -> Group | None:
        if isinstance(other, EuclideanGroup) and other.dim == self.dim and not other.translations:
            return MobiusGroup(
                self.dim,
                c=self.c,
                proper=self.proper and other.proper,
                translation_scale=self.translation_scale,
            )
        if isinstance(other, MobiusGroup) and (other.dim, other.c) == (self.dim, self.c):
            return MobiusGroup(
                self.dim,
                c=self.c,
                proper=self.proper and other.proper,
                translation_scale=max(self.translation_scale, other.translation_scale),
            )
        return super().join(other)


class MobiusAction(GroupAction):
    r"""Ball isometries on points ``[..., dim]``: :math:`x \mapsto a \oplus_c O x`.

    Parameters
    ----------
    dim : int
        Dimension of the ball.
    c : float
        Curvature magnitude (the ball has curvature :math:`-c`).
    proper : bool
        Sample only :math:`\det O = +1`.
    translation_scale : float
        Typical :math:`\sqrt{c}\,d_c(0, a) / 2` of sampled translations.

    Examples
    --------
    >>> from geonorm.hyperbolic import distance
    >>> act = MobiusAction(2)
    >>> g = act.sample(1, torch.Generator().manual_seed(0))[0]
    >>> x = torch.tensor([[0.1, 0.2], [-0.3, 0.4]], dtype=torch.float64)
    >>> y = act.act(g, x)
    >>> bool(torch.isclose(distance(y[0], y[1], c=1.0), distance(x[0], x[1], c=1.0)))
    True
    """

    requires = ("rotation", "mobius")

    def __init__(
        self, dim: int, *, c: float = 1.0, proper: bool = False, translation_scale: float = 1.0
    ) -> None:
        self.group = MobiusGroup(dim, c=c, proper=proper, translation_scale=translation_scale)
        self.dim = dim
        self.c = self.group.c

    def _parts(self, g) -> tuple[Tensor, Tensor]:
        el = self.element(g)
        rot, a = el.require("rotation", "MobiusAction"), el.require("mobius", "MobiusAction")
        if rot.shape != (self.dim, self.dim) or a.shape != (self.dim,):
            raise ValueError(
                f"g: expected a [{self.dim}, {self.dim}] rotation and a [{self.dim}] mobius "
                f"point, got {list(rot.shape)} and {list(a.shape)}"
            )
        return rot, a

    def act(self, g, x):
        rot, a = self._parts(g)
        if not isinstance(x, Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"x: expected shape [..., {self.dim}] (ball points), got {list(x.shape)}"
            )
        rot, a = rot.to(dtype=x.dtype, device=x.device), a.to(dtype=x.dtype, device=x.device)
        return mobius_add(a, x @ rot.T, c=self.c)  # [..., d]

    def compose(self, g, h) -> GroupElement:
        r"""The element :math:`g h` (act with ``h`` first), see the module notes."""
        o, a = self._parts(g)
        p, b = self._parts(h)
        ob = o @ b  # [d]
        shift = mobius_add(a, ob, c=self.c)
        eye = torch.eye(self.dim, dtype=o.dtype, device=o.device)
        gyr = gyration(a, ob, eye, c=self.c).T  # columns gyr[a, Ob] e_j, [d, d]
        return GroupElement(rotation=gyr @ o @ p, extra={"mobius": shift})

    def _describe(self) -> str:
        return f"group={self.group}"
