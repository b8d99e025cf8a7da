r"""Log-Cholesky maps between SPD matrices and lower-triangular matrices.

Lin (2019), *Riemannian geometry of symmetric positive definite matrices via
Cholesky decomposition*, SIAM J. Matrix Anal. Appl. 40(4). With the Cholesky
factor :math:`P = L L^\top`,

.. math::

    \varphi(P) = \lfloor L \rfloor + \log \mathbb{D}(L), \qquad
    \varphi^{-1}(X) = (\lfloor X \rfloor + \exp \mathbb{D}(X))
                      (\lfloor X \rfloor + \exp \mathbb{D}(X))^\top,

where :math:`\lfloor\cdot\rfloor` is the strictly lower part and
:math:`\mathbb{D}` the diagonal. Gradients go through PyTorch's Cholesky
backward (triangular solves), which needs no eigenvalue gaps.
"""

from __future__ import annotations

import torch

from .._checks import check_sym_matrix, check_floating, check_square, check_finite
from .._numerics import compute_dtype
from .eig import sym

Tensor = torch.Tensor

__all__ = ["cholesky", "cholesky_log", "cholesky_exp"]


def cholesky(p: Tensor, *, check: bool = True) -> Tensor:
    """Lower Cholesky factor of SPD matrices, with a clear error for non-SPD input.

    Half precision is factorized in float32 and cast back.
    """
    if check:
        check_sym_matrix(p, "p")
    work = compute_dtype(p.dtype)
    ps = sym(p if p.dtype == work else p.to(work))
    if torch.compiler.is_compiling():
        return torch.linalg.cholesky_ex(ps)[0].to(p.dtype)
    # The factorization's own success flag is read even when unchecked (LAPACK's, raised
    # as LinAlgError without a host round trip of ours), so a matrix that rounding made
    # indefinite raises here instead of leaving NaN in the result.
    try:
        factor = torch.linalg.cholesky(ps)
    except torch.linalg.LinAlgError:
        bad = int((torch.linalg.cholesky_ex(ps)[1] != 0).sum())
        raise ValueError(
            f"p: expected symmetric positive definite matrices, got {bad} of "
            f"{max(ps[..., 0, 0].numel(), 1)} that are not positive definite in "
            f"{work} (Cholesky failed; a spread of eigenvalues beyond "
            f"1/eps = {1 / torch.finfo(work).eps:.1e} also does this)"
        ) from None
    return factor if factor.dtype == p.dtype else factor.to(p.dtype)


def factor_and_inverse(p: Tensor) -> tuple[Tensor, Tensor]:
    """The lower Cholesky factor :math:`L` of SPD ``p`` ``[..., n, n]`` and :math:`L^{-1}` (unchecked input)."""
    factor = cholesky(p, check=False)
    eye = torch.eye(p.shape[-1], dtype=factor.dtype, device=factor.device).expand_as(factor)
    return factor, torch.linalg.solve_triangular(factor, eye, upper=False)


def cholesky_log(p: Tensor, *, check: bool = True) -> Tensor:
    r"""Log-Cholesky map :math:`\varphi(P) = \lfloor L\rfloor + \log\mathbb{D}(L)`.

    Parameters
    ----------
    p : Tensor
        ``[..., n, n]`` SPD matrices.

    Returns
    -------
    Tensor
        ``[..., n, n]`` lower-triangular matrices.

    Examples
    --------
    >>> p = torch.tensor([[4.0, 2.0], [2.0, 2.0]], dtype=torch.float64)
    >>> cholesky_log(p)
    tensor([[0.6931, 0.0000],
            [1.0000, 0.0000]], dtype=torch.float64)
    """
    factor = cholesky(p, check=check)
    diag = torch.diagonal(factor, dim1=-2, dim2=-1)  # [..., n]
    return factor.tril(-1) + torch.diag_embed(torch.log(diag))


def cholesky_exp(x: Tensor, *, check: bool = True) -> Tensor:
    r"""Inverse log-Cholesky map; only the lower triangle of ``x`` is read.

    Examples
    --------
    >>> x = torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    >>> cholesky_exp(x)
    tensor([[1., 1.],
            [1., 2.]], dtype=torch.float64)
    """
    if check:
        check_floating(x, "x")
        check_square(x, "x")
        check_finite(x, "x")
    diag = torch.diagonal(x, dim1=-2, dim2=-1)  # [..., n]
    factor = x.tril(-1) + torch.diag_embed(torch.exp(diag))
    return factor @ factor.transpose(-1, -2)
