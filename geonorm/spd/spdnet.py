r"""A reference SPDNet with pluggable Riemannian batch normalization.

Huang & Van Gool (AAAI 2017): stacked ``BiMap -> ReEig`` blocks reduce the
SPD input, ``LogEig`` maps to a vector space and a linear layer classifies.
Following Brooks et al. (2019) and Chen et al. (2024), an optional batch
norm sits between each BiMap and ReEig.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch
from torch import nn

from .batchnorm import BuresWassersteinBatchNorm, LieBatchNorm, SPDBatchNorm
from .layers import BiMap, LogEig, ReEig

Tensor = torch.Tensor

__all__ = ["SPDNet", "BATCHNORMS", "make_batchnorm"]

BATCHNORMS: dict[str, Callable[..., nn.Module]] = {
    "spdbn": SPDBatchNorm,
    "lie": LieBatchNorm,  # metric from the options (default "aim")
    "lie-aim": partial(LieBatchNorm, metric="aim"),
    "lie-lem": partial(LieBatchNorm, metric="lem"),
    "lie-lcm": partial(LieBatchNorm, metric="lcm"),
    "gbw": BuresWassersteinBatchNorm,
}


def make_batchnorm(kind: str | None, n: int, **kwargs) -> nn.Module:
    """A batch norm by name (``None``/``"none"``: identity), see :data:`BATCHNORMS`.

    ``"lie-aim"``, ``"lie-lem"`` and ``"lie-lcm"`` fix the metric; a
    ``metric`` option that names another one raises ``ValueError`` (use
    ``"lie"`` with ``metric=...``, or the matching name).

    >>> make_batchnorm("lie", 3, metric="lem").metric
    'lem'
    """
    if kind is None or kind == "none":
        return nn.Identity()
    if kind not in BATCHNORMS:
        raise ValueError(f"batchnorm: expected one of {['none', *BATCHNORMS]}, got {kind!r}")
    factory = BATCHNORMS[kind]
    fixed = getattr(factory, "keywords", {}).get("metric")
    if fixed is not None and "metric" in kwargs:
        given = kwargs.pop("metric")
        if str(given).lower() != fixed:
            raise ValueError(
                f"batchnorm_kwargs: metric={given!r} contradicts batchnorm={kind!r}; use "
                f"batchnorm='lie' with metric={given!r}, or batchnorm='lie-{str(given).lower()}'"
            )
    return factory(n, **kwargs)


class SPDNet(nn.Module):
    r"""SPDNet classifier on ``[B, n, n]`` (or ``[B, C, n, n]``) SPD matrices.

    Parameters
    ----------
    n : int
        Input matrix size.
    n_classes : int
        Number of output logits.
    dims : sequence of int
        Output size of each ``BiMap -> [BN] -> ReEig`` block.
    batchnorm : str, optional
        ``None``/``"none"``, ``"spdbn"``, ``"lie"`` (metric in
        ``batchnorm_kwargs``, default AIM), ``"lie-aim"``, ``"lie-lem"``,
        ``"lie-lcm"`` or ``"gbw"``; options in ``batchnorm_kwargs`` (e.g.
        ``metric``, ``theta``, ``karcher_steps``).
    channels : int, optional
        Input channels (filter-bank covariances ``[B, C, n, n]``); the first
        BiMap mixes them into one.
    reeig_eps : float
        Eigenvalue floor of :class:`ReEig` (absolute: scale the input so that
        its eigenvalues are well above it, e.g. EEG in microvolts or
        ``covariance(..., trace_normalize=True)``).
    dropout : float
        Dropout on the log-vector before the classifier.
    bimap_kwargs : dict, optional
        Options of every :class:`BiMap` (``init``, ``parametrization``).

    Examples
    --------
    >>> net = SPDNet(6, 3, dims=(4,), batchnorm="lie-lem", dtype=torch.float64)
    >>> net(torch.eye(6, dtype=torch.float64).expand(5, 6, 6) * 2).shape
    torch.Size([5, 3])
    """

    def __init__(
        self,
        n: int,
        n_classes: int,
        *,
        dims: Sequence[int] = (8,),
        batchnorm: str | None = None,
        batchnorm_kwargs: dict | None = None,
        channels: int | None = None,
        reeig_eps: float = 1e-4,
        dropout: float = 0.0,
        bimap_kwargs: dict | None = None,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if not dims:
            raise ValueError("dims: expected at least one block size")
        factory = {"device": device, "dtype": dtype}
        blocks: list[nn.Module] = []
        prev = n
        for i, d in enumerate(dims):
            mixing = {"channels": channels, "out_channels": 1} if i == 0 and channels else {}
            blocks.append(BiMap(prev, d, **mixing, **(bimap_kwargs or {}), **factory))
            if mixing:
                blocks.append(_Squeeze())
            blocks.append(make_batchnorm(batchnorm, d, **(batchnorm_kwargs or {}), **factory))
            blocks.append(ReEig(reeig_eps))
            prev = d
        self.features = nn.Sequential(*blocks, LogEig("triu"))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(prev * (prev + 1) // 2, n_classes, **factory)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.dropout(self.features(x)))


class _Squeeze(nn.Module):
    """``[B, 1, m, m] -> [B, m, m]`` after a channel-mixing BiMap."""

    def forward(self, x: Tensor) -> Tensor:
        return x.squeeze(1)
