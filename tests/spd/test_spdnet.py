"""SPDNet trains on a small real subset: the loss falls and accuracy beats chance."""

import geoopt
import pytest
import torch

from geonorm.models import SPDNet
from geonorm.spd import covariance


@pytest.mark.parametrize("batchnorm", ["none", "lie-aim", "gbw"])
def test_short_training_on_real_data(batchnorm):
    datasets = pytest.importorskip("geonorm.datasets")
    pytest.importorskip("aeon")
    train = datasets.load_uea("BasicMotions", "train")
    test = datasets.load_uea("BasicMotions", "test")
    x = covariance(train.signals.data, shrinkage="oas")
    xt = covariance(test.signals.data, shrinkage="oas")
    torch.manual_seed(0)
    model = SPDNet(6, 4, dims=(4,), batchnorm=batchnorm, dtype=torch.float64)
    opt = geoopt.optim.RiemannianAdam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), train.labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    with torch.no_grad():
        acc = (model(xt).argmax(-1) == test.labels).double().mean()
    assert acc > 0.5  # chance is 0.25


def test_spdnet_with_filterbank_channels_and_errors():
    net = SPDNet(5, 3, dims=(4, 3), channels=2, batchnorm="spdbn", dtype=torch.float64)
    x = covariance(torch.randn(8, 5, 40, dtype=torch.float64)).unsqueeze(1).repeat(1, 2, 1, 1)
    assert net(x).shape == (8, 3)
    with pytest.raises(ValueError, match="batchnorm: expected one of"):
        SPDNet(5, 3, batchnorm="batchnorm")
    with pytest.raises(ValueError, match="dims"):
        SPDNet(5, 3, dims=())
