"""Gyromidpoint, Fréchet mean and variance on the Poincaré ball."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor

import geoopt
import pytest
import torch

from geonorm.hyperbolic import (
    distance,
    frechet_mean,
    frechet_variance,
    gyration,
    gyromidpoint,
    logmap,
    mobius_add,
)
from geonorm.testing import MobiusAction
from . import ball_points

F64 = torch.float64
EPS64 = torch.finfo(F64).eps


def _weights(shape, seed):
    return 0.2 + torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


# --------------------------------------------------------------------------- gyromidpoint


def _klein_einstein_midpoint(x, w, c):
    """Independent reference: to Klein, Lorentz-weighted average, back to Poincaré."""
    k = 2 * x / (1 + c * (x * x).sum(-1, keepdim=True))  # Klein coordinates
    gamma = 1 / torch.sqrt(1 - c * (k * k).sum(-1, keepdim=True))  # Lorentz factors
    wg = w.unsqueeze(-1) * gamma
    m = (wg * k).sum(0) / wg.sum(0)
    return m / (1 + torch.sqrt(1 - c * (m * m).sum(-1, keepdim=True)))


@pytest.mark.parametrize("c", [0.1, 1.0, 4.0])
def test_gyromidpoint_is_the_klein_einstein_midpoint(c):
    x = ball_points((9, 3, 4), c, seed=1)
    w = _weights((9, 3), seed=2)
    want = _klein_einstein_midpoint(x, w, c)
    # conditioning: Lorentz factors up to 1/(1 - 0.64) ~ 3, a handful of operations
    assert torch.allclose(gyromidpoint(x, w, c=c), want, rtol=0, atol=1e3 * EPS64 / math.sqrt(c))
    ones = torch.ones(9, 3, dtype=F64)
    assert torch.allclose(gyromidpoint(x, c=c), _klein_einstein_midpoint(x, ones, c), rtol=0,
                          atol=1e3 * EPS64 / math.sqrt(c))
    # [B] weights broadcast over the batch dims and are normalised (scale-free)
    assert torch.allclose(gyromidpoint(x, 3.0 * w[:, 0], c=c),
                          _klein_einstein_midpoint(x, w[:, :1].expand(9, 3), c), atol=1e-13)


def test_gyromidpoint_of_two_points_is_the_geodesic_midpoint():
    c = 2.0
    x = ball_points((2, 5, 3), c, seed=3)
    m = gyromidpoint(x, c=c)
    d0, d1, d01 = distance(m, x[0], c=c), distance(m, x[1], c=c), distance(x[0], x[1], c=c)
    assert torch.allclose(d0, d1, atol=1e-13) and torch.allclose(d0 + d1, d01, atol=1e-13)


@pytest.mark.parametrize("value", [-0.5, 1.0, 2.0])
def test_gyromidpoint_agrees_with_hypll(value):
    hb = pytest.importorskip("hypll.manifolds.poincare_ball")  # in the test extras
    from hypll.tensors import ManifoldTensor

    curv = hb.Curvature(value)  # hypll: c = softplus(value); Curvature(1.0) is c = 1.3133
    c = float(curv().double())
    assert c == pytest.approx(math.log1p(math.exp(value)), rel=1e-6)
    x = ball_points((16, 5), c, seed=4)
    w = _weights((16, 1), seed=5)
    ball = hb.PoincareBall(c=curv)
    ours = gyromidpoint(x, w[:, 0], c=c)
    theirs = ball.midpoint(ManifoldTensor(x, manifold=ball, man_dim=-1), batch_dim=0, w=w).tensor
    assert torch.allclose(ours, theirs, rtol=0, atol=1e-6)
    theirs = ball.midpoint(ManifoldTensor(x, manifold=ball, man_dim=-1), batch_dim=0).tensor
    assert torch.allclose(gyromidpoint(x, c=c), theirs, rtol=0, atol=1e-6)


# --------------------------------------------------------------------------- Fréchet mean


def _reference_mean(x, w, c, steps=200):
    """Plain Riemannian gradient descent on F = sum w d^2 / 2 with geoopt's maps, from 0."""
    ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=F64))
    w = (w / w.sum(0)).unsqueeze(-1)
    mu = torch.zeros_like(x[0])
    for _ in range(steps):
        mu = ball.expmap(mu, (w * ball.logmap(mu, x)).sum(0), project=False)
    return mu


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_frechet_mean_agrees_with_riemannian_gradient_descent(c):
    x = ball_points((12, 3, 4), c, radius=0.6, seed=6)
    w = _weights((12, 3), seed=7)
    mu = frechet_mean(x, w, c=c)
    assert torch.allclose(mu, _reference_mean(x, w, c), rtol=0, atol=1e-8)
    mu1 = frechet_mean(x, c=c)
    assert torch.allclose(mu1, _reference_mean(x, torch.ones(12, 3, dtype=F64), c), rtol=0,
                          atol=1e-8)
    # it is not the gyromidpoint (the two means differ for spread data)
    assert float((mu - gyromidpoint(x, w, c=c)).abs().max()) > 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_frechet_mean_is_stationary(dtype):
    c = 1.0
    x = ball_points((32, 2, 6), c, radius=0.95, seed=8, dtype=dtype)
    w = _weights((32, 2), seed=9).to(dtype)
    mu = frechet_mean(x, w, c=c)
    grad = (w.unsqueeze(-1) * logmap(mu, x, c=c)).sum(0) / w.sum(0).unsqueeze(-1)
    # the stopping rule bounds the step to iteration_tol; the residual gradient is of that
    # order times the conditioning (lambda(mu) ~ 2 here, spread ~ 1/(1 - 0.95^2) ~ 10)
    tol = 1e3 * torch.finfo(dtype).eps ** 0.75
    assert float(grad.abs().max()) < tol


def test_frechet_mean_warm_start_and_iteration_controls():
    c = 1.0
    x = ball_points((10, 3), c, seed=10)
    mu = frechet_mean(x, c=c)
    far = torch.tensor([0.0, 0.0, -0.9], dtype=F64)
    assert torch.allclose(frechet_mean(x, c=c, init=far), mu, atol=1e-10)
    assert torch.allclose(frechet_mean(x, c=c, init=mu, max_iter=1), mu, atol=1e-12)
    # one iteration from far away is not converged
    assert float((frechet_mean(x, c=c, init=far, max_iter=1) - mu).abs().max()) > 1e-3


def test_frechet_mean_implicit_gradient_passes_gradcheck():
    c = 0.8
    x = ball_points((5, 2, 3), c, seed=11).requires_grad_()
    w = _weights((5, 2), seed=12).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w: frechet_mean(x, w, c=c), (x, w))
    ct = torch.tensor(c, dtype=F64, requires_grad=True)
    wb = _weights((5,), seed=13).requires_grad_()
    assert torch.autograd.gradcheck(lambda x, w, ct: frechet_mean(x, w, c=ct), (x, wb, ct))


# --------------------------------------------------------------------------- variance


def test_frechet_variance_is_the_weighted_mean_squared_distance():
    c = 1.5
    ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=F64))
    c = -float(ball.k)
    x = ball_points((8, 3, 2), c, seed=14)
    w = _weights((8, 3), seed=15)
    mu = frechet_mean(x, w, c=c)
    want = (w * ball.dist(x, mu) ** 2).sum(0) / w.sum(0)
    assert torch.allclose(frechet_variance(x, mu, w, c=c), want, rtol=1e-12, atol=0)
    want0 = (ball.dist0(x) ** 2).mean(0)
    assert torch.allclose(frechet_variance(x, c=c), want0, rtol=1e-12, atol=0)
    # the Fréchet mean minimises it
    assert bool((frechet_variance(x, gyromidpoint(x, w, c=c), w, c=c) > want).all())


# --------------------------------------------------------------------------- reduce


class _TwoRanks:
    """Two threads in lockstep: reduce(t) = t_rank0 + t_rank1, like an all-reduce."""

    def __init__(self):
        self.barrier = threading.Barrier(2, timeout=60)
        self.slots = [None, None]
        self.calls = 0

    def reduce_for(self, rank):
        def reduce(t):
            self.slots[rank] = t.detach()
            self.barrier.wait()
            out = self.slots[0] + self.slots[1]
            self.calls += rank == 0
            self.barrier.wait()
            return out

        return reduce


def _run_two_ranks(fn, halves):
    ranks = _TwoRanks()
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(fn, h, ranks.reduce_for(r)) for r, h in enumerate(halves)]
        out = [f.result() for f in futures]
    return out, ranks.calls


def test_reduce_over_two_simulated_ranks_equals_the_pooled_statistics():
    c = 1.0
    x = ball_points((14, 2, 3), c, seed=16)
    w = _weights((14, 2), seed=17)
    halves = [(x[:6], w[:6]), (x[6:], w[6:])]  # unequal halves: the weights matter

    def stats(h, reduce):
        xs, ws = h
        mid = gyromidpoint(xs, ws, c=c, reduce=reduce)
        mu = frechet_mean(xs, ws, c=c, reduce=reduce)
        var = frechet_variance(xs, mu, ws, c=c, reduce=reduce)
        return mid, mu, var

    (r0, r1), calls = _run_two_ranks(stats, halves)
    assert calls > 6  # every iteration of the Fréchet mean was synchronised
    pooled = (gyromidpoint(x, w, c=c), frechet_mean(x, w, c=c))
    pooled = pooled + (frechet_variance(x, pooled[1], w, c=c),)
    for a, b, p in zip(r0, r1, pooled, strict=True):
        assert torch.equal(a, b)  # both ranks hold the same statistics
        assert torch.allclose(a, p, rtol=0, atol=1e-10)
    # without the reduce a half's statistics are different
    assert float((frechet_mean(x[:6], w[:6], c=c) - pooled[1]).abs().max()) > 1e-3


def test_reduce_in_the_backward_gives_the_pooled_gradient():
    c = 1.0
    x = ball_points((10, 3), c, seed=18)
    w = _weights((10,), seed=19)
    probe = torch.randn(2, 3, generator=torch.Generator().manual_seed(20), dtype=F64)

    xp = x.clone().requires_grad_()
    (frechet_mean(xp, w, c=c) * probe.sum(0)).sum().backward()  # total loss of both ranks

    def rank_grad(h, reduce):
        xs, ws, pr = h
        xs = xs.clone().requires_grad_()
        (frechet_mean(xs, ws, c=c, reduce=reduce) * pr).sum().backward()  # this rank's loss
        return xs.grad

    (g0, g1), _ = _run_two_ranks(rank_grad, [(x[:4], w[:4], probe[0]), (x[4:], w[4:], probe[1])])
    assert torch.allclose(torch.cat([g0, g1]), xp.grad, rtol=0, atol=1e-10)


# --------------------------------------------------------------------------- isometries


@pytest.mark.parametrize("mean", [gyromidpoint, frechet_mean])
def test_centring_is_invariant_up_to_the_gyration(mean):
    c = 1.3
    action = MobiusAction(3, c=c)
    x = ball_points((11, 3), c, seed=21)
    mu = mean(x, c=c)
    centred = mobius_add(-mu, x, c=c)
    for g in action.sample(4, torch.Generator().manual_seed(22)):
        o, a = g.rotation, g.extra["mobius"]
        gx = action.act(g, x)
        mu_g = mean(gx, c=c)
        assert torch.allclose(mu_g, action.act(g, mu), atol=1e-10)  # the mean is equivariant
        centred_g = mobius_add(-mu_g, gx, c=c)
        want = gyration(a, o @ mu, centred @ o.T, c=c)  # gyr[a, O mu] O ((-mu) + x)
        assert torch.allclose(centred_g, want, rtol=0, atol=1e-10)
        # ... and the rotation is not trivial: O alone does not explain it
        assert float((centred_g - centred @ o.T).abs().max()) > 1e-3


# --------------------------------------------------------------------------- stress and errors


@pytest.mark.parametrize("dtype,delta", [(F64, 1e-7), (torch.float32, 1e-3)])
@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0])
def test_means_are_finite_at_the_boundary(dtype, delta, c):
    g = torch.Generator().manual_seed(23)
    d = torch.randn(8, 3, generator=g, dtype=F64)
    x = (d / d.norm(dim=-1, keepdim=True) * (1 - delta) / math.sqrt(c)).to(dtype)
    x = torch.cat([x, -x[:2]]).requires_grad_()  # antipodal pairs
    w = _weights((10,), seed=24).to(dtype).requires_grad_()
    for out in (gyromidpoint(x, w, c=c), frechet_mean(x, w, c=c, max_iter=200),
                frechet_variance(x, None, w, c=c)):
        assert torch.isfinite(out).all()
        gx, gw = torch.autograd.grad(out.sum(), (x, w))
        assert torch.isfinite(gx).all() and torch.isfinite(gw).all()


def test_bad_input_errors_name_the_argument():
    x = ball_points((4, 3), 1.0, seed=25)
    with pytest.raises(ValueError, match=r"^x: expected points of shape \[B, \*batch, d\]"):
        gyromidpoint(x[0], c=1.0)
    with pytest.raises(TypeError, match="^x: expected a real floating-point"):
        frechet_mean(torch.zeros(4, 3, dtype=torch.long), c=1.0)
    with pytest.raises(TypeError, match="^x: expected a torch.Tensor"):
        frechet_variance([[0.1]], c=1.0)
    with pytest.raises(ValueError, match=r"^weights: expected shape \[4\]"):
        gyromidpoint(x, torch.ones(3, dtype=F64), c=1.0)
    with pytest.raises(ValueError, match="^weights: expected finite non-negative"):
        frechet_mean(x, -torch.ones(4, dtype=F64), c=1.0)
    with pytest.raises(ValueError, match=r"^init: expected shape \[3\]"):
        frechet_mean(x, c=1.0, init=torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="^max_iter: expected a positive int"):
        frechet_mean(x, c=1.0, max_iter=0)
    with pytest.raises(ValueError, match="^tol: expected a non-negative"):
        frechet_mean(x, c=1.0, tol=-1.0)
    with pytest.raises(ValueError, match=r"^mean: expected shape \[3\]"):
        frechet_variance(x, torch.zeros(4, dtype=F64), c=1.0)
    with pytest.raises(ValueError, match="^c: expected a finite positive"):
        frechet_mean(x, c=0.0)
    with pytest.raises(TypeError, match="^c: expected a float"):
        gyromidpoint(x, c="1")
