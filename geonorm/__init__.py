"""geonorm: manifold-aware and equivariant normalization layers for PyTorch."""

from . import linalg

__version__ = "0.1.0.dev0"

__all__ = ["__version__", "linalg"]
