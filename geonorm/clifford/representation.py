r"""A faithful matrix representation of :math:`\mathrm{Cl}_{p,q,r}`: the geometric product as small matrix products.

A non-degenerate Clifford algebra is a matrix algebra (or a sum of two) over
:math:`\mathbb{R}`, :math:`\mathbb{C}` or :math:`\mathbb{H}`:
:math:`\mathrm{Cl}(3,0) \cong M_2(\mathbb{C})`,
:math:`\mathrm{Cl}(4,1) \cong M_4(\mathbb{C})`. It acts faithfully by left
multiplication on a minimal left ideal :math:`\mathrm{Cl}\, f`, with
:math:`f = \prod_j (1 \pm E_j)/2` a primitive idempotent built from
commuting blades :math:`E_j` that square to :math:`+1` (Lounesto, *Clifford
Algebras and Spinors*, 2nd ed., ch. 17). In an orthonormal basis of the ideal
(real dimension :math:`N`) every multivector becomes an :math:`N \times N`
real matrix :math:`\rho(x) = \sum_A x_A \rho(e_A)`, linear in :math:`x`, with
:math:`\rho(xy) = \rho(x)\rho(y)`. So

.. math:: xy = \rho^{+}\bigl(\rho(x)\, \rho(y)\bigr),

two :math:`2^n \to N^2` maps, one :math:`N \times N` matrix product and one
:math:`N^2 \to 2^n` map: for :math:`\mathrm{Cl}(4,1)`, :math:`N = 8`, about
:math:`3 \cdot 2^{11} + 8^3` multiply-adds instead of the :math:`4^5` of the
non-zero Cayley entries or the :math:`8^5` of a dense einsum, and all of it
dense arithmetic. Where the algebra is a sum of two matrix algebras
(:math:`p - q \equiv 1 \bmod 4`) one ideal is not faithful and a second block
is added.

A degenerate generator :math:`e_g` (:math:`e_g^2 = 0`) is split off: with
:math:`x = x_0 + x_1 e_g` (:math:`x_0, x_1` free of :math:`e_g`),

.. math:: xy = x_0 y_0 + (x_0 y_1 + x_1 \hat y_0)\, e_g,

three products in the algebra without :math:`e_g`; for projective geometric
algebra :math:`\mathrm{Cl}(3,0,1)` three :math:`4 \times 4` blocks.

Where the centre holds a blade :math:`J` with :math:`J^2 = -1` (odd
:math:`n` with :math:`p - q \equiv 3 \bmod 4`: :math:`\mathrm{Cl}(3,0)`,
:math:`\mathrm{Cl}(4,1)`), :math:`\rho(J)` is a complex structure that
commutes with every :math:`\rho(x)`, and in a basis
:math:`(u_1, \dots, u_k, J u_1, \dots, J u_k)` the matrices are complex
:math:`k \times k` (:math:`N = 2k`): half the map coefficients and half the
multiply-adds of the real :math:`N \times N` blocks. ``complex_=True`` asks for
that form.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch

Tensor = torch.Tensor

__all__ = ["ProductPlan", "blade_sign", "block_matmul", "product_plan", "reorder_sign"]


def reorder_sign(a: int, b: int) -> int:
    """Sign of moving the vectors of blade bitmask ``b`` past those of ``a`` (canonical order)."""
    a >>= 1
    swaps = 0
    while a:
        swaps += bin(a & b).count("1")
        a >>= 1
    return -1 if swaps & 1 else 1


def blade_sign(metric: tuple[int, ...], a: int, b: int) -> int:
    r""":math:`e_a e_b = s\, e_{a \oplus b}` for blade bitmasks ``a``, ``b``: ``s``, the reordering
    sign times the squares :math:`m_i` of the shared vectors (``0`` where one is null)."""
    s = reorder_sign(a, b)
    for i, m in enumerate(metric):
        if (a & b) >> i & 1:
            s *= m
    return s


@dataclass(frozen=True)
class ProductPlan:
    r"""The geometric product as ``blocks`` products of ``size`` × ``size`` matrices.

    In the algebra's bitmask order (index :math:`i` is the blade whose vectors
    are the set bits of :math:`i`), float64: ``left`` and ``right``
    ``[2^n, P, T, N, N]`` give the block matrices :math:`X_t`, :math:`Y_t` of
    ``x`` and ``y`` (``P = 1``: real; ``P = 2``: complex, real and imaginary
    parts), ``out`` ``[P, T, N, N, 2^n]`` maps the products
    :math:`X_t Y_t` back to the multivector.
    """

    left: Tensor
    right: Tensor
    out: Tensor

    @property
    def blocks(self) -> int:
        return self.left.shape[2]

    @property
    def size(self) -> int:
        return self.left.shape[3]

    @property
    def is_complex(self) -> bool:
        return self.left.shape[1] == 2

    @property
    def cost(self) -> int:
        """Multiply-adds per product: the maps of ``x``, of ``y`` (``P^2`` planes) and back, and the block products."""
        d, p = self.left.shape[:2]
        return d * p * (p + 2) * self.blocks * self.size**2 + p * p * self.blocks * self.size**3


def _products(metric: tuple[int, ...]) -> tuple[Tensor, Tensor]:
    r"""``(xor, sign)``, ``[2^n, 2^n]`` (bitmask order): :math:`e_a e_{a \oplus c} = \mathrm{sign}[a, c]\, e_c`."""
    d = 2 ** len(metric)
    idx = torch.arange(d)
    xor = idx[:, None] ^ idx[None, :]
    sign = [[blade_sign(metric, a, a ^ c) for c in range(d)] for a in range(d)]
    return xor, torch.tensor(sign, dtype=torch.float64)


def _ideal_rep(sign: Tensor, xor: Tensor, idempotent: Tensor) -> Tensor:
    r""":math:`\rho(e_a)` on the left ideal :math:`\mathrm{Cl}\, f`, ``[2^n, N, N]`` (orthonormal basis)."""
    right_mult = sign * idempotent[xor]  # row b: e_b f, (e_b f)_c = sign[b, c] f_{b^c}; the rows span the ideal
    _, s, vh = torch.linalg.svd(right_mult)
    n = int((s > 1e-9 * s[0]).sum())
    q = vh[:n].T  # [d, N]
    left_q = sign[..., None] * q[xor]  # [a, c, N]: (e_a Q)_c = sign[a, c] Q_{a^c}
    return torch.einsum("cn,acm->anm", q, left_q)


def _complex_form(rho: Tensor, j: Tensor) -> Tensor:
    r"""``rho`` ``[d, N, N]`` commuting with the complex structure ``j`` as ``[d, 2, k, k]`` (real, imaginary)."""
    n = j.shape[0]
    basis: list[Tensor] = []
    for i in range(n):  # u_1, ..., u_k with (u, J u) orthonormal
        v = torch.zeros(n, dtype=torch.float64)
        v[i] = 1.0
        for b in basis:
            v = v - (b @ v) * b - ((j @ b) @ v) * (j @ b)
        if v.norm() > 0.5:
            basis.append(v / v.norm())
    u = torch.stack(basis + [j @ b for b in basis], 1)  # [N, N] orthogonal
    k = len(basis)
    r = u.T @ rho @ u  # [[A, -B], [B, A]] per blade
    return torch.stack([r[:, :k, :k], r[:, k:, :k]], 1)  # A + iB


def _nondegenerate_plan(metric: tuple[int, ...], complex_: bool) -> ProductPlan | None:
    d = 2 ** len(metric)
    square = [blade_sign(metric, a, a) for a in range(d)]
    centre = d - 1  # the pseudoscalar: central for odd n
    if complex_ and not (len(metric) % 2 == 1 and square[centre] == -1):
        return None
    xor, sign = _products(metric)
    chosen: list[int] = []
    group = {0}  # the masks the chosen blades generate
    for a in range(1, d):
        commutes = all(reorder_sign(a, b) == reorder_sign(b, a) for b in chosen)
        if square[a] == 1 and a not in group and commutes:
            chosen.append(a)
            group |= {g ^ a for g in group}
    blocks: list[Tensor] = []
    rank = 0
    for pattern in range(2 ** len(chosen)):  # sign choices of f = prod (1 ± E_j)/2
        f = torch.zeros(d, dtype=torch.float64)
        f[0] = 1.0
        for i, a in enumerate(chosen):
            e = torch.zeros(d, dtype=torch.float64)
            e[0], e[a] = 0.5, -0.5 if pattern >> i & 1 else 0.5
            f = (f[:, None] * sign * e[xor]).sum(0)  # f e
        block = _ideal_rep(sign, xor, f)
        new_rank = int(torch.linalg.matrix_rank(torch.cat([b.flatten(1) for b in blocks + [block]], 1)))
        if new_rank > rank:
            blocks.append(block)
            rank = new_rank
        if rank == d:
            break
    if rank != d or any(b.shape != blocks[0].shape for b in blocks):  # pragma: no cover - ruled out by theory
        raise RuntimeError(f"no faithful representation found for metric {metric}")
    if complex_:  # the algebra is simple here: one block
        planes = _complex_form(blocks[0], blocks[0][centre])  # [d, 2, k, k]
        left = planes.unsqueeze(2)  # [d, 2, 1, k, k]
    else:
        left = torch.stack(blocks, 1).unsqueeze(1)  # [d, 1, T, N, N]
    out = torch.linalg.pinv(left.flatten(1)).reshape(left.shape[1:] + (d,))
    return ProductPlan(left, left, out)


def _split_degenerate(metric: tuple[int, ...], g: int, complex_: bool) -> ProductPlan | None:
    sub = product_plan(metric[:g] + metric[g + 1 :], complex_=complex_)
    if sub is None:
        return None
    d, ds = 2 ** len(metric), 2 ** (len(metric) - 1)
    low = (1 << g) - 1
    pi0 = torch.zeros(d, ds, dtype=torch.float64)
    pi1 = torch.zeros(d, ds, dtype=torch.float64)
    hat = torch.zeros(ds, ds, dtype=torch.float64)
    for s in range(ds):
        full = (s & low) | ((s & ~low) << 1)  # insert a zero bit at g
        pi0[full, s] = 1.0
        pi1[full | 1 << g, s] = -1.0 if bin(s >> g).count("1") & 1 else 1.0  # e_B e_g = ± e_{B ∪ g}
        hat[s, s] = -1.0 if bin(s).count("1") & 1 else 1.0

    def into(m: Tensor, table: Tensor) -> Tensor:
        return torch.einsum("ds,s...->d...", m, table)

    def back(table: Tensor, m: Tensor) -> Tensor:
        return torch.einsum("...s,ds->...d", table, m)

    # xy = x0 y0 + (x0 y1 + x1 ŷ0) e_g: three block groups along the block axis
    left0, out1 = into(pi0, sub.left), back(sub.out, pi1)
    left = torch.cat([left0, left0, into(pi1, sub.left)], 2)
    right = torch.cat([into(pi0, sub.right), into(pi1, sub.right), into(pi0 @ hat, sub.right)], 2)
    out = torch.cat([back(sub.out, pi0), out1, out1], 1)
    return ProductPlan(left, right, out)


@lru_cache(maxsize=None)
def product_plan(metric: tuple[int, ...], *, complex_: bool = False) -> ProductPlan | None:
    r"""The :class:`ProductPlan` of the algebra with basis vectors squaring to ``metric`` (bitmask order).

    Degenerate generators are split off (three products each), the rest is a
    faithful representation on minimal left ideals (module notes). With
    ``complex_`` the complex form, or ``None`` where the non-degenerate part
    has no central complex structure.

    >>> plan = product_plan((1, 1, 1, 1, -1))  # Cl(4,1) = M_4(C): one real 8 x 8 block
    >>> plan.blocks, plan.size, plan.cost
    (1, 8, 6656)
    >>> plan = product_plan((0, 1, 1, 1), complex_=True)  # PGA: three complex 2 x 2 blocks
    >>> plan.blocks, plan.size, plan.is_complex
    (3, 2, True)
    """
    if not metric:
        if complex_:
            return None
        one = torch.ones(1, 1, 1, 1, 1, dtype=torch.float64)
        return ProductPlan(one, one, one)
    if 0 in metric:
        return _split_degenerate(metric, metric.index(0), complex_)
    return _nondegenerate_plan(metric, complex_)


def _adjoint(x: Tensor) -> Tensor:
    """The conjugate transpose of every block of ``x`` ``[P, T, N, N, ...]``."""
    xt = x.transpose(2, 3)
    return xt if x.shape[0] == 1 else torch.stack([xt[0], -xt[1]])


def batch_shape(a: torch.Size, b: torch.Size) -> torch.Size:
    """The broadcast of two batch shapes; equal shapes skip ``torch.broadcast_shapes``
    (pure Python: about a third of a 4,096-pair block product's cost)."""
    return a if a == b else torch.broadcast_shapes(a, b)


def _block_matmul(x: Tensor, y: Tensor) -> Tensor:
    p, t, n = x.shape[:3]
    shape = batch_shape(x.shape[4:], y.shape[4:])
    z = x.new_empty(p, t, n, n, *shape)
    # (a + ib)(c + id) = (ac - bd) + i(ad + bc): per plane of the output, the (x, y, sign) plane pairs
    terms = [[(0, 0, 1.0)]] if p == 1 else [[(0, 0, 1.0), (1, 1, -1.0)], [(0, 1, 1.0), (1, 0, 1.0)]]
    # the column and row views per plane, made once (indexing in the loop costs as much as a small product)
    cols = [x[:, :, :, j : j + 1].unbind(0) for j in range(n)]  # [j][plane]: [T, N, 1, ...]
    rows = [y[:, :, None, j].unbind(0) for j in range(n)]  # [j][plane]: [T, 1, N, ...]
    for out, pairs in zip(z.unbind(0), terms):
        for j in range(n):
            for k, (a, b, sign) in enumerate(pairs):
                if k == 0 and j == 0:
                    torch.mul(cols[j][a], rows[j][b], out=out)
                else:  # in place: no temporary per term
                    out.addcmul_(cols[j][a], rows[j][b], value=sign)
    return z


class _BlockMatmul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor) -> Tensor:
        ctx.save_for_backward(x, y)
        return _block_matmul(x, y)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        x, y = ctx.saved_tensors
        gx = block_matmul(grad, _adjoint(y)).sum_to_size(x.shape) if ctx.needs_input_grad[0] else None
        gy = block_matmul(_adjoint(x), grad).sum_to_size(y.shape) if ctx.needs_input_grad[1] else None
        return gx, gy


def block_matmul(x: Tensor, y: Tensor) -> Tensor:
    r"""Products of small matrices with the batch as the last, contiguous axes.

    ``x``, ``y``: ``[P, T, N, N, ...]`` (``P = 1`` real, ``P = 2`` the real
    and imaginary parts of complex blocks), batch axes broadcast; returns
    :math:`X_t Y_t` ``[P, T, N, N, ...]``. An unrolled loop of :math:`P^2 N`
    broadcast multiply-adds, each over the whole batch: on CPU several times
    faster than a batched BLAS call on :math:`N \le 4` blocks. The backward
    is the same product (:math:`\bar\partial X = G Y^{H}`,
    :math:`\bar\partial Y = X^{H} G`), so higher derivatives work.
    """
    if not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
        return _block_matmul(x, y)  # no Function boundary to pay for
    return _BlockMatmul.apply(x, y)
