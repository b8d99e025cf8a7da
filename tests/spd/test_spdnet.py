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


def test_the_eeg_network_compiles_to_one_graph_and_trains_as_in_eager_mode():
    # BiMap -> ReEig -> LieBN-AIM -> BiMap -> ReEig -> LogEig -> Linear (the network of the
    # spd_network benchmark): no graph break, and one training step under torch.compile
    # (aot_eager) gives the eager loss, gradients and running mean
    import copy

    from geonorm.nn import BiMap, LieBatchNorm, LogEig, ReEig

    from .._spd import random_spd

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        BiMap(6, 4, dtype=torch.float64), ReEig(1e-4), LieBatchNorm(4, "aim", dtype=torch.float64),
        BiMap(4, 3, dtype=torch.float64), ReEig(1e-4), LogEig("triu"), torch.nn.Linear(6, 2, dtype=torch.float64),
    )
    x = random_spd(6, torch.Generator().manual_seed(1), batch=(8,), cond=20.0)
    labels = torch.tensor([0, 1] * 4)
    assert torch._dynamo.explain(copy.deepcopy(net))(x).graph_break_count == 0
    results = []
    for compiled in (False, True):
        model = copy.deepcopy(net)
        forward = torch.compile(model, backend="aot_eager", fullgraph=True) if compiled else model
        loss = torch.nn.functional.cross_entropy(forward(x), labels)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters()]
        results.append((loss.detach(), grads, model[2].running_mean.clone()))
    (loss_e, grads_e, mean_e), (loss_c, grads_c, mean_c) = results
    # eager LogEig reuses ReEig's decomposition (compiled: a second eigh of the rebuilt
    # matrix), which moves the log by about n * cond * eps; the input's condition is 20
    tol = 10 * 6 * 20.0 * torch.finfo(torch.float64).eps
    torch.testing.assert_close(loss_c, loss_e, rtol=tol, atol=0)
    torch.testing.assert_close(mean_c, mean_e, rtol=tol, atol=tol)
    for gc, ge in zip(grads_c, grads_e):
        torch.testing.assert_close(gc, ge, rtol=0, atol=tol * max(ge.abs().max().item(), 1.0))
