r"""The θ Log-Cholesky metric (Lin 2019; power-deformed by Chen et al. 2024).

With :math:`\varphi(P) = \lfloor L \rfloor + \log \mathbb{D}(L)` for the
Cholesky factor :math:`P = L L^\top` (:func:`geonorm.linalg.cholesky_log`),

.. math::

    d(P, Q)^2 = \frac{1}{\theta^2}\left(\alpha \lVert \varphi(P^\theta)
        - \varphi(Q^\theta) \rVert_F^2 + \beta\, \mathrm{tr}(\varphi(P^\theta)
        - \varphi(Q^\theta))^2\right).

The official LieBN code uses α = 1, β = 0 (it ignores other values);
geonorm, like spd-learn, applies them. The metric is not invariant under
orthogonal congruence (the Cholesky factor depends on the basis), but the
mean, centring and scaling are closed form and need no eigendecomposition
when θ = 1.
"""

from __future__ import annotations

import torch

from ..linalg import cholesky_exp, cholesky_log, sym_powm
from .flat import FlatGeometry
from .tangent import lcm_exp, lcm_log, lcm_transport

Tensor = torch.Tensor

__all__ = ["LogCholesky"]


class LogCholesky(FlatGeometry):
    r"""The θ-LCM geometry; coordinates are :math:`\varphi(P^\theta)` (lower-triangular).

    Examples
    --------
    >>> g = LogCholesky()
    >>> x = torch.diag_embed(torch.tensor([[1.0, 4.0], [4.0, 1.0]], dtype=torch.float64))
    >>> torch.diagonal(g.frechet_mean(x))
    tensor([2., 2.], dtype=torch.float64)
    """

    name = "lcm"
    _encode_factorizes = True  # a Cholesky factorization (and a power) per call

    def extra_repr(self) -> str:
        return f"theta={self.theta:g}, alpha={self.alpha:g}, beta={self.beta:g}"

    def encode(self, x: Tensor) -> Tensor:
        if self.theta != 1.0:
            x = sym_powm(x, self.theta, check=False)
        return cholesky_log(x, check=False)

    def decode(self, z: Tensor) -> Tensor:
        p = cholesky_exp(z, check=False)
        return p if self.theta == 1.0 else sym_powm(p, 1.0 / self.theta, check=False)

    def _encode_and_check(self, x: Tensor, name: str) -> Tensor:
        """The power's eigendecomposition (θ ≠ 1) or the Cholesky factorization vouches for x."""
        if self.theta != 1.0:
            x = sym_powm(x, self.theta, check=True)
            return cholesky_log(x, check=False)
        return cholesky_log(x, check=True)

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        return lcm_log(x, y, theta=self.theta)

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        return lcm_exp(x, v, theta=self.theta)

    def transport(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        """Parallel transport (the identity on the flat chart's coordinates)."""
        return lcm_transport(x, y, v, theta=self.theta)

    def log_identity(self, x: Tensor) -> Tensor:
        r"""Pull back :math:`\varphi(x^\theta) / \theta` by the chart's differential at I.

        The log-Cholesky map has :math:`d\varphi_I(V) = \lfloor V \rfloor +
        \tfrac12 \mathbb{D}(V)`, whose inverse is :math:`L \mapsto L + L^\top`.
        """
        lower = self.encode(x) / self.theta
        return lower + lower.transpose(-1, -2)

    def exp_identity(self, v: Tensor) -> Tensor:
        lower = v.tril(-1) + 0.5 * torch.diag_embed(torch.diagonal(v, dim1=-2, dim2=-1))
        return self.decode(self.theta * lower)

    def inner_identity(self, u: Tensor, v: Tensor) -> Tensor:
        r"""The (α, β) inner product of the chart images :math:`d\varphi_I(u), d\varphi_I(v)`."""
        du = u.tril(-1) + 0.5 * torch.diag_embed(torch.diagonal(u, dim1=-2, dim2=-1))
        dv = v.tril(-1) + 0.5 * torch.diag_embed(torch.diagonal(v, dim1=-2, dim2=-1))
        return super().inner_identity(du, dv)
