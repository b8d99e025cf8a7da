r"""The Clifford algebra :math:`\mathrm{Cl}_{p,q,r}(\mathbb{R})` on multivector tensors.

A multivector of an algebra over :math:`n` basis vectors is a tensor whose
last axis holds its :math:`2^n` coefficients, one per basis blade
:math:`e_A = e_{a_1} e_{a_2} \cdots e_{a_k}` (:math:`a_1 < \dots < a_k`), in
the order of :attr:`CliffordAlgebra.blades`: grade by grade, and
lexicographically within a grade (the "shortlex" order of the ``clifford``
package): ``(), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2)`` for
:math:`\mathrm{Cl}(3)`.

Products of basis blades are blades again,

.. math::

    e_A e_B = \sigma(A, B)\, \Bigl(\prod_{i \in A \cap B} m_i\Bigr)\, e_{A \triangle B},

with :math:`\sigma(A, B) = \pm 1` the sign of the permutation that sorts the
concatenated indices and :math:`m_i = e_i^2 \in \{1, -1, 0\}` the metric. So
for each left blade :math:`A` the map :math:`B \mapsto A \triangle B` is a
permutation of the blades, and the geometric product is

.. math::

    (x y)_C = \sum_A x_A\, y_{A \triangle C}\, s(A, A \triangle C),

one gather of ``y`` per left blade: :math:`4^n` multiply-adds per product,
the number of entries of the Cayley table that can be non-zero, instead of
the :math:`8^n` of a dense :math:`2^n \times 2^n \times 2^n` einsum (for a
degenerate metric some of the :math:`4^n` signs are zero). Three kernels
compute it:

* the geometric product of large enough batches goes through a faithful
  matrix representation (:mod:`~geonorm.clifford.representation`): two maps
  to small block matrices, their products, one map back. For
  :math:`\mathrm{Cl}(4,1)` one real :math:`8 \times 8` product
  (:math:`\approx 7 \cdot 10^3` multiply-adds instead of :math:`3.3 \cdot 10^4`),
  for :math:`\mathrm{Cl}(3,0)` one complex :math:`2 \times 2`, for projective
  :math:`\mathrm{Cl}(3,0,1)` three complex :math:`2 \times 2`. It is used
  where its cost (``ProductPlan.cost``) saves at least
  :attr:`CliffordAlgebra.plan_min_saving` multiply-adds over the dense kernel
  summed over the batch: small batches are dominated by its fixed cost;
* up to :math:`n = 5` otherwise one matrix multiply of the :math:`4^n` pair
  products by the ``[4^n, 2^n]`` table (its non-zeros are the :math:`4^n`
  signs), faster on CPU than a gather despite its :math:`8^n` multiply-adds
  (see ``CliffordAlgebra._signed_sum``);
* larger :math:`n`: the gather loop.

The outer and inner products and the weighted grade-path products of CGENN
have no representation of their own and use the last two kernels with another
sign table.
"""

from __future__ import annotations

import functools
import itertools
import math
from typing import Iterable, Sequence

import torch

from .._checks import check_floating, check_int, check_tensor
from .._numerics import machine_eps, safe_sqrt, tiny_for
from .bilinear import signed_sum
from .representation import batch_shape, blade_sign, block_matmul, product_plan

Tensor = torch.Tensor

__all__ = ["CliffordAlgebra"]


@functools.lru_cache(maxsize=None)
def _series_terms(eps: float) -> int:
    """Fewest terms K of the exponential series with (1/2)^K / K! <= eps / 4 (its tail at norm 1/2)."""
    return next(k for k in itertools.count(1) if 0.5**k / math.factorial(k) <= eps / 4)


class CliffordAlgebra:
    r"""The real Clifford algebra with basis vectors squaring to ``metric``.

    Parameters
    ----------
    metric : sequence of {1, -1, 0}
        :math:`m_i = e_i^2` for each basis vector, in any order: ``(1, 1, 1)``
        is :math:`\mathrm{Cl}(3,0)`, ``(1, -1, -1, -1)`` spacetime
        :math:`\mathrm{Cl}(1,3)`, ``(0, 1, 1, 1)`` projective geometric algebra
        :math:`\mathrm{Cl}(3,0,1)` (the null vector is :math:`e_0`).

    Attributes
    ----------
    blades : tuple of tuple of int
        The basis blades in the order of a multivector's last axis.
    grades : tuple of int
        ``0 .. n``.
    dim : int
        :math:`2^n`, the length of a multivector's last axis.
    blade_grades : tuple of int
        The grade of each blade.

    Notes
    -----
    Every operation broadcasts over leading axes and follows its inputs'
    dtype and device. The index and sign tables are built once (in Python,
    :math:`O(4^n)`) and cached per device and dtype.

    Examples
    --------
    >>> alg = CliffordAlgebra((1, 1, 1))
    >>> alg.blades[:5]
    ((), (0,), (1,), (2,), (0, 1))
    >>> e0, e1 = alg.basis_vector(0), alg.basis_vector(1)
    >>> alg.geometric_product(e0, e1)[4].item(), alg.geometric_product(e1, e0)[4].item()
    (1.0, -1.0)
    """

    def __init__(self, metric: Sequence[float]) -> None:
        if isinstance(metric, (str, bytes)) or not isinstance(metric, Iterable):
            raise TypeError(f"metric: expected a sequence of 1, -1 or 0, got {type(metric).__name__}")
        metric = tuple(metric)
        if not metric or any(isinstance(m, bool) or m not in (1, -1, 0) for m in metric):
            raise ValueError(f"metric: expected a non-empty sequence of 1, -1 or 0, got {metric!r}")
        self.metric: tuple[int, ...] = tuple(int(m) for m in metric)
        self.n = n = len(metric)
        if n > 8:
            raise ValueError(f"metric: expected at most 8 basis vectors (2^8 blades), got {n}")
        self.dim = 2**n
        self.grades = tuple(range(n + 1))
        self.blades: tuple[tuple[int, ...], ...] = tuple(
            c for k in self.grades for c in itertools.combinations(range(n), k)
        )
        self.blade_grades = tuple(len(b) for b in self.blades)
        masks = [sum(1 << i for i in b) for b in self.blades]
        index_of = {m: i for i, m in enumerate(masks)}
        self._mask = masks
        # partner[a, c] = index of the blade b with e_a e_b ∝ e_c; sign[a, c] its coefficient
        partner = [[index_of[masks[a] ^ masks[c]] for c in range(self.dim)] for a in range(self.dim)]
        sign = [[blade_sign(self.metric, masks[a], masks[a] ^ masks[c]) for c in range(self.dim)]
                for a in range(self.dim)]  # fmt: skip
        self._partner = partner
        self._sign = sign
        g = self.blade_grades
        # the outer product keeps disjoint blades; the left contraction A ⊆ B
        self._outer = [[sign[a][c] * (masks[a] & masks[partner[a][c]] == 0) for c in range(self.dim)]
                       for a in range(self.dim)]  # fmt: skip
        self._inner = [[sign[a][c] * (g[c] == g[partner[a][c]] - g[a]) for c in range(self.dim)]
                       for a in range(self.dim)]  # fmt: skip
        # quadratic form of a blade: <~e_A e_A>_0 = prod of its metric entries
        self._blade_square = [math.prod(self.metric[i] for i in b) for b in self.blades]
        self._cache: dict[tuple, Tensor] = {}

    #: Largest :math:`n` whose products use the dense matrix-multiply kernel (see :meth:`_signed_sum`).
    dense_max_n: int = 5

    # ------------------------------------------------------------------ tables
    def _table(self, name: str, like: Tensor) -> Tensor:
        key = (name, like.device, like.dtype if name != "partner" else torch.long)
        t = self._cache.get(key)
        if t is None:
            src = {"partner": self._partner, "sign": self._sign, "outer": self._outer,
                   "inner": self._inner, "reverse": self._reverse_signs(),
                   "involution": [(-1) ** k for k in self.blade_grades],
                   "conjugate": [(-1) ** (k * (k + 1) // 2) for k in self.blade_grades],
                   "square": self._blade_square, "grade": list(self.blade_grades),
                   "left_sign": [[self._sign[self._partner[a][c]][c] for c in range(self.dim)]
                                 for a in range(self.dim)],
                   "onehot_scalar": [float(i == 0) for i in range(self.dim)],
                   "grade_onehot": [[float(g == k) for k in self.grades] for g in self.blade_grades],
                   "grade_square": [[float(g == k) * q for k in self.grades]
                                    for g, q in zip(self.blade_grades, self._blade_square)],
                   "onehot": [[[float(b == self._partner[a][c]) for c in range(self.dim)]
                               for b in range(self.dim)] for a in range(self.dim)]}[name]  # fmt: skip
            dtype = torch.long if name in ("partner", "grade") else like.dtype
            t = torch.tensor(src, dtype=dtype, device=like.device)
            self._cache[key] = t
        return t

    def _reverse_signs(self) -> list[int]:
        return [(-1) ** (k * (k - 1) // 2) for k in self.blade_grades]

    def tables(self, like: Tensor) -> tuple[Tensor, Tensor]:
        r"""``(partner, sign)``, both ``[2^n, 2^n]``: :math:`e_A e_{\mathrm{partner}[A, C]} = \mathrm{sign}[A, C]\, e_C`."""
        return self._table("partner", like), self._table("sign", like)

    def blade_grade_index(self, device: torch.device | None = None) -> Tensor:
        """``[2^n]`` long tensor: the grade of each blade."""
        return torch.tensor(self.blade_grades, dtype=torch.long, device=device)

    # ------------------------------------------------------------------ checks
    def check(self, x: object, name: str) -> Tensor:
        """Raise unless ``x`` is a floating tensor ``[..., 2^n]`` of this algebra."""
        check_floating(check_tensor(x, name), name)
        if x.ndim < 1 or x.shape[-1] != self.dim:
            raise ValueError(
                f"{name}: expected a multivector tensor of shape [..., {self.dim}] for {self}, "
                f"got shape {list(x.shape)}"
            )
        return x

    def __repr__(self) -> str:
        p, q = self.metric.count(1), self.metric.count(-1)
        return f"Cl({p},{q},{self.metric.count(0)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CliffordAlgebra) and other.metric == self.metric

    def __hash__(self) -> int:
        return hash(self.metric)

    # ---------------------------------------------------------------- products
    def _product(self, x: Tensor, y: Tensor, signs: Tensor) -> Tensor:
        x, y = torch.broadcast_tensors(self.check(x, "x"), self.check(y, "y"))
        return self._signed_sum(x, y, signs)

    def _signed_sum(self, x: Tensor, y: Tensor, signs: Tensor) -> Tensor:
        r""":math:`\sum_A x_A\, y_{\mathrm{partner}[A, C]}\, \mathrm{signs}[A, C]`.

        ``x``, ``y`` ``[..., 2^n]`` (broadcast); ``signs`` ``[2^n, 2^n]`` or,
        per channel, ``[channels, 2^n, 2^n]`` with ``x`` ``[..., channels, 2^n]``.
        The backward is two such sums (:mod:`~geonorm.clifford.bilinear`).
        """
        return signed_sum(self._signed_kernel, self._table("partner", x), x, y, signs)

    def _signed_kernel(self, x: Tensor, y: Tensor, signs: Tensor, keep: list | None = None) -> Tensor:
        r"""The forward of :meth:`_signed_sum`. Two kernels, chosen by size:

        * :math:`n \le` ``dense_max_n`` (5): the :math:`4^n` products
          :math:`x_A y_B` as one row, times the ``[4^n, 2^n]`` Cayley matrix in a
          single matrix multiply (per channel a batched one). :math:`8^n`
          multiply-adds, but one BLAS call: on CPU 3x faster than the gather
          loop for :math:`n = 4` and 1.4x for :math:`n = 5` (batch 4,096, one
          thread), and 2x faster than the dense einsum at :math:`n = 5`
          (``python -m benchmarks clifford``). Memory: :math:`4^n` per pair.
        * larger :math:`n`: one gather of ``y`` per left blade (:math:`4^n`
          multiply-adds, the non-zero entries only, no ``[..., 4^n]`` intermediate).

        ``keep``: a list that receives the per-channel pairs ``[channels, rest, 4^n]``
        of the first kernel (the weights' gradient reuses them).
        """
        d = self.dim
        if self.n > self.dense_max_n:
            partner = self._partner_rows(x.device)
            out = x[..., :1] * y * signs[..., 0, :]  # the scalar's partner is the identity
            for a in range(1, d):
                out = out + x[..., a : a + 1] * y[..., partner[a]] * signs[..., a, :]  # [..., 2^n]
            return out
        onehot = self._table("onehot", x)  # [A, B, C]: 1 where B = partner[A, C]
        cayley = (signs.unsqueeze(-2) * onehot).flatten(-3, -2)  # [(channels,) 4^n, 2^n]
        if cayley.ndim == 2:
            return (x.unsqueeze(-1) * y.unsqueeze(-2)).flatten(-2) @ cayley  # [..., 4^n] @ [4^n, 2^n]
        # per channel: channels first before the [..., 4^n] pairs, so they need no copy for bmm
        c = cayley.shape[0]
        xc, yc = (v.movedim(-2, 0).reshape(c, -1, d).contiguous() for v in (x, y))  # [channels, rest, 2^n]
        pairs = (xc.unsqueeze(-1) * yc.unsqueeze(-2)).flatten(-2)  # [channels, rest, 4^n]
        if keep is not None:
            keep.append(pairs)
        out = torch.bmm(pairs, cayley)  # [channels, rest, 2^n]
        return out.view(c, *x.shape[:-2], d).movedim(0, -2)  # [..., channels, 2^n]

    def _plan_tables(self, like: Tensor, complex_: bool) -> tuple[Tensor, Tensor, Tensor, int, int, int]:
        """The product plan's tables in blade order and ``like``'s dtype, laid out for :meth:`_plan_product`,
        and its ``(planes, blocks, size)``."""
        key = ("plan", complex_, like.device, like.dtype)
        tables = self._cache.get(key)
        if tables is None:
            tables = self._cache[key] = self._build_plan_tables(like, complex_)
        return tables

    @torch.compiler.disable  # built once, outside any traced graph (SVDs, data-dependent ranks)
    def _build_plan_tables(self, like: Tensor, complex_: bool) -> tuple[Tensor, Tensor, Tensor, int, int, int]:
        plan, order, d = product_plan(self.metric, complex_=complex_), torch.tensor(self._mask), self.dim
        left, right, out = plan.left[order], plan.right[order], plan.out[..., order]
        tables = tuple(t.to(like.device, like.dtype).contiguous()
                       for t in (left.reshape(d, -1).T, right.reshape(d, -1).T, out.reshape(-1, d)))  # fmt: skip
        return (*tables, plan.left.shape[1], plan.blocks, plan.size)

    def _plan_product(self, x: Tensor, y: Tensor, complex_: bool = False, batched: bool = False) -> Tensor:
        r"""``xy`` through the matrix representation (:mod:`~geonorm.clifford.representation`)."""
        left, right, out, p, t, n = self._plan_tables(x, complex_)
        if batched:
            xm = (x @ left.T).unflatten(-1, (t, n, n))
            ym = (y @ right.T).unflatten(-1, (t, n, n))
            return (xm @ ym).flatten(-3) @ out
        d = self.dim
        shape = batch_shape(x.shape[:-1], y.shape[:-1])
        # batch axes right-aligned, size-1 axes broadcast by block_matmul
        bx, by = ((1,) * (len(shape) - v.ndim + 1) + v.shape[:-1] for v in (x, y))
        xm = (left @ x.reshape(-1, d).T).view(p, t, n, n, *bx)  # batch last, contiguous
        ym = (right @ y.reshape(-1, d).T).view(p, t, n, n, *by)
        z = block_matmul(xm, ym)  # [P, T, N, N, ...]
        return (z.view(p * t * n * n, -1).T @ out).view(*shape, d)

    def _partner_rows(self, device: torch.device) -> list[Tensor]:
        key = ("partner_rows", device)
        rows = self._cache.get(key)
        if rows is None:
            rows = [torch.tensor(r, dtype=torch.long, device=device) for r in self._partner]
            self._cache[key] = rows
        return rows

    #: Multiply-adds a product plan must save over the dense kernel, summed over the batch, before it
    #: is used: its maps and loop cost a fixed ~0.1 ms forward, ~0.3 ms forward+backward (1 CPU
    #: thread); measured crossovers of forward+backward 300 (Cl(3,1)) to 2,000 (Cl(3,0)) pairs.
    plan_min_saving: float = 1e6

    def _product_kernel(self, pairs: int) -> tuple[bool, bool] | None:
        """``(complex, batched)`` for :meth:`_plan_product`, or ``None`` for :meth:`_signed_sum` (module notes)."""
        if "kernel" not in self._cache:
            self._choose_kernel()
        best, saving = self._cache["kernel"]
        return best if saving * pairs >= self.plan_min_saving else None

    @torch.compiler.disable  # once per algebra, outside any traced graph
    def _choose_kernel(self) -> None:
        d = self.dim
        dense = d**3 + d * d if self.n <= self.dense_max_n else math.inf
        options = {}
        plan = product_plan(self.metric, complex_=True)
        if plan is not None and plan.size <= 2:  # complex 2 x 2 blocks: Cl(3,0), Cl(3,0,1)
            options[(True, False)] = plan.cost
        plan = product_plan(self.metric)
        options[(False, plan.size > 4)] = plan.cost
        best = min(options, key=options.__getitem__)
        self._cache["kernel"] = (best, dense - options[best])

    def geometric_product(self, x: Tensor, y: Tensor) -> Tensor:
        r"""The geometric product :math:`xy`, ``[..., 2^n]`` (kernels: module notes).

        >>> alg = CliffordAlgebra((1, 1))
        >>> e01 = alg.blade((0, 1))
        >>> alg.geometric_product(e01, e01)  # a bivector squares to -1 in Cl(2)
        tensor([-1., 0., 0., 0.])
        """
        x, y = self.check(x, "x"), self.check(y, "y")
        kernel = self._product_kernel(math.prod(batch_shape(x.shape[:-1], y.shape[:-1])))
        if kernel is None:
            return self._signed_sum(*torch.broadcast_tensors(x, y), self._table("sign", x))
        return self._plan_product(x, y, *kernel)

    def outer_product(self, x: Tensor, y: Tensor) -> Tensor:
        r"""The outer (wedge) product :math:`x \wedge y`: the part of :math:`e_A e_B` with :math:`A \cap B = \emptyset`."""
        return self._product(x, y, self._table("outer", x))

    def inner_product(self, x: Tensor, y: Tensor) -> Tensor:
        r"""The left contraction :math:`x \rfloor y`.

        .. math:: e_A \rfloor e_B = \langle e_A e_B \rangle_{|B| - |A|}
           \ (\text{zero unless } A \subseteq B),

        extended bilinearly; for vectors it is the metric's bilinear form
        :math:`a \rfloor b = \sum_i m_i a_i b_i`.
        """
        return self._product(x, y, self._table("inner", x))

    def left_multiplication(self, x: Tensor) -> Tensor:
        r"""The matrix :math:`L_x` ``[..., 2^n, 2^n]`` of :math:`t \mapsto x t`: :math:`(x t)_C = \sum_A t_A L_{AC}`.

        :math:`L_{AC} = x_{A \triangle C}\, s(A \triangle C, A)`; a sandwich
        :math:`t \mapsto a t b` has the matrix :math:`L_a R_b`.

        >>> alg = CliffordAlgebra((1, 1))
        >>> x, y = torch.tensor([1., 2., 3., 4.]), torch.tensor([0., 1., -1., 2.])
        >>> torch.allclose(y @ alg.left_multiplication(x), alg.geometric_product(x, y))
        True
        """
        partner = self._table("partner", self.check(x, "x"))
        return x[..., partner] * self._table("left_sign", x)

    def right_multiplication(self, x: Tensor) -> Tensor:
        r"""The matrix :math:`R_x` ``[..., 2^n, 2^n]`` of :math:`t \mapsto t x`: :math:`(t x)_C = \sum_A t_A R_{AC}`.

        :math:`R_{AC} = x_{A \triangle C}\, s(A, A \triangle C)`, so :math:`R_{xy} = R_x R_y`.

        >>> alg = CliffordAlgebra((1, 1))
        >>> x, y = torch.tensor([1., 2., 3., 4.]), torch.tensor([0., 1., -1., 2.])
        >>> torch.allclose(y @ alg.right_multiplication(x), alg.geometric_product(y, x))
        True
        """
        partner, sign = self.tables(self.check(x, "x"))
        return x[..., partner] * sign

    def weighted_product(self, x: Tensor, y: Tensor, weight: Tensor) -> Tensor:
        r"""The geometric product with one weight per grade path (CGENN).

        .. math::

            (x \cdot_w y)_C = \sum_A w_{|A|, |B|, |C|}\, x_A\, y_B\, s(A, B),
            \quad B = A \triangle C,

        ``x``, ``y``: ``[..., channels, 2^n]``; ``weight``:
        ``[channels, n+1, n+1, n+1]`` (left grade, right grade, output grade).
        """
        x, y = torch.broadcast_tensors(self.check(x, "x"), self.check(y, "y"))
        if weight.ndim != 4 or weight.shape[1:] != (self.n + 1,) * 3 or weight.shape[0] != x.shape[-2]:
            raise ValueError(
                f"weight: expected shape [{x.shape[-2] if x.ndim > 1 else 'channels'}, "
                f"{self.n + 1}, {self.n + 1}, {self.n + 1}], got {list(weight.shape)}"
            )
        partner, sign = self.tables(x)
        g = self._table("grade", x)
        w = weight[:, g[:, None], g[partner], g[None, :]] * sign  # [channels, A, C]
        return self._signed_sum(x, y, w)  # [..., channels, 2^n]

    # ------------------------------------------------------------- involutions
    def reverse(self, x: Tensor) -> Tensor:
        r"""Reversion :math:`\tilde x`: grade :math:`k` times :math:`(-1)^{k(k-1)/2}`."""
        return self.check(x, "x") * self._table("reverse", x)

    def grade_involution(self, x: Tensor) -> Tensor:
        r"""Grade involution :math:`\hat x = \alpha(x)`: grade :math:`k` times :math:`(-1)^k`."""
        return self.check(x, "x") * self._table("involution", x)

    def clifford_conjugate(self, x: Tensor) -> Tensor:
        r"""Clifford conjugate :math:`\bar x = \alpha(\tilde x)`: grade :math:`k` times :math:`(-1)^{k(k+1)/2}`."""
        return self.check(x, "x") * self._table("conjugate", x)

    # ------------------------------------------------------------------ grades
    def grade_mask(self, grades: int | Sequence[int], like: Tensor | None = None) -> Tensor:
        """``[2^n]`` bool mask of the blades whose grade is in ``grades``."""
        gs = (grades,) if isinstance(grades, int) else tuple(grades)
        for k in gs:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k <= self.n:
                raise ValueError(f"grades: expected grades in 0..{self.n}, got {grades!r}")
        mask = [g in gs for g in self.blade_grades]
        return torch.tensor(mask, device=None if like is None else like.device)

    def grade_projection(self, x: Tensor, grades: int | Sequence[int]) -> Tensor:
        r""":math:`\langle x \rangle_k`: ``x`` with every blade outside ``grades`` zeroed."""
        return self.check(x, "x") * self.grade_mask(grades, x).to(x.dtype)

    def grade_slices(self) -> tuple[slice, ...]:
        """For each grade, the slice of the last axis that holds its blades."""
        out, start = [], 0
        for k in self.grades:
            size = math.comb(self.n, k)
            out.append(slice(start, start + size))
            start += size
        return tuple(out)

    def embed(self, values: Tensor, grade: int) -> Tensor:
        """A multivector ``[..., 2^n]`` whose grade-``grade`` part is ``values`` ``[..., C(n, grade)]``."""
        check_int(grade, "grade", minimum=0)
        if grade > self.n:
            raise ValueError(f"grade: expected a grade in 0..{self.n}, got {grade}")
        sl = self.grade_slices()[grade]
        if values.shape[-1] != sl.stop - sl.start:
            raise ValueError(
                f"values: expected last dimension {sl.stop - sl.start} (grade {grade} of {self}), "
                f"got shape {list(values.shape)}"
            )
        out = values.new_zeros(*values.shape[:-1], self.dim)
        out[..., sl] = values
        return out

    def blade(self, indices: Sequence[int], *, dtype=None, device=None) -> Tensor:
        """The basis blade :math:`e_{i_1 \\cdots i_k}` (indices sorted) as a ``[2^n]`` multivector."""
        key = tuple(sorted(indices))
        if key not in self.blades:
            raise ValueError(f"indices: expected distinct basis indices in 0..{self.n - 1}, got {indices!r}")
        out = torch.zeros(self.dim, dtype=dtype or torch.get_default_dtype(), device=device)
        out[self.blades.index(key)] = 1
        return out

    def basis_vector(self, i: int, *, dtype=None, device=None) -> Tensor:
        """:math:`e_i` as a ``[2^n]`` multivector."""
        return self.blade((i,), dtype=dtype, device=device)

    # ------------------------------------------------------------------ norms
    def quadratic_form(self, x: Tensor) -> Tensor:
        r"""The extended quadratic form :math:`\bar q(x) = \langle \tilde x x \rangle_0 = \sum_A x_A^2 e_A^2`, ``[...]``.

        Invariant under the twisted sandwich of every versor when :math:`x`
        is one grade (CGENN, Ruhe et al. 2023, the grade-wise invariants);
        multiplicative on versors.
        """
        return (self.check(x, "x").square() * self._table("square", x)).sum(-1)

    def grade_quadratic_forms(self, x: Tensor) -> Tensor:
        r""":math:`\bar q(\langle x \rangle_k)` for every grade :math:`k`, ``[..., n+1]``."""
        return self.check(x, "x").square() @ self._table("grade_square", x)  # [..., 2^n] @ [2^n, n+1]

    def expand_grades(self, values: Tensor) -> Tensor:
        """Per-grade values ``[..., n+1]`` repeated over each grade's blades, ``[..., 2^n]``.

        >>> CliffordAlgebra((1, 1)).expand_grades(torch.tensor([1., 2., 3.]))
        tensor([1., 2., 2., 3.])
        """
        return values @ self._table("grade_onehot", values).T  # [..., n+1] @ [n+1, 2^n]

    def norm(self, x: Tensor) -> Tensor:
        r""":math:`\sqrt{|\bar q(x)|}`, ``[...]``, with a zero (not infinite) gradient at :math:`\bar q = 0`."""
        return safe_sqrt(self.quadratic_form(x).abs())

    def grade_norms(self, x: Tensor) -> Tensor:
        r""":math:`\sqrt{|\bar q(\langle x \rangle_k)|}` per grade, ``[..., n+1]``, safe at zero."""
        return safe_sqrt(self.grade_quadratic_forms(x).abs())

    # ---------------------------------------------------------------- versors
    def versor_inverse(self, v: Tensor) -> Tensor:
        r""":math:`v^{-1} = \tilde v / \bar q(v)` for a versor :math:`v` (for which :math:`\tilde v v` is a scalar).

        Raises ``ValueError`` when :math:`\bar q(v) = 0` (a null versor has no inverse).
        """
        q = self.quadratic_form(v)  # [...]
        if bool((q.abs() <= tiny_for(q.dtype)).any()):
            raise ValueError("v: expected invertible versors (q(v) != 0), got a null multivector")
        return self.reverse(v) / q.unsqueeze(-1)

    def parity(self, v: Tensor) -> Tensor:
        r"""``[...]`` bool, True for odd versors; raises ``ValueError`` on mixed parity.

        A versor is a product of vectors, so it is purely even or purely odd;
        the parity is decided per element (a batch may mix rotations and
        reflections). An element whose smaller part exceeds
        :math:`\sqrt{\epsilon}` of its larger part is rejected.
        """
        odd_mask = self._table("involution", v) < 0
        sq = self.check(v, "v").square()
        odd = (sq * odd_mask).sum(-1)
        even = (sq * ~odd_mask).sum(-1)
        tol = machine_eps(v.dtype) ** 0.5
        if bool((torch.minimum(odd, even) > tol * tol * torch.maximum(odd, even)).any()):
            raise ValueError("v: expected versors of one parity each (even or odd), got a mixed multivector")
        return odd > even

    def sandwich(self, v: Tensor, x: Tensor, *, parity: Tensor | None = None) -> Tensor:
        r"""The twisted conjugation :math:`\rho(v)(x) = v\, \alpha^{p(v)}(x)\, v^{-1}` (CGENN).

        Equal to :math:`v x^{[0]} v^{-1} + \alpha(v) x^{[1]} v^{-1}`: the even
        part of ``x`` is conjugated, the odd part picks up the sign
        :math:`(-1)^{p(v)}`, so a unit vector :math:`n` acts on vectors as the
        reflection in the hyperplane orthogonal to :math:`n`. Grade-preserving,
        linear and an algebra automorphism. ``v``: ``[..., 2^n]`` versors,
        broadcast against ``x`` ``[..., 2^n]``; ``parity`` (bool, ``[...]``)
        skips :meth:`parity`.

        >>> alg = CliffordAlgebra((1, 1, 1))
        >>> alg.sandwich(alg.basis_vector(0), alg.basis_vector(0) + alg.basis_vector(1))[1:4]
        tensor([-1., 1., 0.])
        """
        self.check(x, "x")
        odd = self.parity(v) if parity is None else parity
        inv = self.versor_inverse(v)
        xt = torch.where(odd.unsqueeze(-1), self.grade_involution(x), x)
        return self.geometric_product(self.geometric_product(v, xt), inv)

    def exp(self, b: Tensor, *, terms: int | None = None) -> Tensor:
        r"""The exponential :math:`e^b = \sum_k b^k / k!`, for bivectors a rotor / motor.

        Scaling and squaring: :math:`e^b = (e^{b / 2^s})^{2^s}` with
        :math:`s` chosen so that :math:`\|b\| / 2^s \le 1/2` (the Euclidean norm
        of the coefficients), and a Taylor series of ``terms`` terms (default:
        the fewest whose truncation, at most :math:`(1/2)^K / K!` relative since
        :math:`\|xy\|_1 \le \|x\|_1 \|y\|_1`, is below a quarter of the dtype's
        epsilon: 15 in float64, 9 in float32) for :math:`e^{b/2^s}`. Any
        signature, degenerate included, and any multivector (for bivectors
        the result is an even versor with :math:`\tilde R R = 1` up to rounding).

        >>> alg = CliffordAlgebra((1, 1, 1))
        >>> r = alg.exp(alg.blade((0, 1)) * (-math.pi / 4))  # exp(-B theta/2): e0 turns by pi/2 towards e1
        >>> alg.sandwich(r, alg.basis_vector(0))[1:4].round(decimals=6) + 0.0
        tensor([0., 1., 0.])
        """
        self.check(b, "b")
        if terms is None:
            terms = _series_terms(machine_eps(b.dtype))
        size = float(b.detach().abs().sum(-1).max()) if b.numel() else 0.0
        if not math.isfinite(size):
            raise ValueError("b: expected finite values, got NaN or infinite entries")
        s = max(0, math.ceil(math.log2(size / 0.5))) if size > 0.5 else 0
        x = b / 2**s
        # the series' powers x^k = x^(k-1) x by the matrix of right multiplication by x, built once:
        # one small vector-matrix product per term instead of a geometric product
        right = self.right_multiplication(x)  # [..., 2^n, 2^n]
        term, out = x, x + self._table("onehot_scalar", x)  # x^1, 1 + x
        for k in range(2, terms):
            # x^k / k!, broadcast and summed: batched 1 x 2^n BLAS products are slower on CPU
            term = (term.unsqueeze(-1) * right).sum(-2) / k
            out = out + term
        for _ in range(s):
            out = self.geometric_product(out, out)
        return out
