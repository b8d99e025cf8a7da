"""geonorm's public layers, re-exported flat: ``from geonorm.nn import LieBatchNorm``."""

from ..spd.batchnorm import (
    BuresWassersteinBatchNorm,
    LieBatchNorm,
    RiemannianBatchNorm,
    SPDBatchNorm,
)

__all__ = [
    "BuresWassersteinBatchNorm",
    "LieBatchNorm",
    "RiemannianBatchNorm",
    "SPDBatchNorm",
]
