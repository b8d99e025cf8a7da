r"""Signed sums over the Cayley table's non-zero entries, with their own backward.

Every product of :class:`~geonorm.clifford.CliffordAlgebra` except the
representation kernel is one bilinear map

.. math:: z_C = \sum_A x_A\, y_{A \triangle C}\, S_{AC}

for a sign (or weight) table :math:`S`, ``[2^n, 2^n]`` or per channel
``[channels, 2^n, 2^n]``. Its gradients are maps of the same kind, with the
table's entries moved, because :math:`B = A \triangle C \iff C = A \triangle B`:

.. math::

    \frac{\partial L}{\partial x_A} = \sum_B y_B\, g_{B \triangle A}\, S_{A,\, A \triangle B},
    \qquad
    \frac{\partial L}{\partial y_B} = \sum_A x_A\, g_{A \triangle B}\, S_{A,\, A \triangle B},
    \qquad
    \frac{\partial L}{\partial S_{AC}} = \sum_{\text{batch}} x_A\, y_{A \triangle C}\, g_C .

So the backward costs two forwards (and, for a learned table, one product
with the pairs the forward kept) instead of autograd's broadcast reductions
over the ``[..., 4^n]`` pair products, and is itself differentiable (the
backward calls the same Function). Below :data:`FUNCTION_MIN_PAIRS` pairs
autograd's backward is used: there the Function's Python costs more than it
saves (measurements at the constant).
"""

from __future__ import annotations

from typing import Callable

import torch

Tensor = torch.Tensor
Kernel = Callable[..., Tensor]  # kernel(x, y, signs, keep=None): keep, a list, receives the pairs it formed


class _SignedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kernel: Kernel, xor: Tensor, x: Tensor, y: Tensor, signs: Tensor) -> Tensor:
        ctx.kernel = kernel
        keep: list = []
        out = kernel(x, y, signs, keep if ctx.needs_input_grad[4] else None)
        ctx.save_for_backward(xor, x, y, signs, *keep)
        return out

    @staticmethod
    def backward(ctx, g: Tensor):
        xor, x, y, signs, *kept = ctx.saved_tensors
        kernel, d = ctx.kernel, xor.shape[0]
        gx = gy = gs = None
        if ctx.needs_input_grad[2]:  # T[B, A] = S[A, A △ B]
            gx = signed_sum(kernel, xor, y, g, signs[..., torch.arange(d, device=xor.device), xor])
        if ctx.needs_input_grad[3]:  # T[A, B] = S[A, A △ B]
            gy = signed_sum(kernel, xor, x, g, signs.gather(-1, xor.expand(signs.shape)))
        if ctx.needs_input_grad[4]:
            if signs.ndim == 2:  # the pairs x_A y_B [rest, 4^n], reduced against g over the batch
                x, y, g = (v.reshape(-1, d) for v in (x, y, g))
            else:  # per channel: channels first, reduced over every other axis
                x, y, g = (v.movedim(-2, 0).reshape(signs.shape[0], -1, d).contiguous() for v in (x, y, g))
            # the forward's pairs when it kept them (and no higher derivative is asked for)
            pairs = kept[0] if kept and not torch.is_grad_enabled() else (x.unsqueeze(-1) * y.unsqueeze(-2)).flatten(-2)
            m = pairs.transpose(-1, -2) @ g  # [(C,) 4^n, 2^n]
            rows = torch.arange(d, device=xor.device)[:, None] * d + xor  # [A, C]: the pair (A, A △ C)
            gs = m.gather(-2, rows.expand(m.shape[:-2] + (d, d)))  # [(C,) A, C']
        return None, None, gx, gy, gs


def signed_sum(kernel: Kernel, xor: Tensor, x: Tensor, y: Tensor, signs: Tensor) -> Tensor:
    r""":math:`z_C = \sum_A x_A y_{A \triangle C} S_{AC}` by ``kernel(x, y, signs)``, differentiable through the maps above.

    ``xor`` ``[2^n, 2^n]`` long: the blade index of :math:`A \triangle C`
    (the algebra's ``partner`` table); ``x``, ``y`` broadcast to one shape.
    """
    if not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad or signs.requires_grad)):
        return kernel(x, y, signs)
    if x.numel() < FUNCTION_MIN_PAIRS * x.shape[-1]:  # small: autograd's own backward costs less Python
        return kernel(x, y, signs)
    return _SignedSum.apply(kernel, xor, x, y, signs)


#: Pairs from which the hand-written backward is used. Measured forward+backward against autograd's
#: (1 CPU thread, float64): 1.48x slower at 64 pairs of Cl(3,0,1), 1.05x at 512 of Cl(3,0); 0.65-0.67x
#: at 4,096 (outer and inner products), 0.97x for CGENN's weighted product alone and 0.87x for a
#: whole CGENN block (16 channels x 1,000).
FUNCTION_MIN_PAIRS = 1024
