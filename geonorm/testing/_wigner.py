r"""Wigner D-matrices of e3nn irreps, exact to float64 rounding.

``e3nn.o3.Irreps.D_from_matrix`` builds its Lie-algebra generators in the
*default* dtype, so with torch's default float32 its float64 D-matrices are
only accurate to about ``1e-7`` — too coarse for a float64 equivariance check
with ``rtol = 1e-9`` (a model built from float64 Clebsch–Gordan coefficients
would fail it). This module repeats e3nn's construction (same real basis,
same Euler-angle convention, same parity rule) with float64 generators and no
global state, so :func:`irreps_D_from_matrix` agrees with
``Irreps.D_from_matrix`` evaluated under a float64 default dtype to about
``1e-14``.
"""

from __future__ import annotations

import functools

import torch
from e3nn import o3

Tensor = torch.Tensor

__all__ = ["irreps_D_from_matrix", "matrix_to_angles"]


@functools.lru_cache(maxsize=None)
def _so3_generators(ell: int) -> Tensor:
    """Real ``[3, 2l+1, 2l+1]`` float64 generators in e3nn's basis (do not mutate)."""
    j = ell
    m = torch.arange(-j, j, dtype=torch.float64)
    raising = torch.diag(-torch.sqrt(j * (j + 1) - m * (m + 1)), diagonal=-1)
    m = torch.arange(-j + 1, j + 1, dtype=torch.float64)
    lowering = torch.diag(torch.sqrt(j * (j + 1) - m * (m - 1)), diagonal=1)
    m = torch.arange(-j, j + 1, dtype=torch.float64)
    su2 = torch.stack(
        [
            (0.5 * (raising + lowering)).to(torch.complex128),
            torch.diag(1j * m.to(torch.complex128)),
            -0.5j * (raising - lowering).to(torch.complex128),
        ]
    )  # [3, 2l+1, 2l+1]
    q = torch.zeros(2 * ell + 1, 2 * ell + 1, dtype=torch.complex128)
    s = 2.0**-0.5
    for mm in range(-ell, 0):
        q[ell + mm, ell + abs(mm)] = s
        q[ell + mm, ell - abs(mm)] = -1j * s
    q[ell, ell] = 1
    for mm in range(1, ell + 1):
        q[ell + mm, ell + abs(mm)] = (-1) ** mm * s
        q[ell + mm, ell - abs(mm)] = 1j * (-1) ** mm * s
    q = (-1j) ** ell * q
    x = q.conj().T @ su2 @ q  # [3, 2l+1, 2l+1]
    return x.real.contiguous()


def matrix_to_angles(r: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    r"""e3nn's Euler angles :math:`(\alpha, \beta, \gamma)` of a proper ``[..., 3, 3]`` rotation.

    Same convention as ``e3nn.o3.matrix_to_angles`` but with :math:`\beta`
    from ``atan2`` (``acos`` loses half the digits near :math:`\beta = 0`).
    """
    y = r[..., :, 1]  # [..., 3]  image of e_y
    alpha = torch.atan2(y[..., 0], y[..., 2])
    beta = torch.atan2(torch.hypot(y[..., 0], y[..., 2]), y[..., 1])
    r0 = o3.angles_to_matrix(alpha, beta, torch.zeros_like(alpha))
    rest = r0.transpose(-1, -2) @ r  # [..., 3, 3] rotation about y by gamma
    gamma = torch.atan2(rest[..., 0, 2], rest[..., 0, 0])
    return alpha, beta, gamma


def irreps_D_from_matrix(irreps: o3.Irreps, r: Tensor) -> Tensor:
    r"""Block-diagonal ``[dim, dim]`` representation of one ``[3, 3]`` orthogonal matrix.

    For an improper ``r`` (:math:`\det r = -1`) the block of irrep
    :math:`(l, p)` is :math:`p\, D^l(-r)`, as in e3nn. Computed in float64.

    >>> r = torch.tensor([[0., -1., 0.], [1., 0., 0.], [0., 0., 1.]], dtype=torch.float64)
    >>> irreps_D_from_matrix(o3.Irreps("1o"), r).round(decimals=12) + 0.0
    tensor([[ 0., -1.,  0.],
            [ 1.,  0.,  0.],
            [ 0.,  0.,  1.]], dtype=torch.float64)
    """
    r = r.to(torch.float64)
    d = 1.0 if float(torch.linalg.det(r)) > 0 else -1.0
    alpha, beta, gamma = matrix_to_angles(d * r)
    blocks = []
    for mul, ir in irreps:
        x = _so3_generators(ir.l)
        dl = (
            torch.linalg.matrix_exp(alpha * x[1])
            @ torch.linalg.matrix_exp(beta * x[0])
            @ torch.linalg.matrix_exp(gamma * x[1])
        )  # [2l+1, 2l+1]
        if d < 0 and ir.p == -1:
            dl = -dl
        blocks.extend([dl] * mul)
    if not blocks:
        return torch.zeros(0, 0, dtype=torch.float64)
    return torch.block_diag(*blocks)
