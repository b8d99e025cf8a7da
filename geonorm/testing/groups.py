r"""Groups the testing kit samples elements from.

A :class:`Group` samples :class:`~geonorm.testing.elements.GroupElement` s
and says which components its elements fill. Actions hold a group; when
several actions share one element (the inputs and outputs of a model), the
element is drawn from the *join* of their groups, :func:`join_groups`:

* Euclidean groups of one dimension join to the smallest group containing
  both: improper elements if either allows them, translations if either has
  them (``O(3) ∨ SE(3) = E(3)``; ``SO(3) ∨ SO(3) = SO(3)``).
* Groups filling different components (rotations and permutations) join to
  their direct product, :class:`ProductGroup`.
* The trivial group is the unit of the join.

A later group (Poincaré-ball isometries, Clifford versors) subclasses
:class:`Group`, lists its ``components`` and overrides :meth:`Group.join` to
absorb the groups it contains (e.g. ball isometries ⊇ O(d)).
"""

from __future__ import annotations

import abc

import torch

from .._checks import check_int
from .elements import GroupElement

__all__ = [
    "Group",
    "TrivialGroup",
    "EuclideanGroup",
    "TranslationGroup",
    "SymmetricGroup",
    "BlockPermutationGroup",
    "ProductGroup",
    "join_groups",
    "group_from_name",
    "random_orthogonal",
]


def _check_n(n: object) -> int:
    return check_int(n, "n")


def random_orthogonal(
    d: int,
    *,
    proper: bool = True,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    r"""One Haar-random ``[d, d]`` orthogonal matrix with determinant ±1.

    QR of a float64 Gaussian matrix with the signs of ``diag(R)`` moved into
    ``Q`` is Haar on O(d); multiplying on the right by the reflection
    ``diag(-1, 1, ..., 1)`` where needed gives Haar on the coset of the
    requested determinant (``+1`` if ``proper`` else ``-1``).

    >>> q = random_orthogonal(4, proper=False, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(q @ q.T, torch.eye(4, dtype=torch.float64)))
    True
    >>> round(float(torch.linalg.det(q)))
    -1
    """
    d = _check_n(d)
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)  # [d, d] Haar on O(d)
    want = 1.0 if proper else -1.0
    if float(torch.linalg.det(q)) * want < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


class Group(abc.ABC):
    """A group to sample elements from.

    Subclasses set :attr:`name` and :attr:`components` and implement
    :meth:`sample`; they override :meth:`join` when they contain other groups.
    """

    #: Printable name, e.g. ``"O(3)"``.
    name: str = "group"
    #: Components of :class:`GroupElement` that sampled elements fill.
    components: frozenset[str] = frozenset()

    @abc.abstractmethod
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> list[GroupElement]:
        """Return ``n`` random elements (``generator=None``: torch's default RNG)."""

    def join(self, other: "Group") -> "Group | None":
        """Smallest group containing ``self`` and ``other``, or ``None`` if unknown."""
        if isinstance(other, TrivialGroup) or self == other:
            return self
        return None

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))

    def __repr__(self) -> str:
        return self.name


class TrivialGroup(Group):
    """The group with one element; samples identity elements (no components).

    >>> TrivialGroup().sample(2)
    [GroupElement(identity), GroupElement(identity)]
    """

    name = "trivial"

    def sample(self, n, generator=None, dtype=torch.float64):
        return [GroupElement() for _ in range(_check_n(n))]

    def join(self, other: Group) -> Group:
        return other


class EuclideanGroup(Group):
    r"""O(d), SO(d), E(d) or SE(d): orthogonal maps, optionally with translations.

    Sampled rotations are Haar-random. Unless ``proper``, the elements of even
    index (0, 2, ...) are improper (:math:`\det R = -1`), so half the samples
    (and the first one) exercise parity. Translations are standard Gaussian
    vectors times ``translation_scale``.

    Parameters
    ----------
    dim : int
        Dimension ``d`` of the space acted on.
    proper : bool
        Only rotations (:math:`\det R = +1`): SO(d) / SE(d).
    translations : bool
        Include translations: E(d) / SE(d).
    translation_scale : float
        Standard deviation of sampled translations.

    Examples
    --------
    >>> g = EuclideanGroup(3, translations=True)
    >>> g
    E(3)
    >>> [e.det for e in g.sample(4, torch.Generator().manual_seed(0))]
    [-1.0, 1.0, -1.0, 1.0]
    >>> g.join(EuclideanGroup(3, proper=True))
    E(3)
    """

    def __init__(
        self,
        dim: int = 3,
        *,
        proper: bool = False,
        translations: bool = False,
        translation_scale: float = 1.0,
    ) -> None:
        check_int(dim, "dim")
        if not translation_scale > 0:
            raise ValueError(
                f"translation_scale: expected a positive float, got {translation_scale!r}"
            )
        self.dim = dim
        self.proper = bool(proper)
        self.translations = bool(translations)
        self.translation_scale = float(translation_scale)
        letter = "E" if translations else "O"
        self.name = f"{'S' if proper else ''}{letter}({dim})"
        self.components = frozenset(
            {"rotation", "translation"} if translations else {"rotation"}
        )

    def sample(self, n, generator=None, dtype=torch.float64):
        out = []
        for i in range(_check_n(n)):
            proper = self.proper or i % 2 == 1
            r = random_orthogonal(self.dim, proper=proper, generator=generator)
            t = None
            if self.translations:
                t = self.translation_scale * torch.randn(
                    self.dim, generator=generator, dtype=torch.float64
                )
            out.append(GroupElement(rotation=r, translation=t).to(dtype))
        return out

    def join(self, other: Group) -> Group | None:
        if isinstance(other, (EuclideanGroup, TranslationGroup)) and other.dim == self.dim:
            return EuclideanGroup(
                self.dim,
                proper=self.proper and getattr(other, "proper", True),
                translations=self.translations or isinstance(other, TranslationGroup)
                or other.translations,
                translation_scale=max(self.translation_scale, other.translation_scale),
            )
        return super().join(other)


class TranslationGroup(Group):
    r"""T(d): translations :math:`x \mapsto x + t` only (elements without a rotation).

    Actions that read a rotation treat a missing one as the identity, so a
    T(d) element moves positions and leaves vectors and irreps features
    alone. Joined with O(d) or SO(d) it gives E(d) or SE(d). Translations are
    standard Gaussian vectors times ``translation_scale``.

    >>> t = TranslationGroup(3)
    >>> t, sorted(t.sample(1, torch.Generator().manual_seed(0))[0].components)
    (T(3), ['translation'])
    >>> t.join(EuclideanGroup(3, proper=True))
    SE(3)
    """

    def __init__(self, dim: int = 3, *, translation_scale: float = 1.0) -> None:
        check_int(dim, "dim")
        if not translation_scale > 0:
            raise ValueError(
                f"translation_scale: expected a positive float, got {translation_scale!r}"
            )
        self.dim = dim
        self.translation_scale = float(translation_scale)
        self.name = f"T({dim})"
        self.components = frozenset({"translation"})

    def sample(self, n, generator=None, dtype=torch.float64):
        return [
            GroupElement(
                translation=self.translation_scale
                * torch.randn(self.dim, generator=generator, dtype=torch.float64)
            ).to(dtype)
            for _ in range(_check_n(n))
        ]

    def join(self, other: Group) -> Group | None:
        if isinstance(other, EuclideanGroup) and other.dim == self.dim:
            return other.join(self)
        return super().join(other)


class SymmetricGroup(Group):
    """Permutations of ``n`` objects (uniformly random index tensors).

    >>> SymmetricGroup(4).sample(1, torch.Generator().manual_seed(0))[0].permutation
    tensor([0, 1, 3, 2])
    """

    components = frozenset({"permutation"})

    def __init__(self, n: int) -> None:
        self.n = _check_n(n)
        self.name = f"S({n})"

    def sample(self, n, generator=None, dtype=torch.float64):
        return [
            GroupElement(permutation=torch.randperm(self.n, generator=generator))
            for _ in range(_check_n(n))
        ]


class BlockPermutationGroup(Group):
    """Permutations of ``sum(sizes)`` objects that stay within consecutive blocks.

    The symmetry of a batch of molecules stored atom-wise (ragged, as in
    torch_geometric): the atoms of each molecule are permuted among
    themselves. An element's ``permutation`` indexes the whole batch, so
    :class:`~geonorm.testing.PermutationAction` applies it unchanged.

    >>> g = BlockPermutationGroup([2, 3])
    >>> g, g.sample(1, torch.Generator().manual_seed(0))[0].permutation
    (S(2) × S(3) (blocks), tensor([0, 1, 2, 4, 3]))
    """

    components = frozenset({"permutation"})

    def __init__(self, sizes) -> None:
        sizes = [int(_check_n(s)) for s in sizes]
        if not sizes:
            raise ValueError("sizes: expected at least one block size, got none")
        self.sizes = tuple(sizes)
        self.n = sum(sizes)
        self.name = " × ".join(f"S({s})" for s in sizes) + " (blocks)"

    def sample(self, n, generator=None, dtype=torch.float64):
        out = []
        for _ in range(_check_n(n)):
            parts, start = [], 0
            for size in self.sizes:
                parts.append(start + torch.randperm(size, generator=generator))
                start += size
            out.append(GroupElement(permutation=torch.cat(parts)))
        return out


class ProductGroup(Group):
    """Direct product of groups filling disjoint components; elements are merged.

    >>> g = ProductGroup(SymmetricGroup(3), EuclideanGroup(3, proper=True))
    >>> g
    S(3) × SO(3)
    >>> sorted(g.sample(1)[0].components)
    ['permutation', 'rotation']
    """

    def __init__(self, *factors: Group) -> None:
        seen: frozenset[str] = frozenset()
        for f in factors:
            if not isinstance(f, Group):
                raise TypeError(f"factors: expected Group objects, got {type(f).__name__}")
            if f.components & seen:
                raise ValueError(
                    f"factors: expected groups filling disjoint components, got {f} "
                    f"overlapping on {sorted(f.components & seen)}"
                )
            seen = seen | f.components
        self.factors = tuple(factors)
        self.components = seen
        self.name = " × ".join(f.name for f in factors) or "trivial"

    def sample(self, n, generator=None, dtype=torch.float64):
        out = [GroupElement() for _ in range(_check_n(n))]
        for f in self.factors:
            out = [a.merge(b) for a, b in zip(out, f.sample(n, generator, dtype), strict=True)]
        return out

    def join(self, other: Group) -> Group | None:
        others = other.factors if isinstance(other, ProductGroup) else (other,)
        return join_groups(*self.factors, *others)


def join_groups(*groups: Group) -> Group:
    """Smallest group containing all ``groups`` (see the module notes).

    >>> join_groups(EuclideanGroup(3), EuclideanGroup(3, proper=True, translations=True))
    E(3)
    >>> join_groups(TrivialGroup(), SymmetricGroup(5), EuclideanGroup(2))
    S(5) × O(2)

    Raises ``ValueError`` for groups that fill the same components but do not
    join (O(2) and O(3), S(4) and S(5)).
    """
    factors: list[Group] = []
    for g in groups:
        if not isinstance(g, Group):
            raise TypeError(f"groups: expected Group objects, got {type(g).__name__}")
        parts = g.factors if isinstance(g, ProductGroup) else (g,)
        for part in parts:
            if isinstance(part, TrivialGroup):
                continue
            for i, f in enumerate(factors):
                joined = f.join(part)
                if joined is None:
                    joined = part.join(f)
                if joined is not None:
                    factors[i] = joined
                    break
                if f.components & part.components:
                    raise ValueError(
                        f"groups: cannot share one element between {f} and {part} "
                        f"(both act through {sorted(f.components & part.components)}); "
                        "pass group= explicitly or use matching groups"
                    )
            else:
                factors.append(part)
    if not factors:
        return TrivialGroup()
    if len(factors) == 1:
        return factors[0]
    return ProductGroup(*factors)


_NAMES = {
    "o3": (3, False, False),
    "so3": (3, True, False),
    "e3": (3, False, True),
    "se3": (3, True, True),
    "on": (None, False, False),
    "son": (None, True, False),
    "en": (None, False, True),
    "sen": (None, True, True),
    "t3": (3, None, True),
    "tn": (None, None, True),
}


def group_from_name(name: str, *, dim: int | None = None) -> EuclideanGroup | TranslationGroup:
    """Euclidean group from a short name: o3, so3, e3, se3, t3 (dim 3) or on, son, en, sen, tn.

    ``t3`` / ``tn`` are the translations alone, :class:`TranslationGroup`.

    >>> group_from_name("se3"), group_from_name("son", dim=5), group_from_name("t3")
    (SE(3), SO(5), T(3))
    """
    if not isinstance(name, str) or name.lower() not in _NAMES:
        raise ValueError(f"group: expected one of {', '.join(_NAMES)}, got {name!r}")
    fixed, proper, translations = _NAMES[name.lower()]
    if fixed is not None:
        if dim not in (None, fixed):
            raise ValueError(f"dim: expected {fixed} for group {name!r}, got {dim!r}")
        dim = fixed
    if dim is None:
        raise ValueError(f"dim: group {name!r} needs the dimension n, got None")
    if proper is None:
        return TranslationGroup(dim)
    return EuclideanGroup(dim, proper=proper, translations=translations)
