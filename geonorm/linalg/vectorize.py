r"""Isometric vectorization of symmetric matrices (and its inverse).

``"triu"`` keeps the upper triangle row by row with off-diagonal entries
multiplied by :math:`\sqrt{2}`, so that the Euclidean norm of the vector
equals the Frobenius norm of the matrix (the usual tangent-space
vectorization of Barachant et al. 2012). ``"full"`` flattens the matrix.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor

__all__ = ["sym_to_vec", "vec_to_sym", "VECTORIZATIONS"]

VECTORIZATIONS = ("triu", "full")


_TRIU_INDEX: dict[int, tuple[Tensor, Tensor]] = {}


def _triu_index(n: int) -> tuple[Tensor, Tensor]:
    """Flat indices of the upper triangle and the isometry's weights (1 on, √2 off the diagonal), cached per n.

    Under ``torch.compile`` they are traced (constants of the graph), not read
    from the cache: Dynamo warns about ``functools.lru_cache`` and would guard
    on a mutated global dict.
    """
    if not torch.compiler.is_compiling() and n in _TRIU_INDEX:
        return _TRIU_INDEX[n]
    rows, cols = torch.triu_indices(n, n)
    pair = rows * n + cols, torch.where(rows == cols, 1.0, math.sqrt(2.0)).to(torch.float64)
    if not torch.compiler.is_compiling():
        _TRIU_INDEX[n] = pair
    return pair


def _check_mode(mode: str) -> None:
    if mode not in VECTORIZATIONS:
        raise ValueError(f"mode: expected one of {VECTORIZATIONS}, got {mode!r}")


def sym_to_vec(x: Tensor, mode: str = "triu") -> Tensor:
    """``[..., n, n]`` symmetric matrices to ``[..., n(n+1)/2]`` (triu) or ``[..., n*n]`` (full).

    >>> x = torch.tensor([[1.0, 2.0], [2.0, 3.0]])
    >>> sym_to_vec(x)
    tensor([1.0000, 2.8284, 3.0000])
    """
    _check_mode(mode)
    n = x.shape[-1]
    flat = x.reshape(x.shape[:-2] + (n * n,))  # [..., n*n]
    if mode == "full":
        return flat
    index, weights = _triu_index(n)
    return flat[..., index.to(x.device)] * weights.to(x.device, x.dtype)


def vec_to_sym(v: Tensor, n: int, mode: str = "triu") -> Tensor:
    """Inverse of :func:`sym_to_vec`: ``[..., d]`` to ``[..., n, n]`` symmetric matrices.

    >>> vec_to_sym(torch.tensor([1.0, 2.8284271247461903, 3.0]), 2)
    tensor([[1., 2.],
            [2., 3.]])
    """
    _check_mode(mode)
    expected = n * n if mode == "full" else n * (n + 1) // 2
    if v.shape[-1] != expected:
        raise ValueError(f"v: expected last dimension {expected} for n = {n} ({mode}), got {v.shape[-1]}")
    if mode == "full":
        m = v.reshape(v.shape[:-1] + (n, n))
        return 0.5 * (m + m.transpose(-1, -2))
    index, weights = _triu_index(n)
    flat = v.new_zeros(v.shape[:-1] + (n * n,))
    flat[..., index.to(v.device)] = v / weights.to(v.device, v.dtype)
    upper = flat.reshape(v.shape[:-1] + (n, n))  # [..., n, n]
    return upper + upper.transpose(-1, -2) - torch.diag_embed(torch.diagonal(upper, dim1=-2, dim2=-1))
