r"""Gradient checks for functions of SPD matrices.

``torch.autograd.gradcheck`` perturbs one entry at a time by a fixed step,
which breaks symmetry and, for ill-conditioned matrices, positive
definiteness. :func:`spd_gradcheck` checks :math:`f` at :math:`X` through the
relative perturbation

.. math::

    E \mapsto f\big(C (I + \operatorname{sym}(E)) C\big), \qquad C = X^{1/2},

at :math:`E = 0`: every symmetric direction is reached (``C`` is invertible),
each perturbation is relative to :math:`X`'s own scale in every eigen-direction,
and the input stays symmetric positive definite however :math:`X` is
conditioned.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.autograd import gradcheck, gradgradcheck

from ..linalg import sym, sym_sqrtm

Tensor = torch.Tensor

__all__ = ["spd_gradcheck"]


def spd_gradcheck(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    *,
    second_order: bool = False,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> bool:
    """``gradcheck`` (and optionally ``gradgradcheck``) of ``f`` at SPD ``x`` in float64.

    Parameters
    ----------
    f : callable
        Maps ``[..., n, n]`` SPD matrices to a tensor.
    x : Tensor
        The point, ``[..., n, n]`` SPD (cast to float64).
    second_order : bool
        Also run ``gradgradcheck``.
    atol, rtol : float
        Tolerances passed to ``torch.autograd.gradcheck``.

    Returns
    -------
    bool
        ``True``; a mismatch raises ``torch.autograd.gradcheck.GradcheckError``.

    Examples
    --------
    >>> from geonorm.linalg import sym_logm
    >>> x = torch.diag(torch.tensor([1e-8, 1.0, 1.0], dtype=torch.float64))
    >>> spd_gradcheck(lambda a: sym_logm(a, check=False), x, second_order=True)
    True
    """
    x = x.detach().to(torch.float64)
    root = sym_sqrtm(x)
    eye = torch.eye(x.shape[-1], dtype=torch.float64)

    def at(e: Tensor) -> Tensor:
        return f(sym(root @ (eye + sym(e)) @ root))

    e = torch.zeros_like(x, requires_grad=True)
    ok = gradcheck(at, (e,), atol=atol, rtol=rtol)
    if second_order:
        ok = ok and gradgradcheck(at, (e,), atol=atol, rtol=rtol)
    return ok
