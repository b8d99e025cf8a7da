r"""SPD batch-norm presets on :class:`~geonorm.riemannian.RiemannianBatchNorm`.

:class:`LieBatchNorm` (LieBN), :class:`BuresWassersteinBatchNorm` (GBWBN) and
:class:`SPDBatchNorm` (SPDNetBN) only choose a geometry and its defaults; the
batch norm itself is the one module of :mod:`geonorm.riemannian`. Inputs are
``[B, n, n]`` or ``[B, C, n, n]`` (``channels=C``).
"""

from __future__ import annotations

import torch  # noqa: F401  (doctest namespace)

from .._checks import check_int
from ..riemannian.batchnorm import RiemannianBatchNorm
from .aim import AffineInvariant
from .bw import GeneralizedBuresWasserstein
from .lcm import LogCholesky
from .lem import LogEuclidean
from .protocol import SPDGeometry

__all__ = ["LieBatchNorm", "BuresWassersteinBatchNorm", "SPDBatchNorm"]


def _check_preset(n: int, kwargs: dict, cls: str) -> int:
    """The matrix size, checked under its own name, and no ``geometry`` override."""
    if "geometry" in kwargs:
        raise TypeError(f"geometry: {cls} chooses its geometry; use RiemannianBatchNorm for another")
    return check_int(n, "n")


class LieBatchNorm(RiemannianBatchNorm):
    r"""LieBN: Lie-group batch normalization (Chen, Song, Liu, Sebe, ICLR 2024).

    ``metric`` selects the (θ, α, β)-AIM (Cholesky group translation), the
    (α, β)-LEM or the θ-LCM geometry; see
    :class:`~geonorm.riemannian.RiemannianBatchNorm` for the other options.
    Defaults follow the official code: ``momentum=0.1``, ``eps=1e-5``, one
    Karcher step (``karcher_steps`` is the AIM geometry's; with one step the
    batch mean is an approximation, so the normalized batch's mean is the
    bias only up to the Karcher flow's residual), detached batch statistics.

    Examples
    --------
    >>> bn = LieBatchNorm(3, metric="lcm", theta=0.5, channels=2, dtype=torch.float64)
    >>> bn(torch.eye(3, dtype=torch.float64).repeat(4, 2, 1, 1) * 2).shape
    torch.Size([4, 2, 3, 3])
    """

    def __init__(
        self,
        n: int,
        metric: str = "aim",
        *,
        theta: float = 1.0,
        alpha: float = 1.0,
        beta: float = 0.0,
        karcher_steps: int = 1,
        **kwargs,
    ) -> None:
        n = _check_preset(n, kwargs, "LieBatchNorm")
        key = metric.lower() if isinstance(metric, str) else metric
        if key == "aim":
            geometry: SPDGeometry = AffineInvariant(
                theta=theta, alpha=alpha, beta=beta, karcher_steps=karcher_steps
            )
        elif key == "lem":
            if theta != 1.0:
                raise ValueError(
                    f"theta: the Log-Euclidean metric is invariant to the power deformation "
                    f"(log(P^theta)/theta = log P); expected theta=1.0, got {theta!r}"
                )
            geometry = LogEuclidean(alpha=alpha, beta=beta)
        elif key == "lcm":
            geometry = LogCholesky(theta=theta, alpha=alpha, beta=beta)
        else:
            raise ValueError(f"metric: expected 'aim', 'lem' or 'lcm', got {metric!r}")
        self.metric = key
        super().__init__(geometry, n, **kwargs)


class BuresWassersteinBatchNorm(RiemannianBatchNorm):
    r"""GBWBN: generalized Bures–Wasserstein batch normalization (Wang et al., CVPR 2025).

    Runs BW batch normalization in the chart :math:`M^{-1/2} P^\theta M^{-1/2}`
    with a learnable SPD metric parameter :math:`M` (``learn_metric=True``;
    one per channel) and a fixed power θ. ``learn_metric=False`` keeps
    :math:`M = I` (plain BW). ``karcher_steps`` (default 1) are the
    barycenter fixed-point iterations of the geometry.

    Examples
    --------
    >>> bn = BuresWassersteinBatchNorm(3, theta=0.5, dtype=torch.float64)
    >>> [name for name, _ in bn.named_parameters()]
    ['bias', 'log_std', 'geometry.metric']
    """

    def __init__(
        self,
        n: int,
        *,
        theta: float = 1.0,
        learn_metric: bool = True,
        karcher_steps: int = 1,
        channels: int | None = None,
        device=None,
        dtype=None,
        **kwargs,
    ) -> None:
        n = _check_preset(n, kwargs, "BuresWassersteinBatchNorm")
        geometry = GeneralizedBuresWasserstein(
            n,
            channels=channels,
            theta=theta,
            karcher_steps=karcher_steps,
            learn_metric=learn_metric,
            device=device,
            dtype=dtype,
        )
        super().__init__(geometry, n, channels=channels, device=device, dtype=dtype, **kwargs)


class SPDBatchNorm(RiemannianBatchNorm):
    r"""SPDNetBN: Riemannian batch normalization (Brooks et al., NeurIPS 2019).

    Affine-invariant centring and biasing by parallel transport,
    :math:`P \mapsto B^{1/2} \mu^{-1/2} P \mu^{-1/2} B^{1/2}`, with no variance
    normalization (so there is no ``running_var``). Statistics are per
    channel. ``karcher_steps`` (default 1, as Brooks et al.) are the AIM
    geometry's.

    Examples
    --------
    >>> bn = SPDBatchNorm(2, dtype=torch.float64)
    >>> x = torch.diag_embed(torch.tensor([[1.0, 4.0], [4.0, 1.0]], dtype=torch.float64))
    >>> bn(x).diagonal(dim1=-2, dim2=-1)
    tensor([[0.5000, 2.0000],
            [2.0000, 0.5000]], dtype=torch.float64, grad_fn=<DiagonalBackward0>)
    """

    def __init__(self, n: int, *, karcher_steps: int = 1, **kwargs) -> None:
        if "scale" in kwargs:
            raise TypeError("scale: SPDBatchNorm never normalizes the variance")
        n = _check_preset(n, kwargs, "SPDBatchNorm")
        geometry = AffineInvariant(translation="sqrt", karcher_steps=karcher_steps)
        super().__init__(geometry, n, scale=False, **kwargs)
