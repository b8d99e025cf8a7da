r"""Spectral operators :math:`W \mapsto U(\Phi \circ U^\top W U)U^\top` of an SPD matrix.

For :math:`P = U \operatorname{diag}(a) U^\top` and a symmetric function
:math:`\varphi(a, b)`, the operator

.. math::

    T_\varphi(P)[W] = U \left( \varphi(a_i, a_j)\, (U^\top W U)_{ij} \right) U^\top

covers the Lyapunov solve (:math:`\varphi = 1/(a+b)`) and the Bures–Wasserstein
tangent-space isometries (:math:`\varphi = \sqrt{(a+b)/2}` and its inverse).
It is self-adjoint in :math:`W`, and its derivative in :math:`P` is the
double-operator-integral formula

.. math::

    D_P T_\varphi(P)[W][E] = U \Big( \sum_k \varphi^{(1)}_{ikj}
        \tilde E_{ik} \tilde W_{kj} + \varphi^{(2)}_{ikj} \tilde W_{ik}
        \tilde E_{kj} \Big) U^\top,

with the partial divided differences :math:`\varphi^{(1)}_{ikj} =
(\varphi(a_i, a_j) - \varphi(a_k, a_j)) / (a_i - a_k)` (and :math:`\partial_1
\varphi` where :math:`a_i = a_k`), :math:`\varphi^{(2)}_{ikj} =
\varphi^{(1)}_{jki}` by symmetry. The functions here have closed-form divided
differences, exact for equal eigenvalues, so no gradient goes through
``eigh``'s unstable backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch.autograd.function import once_differentiable

from .._numerics import compute_dtype
from .eig import sym

Tensor = torch.Tensor

__all__ = ["PairFunction", "apply_pair_operator", "BW_TO_IDENTITY", "BW_FROM_IDENTITY", "BW_EXP_FACTOR"]


@dataclass(frozen=True, eq=False)
class PairFunction:
    """A symmetric :math:`\\varphi(a, b)` and its first-argument divided difference.

    ``divided(ai, ak, aj)`` returns :math:`(\\varphi(a_i, a_j) - \\varphi(a_k,
    a_j)) / (a_i - a_k)`, exact (closed form) also when :math:`a_i = a_k`.
    """

    name: str
    phi: Callable[[Tensor, Tensor], Tensor]
    divided: Callable[[Tensor, Tensor, Tensor], Tensor]


def _sqrt_mean_divided(ai: Tensor, ak: Tensor, aj: Tensor) -> Tensor:
    # (sqrt((ai+aj)/2) - sqrt((ak+aj)/2)) / (ai - ak) = 1 / (2 (sqrt(2(ai+aj)) + sqrt(2(ak+aj))))
    return 1.0 / (torch.sqrt(2.0 * (ai + aj)) + torch.sqrt(2.0 * (ak + aj)))


def _inv_sqrt_divided_simple(x: Tensor, y: Tensor) -> Tensor:
    # (sqrt(2/x) - sqrt(2/y)) / (x - y) = -sqrt(2) / (sqrt(x) sqrt(y) (sqrt(x) + sqrt(y)))
    sx, sy = torch.sqrt(x), torch.sqrt(y)
    return -(2.0**0.5) / (sx * sy * (sx + sy))


def _exp_factor_divided(ai: Tensor, ak: Tensor, aj: Tensor) -> Tensor:
    # r(x) = 1 / sqrt(2x): (r(x) - r(y)) / (x - y) = -1 / (sqrt(2) sqrt(x) sqrt(y) (sqrt(x) + sqrt(y)))
    x, y = ai + aj, ak + aj
    sx, sy = torch.sqrt(x), torch.sqrt(y)
    return -1.0 / ((2.0**0.5) * sx * sy * (sx + sy))


#: :math:`\sqrt{2/(a+b)}`: the BW tangent isometry :math:`T_P \to T_I`.
BW_TO_IDENTITY = PairFunction(
    "sqrt(2/(a+b))",
    lambda a, b: torch.sqrt(2.0 / (a + b)),
    lambda ai, ak, aj: _inv_sqrt_divided_simple(ai + aj, ak + aj),
)
#: :math:`\sqrt{(a+b)/2}`: the BW tangent isometry :math:`T_I \to T_P`.
BW_FROM_IDENTITY = PairFunction("sqrt((a+b)/2)", lambda a, b: torch.sqrt(0.5 * (a + b)), _sqrt_mean_divided)
#: :math:`1/\sqrt{2(a+b)}`: Lyapunov solve after the isometry :math:`T_I \to T_P`.
BW_EXP_FACTOR = PairFunction("1/sqrt(2(a+b))", lambda a, b: torch.rsqrt(2.0 * (a + b)), _exp_factor_divided)


class _PairOperator(torch.autograd.Function):
    """T_phi(p)[w] with p ``[*pb, n, n]`` broadcasting against w ``[*wb, n, n]``."""

    @staticmethod
    def forward(ctx, p: Tensor, w: Tensor, fn: PairFunction, basis: Tensor | None):  # type: ignore[override]
        a, u = torch.linalg.eigh(sym(p))
        ut = u.transpose(-1, -2)
        phi_mat = fn.phi(a.unsqueeze(-1), a.unsqueeze(-2))  # [*pb, n, n]
        # w given in the basis O is O w Oᵀ: rotated by Uᵀ O, one (small) product, not two batched ones
        to_p = ut if basis is None else ut @ basis
        w_rot = to_p @ sym(w) @ to_p.transpose(-1, -2)  # [*out, n, n]; the backward in p reads it again
        ctx.fn = fn
        ctx.shapes = (p.shape, w.shape)
        ctx.save_for_backward(a, u, phi_mat, to_p, w_rot if ctx.needs_input_grad[0] else None)
        return u @ (phi_mat * w_rot) @ ut

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        a, u, phi_mat, to_p, w_rot = ctx.saved_tensors
        p_shape, w_shape = ctx.shapes
        grad_p = grad_w = None
        ut = u.transpose(-1, -2)
        g_rot = ut @ sym(g) @ u  # [*out, n, n]: shared by both gradients
        if ctx.needs_input_grad[1]:  # T is self-adjoint in w (and the rotation to p's basis orthogonal)
            grad_w = (to_p.transpose(-1, -2) @ (phi_mat * g_rot) @ to_p).sum_to_size(w_shape)
        if ctx.needs_input_grad[0]:
            d1 = ctx.fn.divided(
                a[..., :, None, None], a[..., None, :, None], a[..., None, None, :]
            )  # [*pb, n, n, n]: phi1[a, b, j]
            # grad_E[a, b] = sum_j phi1[a,b,j] G_aj W_bj  +  (same with a <-> b)
            extra = g_rot.ndim - a.ndim - 1  # leading batch axes of w that p lacks
            if extra > 0 and w_rot.shape == g_rot.shape and g_rot.shape[extra:-2] == a.shape[:-1]:
                # one p for many w (a batch norm's mean): reduce G_aj W_bj over those axes first
                # (one batched matmul), instead of a [*out, n, n, n] product and its sum
                gr, wr = (t.reshape(-1, *t.shape[extra:]) for t in (g_rot, w_rot))  # [Z, *pb, n, n]
                k = gr.ndim  # pairs[j, a, b] = sum_z G[z, a, j] W[z, b, j], from contiguous copies
                # (a batched matmul over j; cheaper than einsum's own arrangement of the operands)
                lhs = gr.permute(*range(1, k - 2), k - 1, k - 2, 0).contiguous()  # [*pb, j, a, Z]
                rhs = wr.permute(*range(1, k - 2), k - 1, 0, k - 2).contiguous()  # [*pb, j, Z, b]
                first = (d1.movedim(-1, -3) * (lhs @ rhs)).sum(-3)
            else:
                first = torch.einsum("...abj,...aj,...bj->...ab", d1, g_rot, w_rot)
            grad_e = (first + first.transpose(-1, -2)).sum_to_size(p_shape)
            grad_p = u @ sym(grad_e) @ ut
        return grad_p, grad_w, None, None


def apply_pair_operator(p: Tensor, w: Tensor, fn: PairFunction, *, basis: Tensor | None = None) -> Tensor:
    r""":math:`T_\varphi(P)[W]` for SPD ``p`` ``[..., n, n]`` and symmetric ``w``.

    ``p`` broadcasts against ``w`` over leading dimensions (one ``p`` per
    channel, a batch of ``w``). Differentiable once in both arguments.
    ``basis``: an orthogonal :math:`O` (no gradient, broadcasting like ``p``)
    in which ``w`` is given, the operator then applies to :math:`W = O w
    O^\top` (returned in the standard basis): for a batch that is in an
    eigenbasis already, the rotation costs one small product instead of two
    batched ones, forward and backward.

    Examples
    --------
    >>> p = torch.diag(torch.tensor([1.0, 3.0], dtype=torch.float64))
    >>> apply_pair_operator(p, torch.ones(2, 2, dtype=torch.float64), BW_FROM_IDENTITY)
    tensor([[1.0000, 1.4142],
            [1.4142, 1.7321]], dtype=torch.float64)
    """
    work = compute_dtype(p.dtype)
    if basis is not None:
        basis = basis.detach().to(work)
    return _PairOperator.apply(p.to(work), w.to(work), fn, basis).to(p.dtype)
