r"""Irreps bookkeeping of the Gaunt tensor product: channels, parity classes, output irreps.

Everything here depends only on the constructor arguments and runs once.

Channels
    An input is :math:`C` spherical functions, :math:`C` the largest
    multiplicity of its irreps: channel :math:`c` of ``"Cx0e+Cx1o+Cx2e"`` is
    :math:`f_c = \sum_{l,m} x[\ldots, o_l + c(2l+1) + l + m]\, Y_{lm}` with
    :math:`o_l` the offset of the irrep. Any irreps are accepted through a
    fixed linear map onto that layout: copies of one :math:`(l, p)` (``"4x0e
    + 1o + 4x0e"``) are concatenated into one slot, channel by channel in
    order of appearance, and an irrep of multiplicity :math:`m < C` fills
    channels :math:`0 .. m-1` of its degree, the rest being zero (read from
    an appended zero column). Absent degrees have zero coefficients. The
    cost is that of :math:`C` full channels per degree present, so
    ``"8x0e+4x1o+2x2e"`` costs as much as ``"8x0e+8x1o+8x2e"``.

Parity classes
    An irrep :math:`(l, p)` is *ordinary* (:math:`\sigma = +1`, e.g. ``0e``,
    ``1o``, ``2e``) when :math:`p = (-1)^l`, the parity of :math:`Y_{lm}`,
    and *pseudo* (:math:`\sigma = -1`: ``0o``, ``1e``, ``2o``) otherwise. An
    input is split into its ordinary part :math:`a` and its pseudo part
    :math:`b` (either may be absent); the pseudo part is a function times
    the pseudoscalar :math:`\epsilon = \det R`. Products follow
    :math:`\epsilon^2 = 1`:
    :math:`(a_1 + \epsilon b_1)(a_2 + \epsilon b_2) = (a_1 a_2 + b_1 b_2) +
    \epsilon (a_1 b_2 + b_1 a_2)`, and the output irrep of degree :math:`l_3`
    in class :math:`\sigma` has parity :math:`\sigma (-1)^{l_3}`.

Operands
    The forward pass multiplies :math:`K \le 2` pairs of functions at once:
    one pair when each input has one class, the pairs :math:`(a_1, g_2)`,
    :math:`(b_1, g_2)` when only input 1 has both, and
    :math:`(a_1 \pm b_1, a_2 \pm b_2)` when both do, since
    :math:`a_1 a_2 + b_1 b_2` and :math:`a_1 b_2 + b_1 a_2` are the half sum
    and half difference of those two products.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from e3nn import o3

from ._irreps_utils import parse_irreps

__all__ = ["GauntLayout", "Slot", "build_layout", "parse_irreps"]


@dataclass(frozen=True)
class Slot:
    """One degree and parity of an input or of the output, and where its channels start.

    ``starts[c]`` is the position in ``[..., dim]`` of the first component of
    channel ``c`` (its ``2l + 1`` components follow).
    """

    l: int
    p: int
    starts: tuple[int, ...]

    @property
    def mul(self) -> int:
        """Number of channels present (at most the layout's channel count)."""
        return len(self.starts)

    @property
    def offset(self) -> int:
        return self.starts[0]

    @property
    def cls(self) -> int:
        """Parity class index: 0 for ordinary (:math:`p = (-1)^l`), 1 for pseudo."""
        return 0 if self.p == (-1) ** self.l else 1


@dataclass(frozen=True)
class GauntLayout:
    """Structure of one Gaunt tensor product; see the module docstring.

    ``mix1[k, s]`` (``mix2``) is the coefficient of class ``s`` of input 1
    (2) in operand ``k``; ``combine[s, k]`` is the coefficient of product
    ``k`` in output class ``s``.
    """

    irreps_in1: o3.Irreps
    irreps_in2: o3.Irreps
    irreps_out: o3.Irreps
    slots1: tuple[Slot, ...]
    slots2: tuple[Slot, ...]
    slots_out: tuple[Slot, ...]
    mul1: int
    mul2: int
    mul_out: int
    channelwise: bool
    pad1: bool
    pad2: bool
    dropped: tuple[str, ...]
    mix1: tuple[tuple[float, float], ...]
    mix2: tuple[tuple[float, float], ...]
    combine: tuple[tuple[float, ...], tuple[float, ...]]
    dim1: int
    dim2: int
    dim_out: int

    @property
    def dims(self) -> tuple[int, int, int]:
        """``(irreps_in1.dim, irreps_in2.dim, irreps_out.dim)`` as plain ints."""
        return self.dim1, self.dim2, self.dim_out

    @property
    def lmax1(self) -> int:
        return max(s.l for s in self.slots1)

    @property
    def lmax2(self) -> int:
        return max(s.l for s in self.slots2)

    @property
    def lmax_out(self) -> int:
        return max(s.l for s in self.slots_out)

    @property
    def num_products(self) -> int:
        return len(self.combine[0])


def _slots(irreps: o3.Irreps, name: str) -> tuple[tuple[Slot, ...], int, bool]:
    """Slots in order of first appearance, the channel count, whether any is padded."""
    starts: dict[tuple[int, int], list[int]] = {}
    offset = 0
    for mul, ir in irreps:
        key = (ir.l, ir.p)
        for c in range(mul):
            starts.setdefault(key, []).append(offset + c * ir.dim)
        offset += mul * ir.dim
    if not starts:
        raise ValueError(f"{name}: expected at least one irrep of positive multiplicity, "
                         f"got {irreps}")
    slots = tuple(Slot(l, p, tuple(v)) for (l, p), v in starts.items())
    mul = max(s.mul for s in slots)
    return slots, mul, any(s.mul < mul for s in slots)


def _mixing(classes1: set[int], classes2: set[int]):
    """Operand mixes and output combination for the present parity classes (module doc)."""
    one = lambda s: (1.0, 0.0) if s == 0 else (0.0, 1.0)
    if len(classes1) == 1 and len(classes2) == 1:
        (s1,), (s2,) = classes1, classes2
        combine = [[0.0], [0.0]]
        combine[s1 ^ s2][0] = 1.0
        return (one(s1),), (one(s2),), combine
    if len(classes1) == 2 and len(classes2) == 2:
        hadamard = ((1.0, 1.0), (1.0, -1.0))
        return hadamard, hadamard, [[0.5, 0.5], [0.5, -0.5]]
    if len(classes1) == 2:
        (s2,) = classes2
        combine = [[0.0, 0.0], [0.0, 0.0]]
        for k in (0, 1):
            combine[k ^ s2][k] = 1.0
        return (one(0), one(1)), (one(s2),), combine
    (s1,) = classes1
    combine = [[0.0, 0.0], [0.0, 0.0]]
    for k in (0, 1):
        combine[k ^ s1][k] = 1.0
    return (one(s1),), (one(0), one(1)), combine


def _paths(slots1, slots2, lmax_out: int) -> set[tuple[int, int]]:
    """Output (l3, class) reached by a nonzero Gaunt path (triangle, l1 + l2 + l3 even)."""
    out = set()
    for a in slots1:
        for b in slots2:
            for l3 in range(abs(a.l - b.l), min(a.l + b.l, lmax_out) + 1, 2):
                out.add((l3, a.cls ^ b.cls))
    return out


def _filter(filter_ir_out) -> set[tuple[int, int]] | None:
    if filter_ir_out is None:
        return None
    if isinstance(filter_ir_out, (str, o3.Irrep)):
        filter_ir_out = [filter_ir_out]
    keep = set()
    for ir in filter_ir_out:
        try:
            ir = o3.Irrep(ir)
        except (ValueError, AssertionError, TypeError) as err:
            raise ValueError(
                f"filter_ir_out: expected irreps like '0e' or e3nn.o3.Irrep, got {ir!r}"
            ) from err
        keep.add((ir.l, ir.p))
    return keep


@lru_cache(maxsize=256)
def build_layout(
    irreps_in1: str,
    irreps_in2: str,
    lmax_out: int | None,
    filter_ir_out: tuple[str, ...] | None,
    channelwise: bool,
) -> GauntLayout:
    """Check the irreps and derive the layout (cached; arguments are canonical strings).

    >>> lay = build_layout("4x0e+4x1o", "4x1o", None, None, True)
    >>> str(lay.irreps_out), lay.num_products
    ('4x0e+4x1o+4x2e', 1)
    >>> str(build_layout("2x0e+2x1e", "2x1o", 1, None, True).irreps_out)
    '2x0o+2x1o'
    """
    ir1, ir2 = o3.Irreps(irreps_in1), o3.Irreps(irreps_in2)
    slots1, mul1, pad1 = _slots(ir1, "irreps_in1")
    slots2, mul2, pad2 = _slots(ir2, "irreps_in2")
    if channelwise and mul1 != mul2 and 1 not in (mul1, mul2):
        raise ValueError(
            f"irreps_in2: expected {mul1} channels (the largest multiplicity of irreps_in1 = "
            f"{ir1}) or 1 (broadcast) with channelwise=True, got {mul2} in {ir2}"
        )
    lmax_full = max(s.l for s in slots1) + max(s.l for s in slots2)
    lmax_o = lmax_full if lmax_out is None else min(lmax_out, lmax_full)
    keep = _filter(filter_ir_out)
    reached = _paths(slots1, slots2, lmax_o)
    out_irs = sorted(
        o3.Irrep(l3, (-1) ** l3 * (1 if cls == 0 else -1)) for l3, cls in reached
    )
    dropped: tuple[str, ...] = ()
    if keep is not None:
        have = {(ir.l, ir.p) for ir in out_irs}
        dropped = tuple(str(o3.Irrep(l, p)) for l, p in sorted(keep - have))
        out_irs = [ir for ir in out_irs if (ir.l, ir.p) in keep]
    if not out_irs:
        raise ValueError(
            f"filter_ir_out: expected to keep at least one output irrep of {ir1} x {ir2} "
            f"(lmax_out={lmax_out}), got none left by filter_ir_out={filter_ir_out}"
        )
    mul_out = max(mul1, mul2) if channelwise else mul1 * mul2
    irreps_out = o3.Irreps([(mul_out, ir) for ir in out_irs])
    slots_out, offset = [], 0
    for ir in out_irs:
        slots_out.append(Slot(ir.l, ir.p, tuple(offset + c * ir.dim for c in range(mul_out))))
        offset += mul_out * ir.dim
    mix1, mix2, combine = _mixing({s.cls for s in slots1}, {s.cls for s in slots2})
    return GauntLayout(
        irreps_in1=ir1,
        irreps_in2=ir2,
        irreps_out=irreps_out,
        slots1=slots1,
        slots2=slots2,
        slots_out=tuple(slots_out),
        mul1=mul1,
        mul2=mul2,
        mul_out=mul_out,
        channelwise=channelwise,
        pad1=pad1,
        pad2=pad2,
        dropped=dropped,
        mix1=tuple(tuple(r) for r in mix1),
        mix2=tuple(tuple(r) for r in mix2),
        combine=(tuple(combine[0]), tuple(combine[1])),
        dim1=ir1.dim,
        dim2=ir2.dim,
        dim_out=irreps_out.dim,
    )


def gather_index(slots: tuple[Slot, ...], mul: int, lmax: int, pad: int) -> np.ndarray:
    r"""``[2 lmax + 1 (m), len(slots), mul]`` positions of :math:`x_{c, l_j, m}` in ``[..., dim]``.

    Entries with :math:`|m| > l_j` point at position 0; the matrices that
    consume them are zero there, so they contribute nothing. Channels a slot
    does not have (:math:`c \ge` its multiplicity) point at ``pad``, the
    index of an appended zero column.
    """
    m = np.arange(-lmax, lmax + 1)[:, None, None]  # [M, 1, 1]
    l = np.array([s.l for s in slots])[None, :, None]  # [1, J, 1]
    starts = np.full((len(slots), mul), -1)
    for j, s in enumerate(slots):
        starts[j, : s.mul] = s.starts
    st = starts[None]  # [1, J, C]
    idx = np.where(st >= 0, st + l + m, pad)  # [M, J, C]
    return np.where(np.abs(m) <= l, idx, 0)


def scatter_index(slots: tuple[Slot, ...], mul: int, lmax: int, order: str) -> np.ndarray:
    r"""``[dim_out]`` row of each output component in the backend's result.

    The grid backend returns rows ordered ``(m, j, c)`` with ``m`` over
    :math:`-l_{\max} .. l_{\max}`; the FFT backend ``(k, s, j, c)`` with
    :math:`k = |m|` and ``s = 1`` for :math:`m < 0`.
    """
    n_slots = len(slots)
    rows = []
    for j, s in enumerate(slots):
        for c in range(s.mul):
            for m in range(-s.l, s.l + 1):
                if order == "grid":
                    rows.append(((m + lmax) * n_slots + j) * mul + c)
                else:
                    rows.append(((abs(m) * 2 + (m < 0)) * n_slots + j) * mul + c)
    return np.array(rows, dtype=np.int64)
