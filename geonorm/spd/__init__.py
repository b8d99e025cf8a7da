"""SPD matrices: geometries (one file per metric), SPDNet layers and the batch-norm presets."""

from .aim import AffineInvariant
from ..riemannian import RiemannianBatchNorm, available_geometries, get_geometry, register_geometry
from .batchnorm import BuresWassersteinBatchNorm, LieBatchNorm, SPDBatchNorm
from .bw import BuresWasserstein, GeneralizedBuresWasserstein
from .pooling import Covariance, covariance, delay_embed
from .layers import BiMap, ExpEig, LogEig, ReEig
from .lcm import LogCholesky
from .lem import LogEuclidean
from .protocol import SPDGeometry, SPDManifold
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
    "SPDManifold",
]
