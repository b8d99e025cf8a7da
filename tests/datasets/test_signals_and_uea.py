"""Offline loaders and signal preparation."""

import socket

import numpy as np
import pytest
import torch

from geonorm.datasets import as_signals, bandpass_filterbank, load_uea, stratified_folds, stratified_split


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


def test_stratified_folds_partition_and_stratify():
    labels = np.repeat(np.arange(3), [10, 7, 5])
    folds = stratified_folds(labels, 4, seed=2)
    validation = np.concatenate([va for _, va in folds])
    assert np.array_equal(np.sort(validation), np.arange(22))  # every sample validated exactly once
    for tr, va in folds:
        assert set(tr).isdisjoint(va) and len(tr) + len(va) == 22
    counts = np.stack([np.bincount(labels[va], minlength=3) for _, va in folds])  # [fold, class]
    assert (counts.max(0) - counts.min(0) <= 1).all()  # each class dealt evenly
    assert [len(va) for _, va in folds] == [len(va) for _, va in stratified_folds(labels, 4, seed=2)]
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, stratified_folds(labels, 4, seed=2)))
    with pytest.raises(ValueError, match="k: expected"):
        stratified_folds(labels, 1)


class _FakeEpochs:
    """What geonorm reads from mne.Epochs: get_data() (volts), info["sfreq"], ch_names, events."""

    def __init__(self, data, sfreq=250.0):
        self._data = data
        self.info = {"sfreq": sfreq, "ch_names": [f"EEG{i}" for i in range(data.shape[1])]}
        self.ch_names = list(self.info["ch_names"])
        self.events = np.stack([np.arange(len(data)) * 100, np.zeros(len(data), int), np.arange(len(data)) % 2 + 1], 1)

    def get_data(self):
        return self._data


def test_epochs_metadata_is_kept_and_scale_converts_units():
    volts = 1e-5 * np.random.default_rng(1).standard_normal((4, 3, 64))
    s = as_signals(_FakeEpochs(volts), scale=1e6)
    assert s.sfreq == 250.0 and s.ch_names == ["EEG0", "EEG1", "EEG2"]
    assert s.labels.tolist() == [1, 2, 1, 2]
    assert torch.allclose(s.data, torch.as_tensor(volts) * 1e6)
    sub = s[1:3]
    assert sub.labels.tolist() == [2, 1] and sub.sfreq == 250.0 and len(sub) == 2
    bank = bandpass_filterbank(s, s.sfreq, [(4, 8), (8, 30)])
    assert bank.sfreq == 250.0 and bank.labels.tolist() == [1, 2, 1, 2]
    assert bank.ch_names[:2] == ["EEG0@4-8", "EEG1@4-8"] and len(bank.ch_names) == 6
    with pytest.raises(TypeError, match="scale: expected a real number"):
        as_signals(volts, scale=True)


def test_uea_names_are_case_insensitive():
    pytest.importorskip("aeon")
    ds = load_uea("basicmotions", "test")
    assert ds.name == "BasicMotions" and len(ds) == 40
    assert torch.equal(ds.signals.labels, ds.labels)
    with pytest.raises(ValueError, match="name: expected one of"):
        load_uea("Vowels")


def test_japanese_vowels_covariance_ignores_the_padding():
    pytest.importorskip("aeon")
    from geonorm.spd import covariance

    train = load_uea("JapaneseVowels", "train")
    ours = covariance(train.signals, shrinkage="oas")
    i = int(train.signals.lengths.argmin())
    n = int(train.signals.lengths[i])
    own = covariance(train.signals.data[i : i + 1, :, :n], shrinkage="oas")[0]
    assert torch.allclose(ours[i], own, rtol=1e-12, atol=1e-14)
