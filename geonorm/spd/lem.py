r"""The (α, β) Log-Euclidean metric (Arsigny et al. 2007; Thanwerdas & Pennec 2019).

.. math::

    d(P, Q)^2 = \alpha \lVert \log P - \log Q \rVert_F^2
        + \beta \left(\mathrm{tr}(\log P - \log Q)\right)^2 .

Invariant under orthogonal congruence :math:`P \mapsto O P O^\top` and
inversion; the Fréchet mean :math:`\exp(\sum_b w_b \log P_b)` is closed form.
A power deformation would leave it unchanged (:math:`\log(P^\theta)/\theta =
\log P`), so it has no θ.
"""

from __future__ import annotations

import torch

from ..linalg import sym_expm, sym_logm
from .flat import FlatGeometry
from .layers import log_of_reeig_output
from .tangent import lem_exp, lem_log, lem_transport

Tensor = torch.Tensor

__all__ = ["LogEuclidean"]


class LogEuclidean(FlatGeometry):
    r"""The (α, β)-LEM geometry; coordinates are :math:`\log P`.

    Examples
    --------
    >>> g = LogEuclidean()
    >>> x = torch.diag_embed(torch.tensor([[1.0, 4.0], [4.0, 1.0]], dtype=torch.float64))
    >>> torch.diagonal(g.frechet_mean(x))
    tensor([2., 2.], dtype=torch.float64)
    """

    name = "lem"
    _encode_factorizes = True  # a matrix logarithm per call

    def __init__(self, *, alpha: float = 1.0, beta: float = 0.0) -> None:
        super().__init__(theta=1.0, alpha=alpha, beta=beta)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha:g}, beta={self.beta:g}"

    def encode(self, x: Tensor) -> Tensor:
        return sym_logm(x, check=False)

    def decode(self, z: Tensor) -> Tensor:
        return sym_expm(z, check=False)

    def _encode_and_check(self, x: Tensor, name: str) -> Tensor:
        """The logarithm's eigendecomposition vouches for positive definiteness."""
        return sym_logm(x, check=True)

    def _encode_reeig_output(self, x: Tensor) -> Tensor:
        """ReEig's eigendecomposition gives the logarithm, differentiated to ReEig's input."""
        log = log_of_reeig_output(x)
        return sym_logm(x, check=False) if log is None else log

    def log(self, x: Tensor, y: Tensor) -> Tensor:
        r""":math:`\mathrm{Log}_x(y) = (D\log_x)^{-1}(\log y - \log x)`."""
        return lem_log(x, y)

    def exp(self, x: Tensor, v: Tensor) -> Tensor:
        return lem_exp(x, v)

    def transport(self, x: Tensor, y: Tensor, v: Tensor) -> Tensor:
        r"""Parallel transport :math:`(D\log_y)^{-1} D\log_x [v]`."""
        return lem_transport(x, y, v)

    def log_identity(self, x: Tensor) -> Tensor:
        return sym_logm(x, check=False)

    def exp_identity(self, v: Tensor) -> Tensor:
        return sym_expm(v, check=False)
