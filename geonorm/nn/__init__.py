"""geonorm's public layers, re-exported flat: ``from geonorm.nn import LieBatchNorm``."""

from ..clifford.gcan import GroupActionLinear, MultivectorScalarGate
from ..clifford.cgenn import MultivectorLayerNorm, MultivectorLinear, MultivectorSiLU, SteerableGeometricProduct
from ..o3.escnn_norm import FieldInstanceNorm, FieldLayerNorm
from ..o3.frames import FrameAveraging
from ..o3.gaunt import GauntTensorProduct
from ..o3.norm import EquivariantLayerNorm, EquivariantRMSNorm
from ..hyperbolic.batchnorm import PoincareBatchNorm, PoincareBatchNorm2d
from ..hyperbolic.conv import PoincareConv2d
from ..hyperbolic.linear import PoincareLinear
from ..hyperbolic.residual import PoincareReLU, PoincareResidualBlock
from ..riemannian.batchnorm import RiemannianBatchNorm
from ..spd.batchnorm import BuresWassersteinBatchNorm, LieBatchNorm, SPDBatchNorm
from ..spd.pooling import Covariance
from ..spd.layers import BiMap, ExpEig, LogEig, ReEig

__all__ = [
    "BiMap",
    "BuresWassersteinBatchNorm",
    "Covariance",
    "EquivariantLayerNorm",
    "EquivariantRMSNorm",
    "ExpEig",
    "FieldInstanceNorm",
    "FieldLayerNorm",
    "FrameAveraging",
    "GauntTensorProduct",
    "GroupActionLinear",
    "LieBatchNorm",
    "LogEig",
    "MultivectorLayerNorm",
    "MultivectorLinear",
    "MultivectorScalarGate",
    "MultivectorSiLU",
    "PoincareBatchNorm",
    "PoincareBatchNorm2d",
    "PoincareConv2d",
    "PoincareLinear",
    "PoincareReLU",
    "PoincareResidualBlock",
    "ReEig",
    "RiemannianBatchNorm",
    "SPDBatchNorm",
    "SteerableGeometricProduct",
]
