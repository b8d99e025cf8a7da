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


def test_batchnorm_metric_option():
    net = SPDNet(5, 3, dims=(4,), batchnorm="lie", batchnorm_kwargs={"metric": "lem"}, dtype=torch.float64)
    assert net.features[1].metric == "lem"
    same = SPDNet(5, 3, dims=(4,), batchnorm="lie-lcm", batchnorm_kwargs={"metric": "LCM", "theta": 0.5})
    assert same.features[1].metric == "lcm"
    with pytest.raises(ValueError, match=r"batchnorm_kwargs: metric='lem' contradicts batchnorm='lie-aim'"):
        SPDNet(5, 3, batchnorm="lie-aim", batchnorm_kwargs={"metric": "lem"})


def test_models_is_an_attribute_of_the_package():
    # in a fresh interpreter: here geonorm.models is imported already
    import subprocess
    import sys

    code = "import geonorm; print(geonorm.models.SPDNet.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "SPDNet"
