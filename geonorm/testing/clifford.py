r"""The Clifford group acting on multivectors: :class:`CliffordGroup`, :class:`CliffordAction`.

An element is a versor :math:`w = v_1 v_2 \cdots v_k`, a product of
invertible vectors, stored as ``extra["versor"]`` (:mod:`geonorm.testing.elements`).
It acts on multivectors ``[..., 2^n]`` by the twisted conjugation of CGENN
(Ruhe, Brandstetter & Forré, NeurIPS 2023),

.. math::

    \rho(w)(x) = w\, \alpha^{k}(x)\, w^{-1},

the parity :math:`k \bmod 2` read from each versor
(:meth:`~geonorm.clifford.CliffordAlgebra.sandwich`). Odd versors are
reflections (improper orthogonal maps of the vectors), even ones rotations;
for a degenerate metric (projective GA) versors include translations.
Composition is the geometric product: :math:`\rho(w)\rho(u) = \rho(wu)`.
"""

from __future__ import annotations

import torch

from .._checks import check_int
from ..clifford.algebra import CliffordAlgebra
from .actions import GroupAction
from .elements import GroupElement
from .groups import Group

Tensor = torch.Tensor

__all__ = ["CliffordGroup", "CliffordAction", "random_versor"]


def random_versor(algebra: CliffordAlgebra, factors: int, *, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float64) -> Tensor:  # fmt: skip
    r"""A product of ``factors`` random unit vectors (:math:`|\bar q(v)| = 1`), ``[2^n]``.

    Each vector has Gaussian coefficients; one with :math:`|\bar q(v)|` below
    0.1 of its Euclidean size (near the null cone of an indefinite or
    degenerate metric) is redrawn, so every factor is well conditioned.

    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> v = random_versor(alg, 3, generator=torch.Generator().manual_seed(0))
    >>> round(float(alg.quadratic_form(v)), 12)
    1.0
    """
    check_int(factors, "factors", minimum=0)
    out = torch.zeros(algebra.dim, dtype=torch.float64)
    out[0] = 1
    for _ in range(factors):
        while True:
            coeffs = torch.randn(algebra.n, generator=generator, dtype=torch.float64)
            v = algebra.embed(coeffs, 1)
            q = float(algebra.quadratic_form(v))
            if abs(q) > 0.1 * float(coeffs.square().sum()):
                break
        out = algebra.geometric_product(out, v / abs(q) ** 0.5)
    return out.to(dtype)


class CliffordGroup(Group):
    r"""Versors of ``algebra``: products of 1 .. ``max_factors`` random unit vectors.

    Elements alternate parity (index 0 odd: a reflection first), so a batch of
    samples mixes reflections and rotations; ``proper=True`` samples even
    versors only (rotors; for a degenerate metric also motors).

    >>> g = CliffordGroup(CliffordAlgebra((1, 1, 1)))
    >>> g
    Pin(3,0,0)
    >>> g.sample(1, torch.Generator().manual_seed(0))[0].extra["versor"].shape
    torch.Size([8])
    """

    def __init__(self, algebra: CliffordAlgebra, *, proper: bool = False, max_factors: int | None = None) -> None:
        if not isinstance(algebra, CliffordAlgebra):
            raise TypeError(f"algebra: expected a CliffordAlgebra, got {type(algebra).__name__}")
        self.algebra = algebra
        self.proper = bool(proper)
        self.max_factors = check_int(max_factors if max_factors is not None else max(algebra.n, 2), "max_factors")
        if self.proper and self.max_factors < 2:
            raise ValueError(f"max_factors: expected >= 2 for proper (even) versors, got {self.max_factors}")
        self.name = f"{'Spin' if proper else 'Pin'}{str(algebra)[2:]}"
        self.components = frozenset({"versor"})

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and (self.algebra, self.proper, self.max_factors) == (
            other.algebra, other.proper, other.max_factors)  # fmt: skip

    def __hash__(self) -> int:
        return hash((type(self), self.algebra, self.proper, self.max_factors))

    def sample(self, n, generator=None, dtype=torch.float64):
        out = []
        for i in range(check_int(n, "n")):
            odd = not self.proper and i % 2 == 0
            counts = [k for k in range(1, self.max_factors + 1) if k % 2 == odd] or [0]
            k = counts[int(torch.randint(len(counts), (), generator=generator))]
            out.append(GroupElement(extra={"versor": random_versor(self.algebra, k, generator=generator, dtype=dtype)}))
        return out

    def join(self, other: Group) -> Group | None:
        if isinstance(other, CliffordGroup) and other.algebra == self.algebra:
            return CliffordGroup(self.algebra, proper=self.proper and other.proper,
                                 max_factors=max(self.max_factors, other.max_factors))  # fmt: skip
        return super().join(other)


class CliffordAction(GroupAction):
    r"""Versors on multivectors ``[..., 2^n]`` by the twisted sandwich :math:`\rho(w)`.

    Parameters
    ----------
    algebra : CliffordAlgebra
    proper : bool
        Sample even versors only.
    max_factors : int, optional
        Most vectors per sampled versor (default :math:`\max(n, 2)`).

    The checks report each grade as its own block.

    Examples
    --------
    >>> from geonorm.testing import assert_equivariant
    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> act = CliffordAction(alg)
    >>> _ = assert_equivariant(lambda x: alg.geometric_product(x, x), act, torch.randn(4, 8))
    """

    requires = ("versor",)
    primary = "versor"

    def __init__(self, algebra: CliffordAlgebra, *, proper: bool = False, max_factors: int | None = None) -> None:
        self.group = CliffordGroup(algebra, proper=proper, max_factors=max_factors)
        self.algebra = algebra

    def act(self, g, x):
        w = self.element(g).extra["versor"]
        self.algebra.check(x, "x")
        if w.shape != (self.algebra.dim,):
            raise ValueError(f"g: expected a [{self.algebra.dim}] versor, got {list(w.shape)}")
        return self.algebra.sandwich(w.to(dtype=x.dtype, device=x.device), x)

    def compose(self, g, h) -> GroupElement:
        """The element :math:`g h` (act with ``h`` first): the product of the versors."""
        w, u = self.element(g).extra["versor"], self.element(h).extra["versor"]
        return GroupElement(extra={"versor": self.algebra.geometric_product(w, u)})

    def blocks(self):
        return tuple((f"grade {k}", s) for k, s in enumerate(self.algebra.grade_slices()))

    def _describe(self) -> str:
        return f"group={self.group}"
