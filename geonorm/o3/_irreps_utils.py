r"""The layout and kernels of the irreps norms: parsing, option checks, runs, fast path.

Everything the norms of :mod:`geonorm.o3.norm` need to know about the irreps is
computed once, by :class:`IrrepsNormLayout`:

* ``entries``: the contiguous runs of the feature vector, one per ``mul x ir``
  term (consecutive equal irreps merged), each with its statistic *slot* and
  the integer *den* that its squared norm is divided by (see
  :func:`build_entries`);
* integer buffers ``channel`` (component -> multiplicity channel) and
  ``scalar_pos`` (positions of the ``0e`` components), used to expand the
  per-channel weights and the bias.

Integers survive ``module.to(dtype)`` unchanged, so the weights ``1 / den`` are
formed in the compute dtype at every call and stay exact in float64.

The kernels run over these runs: :func:`reference_irreps_norm` is the
definition in plain autograd ops; :class:`IrrepsNormFunction` computes the same
with one large tensor allocated per direction and a hand-written backward,
about twice as fast on CPU (forward and backward). Broadcasts over the short
innermost ``2l+1`` axis, skinny matmuls ``[N, dim] x [dim, slots]``, a gather
of the inverse roots by a per-component slot index and saving ``x_hat`` for
the backward (one more fresh ``[N, dim]`` buffer per call, which costs page
faults) were slower.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import torch
from e3nn import o3
from torch import nn

from ._segments import Segments, node_mean

Tensor = torch.Tensor

__all__ = [
    "NORMALIZATIONS",
    "SCOPES",
    "Entry",
    "IrrepsNormFunction",
    "IrrepsNormLayout",
    "build_entries",
    "check_option",
    "parse_irreps",
    "reference_irreps_norm",
]

NORMALIZATIONS = ("component", "norm")
SCOPES = ("per_irrep", "balanced")


def parse_irreps(irreps: object, name: str = "irreps") -> o3.Irreps:
    """Convert ``irreps`` to ``e3nn.o3.Irreps``; ``TypeError``/``ValueError`` if it cannot.

    >>> parse_irreps("2x0e+1o")
    2x0e+1x1o
    """
    if isinstance(irreps, o3.Irreps):
        parsed = irreps
    elif isinstance(irreps, (str, list, tuple)):
        try:
            parsed = o3.Irreps(irreps)
        except (ValueError, AssertionError, TypeError) as err:
            raise ValueError(
                f"{name}: expected an e3nn irreps string like '8x0e+4x1o', got {irreps!r}"
            ) from err
    else:
        raise TypeError(
            f"{name}: expected an irreps string or an e3nn.o3.Irreps, got {type(irreps).__name__}"
        )
    if parsed.dim == 0:
        raise ValueError(
            f"{name}: expected at least one irrep with a positive multiplicity, got {irreps!r}"
        )
    return parsed


def check_option(value: object, name: str, allowed: tuple[str, ...]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of the ``allowed`` strings."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


class Entry(NamedTuple):
    """A contiguous run ``[start, start + mul * dim)`` of one irrep in the features."""

    start: int
    mul: int
    dim: int  # 2l + 1
    slot: int  # which statistic it feeds and is scaled by
    den: int  # its squared norm is divided by den
    is_scalar: bool  # 0e: centred (LayerNorm) and biased
    channel: int  # index of its first multiplicity channel
    scalar: int  # index of its first 0e channel (bias), when is_scalar

    @property
    def size(self) -> int:
        return self.mul * self.dim


@lru_cache(maxsize=256)
def build_entries(irreps: str, normalization: str, scope: str) -> tuple[tuple[Entry, ...], int]:
    r"""The runs of ``irreps`` (a canonical irreps string) and the number of slots.

    Equal irreps are merged: all channels of one :math:`(l, p)`, wherever it
    occurs, form one block :math:`b` of multiplicity :math:`m_b` and dimension
    :math:`d_b = 2l + 1` with one statistic slot. An entry of block :math:`b`
    has ``den`` :math:`= m_b d_b` (``"component"``) or :math:`m_b`
    (``"norm"``), so that summing squared norms over the slot gives
    :math:`\sigma_b^2`. With ``scope="balanced"`` all :math:`l > 0` blocks
    share one slot and their ``den`` is multiplied by :math:`|B|`, the number
    of :math:`l > 0` blocks, so the slot's sum is :math:`\frac{1}{|B|}\sum_b
    \sigma_b^2`.

    >>> entries, slots = build_entries("1x0e+2x1o+1x1o", "component", "per_irrep")
    >>> [(e.start, e.mul, e.slot, e.den) for e in entries], slots
    ([(0, 1, 0, 1), (1, 3, 1, 9)], 2)
    """
    terms: list[list[int]] = []  # [mul, l, p], consecutive equal irreps merged
    for mul, ir in o3.Irreps(irreps):
        if mul == 0:
            continue
        if terms and terms[-1][1:] == [ir.l, ir.p]:
            terms[-1][0] += mul
        else:
            terms.append([mul, ir.l, ir.p])
    blocks: dict[tuple[int, int], int] = {}  # (l, p) -> total multiplicity
    for mul, l, p in terms:
        blocks[(l, p)] = blocks.get((l, p), 0) + mul
    n_high = sum(1 for (l, _) in blocks if l > 0)
    slot_of: dict[tuple[int, int], int] = {}  # slots in order of first appearance
    shared: int | None = None  # the balanced slot of all l > 0 blocks
    num_slots = 0
    for key in blocks:
        if scope == "balanced" and key[0] > 0:
            if shared is None:
                shared, num_slots = num_slots, num_slots + 1
            slot_of[key] = shared
        else:
            slot_of[key], num_slots = num_slots, num_slots + 1
    entries, start, channel, scalar = [], 0, 0, 0
    for mul, l, p in terms:
        dim = 2 * l + 1
        den = blocks[(l, p)] * (dim if normalization == "component" else 1)
        if scope == "balanced" and l > 0:
            den *= n_high
        is_scalar = l == 0 and p == 1
        entries.append(Entry(start, mul, dim, slot_of[(l, p)], den, is_scalar, channel, scalar))
        start, channel, scalar = (
            start + mul * dim,
            channel + mul,
            scalar + (mul if is_scalar else 0),
        )
    return tuple(entries), num_slots


class IrrepsNormLayout(nn.Module):
    r"""Precomputed layout of an irreps norm, built once per layer.

    Pass it instead of an irreps string to
    :func:`~geonorm.o3.norm.equivariant_layer_norm` (the modules do) to skip
    re-deriving it at every call. Its integer buffers are not saved in
    ``state_dict`` (they follow from the constructor arguments), move with
    ``.to(device)`` and are left alone by ``.to(dtype)``.

    Parameters
    ----------
    irreps : str or e3nn.o3.Irreps
        Irreps of the features, e.g. ``"8x0e+4x1o+2x2e"``.
    normalization : {"component", "norm"}
        Statistic per block (see :mod:`geonorm.o3.norm`).
    scope : {"per_irrep", "balanced"}
        One statistic per irrep, or one degree-balanced statistic for all
        :math:`l > 0` irreps.
    device : torch.device, optional
        Where the buffers live.

    Examples
    --------
    >>> lay = IrrepsNormLayout("4x0e+2x1o+1x0o", scope="balanced")
    >>> lay.dim, lay.num_channels, lay.num_scalars, lay.num_slots
    (11, 7, 4, 3)
    """

    channel: torch.Tensor
    scalar_pos: torch.Tensor

    def __init__(
        self,
        irreps: str | o3.Irreps,
        *,
        normalization: str = "component",
        scope: str = "per_irrep",
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.irreps = parse_irreps(irreps)
        self.normalization = check_option(normalization, "normalization", NORMALIZATIONS)
        self.scope = check_option(scope, "scope", SCOPES)
        self.entries, self.num_slots = build_entries(str(self.irreps), normalization, scope)
        self.dim = self.irreps.dim
        self.num_channels = sum(e.mul for e in self.entries)
        self.num_scalars = sum(e.mul for e in self.entries if e.is_scalar)
        channel, scalar_pos = [], []
        for e in self.entries:
            channel += [c for c in range(e.channel, e.channel + e.mul) for _ in range(e.dim)]
            scalar_pos += list(range(e.start, e.start + e.mul)) if e.is_scalar else []
        for name, value in (("channel", channel), ("scalar_pos", scalar_pos)):
            self.register_buffer(
                name, torch.tensor(value, dtype=torch.long, device=device), persistent=False
            )

    def extra_repr(self) -> str:
        return f"{self.irreps}, normalization={self.normalization!r}, scope={self.scope!r}"


def reference_irreps_norm(
    x: Tensor,
    weight: Tensor | None,
    bias: Tensor | None,
    entries: tuple[Entry, ...],
    num_slots: int,
    eps: float,
    centre: bool,
    seg: Segments | None,
) -> Tensor:
    """The norm of ``x`` ``[N, dim]`` in plain autograd ops (the definition; any order)."""
    n = x.shape[0]
    parts = list(x.split([e.size for e in entries], dim=1))  # [N, mul * (2l+1)] each
    n0 = sum(e.mul for e in entries if e.is_scalar)
    if centre and n0:
        rows = sum(p.sum(1) for p, e in zip(parts, entries) if e.is_scalar)  # [N]
        mu = node_mean(rows, seg).unsqueeze(1) / n0  # [N, 1]
        parts = [p - mu if e.is_scalar else p for p, e in zip(parts, entries)]
    stats: list = [0.0] * num_slots
    for p, e in zip(parts, entries):
        stats[e.slot] = stats[e.slot] + p.square().sum(1) / e.den  # [N]
    inv = torch.rsqrt(node_mean(torch.stack(stats, 1), seg) + eps)  # [N, slots]
    out = []
    for p, e in zip(parts, entries):
        s = inv[:, e.slot, None]  # [N, 1]
        if weight is not None:
            s = s * weight[e.channel : e.channel + e.mul]  # [N, mul]
        y = p.view(n, e.mul, e.dim) * s.unsqueeze(-1)  # [N, mul, 2l+1]
        if bias is not None and e.is_scalar:
            y = y + bias[e.scalar : e.scalar + e.mul].view(e.mul, 1)
        out.append(y.reshape(n, e.size))
    return torch.cat(out, 1)  # [N, dim]


def _scale_runs(
    parts: list[Tensor], cols: Tensor, entries: tuple[Entry, ...], out: Tensor
) -> Tensor:
    """``out[:, run] = parts[run] * cols[slot]`` for every run: one pass writing ``out``.

    ``cols`` ``[slots, N]`` holds one factor per row and slot; eager mode
    writes into ``out``.
    """
    for p, e in zip(parts, entries):
        torch.mul(p, cols[e.slot].unsqueeze(1), out=out.narrow(1, e.start, e.size))
    return out


def _times_weight(v: Tensor, weight: Tensor | None, e: Entry) -> Tensor:
    """``v`` ``[N, mul * (2l+1)]`` times the run's channel weights, as a broadcast (no gather)."""
    if weight is None:
        return v
    w = weight.narrow(0, e.channel, e.mul).unsqueeze(1)  # [mul, 1]
    return (v.view(-1, e.mul, e.dim) * w).view(-1, e.size)  # [N, mul * (2l+1)]


class IrrepsNormFunction(torch.autograd.Function):
    r"""Fast path: whole-tensor passes over the contiguous runs, hand-written backward.

    Forward, with :math:`r` the inverse root :math:`1/\sqrt{\sigma^2+\epsilon}`
    of each row and slot: one reduction per run for the statistics, then
    :math:`\hat x = r\,\tilde x` (one multiply per run, into the output
    buffer) and :math:`y = w \hat x + \beta` in place. Backward, with
    :math:`g` the upstream gradient and :math:`A_s = \sum_{c \in s} w_c\,
    g_c \cdot \tilde x_c` (its segment mean in graph mode):

    .. math::

        \partial w_c = \sum_n r\, g_c \cdot \tilde x_c, \qquad
        \partial \tilde x = r\,\bigl(w\, g - r^2 A_s\, \tilde x / den\bigr),

    and on ``0e`` the centring removes the (segment) mean of
    :math:`\partial \tilde x` over the scalar channels. One buffer holds
    ``g * x~`` (reduced to :math:`A` and :math:`\partial w` by one
    matrix-vector and one vector-matrix product per run) and then ``w * g``,
    turned into ``dx`` in place, so each direction allocates one ``[N, dim]``
    tensor, as ``torch.nn.LayerNorm`` does. Only ``x``, the per-slot inverse
    roots and the 0e means are saved (as ``torch.nn.LayerNorm`` saves its mean
    and rstd). The backward is the exact gradient of
    :func:`reference_irreps_norm`; under ``create_graph=True`` it
    differentiates :func:`reference_irreps_norm` instead, so higher
    derivatives (forces in interatomic potentials) are exact too.
    """

    @staticmethod
    def forward(
        ctx, x, weight, bias, channel, scalar_pos, batch, counts, entries, num_slots, eps, centre
    ):
        seg = None if batch is None else Segments(batch, counts)
        compiling = torch.compiler.is_compiling()
        sizes = [e.size for e in entries]
        n0 = sum(e.mul for e in entries if e.is_scalar)
        parts = list(x.split(sizes, 1))  # [N, mul * (2l+1)] each
        mu = None
        if centre and n0:
            rows = sum(p.sum(1) for p, e in zip(parts, entries) if e.is_scalar)  # [N]
            mu = (node_mean(rows, seg) / n0).unsqueeze(1)  # [N, 1]
            parts = [p - mu if e.is_scalar else p for p, e in zip(parts, entries)]
        stats: list = [0.0] * num_slots
        for p, e in zip(parts, entries):
            stats[e.slot] = stats[e.slot] + torch.linalg.vector_norm(p, dim=1).square_() / e.den
        inv = torch.rsqrt(node_mean(torch.stack(stats, 1), seg) + eps)  # [N, slots]
        inv_t = inv.t().contiguous()  # [slots, N]: contiguous columns
        if compiling:  # dynamo rejects out= views: one expression per run, fused by inductor
            runs = [
                _times_weight(p * inv_t[e.slot, :, None], weight, e)
                for p, e in zip(parts, entries)
            ]
            if bias is not None:
                runs = [
                    r + bias.narrow(0, e.scalar, e.mul) if e.is_scalar else r
                    for r, e in zip(runs, entries)
                ]
            out = torch.cat(runs, 1)  # [N, dim]
        else:
            out = _scale_runs(parts, inv_t, entries, torch.empty_like(x))  # [N, dim]: x_hat
            if weight is not None:
                out.mul_(weight.index_select(0, channel))  # [dim]
            for o, e in zip(out.split(sizes, 1) if bias is not None else (), entries):
                if e.is_scalar:  # the bias, on the 0e runs only
                    o.add_(bias.narrow(0, e.scalar, e.mul))
        ctx.save_for_backward(x, weight, bias, mu, inv_t, channel, batch, counts)
        ctx.static = (entries, num_slots, eps, centre, n0)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias, mu, inv_t, channel, batch, counts = ctx.saved_tensors
        entries, num_slots, eps, centre, n0 = ctx.static
        seg = None if batch is None else Segments(batch, counts)
        needs = ctx.needs_input_grad[:3]
        if torch.is_grad_enabled():  # create_graph=True: differentiate the composite again
            inputs = [t for t, need in zip((x, weight, bias), needs) if need]
            with torch.enable_grad():
                y = reference_irreps_norm(x, weight, bias, entries, num_slots, eps, centre, seg)
            grads = iter(torch.autograd.grad(y, inputs, grad, create_graph=True, allow_unused=True))
            return (*(next(grads) if need else None for need in needs), *([None] * 8))
        compiling = torch.compiler.is_compiling()
        sizes = [e.size for e in entries]
        xs, gs = x.split(sizes, 1), grad.split(sizes, 1)  # [N, mul * (2l+1)] each
        buf = grad * x  # [N, dim]; made grad * (centred x) below
        bufs = buf.split(sizes, 1)
        if mu is not None:
            for b, g, e in zip(bufs, gs, entries):
                if e.is_scalar:
                    b.addcmul_(g, mu, value=-1.0)
        w_full = x.new_ones(x.shape[1]) if weight is None else weight.index_select(0, channel)
        ws = w_full.split(sizes)
        acc: list = [0.0] * num_slots
        d_weight = d_bias = dx = None
        for b, w, e in zip(bufs, ws, entries):
            acc[e.slot] = acc[e.slot] + b @ w  # [N]
        if needs[1]:
            d_weight = torch.cat(
                [(inv_t[e.slot] @ b).view(e.mul, e.dim).sum(1) for b, e in zip(bufs, entries)]
            )  # [channels]
        if needs[2]:
            d_bias = torch.cat([g.sum(0) for g, e in zip(gs, entries) if e.is_scalar])
        if needs[0]:  # dx~ = r (w g - r^2 A x~ / den), A the (segment mean of) acc
            k = inv_t.square() * node_mean(torch.stack(acc, 1), seg).t()  # [slots, N]
            k_cols, inv_cols = k.unsqueeze(2), inv_t.unsqueeze(2)  # [slots, N, 1]
            if compiling:
                dx = torch.cat(
                    [(_times_weight(g, weight, e) - k_cols[e.slot] * xe / e.den)
                     * inv_cols[e.slot] for g, xe, e in zip(gs, xs, entries)], 1,
                )  # fmt: skip
                dxs = dx.split(sizes, 1)
            else:  # buf is free again
                dx = torch.mul(grad, w_full, out=buf)  # [N, dim]
                dxs = bufs
                for d, xe, e in zip(dxs, xs, entries):  # through the statistics
                    # x, not x~ = x - mu, on 0e: the difference, r^3 A mu / den, is constant
                    # over the 0e channels of a sample (segment), so the centring removes it
                    d.addcmul_(xe, k_cols[e.slot], value=-1.0 / e.den)
                    d.mul_(inv_cols[e.slot])
            if mu is not None:  # through the centring: remove the (segment) mean over 0e
                rows = sum(d.sum(1) for d, e in zip(dxs, entries) if e.is_scalar)  # [N]
                mean = (node_mean(rows, seg) / n0).unsqueeze(1)  # [N, 1]
                if compiling:
                    dxs = [d - mean if e.is_scalar else d for d, e in zip(dxs, entries)]
                    dx = torch.cat(dxs, 1)
                else:
                    for d, e in zip(dxs, entries):
                        if e.is_scalar:
                            d.sub_(mean)
        return (dx, d_weight, d_bias, *([None] * 8))
