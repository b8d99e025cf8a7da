"""Layers on e3nn irreps: equivariant norms and the Gaunt tensor product.

Later issues add frames (frame averaging) here.
"""

from .escnn_norm import FieldInstanceNorm, FieldLayerNorm
from .gaunt import GauntTensorProduct, gaunt_coefficients, gaunt_tensor_product
from .norm import (
    EquivariantLayerNorm,
    EquivariantRMSNorm,
    IrrepsNormLayout,
    equivariant_layer_norm,
    equivariant_rms_norm,
)

__all__ = [
    "equivariant_layer_norm",
    "equivariant_rms_norm",
    "EquivariantLayerNorm",
    "EquivariantRMSNorm",
    "FieldInstanceNorm",
    "FieldLayerNorm",
    "gaunt_coefficients",
    "gaunt_tensor_product",
    "GauntTensorProduct",
    "IrrepsNormLayout",
]
