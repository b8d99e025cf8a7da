r"""The forward (Fréchet) differential of a symmetric matrix function, and its inverse.

For :math:`F(P) = U f(\Lambda) U^\top` with :math:`P = U \Lambda U^\top`, the
Daleckii–Krein theorem (Bhatia, *Matrix Analysis*, 1997, Thm V.3.3) gives

.. math::

    DF(P)[V] = U \big( f^{[1]}(\Lambda) \circ (U^\top V U) \big) U^\top,
    \qquad f^{[1]}_{ij} = f[\lambda_i, \lambda_j],

and, where every divided difference is non-zero (``f`` strictly monotone:
log, exp, real powers :math:`p \neq 0`), the inverse

.. math::

    DF(P)^{-1}[W] = U \big( (U^\top W U) \oslash f^{[1]}(\Lambda) \big) U^\top .

These are the maps between tangent spaces that the pullback geometries of
:mod:`geonorm.spd` need (Log-Euclidean, power-deformed affine-invariant and
Bures–Wasserstein). The divided differences come from
:func:`~geonorm.linalg.spectral.first_divided_differences`, exact and finite
for equal eigenvalues, and the backward pass uses the second divided
differences (:math:`\partial_P` of the operator is a double operator
integral), so no gradient goes through ``eigh``'s unstable backward.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .._checks import check_sym_matrix
from .._numerics import compute_dtype, spectral_floor
from .eig import sym
from .spectral import SpectralFunction, first_divided_differences, second_divided_differences

Tensor = torch.Tensor

__all__ = ["spectral_differential", "spectral_differential_inverse"]


def _rotate(u: Tensor, w: Tensor) -> Tensor:
    """Uᵀ W U, ``[..., n, n]``."""
    return u.transpose(-1, -2) @ w @ u


def _unrotate(u: Tensor, w: Tensor) -> Tensor:
    """U W Uᵀ, ``[..., n, n]``."""
    return u @ w @ u.transpose(-1, -2)


class _Differential(torch.autograd.Function):
    r"""U (K ∘ UᵀVU) Uᵀ with K = f^{[1]}(Λ) (``inverse=False``) or 1 / f^{[1]}(Λ)."""

    @staticmethod
    def forward(ctx, p: Tensor, v: Tensor, fn: SpectralFunction, inverse: bool):  # type: ignore[override]
        s, u = torch.linalg.eigh(sym(p))
        s_fn = spectral_floor(s) if fn.positive else s
        first = first_divided_differences(fn, s_fn)  # [*pb, n, n]
        kernel = 1.0 / first if inverse else first
        ctx.fn, ctx.inverse = fn, inverse
        ctx.shapes = (p.shape, v.shape)
        ctx.save_for_backward(s_fn, u, first, kernel, v)
        return _unrotate(u, kernel * _rotate(u, sym(v)))

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        s, u, first, kernel, v = ctx.saved_tensors
        p_shape, v_shape = ctx.shapes
        g = sym(g)
        g_rot = _rotate(u, g)  # [*out, n, n]
        grad_p = grad_v = None
        if ctx.needs_input_grad[1]:
            # the operator is self-adjoint in the Frobenius inner product
            grad_v = _unrotate(u, kernel * g_rot).sum_to_size(v_shape)
        if ctx.needs_input_grad[0]:
            v_rot = _rotate(u, sym(v))
            # d K_aj / d λ_b (a ≠ b direction) is the double operator integral kernel
            # f[a, b, j]; for the inverse, d(1/K) = -dK / K².
            d2 = second_divided_differences(ctx.fn, s)  # [*pb, n, n, n]: f[a, b, j]
            if ctx.inverse:
                d2 = -d2 * (kernel.unsqueeze(-2) * kernel.unsqueeze(-3))  # / (K_aj K_bj)
            # grad_E[a, b] = Σ_j d2[a, b, j] G_aj V_bj + (a <-> b)
            half = torch.einsum("...abj,...aj,...bj->...ab", d2, g_rot, v_rot)
            grad_e = (half + half.transpose(-1, -2)).sum_to_size(p_shape)
            grad_p = _unrotate(u, sym(grad_e))
        return grad_p, grad_v, None, None


def _apply(
    p: Tensor, v: Tensor, fn: SpectralFunction, inverse: bool, check: bool, name: str
) -> Tensor:
    if check:
        check_sym_matrix(p, "p")
        check_sym_matrix(v, name)
        if v.shape[-1] != p.shape[-1]:
            raise ValueError(
                f"{name}: expected matrices of size {p.shape[-1]} to match p, "
                f"got shape {list(v.shape)}"
            )
        if fn.positive:
            smallest = float(torch.linalg.eigvalsh(sym(p.detach().to(compute_dtype(p.dtype))))[..., 0].min())
            if not smallest > 0:
                raise ValueError(
                    f"p: expected symmetric positive definite matrices for {fn.name}, "
                    f"got a smallest eigenvalue of {smallest:.3e}"
                )
    work = compute_dtype(p.dtype)
    return _Differential.apply(p.to(work), v.to(work), fn, inverse).to(p.dtype)


def spectral_differential(
    p: Tensor, v: Tensor, fn: SpectralFunction, *, check: bool = True
) -> Tensor:
    r"""Daleckii–Krein differential :math:`DF(P)[V] = U (f^{[1]}(\Lambda) \circ U^\top V U) U^\top`.

    Parameters
    ----------
    p : Tensor
        ``[..., n, n]`` symmetric matrices (SPD when ``fn.positive``).
    v : Tensor
        ``[..., n, n]`` symmetric directions; ``p`` and ``v`` broadcast over
        their leading dimensions.
    fn : SpectralFunction
        The scalar function, e.g. :func:`~geonorm.linalg.log_function`.
    check : bool
        Validate both inputs (square, finite, symmetric; ``p`` positive
        definite when ``fn`` needs it).

    Returns
    -------
    Tensor
        ``[..., n, n]``, the directional derivative of :math:`F` at ``p``
        along ``v``. Differentiable once in ``p`` and ``v``.

    Examples
    --------
    >>> from geonorm.linalg import log_function
    >>> p = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> spectral_differential(p, torch.ones(2, 2, dtype=torch.float64), log_function())
    tensor([[1.0000, 0.4621],
            [0.4621, 0.2500]], dtype=torch.float64)
    """
    return _apply(p, v, fn, False, check, "v")


def spectral_differential_inverse(
    p: Tensor, w: Tensor, fn: SpectralFunction, *, check: bool = True
) -> Tensor:
    r"""Inverse differential :math:`DF(P)^{-1}[W] = U ((U^\top W U) \oslash f^{[1]}(\Lambda)) U^\top`.

    Defined when no divided difference :math:`f[\lambda_i, \lambda_j]`
    vanishes (strictly monotone ``f``: log, exp, powers :math:`p \ne 0`). It
    equals the differential of :math:`F^{-1}` at :math:`F(P)`; for instance
    :math:`(D\log_P)^{-1} = D\exp_{\log P}`, pyRiemann's ``ddexpm``.

    Parameters
    ----------
    p : Tensor
        ``[..., n, n]`` symmetric matrices (SPD when ``fn.positive``).
    w : Tensor
        ``[..., n, n]`` symmetric matrices, broadcasting against ``p``.
    fn : SpectralFunction
        The scalar function.
    check : bool
        Validate both inputs.

    Examples
    --------
    >>> from geonorm.linalg import log_function
    >>> p = torch.diag(torch.tensor([1.0, 4.0], dtype=torch.float64))
    >>> w = spectral_differential(p, torch.ones(2, 2, dtype=torch.float64), log_function())
    >>> spectral_differential_inverse(p, w, log_function())
    tensor([[1.0000, 1.0000],
            [1.0000, 1.0000]], dtype=torch.float64)
    """
    return _apply(p, w, fn, True, check, "w")
