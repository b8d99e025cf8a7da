r"""Shared code of the flat geometries: Log-Euclidean and Log-Cholesky.

Both are pullbacks of a Euclidean inner product by a diffeomorphism
:math:`\phi` (the matrix logarithm; the log-Cholesky map after a power
:math:`P^\theta`), so in the coordinates :math:`z = \phi(P)` the Fréchet mean
is the arithmetic mean, centring and biasing are subtraction and addition,
scaling is multiplication and geodesics are straight lines. The inner product
on coordinates is the O(n)-invariant
:math:`\alpha\,\mathrm{tr}(VW) + \beta\,\mathrm{tr}(V)\mathrm{tr}(W)`, divided
by :math:`\theta^2` for the power deformation.
"""

from __future__ import annotations

import torch

from .._numerics import safe_sqrt
from ._params import check_alpha_beta, check_beta_bound, check_theta
from ..riemannian.stats import Reduce, normalise_weights, weighted_sum
from .inner import alpha_beta_inner, trace
from .protocol import SPDGeometry

Tensor = torch.Tensor


class FlatGeometry(SPDGeometry):
    """An SPD geometry that is Euclidean in its coordinates (see module notes)."""

    def __init__(self, *, theta: float = 1.0, alpha: float = 1.0, beta: float = 0.0) -> None:
        super().__init__()
        self.theta = check_theta(theta)
        self.alpha, self.beta = check_alpha_beta(alpha, beta)

    def check_dimension(self, n: int) -> None:
        check_beta_bound(self.alpha, self.beta, n)

    def neutral(self, dim: int, *, dtype=None, device=None) -> Tensor:
        """The zero matrix: the chart image of the identity."""
        return torch.zeros(dim, dim, dtype=dtype, device=device)

    def _sq_norm(self, v: Tensor) -> Tensor:
        """(α ‖v‖² + β tr(v)²) / θ² for coordinates ``[..., n, n]`` -> ``[...]``."""
        d2 = v.square().sum((-2, -1))
        if self.alpha != 1.0:
            d2 = self.alpha * d2
        if self.beta != 0.0:
            d2 = d2 + self.beta * trace(v).square()
        return d2 if self.theta == 1.0 else d2 / self.theta**2

    def mean(
        self,
        z: Tensor,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
        init: Tensor | None = None,
        steps: int | None = None,
    ) -> Tensor:
        """Arithmetic mean of the coordinates (exact; ``init``/``steps`` unused)."""
        return weighted_sum(z, normalise_weights(z, weights, 2), reduce, 2)

    def variance(
        self,
        z: Tensor,
        mean: Tensor | None = None,
        weights: Tensor | None = None,
        *,
        reduce: Reduce | None = None,
    ) -> Tensor:
        v = z if mean is None else z - mean
        return weighted_sum(self._sq_norm(v), normalise_weights(z, weights, 2), reduce, 0)

    def centre(self, z: Tensor, mean: Tensor) -> Tensor:
        return z - mean

    def bias(self, z: Tensor, point: Tensor) -> Tensor:
        return z + point

    def scale(self, z: Tensor, factor: Tensor) -> Tensor:
        return z * factor.unsqueeze(-1).unsqueeze(-1)

    def interpolate(self, a: Tensor, b: Tensor, t: float | Tensor) -> Tensor:
        if isinstance(t, torch.Tensor):
            t = t.unsqueeze(-1).unsqueeze(-1)
        return a + t * (b - a)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        return safe_sqrt(self._sq_norm(self.encode(x) - self.encode(y)))

    def inner_identity(self, u: Tensor, v: Tensor) -> Tensor:
        r""":math:`\alpha\,\mathrm{tr}(uv) + \beta\,\mathrm{tr}(u)\mathrm{tr}(v)` on tangent vectors at I."""
        return alpha_beta_inner(self.alpha, self.beta, u, v)
