"""Clifford (geometric) algebra: the algebra, versors, GCAN and CGENN layers.

* :class:`CliffordAlgebra`: multivectors as tensors ``[..., 2^n]``, products
  restricted to the Cayley table's non-zero entries, involutions, norms,
  versor inverse, the twisted sandwich action, exponential of bivectors.
"""

from .algebra import CliffordAlgebra

__all__ = ["CliffordAlgebra"]
