"""Real-data loaders that work offline, generators (n-body), Fashion-MNIST, and signal preparation helpers."""

from .fashion_mnist import (
    DEBIAN_FASHION_MNIST_ROOT,
    FASHION_MNIST_CLASSES,
    FashionMNIST,
    ImageSplit,
    load_fashion_mnist,
    read_idx,
)
from .nbody import NBODY_SPLIT_SIZES, NBodyData, load_nbody
from .nbody import generate as generate_nbody
from .nbody import simulate as simulate_nbody
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
from .signals import Signals, as_signals, bandpass_filterbank, stratified_folds, stratified_split
from .uea import BUNDLED_UEA, UEADataset, load_uea

__all__ = [
    "as_signals",
    "bandpass_filterbank",
    "DEBIAN_FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "FashionMNIST",
    "ImageSplit",
    "load_fashion_mnist",
    "read_idx",
    "BUNDLED_UEA",
    "collate_molecules",
    "HARTREE_TO_EV",
    "generate_nbody",
    "load_nbody",
    "load_qm9",
    "load_uea",
    "Molecule",
    "NBODY_SPLIT_SIZES",
    "NBodyData",
    "MoleculeBatch",
    "QM9_SPLIT_SIZES",
    "QM9_TARGETS",
    "QM9Dataset",
    "qm9_split",
    "radius_graph",
    "Signals",
    "simulate_nbody",
    "stratified_folds",
    "stratified_split",
    "UEADataset",
]
