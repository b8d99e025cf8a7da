"""Multichannel signals in, padded tensors out: arrays, ragged lists, MNE Epochs.

Everything downstream (:func:`geonorm.spd.covariance`) takes ``[trials,
channels, times]`` tensors plus per-trial ``lengths``; this module turns what
users have into that, and offers a band-pass filter bank and a stratified
split.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .._checks import check_int, check_real

__all__ = ["Signals", "as_signals", "bandpass_filterbank", "stratified_folds", "stratified_split"]


@dataclass
class Signals:
    """Zero-padded signals ``data`` ``[trials, channels, times]`` and ``lengths`` ``[trials]``.

    What a recording says about itself travels along: ``sfreq`` (Hz),
    ``ch_names`` and per-trial integer ``labels`` ``[trials]`` (from MNE
    ``Epochs``: ``info["sfreq"]``, ``ch_names``, ``events[:, -1]``), each
    ``None`` when unknown. Indexing selects trials of ``data``, ``lengths``
    and ``labels`` together. :func:`geonorm.spd.covariance` accepts a
    ``Signals`` directly and uses its ``lengths``.
    """

    data: torch.Tensor
    lengths: torch.Tensor
    sfreq: float | None = None
    ch_names: list[str] | None = None
    labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index) -> "Signals":
        labels = None if self.labels is None else self.labels[index]
        return Signals(self.data[index], self.lengths[index], self.sfreq, self.ch_names, labels)


def _is_epochs(x) -> bool:
    """MNE ``Epochs`` (duck-typed, so that mne is never imported)."""
    return hasattr(x, "get_data") and hasattr(x, "info")


def as_signals(x, *, dtype: torch.dtype = torch.float64, scale: float | None = None) -> Signals:
    """Convert signals to a padded :class:`Signals`.

    Parameters
    ----------
    x : array-like, sequence of arrays, or mne.Epochs
        ``[trials, channels, times]`` (NumPy or torch), a list of
        ``[channels, times_i]`` trials of unequal length (zero-padded, lengths
        kept), or MNE ``Epochs`` (``epochs.get_data()``; ``sfreq``, channel
        names and the event codes as ``labels`` are kept).
    dtype : torch.dtype
        Floating dtype of the result.
    scale : float, optional
        Multiply every sample by this factor, e.g. ``1e6`` for EEG in volts
        (MNE's unit) to microvolts: covariances of volt-scale signals have
        eigenvalues of 1e-13 to 1e-9, far below :class:`~geonorm.spd.ReEig`'s
        default floor (1e-4). ``covariance(..., trace_normalize=True)`` is
        the scale-free alternative.

    Examples
    --------
    >>> s = as_signals([np.ones((2, 3)), np.ones((2, 5))])
    >>> s.data.shape, s.lengths.tolist()
    (torch.Size([2, 2, 5]), [3, 5])
    """
    meta: dict = {}
    if _is_epochs(x):
        info = x.info
        meta["sfreq"] = float(info["sfreq"])
        names = getattr(x, "ch_names", None) or info.get("ch_names")
        meta["ch_names"] = None if names is None else list(names)
        events = getattr(x, "events", None)
        if events is not None:
            meta["labels"] = torch.as_tensor(np.asarray(events)[:, -1], dtype=torch.long)
        x = x.get_data()
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError("x: expected at least one trial, got an empty sequence")
        trials = [torch.as_tensor(np.asarray(t), dtype=dtype) for t in x]
        channels = {t.shape[0] if t.ndim == 2 else None for t in trials}
        if None in channels or len(channels) != 1:
            raise ValueError(
                "x: expected trials of shape [channels, times] with the same number of channels, "
                f"got shapes {sorted({tuple(t.shape) for t in trials})[:4]}"
            )
        lengths = torch.tensor([t.shape[1] for t in trials], dtype=torch.long)
        data = torch.zeros(len(trials), channels.pop(), int(lengths.max()), dtype=dtype)
        for i, t in enumerate(trials):
            data[i, :, : t.shape[1]] = t
    else:
        data = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).to(dtype)
        if data.ndim != 3:
            raise ValueError(f"x: expected an array of shape [trials, channels, times], got {list(data.shape)}")
        lengths = torch.full((data.shape[0],), data.shape[2], dtype=torch.long)
    if not bool(torch.isfinite(data).all()):
        raise ValueError("x: expected finite samples, got NaN or infinite values")
    if scale is not None:
        data = data * check_real(scale, "scale", low=0.0, low_open=True)
    names = meta.get("ch_names")
    if names is not None and len(names) != data.shape[1]:
        raise ValueError(f"x: expected {data.shape[1]} channel names, got {len(names)}")
    return Signals(data, lengths, **meta)


def bandpass_filterbank(
    signals: Signals, sfreq: float, bands: Sequence[tuple[float, float]], *, order: int = 4
) -> Signals:
    """Zero-phase Butterworth band-pass filters: ``[B, C, T] -> [B, len(bands) * C, T]``.

    Each band's output is stacked channel-block-wise; ``data.reshape(B,
    len(bands), C, T)`` gives ``[B, bands, C, T]``, which
    :func:`geonorm.spd.covariance` turns into per-band covariances ``[B,
    bands, C, C]`` (the input of a filter-bank SPDNet, with the same
    ``lengths``). Uses ``scipy.signal.butter(output="sos")`` and
    ``sosfiltfilt`` on each trial's valid samples. ``sfreq``, channel names
    and labels are carried over (names get a ``@low-high`` suffix per band).

    >>> s = as_signals(np.random.default_rng(0).standard_normal((2, 3, 256)))
    >>> bandpass_filterbank(s, 128.0, [(4, 8), (8, 12)]).data.shape
    torch.Size([2, 6, 256])
    """
    from scipy.signal import butter, sosfiltfilt

    if not bands:
        raise ValueError("bands: expected at least one (low, high) band")
    nyquist = sfreq / 2
    for lo, hi in bands:
        if not 0 < lo < hi < nyquist:
            raise ValueError(f"bands: expected 0 < low < high < sfreq/2 = {nyquist}, got ({lo}, {hi})")
    data = signals.data.cpu().numpy()
    out = np.zeros((data.shape[0], len(bands) * data.shape[1], data.shape[2]))
    for k, (lo, hi) in enumerate(bands):
        sos = butter(order, [lo, hi], btype="bandpass", fs=sfreq, output="sos")
        block = slice(k * data.shape[1], (k + 1) * data.shape[1])
        for length in torch.unique(signals.lengths).tolist():  # one call per distinct length
            idx = (signals.lengths == length).numpy()
            out[idx, block, :length] = sosfiltfilt(sos, data[idx, :, :length], axis=-1)
    names = None
    if signals.ch_names is not None:
        names = [f"{name}@{lo:g}-{hi:g}" for lo, hi in bands for name in signals.ch_names]
    labels = None if signals.labels is None else signals.labels.clone()
    return Signals(
        torch.as_tensor(out, dtype=signals.data.dtype), signals.lengths.clone(), float(sfreq), names, labels
    )


def stratified_split(
    labels: np.ndarray, test_size: float, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a seeded stratified split (each class split in the same proportion).

    >>> tr, te = stratified_split(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 0.25)
    >>> len(tr), len(te)
    (6, 2)
    """
    if not 0 < test_size < 1:
        raise ValueError(f"test_size: expected a float in (0, 1), got {test_size!r}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, test = [], []
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = int(round(test_size * len(idx)))
        test.extend(idx[:n_test])
        train.extend(idx[n_test:])
    return np.sort(np.array(train, dtype=int)), np.sort(np.array(test, dtype=int))


def stratified_folds(labels: np.ndarray, k: int, *, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` seeded stratified folds: ``(train, validation)`` index pairs, every sample validated once.

    Each class is shuffled and dealt round-robin to the folds, so the folds'
    class counts differ by at most one (stratified k-fold cross-validation,
    as scikit-learn's ``StratifiedKFold(shuffle=True)``).

    >>> folds = stratified_folds(np.array([0, 0, 0, 0, 1, 1, 1, 1]), 2)
    >>> [len(va) for _, va in folds], sorted(np.concatenate([va for _, va in folds]).tolist())
    ([4, 4], [0, 1, 2, 3, 4, 5, 6, 7])
    """
    check_int(k, "k", minimum=2)
    labels = np.asarray(labels)
    if k > len(labels):
        raise ValueError(f"k: expected at most the number of samples ({len(labels)}), got {k}")
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), dtype=int)
    start = 0  # continue the deal across classes, so small classes do not all land in fold 0
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        fold_of[idx] = (start + np.arange(len(idx))) % k
        start += len(idx)
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]
