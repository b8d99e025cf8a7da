"""Riemannian batch norm: normalized statistics, gradients, peers, state, errors."""

import copy
import types

import geoopt
import pytest
import torch
from torch.autograd import gradcheck

from geonorm.linalg import sym
from geonorm.nn import BuresWassersteinBatchNorm, LieBatchNorm, RiemannianBatchNorm, SPDBatchNorm
from geonorm.riemannian import Geometry

from .._spd import graph_reaches, random_spd

F64 = torch.float64
N = 4

LAYERS = {
    "lie-aim": lambda **kw: LieBatchNorm(N, "aim", **kw),
    "lie-aim(theta=0.5,beta=0.2)": lambda **kw: LieBatchNorm(N, "aim", theta=0.5, alpha=1.5, beta=0.2, **kw),
    "lie-lem(beta=-0.1)": lambda **kw: LieBatchNorm(N, "lem", beta=-0.1, **kw),
    "lie-lcm(theta=0.7)": lambda **kw: LieBatchNorm(N, "lcm", theta=0.7, **kw),
    "gbw(theta=0.5)": lambda **kw: BuresWassersteinBatchNorm(N, theta=0.5, **kw),
    "bw(fixed M)": lambda **kw: BuresWassersteinBatchNorm(N, learn_metric=False, **kw),
}


def _batch(seed: int, b: int = 10, cond: float = 20.0, channels: int | None = None) -> torch.Tensor:
    lead = (b,) if channels is None else (b, channels)
    return random_spd(N, torch.Generator().manual_seed(seed), batch=lead, cond=cond)


def _randomize_parameters(layer: RiemannianBatchNorm, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.bias.copy_(random_spd(N, gen, batch=layer.bias.shape[:-2], cond=3.0))
        if layer.log_std is not None:
            layer.log_std.copy_(0.3 * torch.randn(layer.log_std.shape, generator=gen, dtype=F64))
        metric = getattr(layer.geometry, "metric", None)
        if metric is not None:
            metric.copy_(random_spd(N, gen, batch=metric.shape[:-2], cond=3.0))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_normalized_batch_has_identity_mean_and_unit_variance(name):
    # With converged means (many Karcher steps), bias = I and scale = 1, the
    # output batch's Fréchet mean is the identity and its Fréchet variance is
    # v / (v + eps).
    layer = LAYERS[name](karcher_steps=100, eps=1e-8, dtype=F64)
    x = _batch(1)
    y = layer(x)
    g = layer.geometry
    assert torch.allclose(g.frechet_mean(y, steps=200), torch.eye(N, dtype=F64), atol=1e-8)
    var_in = g.variance(g.encode(x), g.mean(g.encode(x), steps=200))
    expected = var_in / (var_in + 1e-8)
    assert torch.isclose(g.variance(g.encode(y), g.encode(torch.eye(N, dtype=F64))), expected, rtol=1e-8)
    assert torch.isclose(layer.running_var, 0.9 + 0.1 * var_in, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_learned_bias_and_scale_set_the_output_statistics(name):
    layer = LAYERS[name](karcher_steps=100, eps=0.0, dtype=F64)
    _randomize_parameters(layer)
    y = layer(_batch(2))
    g = layer.geometry
    mean = g.frechet_mean(y, steps=200)
    assert torch.allclose(mean, layer.bias, atol=1e-8)
    assert torch.isclose(g.variance(g.encode(y), g.encode(mean)), layer.target_std.square(), rtol=1e-7)


def test_spdbatchnorm_centres_and_biases_without_scaling():
    layer = SPDBatchNorm(N, karcher_steps=100, dtype=F64)
    x = _batch(3)
    g = layer.geometry
    var_in = g.variance(x, g.frechet_mean(x))
    y = layer(x)
    assert torch.allclose(g.frechet_mean(y), torch.eye(N, dtype=F64), atol=1e-9)
    assert torch.isclose(g.variance(y), var_in, rtol=1e-9)
    assert layer.log_std is None and not hasattr(layer, "shift_") and layer.running_var is None


def test_per_channel_statistics_equal_independent_layers():
    x = _batch(4, channels=3)
    layer = LieBatchNorm(N, "aim", theta=0.5, channels=3, dtype=F64)
    _randomize_parameters(layer)
    y = layer(x)
    for c in range(3):
        single = LieBatchNorm(N, "aim", theta=0.5, dtype=F64)
        with torch.no_grad():
            single.bias.copy_(layer.bias[c])
            single.log_std.copy_(layer.log_std[c])
        assert torch.allclose(single(x[:, c]), y[:, c], atol=1e-12)
        assert torch.allclose(single.running_mean, layer.running_mean[c], atol=1e-12)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_eval_uses_running_statistics(name):
    layer = LAYERS[name](dtype=F64)
    _randomize_parameters(layer)
    x = _batch(5)
    g = layer.geometry
    with torch.no_grad():
        batch_mean = g.frechet_mean(x, steps=1)
        layer(x)
    # one geodesic step of size momentum from the identity towards the batch mean
    expected = g.geodesic(torch.eye(N, dtype=F64), batch_mean, 0.1)
    assert torch.allclose(layer.running_mean, expected, atol=1e-12)
    layer.eval()
    y1 = layer(x)
    y2 = layer(_batch(6)[:3])
    assert torch.allclose(layer(x[:3]), y1[:3], atol=1e-12)  # per-sample: no batch coupling
    assert y2.shape == (3, N, N)


@pytest.mark.parametrize("name", sorted(LAYERS) + ["lie-lem", "spdnetbn"])
def test_after_reeig_equals_the_unfused_computation(name):
    # ReEig's output is SPD by construction: the batch norm checks nothing again, and
    # LEM takes log from ReEig's eigendecomposition, differentiated to ReEig's input.
    # A clone drops what ReEig attached, so the clone is the plain computation.
    from geonorm.nn import ReEig

    make = {"lie-lem": lambda: LieBatchNorm(N, "lem"), "spdnetbn": lambda: SPDBatchNorm(N)}.get(name)
    eps = 0.3
    x = _batch(5, cond=30.0).requires_grad_()
    g = torch.randn(10, N, N, generator=torch.Generator().manual_seed(2), dtype=F64)
    results = []
    for fused in (True, False):
        layer = make() if make else LAYERS[name](dtype=F64)
        layer = layer.to(F64)
        _randomize_parameters(layer)
        y = ReEig(eps)(x)
        out = layer(y if fused else y.clone())
        if fused and name.startswith("lie-lem"):
            assert not graph_reaches(out.grad_fn, y.grad_fn)  # log from ReEig's input: ReEig's node skipped
        (grad,) = torch.autograd.grad((out * sym(g)).sum(), x)
        results.append((out.detach(), grad, layer.running_mean.clone()))
    # only LEM computes differently (log from ReEig's eigendecomposition, not from eigh of
    # the rebuilt matrix): that moves the log by about n * cond * eps (forward error)
    cond = (torch.linalg.eigvalsh(x.detach())[:, -1].max() / eps).item()
    tol = 10 * N * cond * torch.finfo(F64).eps
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_stacked_encoding_equals_one_call_per_point(name):
    """Input, bias and running mean encoded in one call, or one call each."""
    x = _batch(5, channels=2).requires_grad_()
    g = torch.randn(10, 2, N, N, generator=torch.Generator().manual_seed(2), dtype=F64)
    results = []
    for stacked in (True, False):
        layer = LAYERS[name](dtype=F64, channels=2)
        _randomize_parameters(layer)
        if not stacked:  # the protocol's defaults: one call per point
            layer.geometry.encode_many = types.MethodType(Geometry.encode_many, layer.geometry)
        out = layer(x)
        (grad,) = torch.autograd.grad((out * sym(g)).sum(), x)
        layer.eval()
        results.append((out.detach(), grad, layer.running_mean.clone(), layer.running_var.clone(), layer(x).detach()))
    # each matrix is factorized on its own in either case: only summation order may differ
    tol = 100 * N * 20.0 * torch.finfo(F64).eps
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * b.abs().max().item())


def test_a_non_spd_bias_is_not_blamed_on_the_input():
    """The stacked check fails for a bad bias; the retry call by call passes x and encodes the bias as before."""
    layer = LieBatchNorm(N, "lem", dtype=F64)
    with torch.no_grad():
        layer.bias.copy_(-torch.eye(N, dtype=F64))
    layer(_batch(3))  # x is SPD: no error (the bias is floored, as encode does)
    bad = _batch(3)
    bad[0] = -bad[0]
    with pytest.raises(ValueError, match="x: .*positive definite"):
        layer(bad)


def test_cumulative_momentum_none():
    layer = LieBatchNorm(N, "lem", momentum=None, dtype=F64)
    xs = [_batch(7 + i) for i in range(3)]
    for x in xs:
        layer(x)
    g = layer.geometry
    means = torch.stack([g.encode(g.frechet_mean(x)) for x in xs])
    assert torch.allclose(g.encode(layer.running_mean), means.mean(0), atol=1e-12)


@pytest.mark.parametrize("mode", ["train", "eval", "train-detached"])
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradcheck_through_the_layer(name, mode):
    # Train mode differentiates through the batch statistics; eval mode uses
    # the running ones. With detached statistics (LieBN's default) the layer's
    # gradient deliberately treats the batch mean and variance as constants,
    # so only the parameters that do not feed them are checked there.
    layer = LAYERS[name](detach_stats=mode == "train-detached", karcher_steps=2, dtype=F64)
    _randomize_parameters(layer)
    x = _batch(8, b=4)
    layer(x)  # move the running statistics away from the identity
    layer.train(mode != "eval")
    if mode != "train-detached":
        assert gradcheck(lambda inp: layer(sym(inp)), (x.clone().requires_grad_(),), atol=1e-6, rtol=1e-5)
    for pname, param in layer.named_parameters():
        if mode == "train-detached" and pname == "geometry.metric":
            continue

        def through(value, pname=pname):
            value = sym(value) if value.ndim >= 2 else value
            return torch.func.functional_call(layer, {pname: value}, (x,))

        start = param.detach().clone().requires_grad_()
        assert gradcheck(through, (start,), atol=1e-6, rtol=1e-5), pname


def test_agrees_with_spd_learn_lie_batchnorm():
    spd_learn = pytest.importorskip("spd_learn.modules")
    n = 6
    x = random_spd(n, torch.Generator().manual_seed(9), batch=(16,), cond=30.0)
    cases = [
        ("AIM", {}),
        ("AIM", {"theta": 0.5, "beta": 0.3}),
        ("LEM", {"alpha": 2.0, "beta": 0.3}),
        ("LCM", {"theta": 0.5}),
        ("LCM", {"alpha": 1.5, "beta": 0.2}),
    ]
    for metric, kw in cases:
        ours = LieBatchNorm(n, metric.lower(), dtype=F64, **kw)
        ref = spd_learn.SPDBatchNormLie(n, metric=metric, dtype=F64, **kw)
        xo, xr = x.clone().requires_grad_(), x.clone().requires_grad_()
        yo, yr = ours(xo), ref(xr)
        upstream = torch.randn(yo.shape, generator=torch.Generator().manual_seed(1), dtype=F64)
        (yo * upstream).sum().backward()
        (yr * upstream).sum().backward()
        assert torch.allclose(yo, yr, atol=1e-12), metric
        assert torch.allclose(xo.grad, xr.grad, atol=1e-11), metric
        assert torch.isclose(ours.running_var, ref.running_var.reshape(()), atol=1e-13)
        for _ in range(3):
            ours(x), ref(x)
        ours.eval(), ref.eval()
        assert torch.allclose(ours(x), ref(x), atol=1e-12), metric


HARD_INPUTS = {
    "identity": lambda dtype: torch.eye(N, dtype=dtype).repeat(6, 1, 1),
    "repeated": lambda dtype: torch.diag(torch.tensor([0.5, 0.5, 2.0, 2.0])).to(dtype).repeat(6, 1, 1),
}


@pytest.mark.parametrize("dtype,cond", [(F64, 1e10), (torch.float32, 1e5)])
@pytest.mark.parametrize("name", sorted(LAYERS) + ["spdnetbn"])
def test_no_nan_or_inf_forward_backward(name, dtype, cond):
    make = LAYERS.get(name, lambda **kw: SPDBatchNorm(N, **kw))
    inputs = [f(dtype) for f in HARD_INPUTS.values()]
    inputs.append(random_spd(N, torch.Generator().manual_seed(10), batch=(6,), cond=cond).to(dtype))
    for x in inputs:
        layer = make(dtype=dtype)
        for mode in ("train", "eval"):
            layer.train(mode == "train")
            xr = x.clone().requires_grad_()
            y = layer(xr)
            grads = torch.autograd.grad(y.square().sum(), [xr] + list(layer.parameters()))
            assert torch.isfinite(y).all(), (name, mode)
            assert all(torch.isfinite(g).all() for g in grads), (name, mode)


def test_state_dict_round_trip_and_dtype_moves():
    layer = BuresWassersteinBatchNorm(N, theta=0.5, channels=2, dtype=F64)
    _randomize_parameters(layer)
    x = _batch(11, channels=2)
    layer(x)
    clone = BuresWassersteinBatchNorm(N, theta=0.5, channels=2, dtype=F64)
    clone.load_state_dict(layer.state_dict())
    layer.eval(), clone.eval()
    assert torch.allclose(layer(x), clone(x), atol=0)
    assert set(layer.state_dict()) == {
        "bias", "log_std", "running_mean", "running_var", "num_batches_tracked", "geometry.metric"
    }
    as32 = copy.deepcopy(layer).to(torch.float32)
    assert as32.bias.dtype == torch.float32 and as32.running_mean.dtype == torch.float32
    assert isinstance(as32.bias, geoopt.ManifoldParameter)
    assert torch.allclose(as32(x.float()).double(), layer(x), atol=1e-3)


def test_riemannian_adam_trains_the_bias_and_keeps_it_spd():
    torch.manual_seed(0)
    layer = LieBatchNorm(N, "aim", dtype=F64)
    target = random_spd(N, torch.Generator().manual_seed(12), cond=4.0)
    opt = geoopt.optim.RiemannianAdam(layer.parameters(), lr=0.05)
    x = _batch(13)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (layer(x).mean(0) - target).square().sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]
    assert torch.linalg.eigvalsh(layer.bias).min() > 0


def test_bad_input_raises_clear_errors():
    layer = LieBatchNorm(N, "aim", channels=2, validate=True, dtype=F64)
    good = _batch(14, channels=2)
    with pytest.raises(ValueError, match=r"x: expected shape \[B, 2, 4, 4\], got \[10, 2, 4, 3\]"):
        layer(good[..., :3])
    with pytest.raises(ValueError, match=r"got \[10, 4, 4\]"):
        layer(good[:, 0])
    with pytest.raises(ValueError, match="wrong channel count"):
        layer(_batch(14, channels=3))
    with pytest.raises(ValueError, match=r"got \[10, 2, 5, 5\]"):
        layer(random_spd(5, torch.Generator().manual_seed(0), batch=(10, 2)))
    asym = good.clone()
    asym[0, 0, 0, 1] += 0.1
    with pytest.raises(ValueError, match="symmetric"):
        layer(asym)
    nan = good.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        LieBatchNorm(N, "aim", channels=2, dtype=F64)(nan)
    not_pd = good.clone()
    not_pd[0, 0] = -not_pd[0, 0]
    with pytest.raises(ValueError, match="positive definite"):
        layer(not_pd)
    with pytest.raises(TypeError, match="floating-point"):
        layer(good.to(torch.int64))
    with pytest.raises(ValueError, match="batch size 1"):
        layer(good[:1])
    with pytest.raises(ValueError, match="metric: expected 'aim', 'lem' or 'lcm'"):
        LieBatchNorm(N, "bw")
    with pytest.raises(ValueError, match="theta: the Log-Euclidean"):
        LieBatchNorm(N, "lem", theta=0.5)
    with pytest.raises(ValueError, match="beta: expected beta > -alpha/n"):
        LieBatchNorm(N, "aim", beta=-1.0)
    with pytest.raises(ValueError, match="momentum"):
        LieBatchNorm(N, momentum=1.5)
    with pytest.raises(ValueError, match="dim: expected a positive int"):
        RiemannianBatchNorm("aim", 0)
    with pytest.raises(ValueError, match="n: expected a positive int"):
        LieBatchNorm(0)
    with pytest.raises(TypeError, match="momentum: expected a real number, got bool"):
        LieBatchNorm(N, momentum=True)
    with pytest.raises(TypeError, match="eps: expected a real number, got bool"):
        SPDBatchNorm(N, eps=True)
    with pytest.raises(TypeError, match="x: expected dtype torch.float64"):
        LieBatchNorm(N, dtype=F64)(good[:, 0].float())


def test_runs_under_torch_compile():
    layer = LieBatchNorm(N, "aim", theta=0.5, dtype=F64)
    compiled = torch.compile(copy.deepcopy(layer), backend="aot_eager")
    x = _batch(15)
    xs = [x.clone().requires_grad_() for _ in range(2)]
    ys = [layer(xs[0]), compiled(xs[1])]
    for y, xi in zip(ys, xs):
        y.square().sum().backward()
    assert torch.allclose(ys[0], ys[1], atol=1e-12)
    assert torch.allclose(xs[0].grad, xs[1].grad, atol=1e-10)
