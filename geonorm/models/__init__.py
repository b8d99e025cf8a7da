"""Reference models built from geonorm layers: ``from geonorm.models import SPDNet``."""

from ..spd.spdnet import SPDNet

__all__ = ["SPDNet"]
