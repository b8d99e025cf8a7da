r"""Lyapunov equation :math:`G L + L G = V` for symmetric positive definite ``G``.

With :math:`G = U \Lambda U^\top`, the solution is

.. math::

    L = U \left( \frac{(U^\top V U)_{ij}}{\lambda_i + \lambda_j} \right) U^\top .

The backward pass is written with the solver itself (the operator
:math:`L \mapsto GL + LG` is self-adjoint), so it is exact for repeated
eigenvalues of ``G`` and differentiable again: with :math:`W = \mathcal{L}_G^{-1}
(\bar L)`, :math:`\bar V = W` and :math:`\bar G = -\operatorname{sym}(W L^\top
+ L^\top W)`.
"""

from __future__ import annotations

import torch

from .._checks import check_floating, check_finite, check_positive_spectrum, check_sym_matrix
from .._numerics import compute_dtype
from .eig import sym

Tensor = torch.Tensor

__all__ = ["solve_lyapunov"]


def _solve(s: Tensor, u: Tensor, v: Tensor) -> Tensor:
    ut = u.transpose(-1, -2)
    denom = s.unsqueeze(-1) + s.unsqueeze(-2)  # [..., n, n]
    return u @ ((ut @ v @ u) / denom) @ ut


class _Lyapunov(torch.autograd.Function):
    @staticmethod
    def forward(ctx, g: Tensor, v: Tensor, eig=None) -> Tensor:  # type: ignore[override]
        s, u = torch.linalg.eigh(sym(g)) if eig is None else eig
        sol = _solve(s, u, v)
        ctx.save_for_backward(g, sol)
        return sol

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        g, sol = ctx.saved_tensors
        w = _Lyapunov.apply(g, grad, None)
        grad_g = None
        if ctx.needs_input_grad[0]:
            st = sol.transpose(-1, -2)
            grad_g = -sym(w @ st + st @ w)
        return grad_g, w, None


def solve_lyapunov(g: Tensor, v: Tensor, *, check: bool = True) -> Tensor:
    r"""Solve :math:`G L + L G = V` for ``L``, batched, with gradients in G and V.

    Parameters
    ----------
    g : Tensor
        ``[..., n, n]`` symmetric positive definite matrices (the symmetric part
        is used).
    v : Tensor
        ``[..., n, n]`` right-hand sides (broadcast against ``g``'s batch).
    check : bool
        Validate shapes and values; raises ``ValueError`` if ``g`` is not SPD
        (read off the eigendecomposition the solver computes anyway).

    Examples
    --------
    >>> g = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    >>> solve_lyapunov(g, torch.ones(2, 2, dtype=torch.float64))
    tensor([[0.5000, 0.2500],
            [0.2500, 0.1667]], dtype=torch.float64)
    """
    if check:
        check_sym_matrix(g, "g")
        check_floating(v, "v")
        check_finite(v, "v")
        if v.shape[-2:] != g.shape[-2:]:
            raise ValueError(
                f"v: expected trailing shape {list(g.shape[-2:])} to match g, "
                f"got shape {list(v.shape)}"
            )
    work = compute_dtype(g.dtype)
    gw = g.to(work)
    eig = None
    if check:
        with torch.no_grad():
            eig = torch.linalg.eigh(sym(gw))
        check_positive_spectrum(eig[0], "g")
    out = _Lyapunov.apply(gw, v.to(work), eig)
    return out.to(g.dtype)
