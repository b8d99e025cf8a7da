"""geonorm: manifold-aware and equivariant normalization layers for PyTorch."""

from . import linalg, models, nn, o3, spd
from .spd import get_geometry

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "get_geometry", "linalg", "nn", "o3", "spd"]
