"""SPD geometries behind one protocol, and the batch norm that runs on them."""

from .aim import AffineInvariant
from .batchnorm import BuresWassersteinBatchNorm, LieBatchNorm, RiemannianBatchNorm, SPDBatchNorm
from .bw import BuresWasserstein, GeneralizedBuresWasserstein
from .pooling import Covariance, covariance, delay_embed
from .layers import BiMap, ExpEig, LogEig, ReEig
from .lcm import LogCholesky
from .lem import LogEuclidean
from .protocol import SPDGeometry
from .registry import available_geometries, get_geometry, register_geometry
from .spdnet import SPDNet

__all__ = [
    "AffineInvariant",
    "available_geometries",
    "BiMap",
    "Covariance",
    "covariance",
    "delay_embed",
    "ExpEig",
    "LogEig",
    "ReEig",
    "SPDNet",
    "BuresWasserstein",
    "BuresWassersteinBatchNorm",
    "GeneralizedBuresWasserstein",
    "get_geometry",
    "LieBatchNorm",
    "LogCholesky",
    "LogEuclidean",
    "register_geometry",
    "RiemannianBatchNorm",
    "SPDBatchNorm",
    "SPDGeometry",
]
