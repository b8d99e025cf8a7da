"""Segment (graph) reductions in pure torch: ``index_add`` over a segment-id vector.

A batch of graphs stored node-wise as ``x`` ``[N, ...]`` with ``batch`` ``[N]``
(the id of each node's graph, as in torch_geometric) is reduced per segment
with ``Tensor.index_add`` and broadcast back with ``index_select``; empty
segments get count 1 (and statistics 0) instead of a division by zero.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from .._checks import check_int

Tensor = torch.Tensor

__all__ = ["Segments", "make_segments", "node_mean", "segment_mean"]


class Segments(NamedTuple):
    """Segment ids ``batch`` ``[N]`` and node counts ``counts`` ``[S]`` (floating, >= 1)."""

    batch: Tensor
    counts: Tensor


def make_segments(batch: object, x: Tensor, num_segments: object, dtype: torch.dtype) -> Segments:
    """Check ``batch`` against ``x`` ``[N, dim]`` and count the nodes of each segment.

    Raises ``TypeError`` unless ``batch`` is an int64 or int32 tensor (int32,
    common in torch_geometric pipelines, is converted once), ``ValueError``
    unless it is a vector ``[N]`` matching ``x``, if ``num_segments`` is not a
    positive int, or if an id lies outside ``0 .. num_segments - 1``. Without
    ``num_segments`` the count is ``batch.max() + 1``. Either way the ids'
    range costs one ``aminmax`` and one host sync; under ``torch.compile``
    (where a host sync is a graph break) the range check is skipped when
    ``num_segments`` is given, so ids must be checked before the compiled
    region (``torch.compiler.is_compiling()``).

    >>> s = make_segments(torch.tensor([0, 0, 2]), torch.zeros(3, 4), None, torch.float32)
    >>> s.counts
    tensor([2., 1., 1.])
    >>> make_segments(torch.tensor([0, 5]), torch.zeros(2, 4), 3, torch.float32)
    Traceback (most recent call last):
    ...
    ValueError: batch: expected segment ids in 0 .. 2 (num_segments=3), got ids 0 .. 5
    """
    if not isinstance(batch, Tensor) or batch.dtype not in (torch.long, torch.int32):
        got = f"dtype {batch.dtype}" if isinstance(batch, Tensor) else type(batch).__name__
        raise TypeError(
            f"batch: expected an int64 or int32 tensor of segment ids, got {got}"
        )
    if batch.ndim != 1:
        raise ValueError(
            f"batch: expected a vector [N] of segment ids, got shape {list(batch.shape)}"
        )
    if x.ndim != 2 or x.shape[0] != batch.shape[0]:
        raise ValueError(
            f"x: expected shape [N, dim] with N = len(batch) = {batch.shape[0]} in segment "
            f"mode, got {list(x.shape)}"
        )
    batch = batch.long()
    if num_segments is None:
        if batch.numel() == 0:
            num_segments = 1
        else:
            lo, hi = (int(v) for v in torch.aminmax(batch))
            if lo < 0:
                raise ValueError(f"batch: expected non-negative segment ids, got minimum {lo}")
            num_segments = hi + 1
    else:
        check_int(num_segments, "num_segments", allow_none=True)
        if batch.numel() and not torch.compiler.is_compiling():
            lo, hi = (int(v) for v in torch.aminmax(batch))
            if lo < 0 or hi >= num_segments:
                raise ValueError(
                    f"batch: expected segment ids in 0 .. {num_segments - 1} "
                    f"(num_segments={num_segments}), got ids {lo} .. {hi}"
                )
    ones = torch.ones(batch.shape[0], dtype=dtype, device=x.device)
    counts = torch.zeros(num_segments, dtype=dtype, device=x.device).index_add(0, batch, ones)
    return Segments(batch, counts.clamp(min=1.0))


def segment_mean(v: Tensor, seg: Segments) -> Tensor:
    """Mean of the rows of ``v`` ``[N, ...]`` over each segment: ``[S, ...]``."""
    sums = v.new_zeros((seg.counts.shape[0], *v.shape[1:])).index_add(0, seg.batch, v)  # [S, ...]
    return sums / seg.counts.view(-1, *([1] * (v.ndim - 1)))


def node_mean(v: Tensor, seg: Segments | None) -> Tensor:
    """Each row of ``v`` ``[N, ...]`` replaced by its segment's mean (identity without segments)."""
    if seg is None:
        return v
    return segment_mean(v, seg).index_select(0, seg.batch)  # [N, ...]
