"""Poincaré batch norm: protocol conformance, normalized statistics, peers, isometries, state."""

import copy
import math

import geoopt
import pytest
import torch

from geonorm.hyperbolic import PoincareBall, gyration, gyromidpoint, mobius_add, recalibrate_running_stats
from geonorm.nn import PoincareBatchNorm, PoincareBatchNorm2d
from geonorm.testing import MobiusAction
from geonorm.testing.geometry import check_geometry

F64 = torch.float64
D = 3


def _points(seed: int, b: int = 16, c: float = 1.0, radius: float = 0.6, d: int = D, dtype=F64):
    """Points spread over the ball of curvature -c: Euclidean norms up to ``radius / sqrt(c)``."""
    gen = torch.Generator().manual_seed(seed)
    u = torch.randn(b, d, generator=gen, dtype=F64)
    r = radius * torch.rand(b, 1, generator=gen, dtype=F64) ** 0.5
    return (u / u.norm(dim=-1, keepdim=True) * r / math.sqrt(c)).to(dtype)


@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0])
@pytest.mark.parametrize("mean", ["midpoint", "frechet"])
def test_ball_geometry_meets_the_protocol(mean, c):
    g = PoincareBall(c, mean=mean)
    check_geometry(g, _points(0, b=8, c=c), dim=D, scale_keeps_mean=mean == "frechet")


def test_conformance_suite_catches_a_wrong_centring():
    class Broken(PoincareBall):
        def centre(self, z, mean):  # Euclidean shift: not an isometry of the ball
            return z - mean

    with pytest.raises(AssertionError, match="centre"):
        check_geometry(Broken(1.0), _points(0, b=8), dim=D)


def test_frechet_batch_norm_output_has_origin_mean_and_target_dispersion():
    bn = PoincareBatchNorm(D, mean="frechet", eps=0.0, dtype=F64)
    with torch.no_grad():
        bn.log_std.fill_(math.log(0.8))
    y = bn(_points(1))
    g = bn.geometry
    mu = g.mean(y)
    assert mu.abs().max() < 1e-10
    assert torch.isclose(g.variance(y, mu), torch.tensor(0.64, dtype=F64), rtol=1e-10)


def test_midpoint_without_scaling_centres_the_gyromidpoint():
    bn = PoincareBatchNorm(D, scale=False, dtype=F64)
    y = bn(_points(2))
    assert gyromidpoint(y, c=1.0).abs().max() < 1e-12
    assert bn.running_var is None


@pytest.mark.parametrize("mean", ["midpoint", "frechet"])
def test_agrees_with_hypll_at_its_curvature(mean):
    # hypll's HBatchNorm: Exp_b(sqrt(w / (v + 1e-6)) PT_{mu->b} Log_mu x) with
    # b = expmap0(bias) and c = softplus(value). Its "weight" w is a target
    # *variance* (ours is the target standard deviation s = sqrt(w)). With the
    # bias at the origin both transports are the same map; for another bias
    # they differ by a gyration (hypll transports mu -> b directly, geonorm
    # goes through the origin), so the comparison pins the bias to 0.
    hypll_ball = pytest.importorskip("hypll.manifolds.poincare_ball")
    from hypll.nn import HBatchNorm
    from hypll.tensors import ManifoldTensor

    value = 0.7
    c = math.log1p(math.exp(value))  # softplus
    manifold = hypll_ball.PoincareBall(c=hypll_ball.Curvature(value))
    theirs = HBatchNorm(D, manifold=manifold, use_midpoint=mean == "midpoint").double()
    with torch.no_grad():
        theirs.weight.fill_(0.5)
    ours = PoincareBatchNorm(D, c=c, mean=mean, eps=1e-6, dtype=F64)
    with torch.no_grad():
        ours.log_std.fill_(0.5 * math.log(0.5))
    x = _points(3, c=c)
    want = theirs(ManifoldTensor(x, manifold=manifold)).tensor
    assert torch.allclose(ours(x), want, rtol=1e-6, atol=1e-9)
    # the backward too: both differentiate through the batch mean and variance by
    # default (so does the Poincaré ResNet code); a layer that detached them would
    # differ here by O(1)
    upstream = torch.randn(x.shape, dtype=F64, generator=torch.Generator().manual_seed(5))
    x_theirs, x_ours = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    (theirs(ManifoldTensor(x_theirs, manifold=manifold)).tensor * upstream).sum().backward()
    (ours(x_ours) * upstream).sum().backward()
    scale = float(x_theirs.grad.abs().max())
    assert torch.allclose(x_ours.grad, x_theirs.grad, rtol=1e-6, atol=1e-9 * scale)


@pytest.mark.parametrize("mean", ["midpoint", "frechet"])
def test_isometries_of_the_batch_change_the_output_by_a_gyration(mean):
    # For g(x) = a ⊕ Ox the centred batch becomes gyr[a, O mu] O ((-mu) ⊕ x);
    # rescaling about the origin commutes with the rotation, so with the bias
    # at the origin the whole output is rotated by R = gyr[a, O mu] O.
    action = MobiusAction(D, c=1.0)
    x = _points(4)
    bn = PoincareBatchNorm(D, mean=mean, dtype=F64)
    mu = bn.geometry.mean(x)
    y = bn(x)
    for el in action.sample(4, torch.Generator().manual_seed(0)):
        o, a = el.rotation.to(F64), el.extra["mobius"].to(F64)
        gx = action.act(el, x)
        rotated_mean = mu @ o.T
        expected = gyration(a.expand_as(y), rotated_mean.expand_as(y), y @ o.T, c=1.0)
        assert torch.allclose(bn(gx), expected, rtol=1e-9, atol=1e-11)


def test_eval_uses_running_statistics_and_ignores_the_batch():
    bn = PoincareBatchNorm(D, dtype=F64)
    for seed in range(3):
        bn(_points(seed))
    assert int(bn.num_batches_tracked) == 3 and float(bn.running_var) != 1.0
    bn.eval()
    x = _points(9)
    assert torch.allclose(bn(x)[:4], bn(x[:4]), rtol=1e-13, atol=1e-15)
    fresh = PoincareBatchNorm(D, dtype=F64)
    fresh.load_state_dict(bn.state_dict())
    fresh.eval()
    assert torch.equal(fresh(x), bn(x))
    assert set(bn.state_dict()) == {"bias", "log_std", "running_mean", "running_var", "num_batches_tracked", "geometry.ball.isp_c"}


@pytest.mark.parametrize("mean", ["midpoint", "frechet"])
def test_running_statistics_converge_to_the_data_statistics(mean):
    # A geodesic step t towards a fixed mean shrinks the distance by (1 - t): after
    # 60 steps of t = 1/2 the running mean is the batch mean to rounding, the running
    # variance the batch variance, and evaluation reproduces the training output.
    bn = PoincareBatchNorm(D, mean=mean, momentum=0.5, dtype=F64)
    with torch.no_grad():
        bn.log_std.fill_(math.log(0.7))
        bn.bias.copy_(torch.tensor([0.1, -0.2, 0.05], dtype=F64))
    x = _points(6)
    g = bn.geometry
    for _ in range(60):
        train_out = bn(x)
    mu = g.mean(x)
    assert float(g.distance(bn.running_mean, mu)) < 1e-12
    assert torch.isclose(bn.running_var, g.variance(x, mu), rtol=1e-12)
    bn.eval()
    assert torch.allclose(bn(x), train_out, rtol=1e-10, atol=1e-12)


def test_midpoint_batch_norm_output_has_the_target_dispersion_about_the_origin():
    # centred at the gyromidpoint, rescaled about the origin: the Fréchet variance
    # about the origin is exactly s^2 (with eps = 0 and the bias at the origin)
    bn = PoincareBatchNorm(D, eps=0.0, dtype=F64)
    with torch.no_grad():
        bn.log_std.fill_(math.log(1.3))
    y = bn(_points(7))
    assert torch.isclose(bn.geometry.variance(y), torch.tensor(1.69, dtype=F64), rtol=1e-10)
    centred = bn.geometry.centre(_points(7), bn.geometry.mean(_points(7)))
    assert gyromidpoint(centred, c=1.0).abs().max() < 1e-12


def test_recalibration_averages_the_batch_statistics_and_restores_the_layer():
    net = torch.nn.Sequential(PoincareBatchNorm(D, dtype=F64), PoincareBatchNorm(D, mean="frechet", dtype=F64))
    batches = [_points(10), _points(11), _points(12)]
    for b in batches:  # stale statistics from other data
        net(0.5 * b)
    net.eval()
    assert recalibrate_running_stats(net, batches) == 3
    assert not net.training and all(m.momentum == 0.1 for m in net)
    first = net[0]
    variances = [first.geometry.variance(b, first.geometry.mean(b)) for b in batches]
    assert torch.isclose(first.running_var, torch.stack(variances).mean(), rtol=1e-12)  # cumulative average
    assert int(first.num_batches_tracked) == 3
    recalibrate_running_stats(net, batches[:1])
    assert torch.allclose(net(batches[0]), net.train()(batches[0]), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="batches: expected at least one batch"):
        recalibrate_running_stats(net, [])
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        recalibrate_running_stats(lambda x: x, batches)


def test_compiled_layer_updates_the_running_statistics_like_eager():
    eager = PoincareBatchNorm(D, mean="frechet", dtype=F64)
    compiled = torch.compile(copy.deepcopy(eager), backend="aot_eager")
    for seed in range(3):
        eager(_points(seed))
        compiled(_points(seed))
    for key, value in eager.state_dict().items():
        assert torch.allclose(compiled._orig_mod.state_dict()[key].double(), value.double(), rtol=1e-10), key


def test_learnable_and_shared_curvature():
    bn = PoincareBatchNorm(D, c=0.5, learnable_curvature=True, dtype=F64)
    assert math.isclose(float(bn.geometry.c.detach()), 0.5, rel_tol=1e-14)  # the c given is the c used
    bn(_points(5, c=0.5)).square().sum().backward()
    assert bn.geometry.ball.isp_c.grad is not None and bool(torch.isfinite(bn.geometry.ball.isp_c.grad))
    ball = geoopt.PoincareBall(c=2.0)
    a, b = PoincareBatchNorm(D, ball=ball, dtype=F64), PoincareBatchNorm(D, ball=ball, dtype=F64)
    assert a.geometry.manifold is b.geometry.manifold is a.bias.manifold
    with pytest.raises(ValueError, match="sharing a ball"):
        PoincareBatchNorm(D, c=3.0, ball=ball)


def test_small_curvature_approaches_euclidean_batch_norm():
    # As c -> 0 the ball's distance tends to 2|x - y| (conformal factor 2) and
    # r ⊗ x to r x, so the output tends to s (x - m) / sqrt(4 E|x - m|^2).
    x = _points(6, c=1.0, radius=0.5)
    c = 1e-8
    y = PoincareBatchNorm(D, c=c, mean="frechet", eps=0.0, dtype=F64)(x)
    centred = x - x.mean(0)
    want = centred / torch.sqrt(4 * centred.square().sum(-1).mean())
    assert torch.allclose(y, want, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype, gap", [(F64, 1e-7), (torch.float32, 1e-3)])
@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0])
@pytest.mark.parametrize("mean", ["midpoint", "frechet"])
def test_points_near_the_boundary_stay_finite(mean, c, dtype, gap):
    x = _points(7, c=c, radius=1.0, dtype=dtype)
    x[:4] = x[:4] / x[:4].norm(dim=-1, keepdim=True) * (1 - gap) / math.sqrt(c)
    x.requires_grad_()
    bn = PoincareBatchNorm(D, c=c, mean=mean, dtype=dtype)
    y = bn(x)
    y.square().sum().backward()
    assert bool(torch.isfinite(y).all()) and bool(torch.isfinite(x.grad).all())
    assert bool((y.norm(dim=-1) < 1 / math.sqrt(c)).all())


def test_gradcheck_float64():
    x = _points(8, b=6, radius=0.5).requires_grad_()
    for mean in ("midpoint", "frechet"):
        bn = PoincareBatchNorm(D, mean=mean, detach_stats=False, dtype=F64)
        with torch.no_grad():
            bn.bias.copy_(torch.tensor([0.1, -0.2, 0.05], dtype=F64))
        assert torch.autograd.gradcheck(bn, (x,))


def test_batch_norm_2d_normalizes_channel_vectors():
    gen = torch.Generator().manual_seed(0)
    x = 0.1 * torch.randn(2, 4, 3, 3, generator=gen, dtype=F64)
    bn2d = PoincareBatchNorm2d(4, dtype=F64)
    flat = PoincareBatchNorm(4, dtype=F64)
    want = flat(x.permute(0, 2, 3, 1).reshape(-1, 4)).reshape(2, 3, 3, 4).permute(0, 3, 1, 2)
    assert torch.allclose(bn2d(x), want)
    with pytest.raises(ValueError, match=r"x: expected shape \[B, 4, H, W\]"):
        bn2d(x[:, :3])


def test_bad_input_raises_clear_errors():
    bn = PoincareBatchNorm(D, dtype=F64)
    with pytest.raises(ValueError, match="inside the Poincaré ball"):
        bn(torch.full((4, D), 0.9, dtype=F64))
    with pytest.raises(ValueError, match=r"x: expected shape \[B, 3\]"):
        bn(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(TypeError, match="floating-point"):
        bn(torch.zeros(4, D, dtype=torch.int64))
    with pytest.raises(ValueError, match="c: expected a finite positive"):
        PoincareBatchNorm(D, c=0.0)
    with pytest.raises(ValueError, match="c: expected a finite positive"):
        PoincareBatchNorm(D, c=float("inf"))
    with pytest.raises(ValueError, match="mean: expected 'midpoint' or 'frechet'"):
        PoincareBatchNorm(D, mean="einstein")
    x = mobius_add(_points(0), _points(1), c=1.0)
    assert bool(torch.isfinite(bn(x)).all())
