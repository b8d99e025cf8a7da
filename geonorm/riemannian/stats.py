r"""Weighted batch statistics with a cross-rank ``reduce``.

Every geometry computes its means and variances from per-batch *sums* (of
coordinates, tangent vectors, squared distances and weights) divided by the
total weight. ``reduce`` (optional) is called on every such sum before the
division; the default is the identity, and the distributed batch norm passes
an all-reduce across ranks (:func:`geonorm.distributed.sum_across_ranks`), so
every geometry is synchronised by these few lines.

Conventions: values are ``[B, *batch, *point]``; statistics reduce over
dimension 0 only, so ``[B, C, ...]`` input gets per-channel statistics of
shape ``[C, ...]``. ``weights`` are non-negative, of shape ``[B]`` or
``[B, *batch]``.
"""

from __future__ import annotations

from typing import Callable

import torch

from .._checks import check_tensor

Tensor = torch.Tensor
Reduce = Callable[[Tensor], Tensor]

__all__ = ["converged", "Reduce", "normalise_weights", "weighted_sum"]

_UNIFORM = "_geonorm_uniform_weights"  # set on the weights normalise_weights makes for ``weights=None``


def normalise_weights(z: Tensor, weights: Tensor | None, point_ndim: int) -> Tensor:
    """Weights of shape ``[B, *batch]`` broadcastable to ``z``'s leading dims.

    ``z`` is ``[B, *batch, *point]`` with ``point_ndim`` trailing point
    dimensions (2 for matrices, 1 for vectors). ``None`` gives uniform
    weights ``1``; :func:`weighted_sum` divides by the reduced total, so both
    cases sum to one.

    >>> normalise_weights(torch.zeros(3, 2, 4), None, 1).shape
    torch.Size([3, 1])
    """
    lead = z.shape[: z.ndim - point_ndim]  # [B, *batch]
    if weights is None:
        w = torch.ones(lead[:1], dtype=z.dtype, device=z.device).reshape((lead[0],) + (1,) * (len(lead) - 1))
        if not torch.compiler.is_compiling():
            setattr(w, _UNIFORM, True)  # weighted_sum then takes the plain mean: one kernel instead of four
        return w
    check_tensor(weights, "weights")
    if weights.ndim == 0 or weights.shape[0] != lead[0] or weights.ndim > len(lead):
        raise ValueError(
            f"weights: expected shape [{lead[0]}] or a prefix-compatible shape of "
            f"{list(lead)}, got {list(weights.shape)}"
        )
    if not torch.compiler.is_compiling():
        if bool((weights < 0).any()) or not bool(torch.isfinite(weights).all()):
            raise ValueError("weights: expected finite non-negative values")
    w = weights.to(dtype=z.dtype, device=z.device)
    return w.reshape(w.shape + (1,) * (len(lead) - w.ndim))  # [B, *batch']


def weighted_sum(values: Tensor, w: Tensor, reduce: Reduce | None, value_ndim: int) -> Tensor:
    r"""``reduce(Σ_b w_b v_b) / reduce(Σ_b w_b)`` over dimension 0.

    ``values`` is ``[B, *batch, *value]`` with ``value_ndim`` trailing value
    dimensions; ``w`` is ``[B, *batch']`` (broadcastable, from
    :func:`normalise_weights`).

    >>> v = torch.tensor([[1.0, 2.0], [3.0, 6.0]])
    >>> weighted_sum(v, torch.tensor([1.0, 3.0]), None, 1)
    tensor([2.5000, 5.0000])
    """
    if reduce is None and getattr(w, _UNIFORM, False):
        return values.mean(0)
    wv = w.reshape(w.shape + (1,) * value_ndim)
    if reduce is None:  # the total broadcasts: [*batch', 1, ...] against [*batch, *value]
        return (wv * values).sum(0) / wv.sum(0)
    total = reduce((w * torch.ones_like(values[(...,) + (0,) * value_ndim])).sum(0))
    acc = reduce((wv * values).sum(0))  # [*batch, *value]
    return acc / total.reshape(total.shape + (1,) * value_ndim)


def converged(criterion: Tensor, tol: float) -> bool:
    """True when every entry of ``criterion`` is at most ``tol``: an iterative mean's early stop.

    Always ``False`` under ``torch.compile``: a data-dependent stop would
    break the graph (and a graph break has dropped buffer updates of the
    calling batch norm), so compiled code runs all its iterations.

    >>> converged(torch.tensor([1e-12, 1e-11]), 1e-10)
    True
    """
    if torch.compiler.is_compiling():
        return False
    return bool((criterion <= tol).all())
