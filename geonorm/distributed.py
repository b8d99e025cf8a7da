"""Cross-rank reduction of Riemannian batch statistics (``torch.distributed``).

Every geometry computes its Fréchet mean and variance from per-batch *sums*
(of coordinates, tangent vectors, squared distances and weights) that pass
through a ``reduce`` callable before being divided by the total weight
(:func:`geonorm.riemannian.weighted_sum`). Synchronised batch norm passes
:func:`sum_across_ranks` as that callable, so each iteration of an iterative
mean (Karcher flow, the Bures–Wasserstein fixed point) sums over every rank's
samples: the statistics equal those of one process holding the concatenated
batch, for every geometry, without geometry-specific code.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = ["is_distributed", "sum_across_ranks"]


def is_distributed() -> bool:
    """True when a process group with more than one rank is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_across_ranks(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over all ranks; differentiable when ``t`` requires grad.

    The backward of a summed statistic all-reduces its gradient, as
    ``torch.nn.SyncBatchNorm`` does.
    """
    if not is_distributed():
        return t
    if t.requires_grad:
        return _SumAcrossRanks.apply(t)
    out = t.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


class _SumAcrossRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward all-reduces the gradient.

    ``y = Σ_r t_r`` is used by every rank's loss, so ``∂L/∂t_r = Σ_r' ∂L_r'/∂y``:
    the backward is the same sum. (Written here because
    ``torch.distributed.nn.functional.all_reduce`` is deprecated.)
    """

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        out = t.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out
