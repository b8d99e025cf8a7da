"""The shared RiemannianBatchNorm: compile, running statistics, registry, input policy."""

import copy

import pytest
import torch

from geonorm.riemannian import RiemannianBatchNorm, available_geometries, get_geometry
from geonorm.spd import AffineInvariant, BuresWassersteinBatchNorm, LieBatchNorm, SPDBatchNorm

from .._spd import random_spd, spd_with_spectrum

F64 = torch.float64
N = 4

SPD_LAYERS = {
    "lie-aim": lambda **kw: LieBatchNorm(N, "aim", **kw),
    "lie-aim(theta=0.5)": lambda **kw: LieBatchNorm(N, "aim", theta=0.5, **kw),
    "lie-lem": lambda **kw: LieBatchNorm(N, "lem", **kw),
    "lie-lcm": lambda **kw: LieBatchNorm(N, "lcm", **kw),
    "lie-lcm(theta=0.5)": lambda **kw: LieBatchNorm(N, "lcm", theta=0.5, **kw),
    "gbw": lambda **kw: BuresWassersteinBatchNorm(N, **kw),
    "gbw(theta=0.5)": lambda **kw: BuresWassersteinBatchNorm(N, theta=0.5, **kw),
    "spdbn": lambda **kw: SPDBatchNorm(N, **kw),
}


def _batches(k: int, dtype=F64, b: int = 8):
    return [random_spd(N, torch.Generator().manual_seed(i), batch=(b,), cond=20.0).to(dtype) for i in range(k)]


def _state(layer):
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}


@pytest.mark.parametrize("name", sorted(SPD_LAYERS))
def test_compiled_layer_keeps_the_eager_running_statistics(name):
    # A user trial found torch.compile dropping the running-variance update
    # (eval outputs then drift from eager); train three steps both ways, then
    # compare every buffer and the eval output.
    eager = SPD_LAYERS[name](dtype=F64)
    compiled = torch.compile(copy.deepcopy(eager), backend="aot_eager")
    xs = _batches(4)
    for x in xs[:3]:
        eager(x)
        compiled(x)
    ref, got = _state(eager), _state(compiled._orig_mod)
    assert ref.keys() == got.keys()
    for key in ref:
        assert torch.allclose(ref[key].double(), got[key].double(), rtol=1e-10, atol=1e-12), key
    assert int(got["num_batches_tracked"]) == 3
    eager.eval(), compiled.eval()
    assert torch.allclose(eager(xs[3]), compiled(xs[3]), rtol=1e-10, atol=1e-12)


def test_inductor_updates_the_running_variance():
    eager = LieBatchNorm(N, "lcm")
    compiled = torch.compile(copy.deepcopy(eager))
    for x in _batches(3, torch.float32):
        eager(x)
        compiled(x)
    assert float(eager.running_var) != 1.0
    # float32 rounding of a handful of matrix ops, compiled vs eager
    assert torch.allclose(compiled._orig_mod.running_var, eager.running_var, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SPD_LAYERS))
def test_non_spd_input_is_rejected_by_default(name):
    layer = SPD_LAYERS[name](dtype=F64)
    x = _batches(1)[0]
    before = _state(layer)
    rank_one = torch.ones(8, N, 1, dtype=F64) @ torch.ones(8, 1, N, dtype=F64)
    for bad in (-x, rank_one):
        with pytest.raises(ValueError, match="positive definite"):
            layer(bad)
    layer.eval()
    with pytest.raises(ValueError, match="positive definite"):
        layer(-x)
    after = _state(layer)
    for key in before:  # nothing was corrupted by the rejected batches
        assert torch.equal(before[key], after[key]), key


@pytest.mark.parametrize("name", sorted(SPD_LAYERS))
def test_eval_without_running_stats_uses_the_batch(name):
    tracked = SPD_LAYERS[name](dtype=F64)
    untracked = SPD_LAYERS[name](track_running_stats=False, dtype=F64)
    assert untracked.running_mean is None and untracked.running_var is None
    x = _batches(1)[0]
    untracked.eval()
    assert torch.allclose(untracked(x), tracked(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", sorted(SPD_LAYERS))
def test_reset_running_stats_restores_a_fresh_layer(name):
    layer = SPD_LAYERS[name](dtype=F64)
    fresh = copy.deepcopy(layer)
    for x in _batches(2):
        layer(x)
    assert not torch.allclose(layer.running_mean, fresh.running_mean)
    layer.reset_running_stats()
    for key, value in _state(fresh).items():
        assert torch.equal(_state(layer)[key], value), key
    layer.eval()
    fresh.eval()
    x = _batches(3)[2]
    assert torch.allclose(layer(x), fresh(x))


def test_eval_output_does_not_depend_on_the_rest_of_the_batch():
    layer = LieBatchNorm(N, "aim", dtype=F64)
    for x in _batches(3):
        layer(x)
    layer.eval()
    x = _batches(4)[3]
    assert torch.allclose(layer(x)[:3], layer(x[:3]), rtol=1e-12, atol=1e-14)


def test_karcher_steps_have_one_source_of_truth():
    g = AffineInvariant(karcher_steps=50)
    layer = RiemannianBatchNorm(g, N, dtype=F64)
    assert layer.karcher_steps is None and "geometry's" in repr(layer)
    x = spd_with_spectrum(torch.tensor([1e-2, 1.0, 10.0, 1e2]), torch.Generator().manual_seed(3), batch=(12,))
    y = layer(x)  # 50 Karcher steps: the output's mean is the bias (I)
    assert torch.allclose(g.frechet_mean(y), torch.eye(N, dtype=F64), atol=1e-8)
    one = RiemannianBatchNorm(g, N, karcher_steps=1, dtype=F64)
    assert "overrides" in repr(one)
    assert not torch.allclose(g.frechet_mean(one(x)), torch.eye(N, dtype=F64), atol=1e-4)


def test_registry_builds_every_geometry_by_name():
    assert "poincare" in available_geometries() and "gbw" in available_geometries()
    assert get_geometry("gbw", n=3).metric.shape == (3, 3)
    layer = RiemannianBatchNorm("gbw", 3, channels=2, dtype=F64)
    assert layer.geometry.metric.shape == (2, 3, 3)
    assert layer(random_spd(3, torch.Generator().manual_seed(0), batch=(5, 2))).shape == (5, 2, 3, 3)
    with pytest.raises(ValueError, match="geometry: expected one of"):
        get_geometry("hyperbolic-ish")
    with pytest.raises(TypeError, match="geometry instance"):
        get_geometry(AffineInvariant(), theta=2.0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(SPD_LAYERS))
def test_half_precision_layers_compute_in_float32(name, dtype):
    layer = SPD_LAYERS[name]().to(dtype)
    x = _batches(1, torch.float32)[0]
    y = layer(x.to(dtype))
    assert y.dtype == dtype and bool(torch.isfinite(y).all())
    ref = SPD_LAYERS[name]()(x)
    # the input's own rounding (cond 20 spectrum, relative eps of the format)
    # carried through a few matrix functions
    tol = 50 * torch.finfo(dtype).eps
    assert torch.allclose(y.float(), ref, rtol=tol, atol=tol * float(ref.detach().abs().max()))


def test_autocast_input_is_computed_in_the_layer_dtype():
    layer = LieBatchNorm(N, "aim")
    x = _batches(1, torch.float32)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x.bfloat16())
    assert y.dtype == torch.float32
    assert torch.allclose(y.detach(), LieBatchNorm(N, "aim")(x.bfloat16().float()).detach(), rtol=1e-5, atol=1e-6)
