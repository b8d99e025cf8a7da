"""Covariance pooling against pyRiemann's estimators, with ragged trials."""

import numpy as np
import pytest
import torch

from geonorm.spd import Covariance, covariance, delay_embed

F64 = torch.float64
pyriemann_est = pytest.importorskip("pyriemann.estimation")


def _signals(b=6, c=5, t=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, c, t))
    x[:, 1] += 0.7 * x[:, 0]  # correlated channels
    x += rng.standard_normal((b, c, 1))  # non-zero means
    return x


@pytest.mark.parametrize(
    "estimator,kwargs",
    [("scm", {}), ("cov", {"unbiased": True}), ("lwf", {"shrinkage": "ledoit_wolf"}), ("oas", {"shrinkage": "oas"})],
)
def test_matches_pyriemann_covariances(estimator, kwargs):
    x = _signals()
    ref = pyriemann_est.Covariances(estimator=estimator).fit_transform(x)
    ours = covariance(torch.tensor(x), **kwargs)
    assert np.allclose(ours.numpy(), ref, atol=1e-13)


@pytest.mark.parametrize("estimator,shrinkage", [("lwf", "ledoit_wolf"), ("oas", "oas")])
def test_ragged_trials_use_their_own_samples(estimator, shrinkage):
    x = _signals(b=4, c=6, t=30)
    lengths = torch.tensor([30, 17, 9, 4])
    padded = torch.tensor(x)
    for i, n in enumerate(lengths.tolist()):
        padded[i, :, n:] = 1e6  # garbage after the end must not matter
    ours = covariance(padded, lengths=lengths, shrinkage=shrinkage)
    for i, n in enumerate(lengths.tolist()):
        ref = pyriemann_est.Covariances(estimator=estimator).fit_transform(x[i : i + 1, :, :n])[0]
        assert np.allclose(ours[i].numpy(), ref, atol=1e-12)


def test_fixed_shrinkage_and_trace_normalization():
    x = torch.tensor(_signals())
    s = covariance(x)
    mu = torch.diagonal(s, dim1=-2, dim2=-1).mean(-1)[:, None, None]
    expected = 0.7 * s + 0.3 * mu * torch.eye(5, dtype=F64)
    assert torch.allclose(covariance(x, shrinkage=0.3), expected, atol=1e-14)
    normed = covariance(x, trace_normalize=True)
    assert torch.allclose(torch.diagonal(normed, dim1=-2, dim2=-1).sum(-1), torch.ones(6, dtype=F64))
    ref = pyriemann_est.Covariances("scm").fit_transform(x.numpy())
    ref = ref / np.trace(ref, axis1=-2, axis2=-1)[:, None, None]
    assert np.allclose(normed.numpy(), ref, atol=1e-14)


def test_mean_augmented_covariance_is_the_gaussian_embedding():
    x = torch.tensor(_signals())
    aug = covariance(x, augment="mean")
    s, m = covariance(x), x.mean(-1)
    assert aug.shape == (6, 6, 6)
    assert torch.allclose(aug[:, :5, :5], s + m[:, :, None] * m[:, None, :], atol=1e-13)
    assert torch.allclose(aug[:, :5, 5], m) and torch.allclose(aug[:, 5, 5], torch.ones(6, dtype=F64))
    # SPD, and its Schur complement recovers the covariance
    assert torch.linalg.eigvalsh(aug).min() > 0
    schur = aug[:, :5, :5] - aug[:, :5, 5:] @ aug[:, 5:, :5] / aug[:, 5:, 5:]
    assert torch.allclose(schur, s, atol=1e-12)


def test_delay_augmented_covariance():
    x = torch.tensor(_signals(c=3, t=40))
    embedded, lengths = delay_embed(x, order=3, lag=2)
    assert embedded.shape == (6, 9, 36) and (lengths == 36).all()
    assert torch.equal(embedded[:, 3:6, :], x[:, :, 2:38])  # block k = x(t - k lag)
    aug = covariance(x, augment="delay", order=3, lag=2)
    assert torch.allclose(aug, covariance(embedded), atol=1e-14)
    layer = Covariance(shrinkage="oas", augment="delay", order=2, lag=1)
    assert layer(x).shape == (6, 6, 6)


def test_bad_input():
    x = torch.tensor(_signals(c=5, t=4))
    with pytest.raises(ValueError, match="more time samples than channels"):
        covariance(x)
    assert torch.linalg.eigvalsh(covariance(x, shrinkage="oas")).min() > 0  # shrinkage makes it SPD
    with pytest.raises(ValueError, match=r"\[batch, channels, times\]"):
        covariance(x[0])
    nan = x.clone()
    nan[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        covariance(nan, shrinkage="oas")
    with pytest.raises(ValueError, match="shrinkage: expected one of"):
        covariance(x, shrinkage="lw")
    with pytest.raises(ValueError, match="shrinkage: expected a float in"):
        Covariance(shrinkage=1.5)
    with pytest.raises(ValueError, match="lengths: expected values"):
        covariance(x, lengths=torch.tensor([5, 1, 1, 1, 1, 1]), shrinkage="oas")
    with pytest.raises(ValueError, match="at least 5 time samples"):
        covariance(x, augment="delay", order=3, lag=2, shrinkage="oas")


@pytest.mark.parametrize("estimator", ["scm", "cov", "lwf", "oas"])
def test_pyriemann_estimator_names(estimator):
    x = _signals()
    ref = pyriemann_est.Covariances(estimator=estimator).fit_transform(x)
    assert np.allclose(covariance(torch.tensor(x), shrinkage=estimator).numpy(), ref, atol=1e-13)
    assert np.allclose(Covariance(shrinkage=estimator)(torch.tensor(x)).numpy(), ref, atol=1e-13)


def test_filter_bank_shape_gives_one_covariance_per_band():
    x = torch.tensor(_signals(b=4, c=3, t=50).reshape(2, 2, 3, 50))  # [B, bands, C, T]
    lengths = torch.tensor([50, 31])
    out = covariance(x, lengths=lengths, shrinkage="oas")
    assert out.shape == (2, 2, 3, 3)
    for b in range(2):
        for k in range(2):
            single = covariance(x[b : b + 1, k], lengths=lengths[b : b + 1], shrinkage="oas")[0]
            assert torch.equal(out[b, k], single)


def test_signals_object_uses_its_lengths_and_padding_warns():
    from geonorm.datasets import as_signals

    rng = np.random.default_rng(3)
    trials = [rng.standard_normal((3, n)) for n in (40, 12, 25)]
    signals = as_signals(trials)
    ours = covariance(signals)
    for i, trial in enumerate(trials):
        ref = pyriemann_est.Covariances("scm").fit_transform(trial[None])[0]
        assert np.allclose(ours[i].numpy(), ref, atol=1e-13)
    assert torch.equal(Covariance()(signals), ours)
    with pytest.warns(UserWarning, match=r"x: 2 of 3 trials end with a sample that is zero on every channel"):
        covariance(signals.data)  # the padding would enter the estimate
    with pytest.raises(ValueError, match="lengths: given together with a Signals"):
        covariance(signals, lengths=signals.lengths)


def test_constant_channel_without_shrinkage_is_a_clear_error():
    x = torch.tensor(_signals(b=3, c=4, t=30))
    x[1, 2] = 5.0  # a flat channel (a disconnected electrode)
    with pytest.raises(ValueError, match=r"x: channel 2 of trial 1 is constant .* singular"):
        covariance(x)
    assert torch.linalg.eigvalsh(covariance(x, shrinkage="oas")).min() > 0
