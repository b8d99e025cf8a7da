"""The Poincaré ball: gyrovector maps, means, the ball geometry, its batch norm, and
the Poincaré FC / convolution / residual layers of Poincaré ResNet.

Pure functions on points ``[..., d]`` of the ball of curvature ``-c``
(``c > 0``, the magnitude the caller passes): :mod:`geonorm.hyperbolic.ball`
holds the maps, :mod:`geonorm.hyperbolic.means` the weighted statistics over
dimension 0 that Poincaré batch norm uses.

>>> import torch
>>> from geonorm.hyperbolic import gyromidpoint, distance
>>> x = torch.tensor([[0.5, 0.0], [-0.5, 0.0]], dtype=torch.float64)
>>> gyromidpoint(x, c=1.0)
tensor([0., 0.], dtype=torch.float64)
"""

from .ball import (
    check_curvature,
    check_in_ball,
    conformal_factor,
    distance,
    expmap,
    expmap0,
    gyration,
    logmap,
    logmap0,
    mobius_add,
    mobius_scalar_mul,
    project,
    transport,
)
from .batchnorm import PoincareBatchNorm, PoincareBatchNorm2d, recalibrate_running_stats
from .conv import PoincareConv2d, beta_concat, beta_ratio, conv_output_size
from .geometry import PoincareBall
from .linear import PoincareLinear, hyperplane_distances, poincare_fc
from .means import frechet_mean, frechet_variance, gyromidpoint
from .residual import PoincareReLU, PoincareResidualBlock, poincare_relu, poincare_residual

__all__ = [
    "PoincareBall",
    "PoincareBatchNorm",
    "PoincareBatchNorm2d",
    "PoincareConv2d",
    "PoincareLinear",
    "PoincareReLU",
    "PoincareResidualBlock",
    "beta_concat",
    "beta_ratio",
    "check_curvature",
    "check_in_ball",
    "conformal_factor",
    "conv_output_size",
    "distance",
    "expmap",
    "expmap0",
    "frechet_mean",
    "frechet_variance",
    "gyration",
    "gyromidpoint",
    "hyperplane_distances",
    "logmap",
    "logmap0",
    "mobius_add",
    "mobius_scalar_mul",
    "poincare_fc",
    "poincare_relu",
    "poincare_residual",
    "project",
    "recalibrate_running_stats",
    "transport",
]
