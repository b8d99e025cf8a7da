"""Real-data loaders that work offline, and signal preparation helpers."""

from .qm9 import (
    HARTREE_TO_EV,
    QM9_SPLIT_SIZES,
    QM9_TARGETS,
    Molecule,
    MoleculeBatch,
    QM9Dataset,
    collate_molecules,
    load_qm9,
    qm9_split,
    radius_graph,
)
from .signals import Signals, as_signals, bandpass_filterbank, stratified_split
from .uea import BUNDLED_UEA, UEADataset, load_uea

__all__ = [
    "as_signals",
    "bandpass_filterbank",
    "BUNDLED_UEA",
    "collate_molecules",
    "HARTREE_TO_EV",
    "load_qm9",
    "load_uea",
    "Molecule",
    "MoleculeBatch",
    "QM9_SPLIT_SIZES",
    "QM9_TARGETS",
    "QM9Dataset",
    "qm9_split",
    "radius_graph",
    "Signals",
    "stratified_split",
    "UEADataset",
]
