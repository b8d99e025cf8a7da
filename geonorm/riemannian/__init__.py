"""One batch norm over a small geometry protocol, shared by every room.

* :class:`Geometry`: the protocol (points, origin, chart, statistics, the
  batch-norm steps, log/exp/transport).
* :class:`RiemannianBatchNorm`: centre, scale and bias on any geometry, with
  running statistics along geodesics.
* :func:`get_geometry`, :func:`register_geometry`,
  :func:`available_geometries`: one registry for SPD metrics and the ball.
* :func:`normalise_weights`, :func:`weighted_sum`: weighted statistics with a
  cross-rank ``reduce``.
"""

from .batchnorm import RiemannianBatchNorm
from .protocol import Geometry
from .registry import available_geometries, build_geometry, get_geometry, register_geometry
from .stats import Reduce, converged, normalise_weights, weighted_sum

__all__ = [
    "available_geometries",
    "build_geometry",
    "converged",
    "Geometry",
    "get_geometry",
    "normalise_weights",
    "Reduce",
    "register_geometry",
    "RiemannianBatchNorm",
    "weighted_sum",
]
