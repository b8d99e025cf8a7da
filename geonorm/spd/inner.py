r"""The O(n)-invariant inner products on symmetric matrices (Thanwerdas & Pennec 2019).

.. math::

    \langle U, V\rangle_{\alpha,\beta} = \alpha\,\mathrm{tr}(UV)
        + \beta\,\mathrm{tr}(U)\,\mathrm{tr}(V),

positive definite iff :math:`\alpha > 0` and :math:`\beta > -\alpha/n`. The
(α, β) affine-invariant, Log-Euclidean and Log-Cholesky metrics all use it
(at the identity, or on their chart's coordinates).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

__all__ = ["alpha_beta_inner", "trace"]


def trace(m: Tensor) -> Tensor:
    """Trace of ``[..., n, n]`` matrices, ``[...]``."""
    return torch.diagonal(m, dim1=-2, dim2=-1).sum(-1)


def alpha_beta_inner(alpha: float, beta: float, u: Tensor, v: Tensor) -> Tensor:
    r""":math:`\alpha\,\mathrm{tr}(uv) + \beta\,\mathrm{tr}(u)\mathrm{tr}(v)` for symmetric ``[..., n, n]``.

    >>> e = torch.eye(2)
    >>> alpha_beta_inner(2.0, 0.5, e, e)  # 2 * 2 + 0.5 * 2 * 2
    tensor(6.)
    """
    out = alpha * (u * v).sum((-2, -1))  # = tr(u v) for symmetric u, v
    if beta != 0.0:
        out = out + beta * trace(u) * trace(v)
    return out
