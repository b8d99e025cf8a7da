"""Poincaré ResNet and its Euclidean twin: shapes, shared ball, bad input, a short real training run."""

from __future__ import annotations

import geoopt
import pytest
import torch

from geonorm.datasets import DEBIAN_FASHION_MNIST_ROOT, load_fashion_mnist
from geonorm.hyperbolic import PoincareConv2d, recalibrate_running_stats
from geonorm.models import PoincareResNet, ResNet

HAVE_FILES = (DEBIAN_FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").is_file()


@pytest.mark.parametrize("bn", ["midpoint", "frechet", None])
def test_poincare_resnet_shapes_shared_ball_and_depth(bn):
    net = PoincareResNet(depth=14, widths=(8, 8, 16), bn=bn, c=0.5, classes=7)
    assert net(torch.rand(3, 1, 12, 12)).shape == (3, 7)
    assert len(net.blocks) == 6  # (14 - 2) / 6 = 2 blocks per group
    balls = {id(m.geometry.ball) for m in net.modules() if hasattr(m, "geometry") and hasattr(m.geometry, "ball")}
    assert balls == {id(net.geometry.ball)}  # one ball for every layer
    assert abs(float(net.geometry.ball.c) - 0.5) < 1e-6
    if bn:
        assert any(isinstance(p, geoopt.ManifoldParameter) for p in net.parameters())  # BN bias points


def test_euclidean_resnet_has_the_same_shape():
    euc, hyp = ResNet(depth=20), PoincareResNet(depth=20)
    assert len(euc.blocks) == len(hyp.blocks) == 9
    assert euc(torch.rand(2, 1, 28, 28)).shape == hyp(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    # same convolution weights count (3x3 kernels, widths, 1x1 skips); Poincaré adds no BN scale
    conv_e = sum(m.weight.numel() for m in euc.modules() if isinstance(m, torch.nn.Conv2d))
    conv_h = sum(m.weight.numel() for m in hyp.modules() if isinstance(m, PoincareConv2d))
    assert conv_e == conv_h


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="depth: expected 6n"):
        PoincareResNet(depth=10)
    with pytest.raises(ValueError, match="bn: expected"):
        PoincareResNet(bn="batch")
    with pytest.raises(ValueError, match="widths"):
        ResNet(widths=(8, 16))
    net = PoincareResNet(depth=8, widths=(8, 8, 8))
    with pytest.raises(TypeError, match="images: expected a real floating-point tensor"):
        net(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"images: expected shape \[B, 1, H, W\]"):
        net(torch.zeros(1, 3, 8, 8))


@pytest.fixture
def one_thread():
    """Small convolutions on shared cores: one intra-op thread is many times faster; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_FILES, reason="Fashion-MNIST absent: apt-get install dataset-fashion-mnist")
def test_short_training_on_fashion_mnist_beats_chance_by_a_wide_margin(one_thread):
    torch.manual_seed(0)
    data = load_fashion_mnist(val_size=1000, seed=0)
    pool = torch.nn.AvgPool2d(2)  # 14x14 images: a quarter of the cost

    def prep(split, n):
        s = split.subset(n, seed=0)
        return (pool(s.images) - 0.286) / 0.353, s.labels

    x, y = prep(data.train, 1024)
    xv, yv = prep(data.val, 500)
    # midpoint batch norm, evaluated with running statistics re-estimated on the training
    # batches for the final weights (the moving averages lag a network trained this fast)
    net = PoincareResNet(depth=8, widths=(8, 8, 8), bn="midpoint", c=0.1)
    opt = geoopt.optim.RiemannianAdam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        order = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), 64):
            idx = order[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    recalibrate_running_stats(net, x.split(64))
    net.eval()
    with torch.no_grad():
        acc = float((net(xv).argmax(-1) == yv).float().mean())
    print(f"held-out accuracy {acc:.3f}")
    assert acc > 0.4  # four times chance (0.1)
