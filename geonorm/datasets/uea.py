"""UEA multivariate time-series classification sets bundled with aeon (offline).

aeon ships JapaneseVowels (12 channels, 9 speakers, 270 train / 370 test
utterances of 7–29 samples) and BasicMotions (6 channels, 4 activities,
40 / 40 recordings of 100 samples) inside the package, with the archive's
official train/test splits; :func:`load_uea` reads them with no network
access.

Unequal lengths are handled honestly: JapaneseVowels trials are kept at their
own lengths (zero-padded, with ``lengths``), and every covariance is
estimated from each trial's own samples only — no resampling, truncation or
padding enters the statistics. Trials shorter than the channel count need
shrinkage (``shrinkage="oas"``) for a full-rank covariance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .signals import Signals, as_signals

__all__ = ["UEADataset", "load_uea", "BUNDLED_UEA"]

BUNDLED_UEA = ("JapaneseVowels", "BasicMotions")


@dataclass
class UEADataset:
    """Signals, integer labels ``[trials]`` and class names of one split."""

    signals: Signals
    labels: torch.Tensor
    classes: list[str]
    name: str
    split: str

    def __len__(self) -> int:
        return len(self.labels)


def load_uea(name: str, split: str = "train", *, dtype: torch.dtype = torch.float64) -> UEADataset:
    """Load a UEA set bundled with aeon, with its official split.

    Parameters
    ----------
    name : {"JapaneseVowels", "BasicMotions"}
        Case-insensitive (``"basicmotions"`` works).
    split : {"train", "test"}
    dtype : torch.dtype

    Examples
    --------
    >>> ds = load_uea("BasicMotions", "test")  # doctest: +SKIP
    >>> ds.signals.data.shape, len(ds.classes)  # doctest: +SKIP
    (torch.Size([40, 6, 100]), 4)
    """
    canonical = {n.lower(): n for n in BUNDLED_UEA}.get(name.lower() if isinstance(name, str) else None)
    if canonical is None:
        raise ValueError(f"name: expected one of {BUNDLED_UEA} (bundled with aeon, any case), got {name!r}")
    name = canonical
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    try:
        from aeon.datasets import load_classification
    except ImportError as err:
        raise ImportError("load_uea needs aeon: pip install 'geonorm[data]'") from err
    x, y = load_classification(name, split=split)
    # Class names sorted as the archive's label strings, identical for both splits.
    _, y_train = load_classification(name, split="train") if split == "test" else (None, y)
    classes = sorted(np.unique(y_train).tolist())
    lookup = {c: i for i, c in enumerate(classes)}
    labels = torch.tensor([lookup[v] for v in y], dtype=torch.long)
    trials = list(x) if isinstance(x, list) else x
    signals = as_signals(trials, dtype=dtype)
    signals.labels = labels
    return UEADataset(signals, labels, classes, name, split)
