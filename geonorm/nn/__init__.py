"""geonorm's public layers, re-exported flat: ``from geonorm.nn import LieBatchNorm``."""

from ..spd.batchnorm import (
    BuresWassersteinBatchNorm,
    LieBatchNorm,
    RiemannianBatchNorm,
    SPDBatchNorm,
)
from ..spd.covariance import Covariance
from ..spd.layers import BiMap, ExpEig, LogEig, ReEig

__all__ = [
    "BiMap",
    "BuresWassersteinBatchNorm",
    "Covariance",
    "ExpEig",
    "LieBatchNorm",
    "LogEig",
    "ReEig",
    "RiemannianBatchNorm",
    "SPDBatchNorm",
]
