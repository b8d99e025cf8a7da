"""Offline loaders and signal preparation."""

import socket

import numpy as np
import pytest
import torch

from geonorm.datasets import as_signals, bandpass_filterbank, load_uea, stratified_split


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted in an offline test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    "name,shape,n_classes,counts",
    [("JapaneseVowels", (270, 12), 9, (270, 370)), ("BasicMotions", (40, 6), 4, (40, 40))],
)
def test_uea_loads_offline_with_official_splits(no_network, name, shape, n_classes, counts):
    pytest.importorskip("aeon")
    train, test = load_uea(name, "train"), load_uea(name, "test")
    assert train.signals.data.shape[:2] == shape
    assert (len(train), len(test)) == counts
    assert len(train.classes) == n_classes and train.classes == test.classes
    assert set(train.labels.tolist()) == set(range(n_classes))
    assert torch.isfinite(train.signals.data).all()


def test_japanese_vowels_keeps_unequal_lengths():
    pytest.importorskip("aeon")
    test = load_uea("JapaneseVowels", "test")
    lengths = test.signals.lengths
    assert lengths.min() == 7 and lengths.max() == 29
    # padding is zero beyond each trial's length
    mask = torch.arange(test.signals.data.shape[-1]) >= lengths[:, None]
    assert (test.signals.data.permute(1, 0, 2)[:, mask] == 0).all()


def test_as_signals_accepts_arrays_lists_and_epochs():
    arr = np.random.default_rng(0).standard_normal((3, 2, 10))
    assert as_signals(arr).data.shape == (3, 2, 10)

    class FakeEpochs:  # the two attributes of mne.Epochs that are used
        info = {"sfreq": 100.0}

        def get_data(self):
            return arr

    assert torch.equal(as_signals(FakeEpochs()).data, torch.as_tensor(arr))
    with pytest.raises(ValueError, match=r"\[trials, channels, times\]"):
        as_signals(arr[0])
    with pytest.raises(ValueError, match="same number of channels"):
        as_signals([np.ones((2, 5)), np.ones((3, 5))])
    bad = arr.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        as_signals(bad)


def test_filterbank_separates_frequencies():
    sfreq, t = 128.0, np.arange(512) / 128.0
    x = np.stack([np.sin(2 * np.pi * 10 * t), np.sin(2 * np.pi * 30 * t)])[None]  # [1, 2, 512]
    out = bandpass_filterbank(as_signals(x), sfreq, [(8, 12), (25, 35)]).data[0]
    mid = slice(128, 384)  # away from edge effects
    power = out[:, mid].square().mean(-1)  # rows: band0-ch0, band0-ch1, band1-ch0, band1-ch1
    assert power[0] > 0.4 and power[1] < 1e-3 and power[2] < 1e-3 and power[3] > 0.4
    with pytest.raises(ValueError, match="bands: expected 0 < low < high"):
        bandpass_filterbank(as_signals(x), sfreq, [(10, 80)])


def test_stratified_split_is_seeded_and_stratified():
    labels = np.repeat(np.arange(3), 20)
    tr, te = stratified_split(labels, 0.25, seed=1)
    assert np.array_equal(np.bincount(labels[te]), [5, 5, 5])
    assert set(tr).isdisjoint(te) and len(tr) + len(te) == 60
    assert np.array_equal(stratified_split(labels, 0.25, seed=1)[1], te)
