r"""Matrix powers with a learnable (tensor) exponent, one exponent per matrix.

:math:`Y = X^{p} = U \Lambda^{p} U^\top` with gradients in both ``X`` (the
Daleckii–Krein backward of :mod:`geonorm.linalg.eig`) and ``p``:

.. math::

    \frac{\partial \langle G, X^p \rangle}{\partial p}
    = \sum_i (U^\top G U)_{ii}\, \lambda_i^{p} \log \lambda_i .

This is the geodesic rescaling :math:`\mathrm{Exp}_I(p\,\mathrm{Log}_I X)`
of the affine-invariant metric, which batch normalization applies with a
learned factor; it costs one eigendecomposition where
:math:`\exp(p \log X)` costs two.
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .._checks import check_floating, check_square, check_sym_and_spectrum
from .._numerics import compute_dtype, spectral_floor
from .eig import _rebuild, sym
from .spectral import first_divided_differences, power_function

Tensor = torch.Tensor

__all__ = ["sym_powm_tensor"]


class _TensorPower(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, p: Tensor, s: Tensor, u: Tensor) -> Tensor:  # type: ignore[override]
        s = spectral_floor(s)
        fs = torch.pow(s, p.unsqueeze(-1))  # [..., n]
        ctx.save_for_backward(x, p, s, u, fs)
        return _rebuild(u, fs)

    @staticmethod
    @once_differentiable
    def backward(ctx, g: Tensor):  # type: ignore[override]
        x, p, s, u, fs = ctx.saved_tensors
        grad_x = grad_p = None
        if ctx.needs_input_grad[0]:
            # the Daleckii–Krein adjoint U (L ∘ Uᵀ sym(G) U) Uᵀ; its rotated gradient's diagonal
            # is the (Uᵀ G U)_ii that the exponent's gradient needs (no third product for it)
            ut = u.transpose(-1, -2)
            rotated = ut @ sym(g) @ u  # [..., n, n]
            loewner = first_divided_differences(power_function(p.expand(s.shape[:-1])), s, fs)  # s is floored
            grad_x = u @ (loewner * rotated) @ ut
            g_diag = rotated.diagonal(dim1=-2, dim2=-1)  # [..., n]
        elif ctx.needs_input_grad[1]:
            g_diag = (u * (g @ u)).sum(-2)  # [..., n]: (Uᵀ G U)_ii; the diagonal needs no sym
        if ctx.needs_input_grad[1]:
            full = (g_diag * fs * torch.log(s)).sum(-1)  # [...]
            grad_p = full.sum_to_size(p.shape)
        return grad_x, grad_p, None, None


def sym_powm_tensor(
    x: Tensor,
    p: Tensor,
    *,
    eig: tuple[Tensor, Tensor] | None = None,
    check: bool = True,
) -> Tensor:
    r"""SPD matrix power :math:`X^p` with a tensor exponent and gradients in ``p``.

    Parameters
    ----------
    x : Tensor
        ``[..., n, n]`` SPD matrices.
    p : Tensor
        Exponents, shape broadcastable to ``x.shape[:-2]`` (one per matrix,
        or one shared).
    eig : tuple of Tensor, optional
        Precomputed ``(eigenvalues, eigenvectors)`` of ``x``.
    check : bool
        Validate ``x`` (symmetric, finite, positive definite).

    Examples
    --------
    >>> x = torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64)).expand(2, 2, 2)
    >>> p = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    >>> torch.diagonal(sym_powm_tensor(x, p), dim1=-2, dim2=-1)
    tensor([[2.0000, 3.0000],
            [0.2500, 0.1111]], dtype=torch.float64, grad_fn=<DiagonalBackward0>)
    """
    if check:
        check_floating(x, "x")
        check_square(x, "x")
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"p: expected a torch.Tensor, got {type(p).__name__}")
    in_dtype = x.dtype
    work = compute_dtype(in_dtype)
    xw = x.to(work) if work != in_dtype else x
    if eig is None:
        with torch.no_grad():
            eig = torch.linalg.eigh(sym(xw))
    s, u = eig
    if check:
        check_sym_and_spectrum(x, s, "x")
    out = _TensorPower.apply(xw, p.to(work), s, u)
    return out if work == in_dtype else out.to(in_dtype)
