r"""Actions of orthogonal and Euclidean groups: irreps, point clouds, SPD congruence.

All three read the ``rotation`` component of a
:class:`~geonorm.testing.elements.GroupElement`; only positions read the
``translation``. So one E(3) element moves positions, rotates velocities and
acts on irreps features of the same sample consistently.

=========================  ==================================  ========================
action                     on                                  formula
=========================  ==================================  ========================
:class:`IrrepsAction`      ``[..., irreps.dim]``               :math:`x \mapsto D(R)\,x`
:class:`PointCloudAction`  ``[..., N, d]`` positions           :math:`x \mapsto R x + t`
                           vectors                             :math:`v \mapsto R v`
                           pseudovectors                       :math:`w \mapsto \det(R)\,R w`
:class:`CongruenceAction`  ``[..., n, n]`` (SPD) matrices      :math:`X \mapsto Q X Q^\top`
=========================  ==================================  ========================
"""

from __future__ import annotations

import math

import torch
from e3nn import o3

from .._checks import check_int
from ._wigner import irreps_D_from_matrix
from .actions import GroupAction
from .groups import EuclideanGroup, Group, TranslationGroup, group_from_name

Tensor = torch.Tensor

__all__ = ["IrrepsAction", "PointCloudAction", "CongruenceAction"]


def _group(group: str | Group, *, dim: int | None, allowed: tuple[str, ...]):
    if isinstance(group, (EuclideanGroup, TranslationGroup)):
        if dim is not None and group.dim != dim:
            raise ValueError(f"group: expected a group acting on dimension {dim}, got {group}")
        return group
    if not isinstance(group, str) or group.lower() not in allowed:
        raise ValueError(f"group: expected one of {', '.join(allowed)}, got {group!r}")
    return group_from_name(group, dim=dim)


def _check_last(x: object, size: int, what: str, name: str = "x") -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 1 or x.shape[-1] != size:
        raise ValueError(f"{name}: expected shape [..., {size}] ({what}), got {list(x.shape)}")
    return x


class IrrepsAction(GroupAction):
    r"""O(3) / SO(3) on e3nn irreps features ``[..., irreps.dim]``: :math:`x \mapsto D(R) x`.

    :math:`D(R)` is the block-diagonal Wigner matrix of ``irreps`` in e3nn's
    basis and parity convention (an improper :math:`R` multiplies odd irreps
    by :math:`-1`), equal to ``irreps.D_from_matrix(R)`` but computed with
    float64-exact generators (see :mod:`geonorm.testing._wigner`). A
    translation in the element is ignored.

    Parameters
    ----------
    irreps : str or e3nn.o3.Irreps
        Irreps of the features, e.g. ``"8x0e+4x1o"``.
    group : {"o3", "so3"} or EuclideanGroup
        The group to sample from (improper elements only for ``"o3"``).

    Examples
    --------
    >>> from geonorm.testing import GroupElement
    >>> a = IrrepsAction("0e+1o")
    >>> g = GroupElement(rotation=-torch.eye(3))   # parity
    >>> a.act(g, torch.tensor([1.0, 1.0, 2.0, 3.0]))
    tensor([ 1., -1., -2., -3.])
    """

    primary = "rotation"

    def __init__(self, irreps: str | o3.Irreps, *, group: str | Group = "o3") -> None:
        try:
            self.irreps = o3.Irreps(irreps)
        except Exception as err:  # e3nn raises ValueError/AssertionError on bad strings
            raise ValueError(
                f"irreps: expected an e3nn irreps string like '4x0e+2x1o', got {irreps!r}"
            ) from err
        self.group = _group(group, dim=3, allowed=("o3", "so3", "e3", "se3", "t3"))

    def matrix(self, g) -> Tensor:
        """Float64 ``[dim, dim]`` representation matrix :math:`D(R)` of ``g``.

        A translation without a rotation (an element of T(3)) acts as the identity.
        """
        el = self.element(g)
        r = el.rotation
        if r is None and el.translation is not None:
            return torch.eye(self.irreps.dim, dtype=torch.float64)
        r = el.require("rotation", type(self).__name__)
        if r.shape != (3, 3):
            raise ValueError(f"g: expected a [3, 3] rotation for irreps, got {list(r.shape)}")
        return irreps_D_from_matrix(self.irreps, r)

    def blocks(self) -> tuple[tuple[str, slice], ...]:
        """``(name, slice)`` of each irrep of :attr:`irreps` in the last axis, e.g. ``("1o", ...)``."""
        out, start = [], 0
        for mul, ir in self.irreps:
            out.append((f"{mul}x{ir}" if mul != 1 else str(ir), slice(start, start + mul * ir.dim)))
            start += mul * ir.dim
        return tuple(out)

    def act(self, g, x):
        x = _check_last(x, self.irreps.dim, f"irreps {self.irreps}")
        d = self.matrix(g).to(dtype=x.dtype, device=x.device)
        return x @ d.T  # [..., dim]

    def _describe(self) -> str:
        return f"{self.irreps}, group={self.group}"


_KINDS = ("position", "vector", "pseudovector")


class PointCloudAction(GroupAction):
    r"""E(d) / SE(d) / O(d) / SO(d) on coordinates ``[..., N, d]``.

    ``kind="position"``: :math:`x \mapsto R x + t` (the translation is applied
    only if the element has one, the rotation is the identity if it has none,
    as for :class:`~geonorm.testing.TranslationGroup`); ``"vector"`` (velocities, forces):
    :math:`v \mapsto R v`; ``"pseudovector"`` (angular momenta, cross
    products): :math:`w \mapsto \det(R) R w`. Coordinates are plain Cartesian
    ``(x, y, z)``; for ``d = 3`` this coincides with e3nn's ``1o`` basis, so
    positions and ``1o`` irreps features rotate alike.

    Parameters
    ----------
    group : {"e3", "se3", "o3", "so3", "t3", "en", "sen", "on", "son", "tn"} or EuclideanGroup
        The group to sample from.
    kind : {"position", "vector", "pseudovector"}
        How the coordinates transform.
    dim : int
        Dimension ``d`` (3 unless an n-dimensional group is named).

    Examples
    --------
    >>> from geonorm.testing import GroupElement
    >>> a = PointCloudAction(group="e3")
    >>> g = GroupElement(rotation=torch.eye(3), translation=torch.tensor([1.0, 0.0, 0.0]))
    >>> a.act(g, torch.zeros(2, 3))
    tensor([[1., 0., 0.],
            [1., 0., 0.]])
    >>> PointCloudAction(kind="vector", group="e3").act(g, torch.zeros(1, 3))
    tensor([[0., 0., 0.]])
    """

    primary = "rotation"

    def __init__(
        self, *, group: str | Group = "e3", kind: str = "position", dim: int = 3
    ) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind: expected one of {', '.join(_KINDS)}, got {kind!r}")
        allowed = ("e3", "se3", "o3", "so3", "t3", "en", "sen", "on", "son", "tn")
        self.group = _group(group, dim=dim, allowed=allowed)
        self.kind = kind
        self.dim = self.group.dim

    def act(self, g, x):
        el = self.element(g)
        r = el.rotation
        x = _check_last(x, self.dim, "coordinates")
        if r is None and el.translation is None:
            raise ValueError(
                "g: PointCloudAction needs a group element with a 'rotation' or a "
                f"'translation' component, got components: {sorted(el.components) or 'none'}"
            )
        if r is not None and r.shape != (self.dim, self.dim):
            raise ValueError(
                f"g: expected a [{self.dim}, {self.dim}] rotation, got {list(r.shape)}"
            )
        y = x if r is None else x @ r.to(dtype=x.dtype, device=x.device).T  # [..., N, d]
        if self.kind == "pseudovector" and r is not None and el.det < 0:
            y = -y
        if self.kind == "position" and el.translation is not None:
            y = y + el.translation.to(dtype=x.dtype, device=x.device)
        return y

    def _describe(self) -> str:
        return f"group={self.group}, kind={self.kind!r}"


class CongruenceAction(GroupAction):
    r"""O(n) / SO(n) congruence on ``[..., n, n]`` matrices: :math:`X \mapsto Q X Q^\top`.

    The action under which SPD functions such as the matrix logarithm,
    powers and the AIRM/LEM distances are equivariant (or invariant).

    Parameters
    ----------
    n : int
        Matrix size.
    group : {"on", "son"} or EuclideanGroup
        Sample O(n) (improper elements included) or SO(n).

    Examples
    --------
    >>> a = CongruenceAction(2)
    >>> q = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    >>> a.act(q, torch.diag(torch.tensor([1.0, 2.0])))
    tensor([[2., 0.],
            [0., 1.]])
    """

    requires = ("rotation",)
    primary = "rotation"

    def __init__(self, n: int, *, group: str | Group = "on") -> None:
        check_int(n, "n")
        g = _group(group, dim=n, allowed=("on", "son", "o3", "so3"))
        if g.translations:
            raise ValueError(f"group: expected a group without translations, got {g}")
        self.group = g
        self.n = n

    def act(self, g, x):
        r = self.element(g).rotation
        assert r is not None
        x = _check_last(x, self.n, f"matrices [..., {self.n}, {self.n}]")
        if x.ndim < 2 or x.shape[-2] != self.n:
            raise ValueError(
                f"x: expected shape [..., {self.n}, {self.n}], got {list(x.shape)}"
            )
        if r.shape != (self.n, self.n):
            raise ValueError(f"g: expected a [{self.n}, {self.n}] rotation, got {list(r.shape)}")
        q = r.to(dtype=x.dtype, device=x.device)
        return q @ x @ q.T  # [..., n, n]

    def rounding_scale(self, x: Tensor) -> Tensor:
        r"""``sqrt(n) ||X||_2`` for every entry of each matrix.

        Matrix functions computed through an eigendecomposition (and the
        congruence itself, inner products of length ``n``) are norm-wise
        stable: their error per entry is a few :math:`\sqrt{n}\,\epsilon
        \|X\|_2` (probabilistic rounding bound; Higham & Mary, SIAM J. Sci.
        Comput. 2019), not epsilons of the entry. ``log I`` is all rounding.
        """
        if x.ndim < 2 or x.shape[-1] != x.shape[-2] or not x.numel():
            return x.abs()
        norm = torch.linalg.matrix_norm(x.detach().double(), ord=2)  # [...]
        return (math.sqrt(self.n) * norm)[..., None, None].expand(x.shape)

    def _describe(self) -> str:
        return f"n={self.n}, group={self.group}"
