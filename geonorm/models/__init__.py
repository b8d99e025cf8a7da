"""Reference models built from geonorm layers: ``from geonorm.models import SPDNet``."""

from ..spd.spdnet import SPDNet
from .resnet import PoincareResNet, ResNet

__all__ = ["PoincareResNet", "ResNet", "SPDNet"]
