"""Reference models built from geonorm layers: ``from geonorm.models import SPDNet``."""

from ..clifford.models import MultivectorMLP, NBodyCGENN
from ..spd.spdnet import SPDNet

__all__ = ["MultivectorMLP", "NBodyCGENN", "SPDNet"]
