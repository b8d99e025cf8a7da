"""SPD geometries behind one protocol, and the batch norm that runs on them."""

from .aim import AffineInvariant
from .batchnorm import BuresWassersteinBatchNorm, LieBatchNorm, RiemannianBatchNorm, SPDBatchNorm
from .bw import BuresWasserstein, GeneralizedBuresWasserstein
from .lcm import LogCholesky
from .lem import LogEuclidean
from .protocol import SPDGeometry
from .registry import available_geometries, get_geometry, register_geometry

__all__ = [
    "AffineInvariant",
    "available_geometries",
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
