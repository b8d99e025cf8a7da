"""Real-data loaders that work offline, and signal preparation helpers."""

from .signals import Signals, as_signals, bandpass_filterbank, stratified_split
from .uea import BUNDLED_UEA, UEADataset, load_uea

__all__ = [
    "as_signals",
    "bandpass_filterbank",
    "BUNDLED_UEA",
    "load_uea",
    "Signals",
    "stratified_split",
    "UEADataset",
]
