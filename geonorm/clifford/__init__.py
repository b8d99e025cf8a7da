"""Clifford (geometric) algebra: the algebra, versors, GCAN and CGENN layers.

* :class:`CliffordAlgebra`: multivectors as tensors ``[..., 2^n]``, products
  restricted to the Cayley table's non-zero entries, involutions, norms,
  versor inverse, the twisted sandwich action, exponential of bivectors.

* CGENN (Ruhe et al., NeurIPS 2023): :class:`MultivectorLinear`,
  :class:`SteerableGeometricProduct`, :class:`MultivectorSiLU`,
  :class:`MultivectorLayerNorm`, :class:`MultivectorGradeNorm`; the reference
  networks :class:`MultivectorMLP` and :class:`NBodyCGENN`.
"""

from .algebra import CliffordAlgebra
from .cgenn import (
    MultivectorGradeNorm,
    MultivectorLayerNorm,
    MultivectorLinear,
    MultivectorSiLU,
    SteerableGeometricProduct,
)
from .models import MultivectorMLP, NBodyCGENN

__all__ = [
    "CliffordAlgebra",
    "MultivectorGradeNorm",
    "MultivectorLayerNorm",
    "MultivectorLinear",
    "MultivectorMLP",
    "MultivectorSiLU",
    "NBodyCGENN",
    "SteerableGeometricProduct",
]
