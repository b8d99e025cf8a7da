"""Layers on e3nn irreps: equivariant norms and the Gaunt tensor product.

Frame averaging (:class:`FrameAveraging`) makes any backbone E(d)/O(d)/SO(d)
equivariant.
"""

from .escnn_norm import FieldInstanceNorm, FieldLayerNorm
from .frames import FRAME_GROUPS, FrameAveraging
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
    "FRAME_GROUPS",
    "FrameAveraging",
    "gaunt_coefficients",
    "gaunt_tensor_product",
    "GauntTensorProduct",
    "IrrepsNormLayout",
]
