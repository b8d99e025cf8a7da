"""Reference models built from geonorm layers: ``from geonorm.models import SPDNet``."""

from ..clifford.models import MultivectorMLP, NBodyCGENN
from ..spd.spdnet import SPDNet
from .resnet import PoincareResNet, ResNet

__all__ = ["MultivectorMLP", "NBodyCGENN", "PoincareResNet", "ResNet", "SPDNet"]
