"""Clifford (geometric) algebra: the algebra, versors, GCAN and CGENN layers.

* :class:`CliffordAlgebra`: multivectors as tensors ``[..., 2^n]``, products
  restricted to the Cayley table's non-zero entries, involutions, norms,
  versor inverse, the twisted sandwich action, exponential of bivectors.

* CGENN (Ruhe et al., NeurIPS 2023): :class:`MultivectorLinear`,
  :class:`SteerableGeometricProduct`, :class:`MultivectorSiLU`,
  :class:`MultivectorLayerNorm`, :class:`MultivectorGradeNorm`; the reference
  networks :class:`MultivectorMLP` and :class:`NBodyCGENN`.
* GCAN (Ruhe et al., ICML 2023): :class:`GroupActionLinear` (exactly
  normalised versors / PGA motors), :class:`MultivectorScalarGate`,
  :func:`normalize_versor`, :func:`pga_points`, :func:`pga_point_coordinates`.
"""

from .algebra import CliffordAlgebra
from .cgenn import (
    MultivectorGradeNorm,
    MultivectorLayerNorm,
    MultivectorLinear,
    MultivectorSiLU,
    SteerableGeometricProduct,
)
from .gcan import GroupActionLinear, MultivectorScalarGate, normalize_versor, pga_point_coordinates, pga_points
from .models import MultivectorMLP, NBodyCGENN

__all__ = [
    "CliffordAlgebra",
    "GroupActionLinear",
    "MultivectorGradeNorm",
    "MultivectorLayerNorm",
    "MultivectorLinear",
    "MultivectorMLP",
    "MultivectorScalarGate",
    "MultivectorSiLU",
    "NBodyCGENN",
    "SteerableGeometricProduct",
    "normalize_versor",
    "pga_point_coordinates",
    "pga_points",
]
