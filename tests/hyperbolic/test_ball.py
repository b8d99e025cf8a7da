"""Poincaré-ball maps: agreement with geoopt, gyrogroup identities, boundary stress, checks."""

from __future__ import annotations

import math

import geoopt
import pytest
import torch

from geonorm._numerics import ball_margin
from geonorm.hyperbolic import (
    check_curvature,
    check_in_ball,
    conformal_factor,
    distance,
    expmap,
    expmap0,
    gyration,
    logmap,
    logmap0,
    mobius_add,
    mobius_scalar_mul,
    project,
    transport,
)
from . import ball_points

F64 = torch.float64
EPS64 = torch.finfo(F64).eps
CURVATURES = [1e-3, 0.5, 1.0, 3.0, 10.0]


def _close(a, b, cond):
    """Forward error bound ~ cond * eps (a factor 100 for the chain of a few operations)."""
    scale = max(float(b.abs().max()), 1.0)
    err = float((a - b).abs().max())
    assert err <= 100 * cond * EPS64 * scale, f"error {err:.3e} at scale {scale:.3e}"


# Generic points have lambda <= 2 / (1 - 0.64) < 6; the maps compose a few
# divisions by 1 - c|x|^2, so the condition number is at most ~ lambda^2 < 40.
COND = 40.0


@pytest.mark.parametrize("c", CURVATURES)
def test_maps_agree_with_geoopt(c):
    ball = geoopt.PoincareBall(c=torch.tensor(c, dtype=F64))
    # geoopt 0.5: c is the magnitude, k = -c (stored through an inverse softplus, so
    # it comes back within rounding); compare at geoopt's exact value
    assert -float(ball.k) == pytest.approx(c, rel=1e-12)
    c = -float(ball.k)
    x, y = ball_points((6, 4), c, seed=1), ball_points((6, 4), c, seed=2)
    v = torch.randn(6, 4, generator=torch.Generator().manual_seed(3), dtype=F64) / math.sqrt(c)
    r = torch.linspace(-1.5, 2.0, 6, dtype=F64)
    _close(mobius_add(x, y, c=c), ball.mobius_add(x, y, project=False), COND)
    _close(expmap(x, 0.3 * v, c=c), ball.expmap(x, 0.3 * v, project=False), COND)
    _close(logmap(x, y, c=c), ball.logmap(x, y), COND)
    _close(distance(x, y, c=c), ball.dist(x, y), COND)
    _close(transport(x, y, v, c=c), ball.transp(x, y, v), COND)
    _close(gyration(x, y, v, c=c), geoopt.manifolds.stereographic.math.gyration(x, y, v, k=ball.k), COND)
    _close(expmap0(v, c=c), ball.expmap0(v, project=False), COND)
    _close(logmap0(y, c=c), ball.logmap0(y), COND)
    _close(mobius_scalar_mul(r, x, c=c), ball.mobius_scalar_mul(r.unsqueeze(-1), x, project=False), COND)
    _close(conformal_factor(x, c=c), ball.lambda_x(x), COND)


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_gyrogroup_identities(c):
    x, y, w = (ball_points((5, 3), c, seed=s) for s in (4, 5, 6))
    # left cancellation and the gyroassociative law define the gyration
    _close(mobius_add(-x, mobius_add(x, y, c=c), c=c), y, COND)
    lhs = mobius_add(x, mobius_add(y, w, c=c), c=c)
    rhs = mobius_add(mobius_add(x, y, c=c), gyration(x, y, w, c=c), c=c)
    _close(lhs, rhs, COND)
    # gyr[x, y] is a rotation: its matrix is orthogonal with det +1, and it is not the identity
    eye = torch.eye(3, dtype=F64)
    m = gyration(x[0], y[0], eye, c=c).T  # [3, 3]
    _close(m @ m.T, eye, COND)
    assert abs(float(torch.linalg.det(m)) - 1.0) < 1e-12
    assert float((m - eye).abs().max()) > 1e-3
    # scalar multiplication: (r s) x = r (s x), distance to the origin scales by |r|
    rs = mobius_scalar_mul(0.7, mobius_scalar_mul(-1.3, x, c=c), c=c)
    _close(rs, mobius_scalar_mul(-0.91, x, c=c), COND)
    zero = torch.zeros_like(x)
    _close(distance(zero, mobius_scalar_mul(2.5, x, c=c), c=c), 2.5 * distance(zero, x, c=c), COND)


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_exp_log_inverse_and_transport_isometry(c):
    x, y = ball_points((5, 3), c, seed=7), ball_points((5, 3), c, seed=8)
    u = logmap(x, y, c=c)
    _close(expmap(x, u, c=c), y, COND)
    # Riemannian length of log_x y is the distance
    _close(conformal_factor(x, c=c) * u.norm(dim=-1), distance(x, y, c=c), COND)
    v = torch.randn(5, 3, generator=torch.Generator().manual_seed(9), dtype=F64)
    pv = transport(x, y, v, c=c)
    lx, ly = conformal_factor(x, c=c, keepdim=True), conformal_factor(y, c=c, keepdim=True)
    _close((ly * pv).norm(dim=-1), (lx * v).norm(dim=-1), COND)
    _close(transport(x, y, u, c=c), -logmap(y, x, c=c), COND)
    _close(transport(y, x, pv, c=c), v, COND)
    # the isometry x -> a (+) x preserves distances
    a = ball_points((1, 3), c, seed=10)
    _close(distance(mobius_add(a, x, c=c), mobius_add(a, y, c=c), c=c), distance(x, y, c=c), COND)


def test_tensor_curvature_and_gradients_float64():
    c = torch.tensor(0.7, dtype=F64, requires_grad=True)
    x = ball_points((3, 2), 0.7, seed=11).requires_grad_()
    y = ball_points((3, 2), 0.7, seed=12).requires_grad_()
    v = torch.randn(3, 2, dtype=F64, generator=torch.Generator().manual_seed(13)).requires_grad_()
    fns = [
        lambda x, y, v, c: distance(x, y, c=c),
        lambda x, y, v, c: logmap(x, y, c=c),
        lambda x, y, v, c: expmap(x, 0.5 * v, c=c),
        lambda x, y, v, c: transport(x, y, v, c=c),
        lambda x, y, v, c: mobius_scalar_mul(v[:, 0], x, c=c),
        lambda x, y, v, c: gyration(x, y, v, c=c),
    ]
    for f in fns:
        assert torch.autograd.gradcheck(f, (x, y, v, c))


BOUNDARY = [(F64, 1e-7), (torch.float32, 1e-3)]


@pytest.mark.parametrize("dtype,delta", BOUNDARY)
@pytest.mark.parametrize("c", [1e-3, 1.0, 10.0])
def test_no_nan_or_inf_at_the_boundary(dtype, delta, c):
    g = torch.Generator().manual_seed(14)
    d = torch.randn(4, 3, generator=g, dtype=F64)
    x = (d / d.norm(dim=-1, keepdim=True) * (1 - delta) / math.sqrt(c)).to(dtype).requires_grad_()
    y = torch.cat([-x[:1], x[1:2], x[2:].flip(0)]).detach().requires_grad_()  # antipodal, equal, other
    v = (10.0 / math.sqrt(c) * torch.randn(4, 3, generator=g, dtype=F64)).to(dtype)
    v.requires_grad_()
    outs = [
        mobius_add(x, y, c=c), mobius_scalar_mul(0.5, x, c=c), gyration(x, y, v, c=c),
        expmap(x, v, c=c), logmap(x, y, c=c), logmap0(x, c=c), expmap0(v, c=c),
        distance(x, y, c=c), transport(x, y, v, c=c), project(x, c=c), conformal_factor(x, c=c),
    ]
    for i, out in enumerate(outs):
        assert torch.isfinite(out).all(), f"output {i} not finite"
        grads = torch.autograd.grad(out.sum(), (x, y, v), allow_unused=True)
        for gr in grads:
            assert gr is None or torch.isfinite(gr).all(), f"gradient of output {i} not finite"
    # results are inside the ball (maps that produce points)
    for out in outs[:2] + outs[3:4] + outs[6:7] + outs[9:10]:
        assert float((math.sqrt(c) * out.detach().double().norm(dim=-1)).max()) < 1.0


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_project_uses_the_dtype_margin(dtype):
    c = 4.0
    x = torch.tensor([[3.0, 4.0], [0.1, 0.2]], dtype=dtype)
    p = project(x, c=c)
    assert float(p[0].double().norm()) == pytest.approx((1 - ball_margin(dtype)) / 2.0, rel=1e-6)
    assert torch.equal(p[1], x[1])


def test_check_curvature_errors_name_the_argument():
    assert check_curvature(2) == 2
    t = torch.tensor(0.3)
    assert check_curvature(t) is t
    for bad, err in [("1", TypeError), (True, TypeError), (torch.ones(1), TypeError),
                     (torch.tensor(1), TypeError), (0.0, ValueError), (-1.0, ValueError),
                     (float("nan"), ValueError), (float("inf"), ValueError),
                     (torch.tensor(-0.5), ValueError)]:
        with pytest.raises(err, match="^curv: expected"):
            check_curvature(bad, "curv")
    with pytest.raises(ValueError, match="^c: expected a finite positive"):
        distance(torch.zeros(2), torch.zeros(2), c=-1.0)


def test_check_in_ball_errors_name_the_argument():
    ok = torch.tensor([[0.3, 0.4]])
    assert check_in_ball(ok, "z", c=1.0) is ok
    with pytest.raises(ValueError, match=r"^z: expected points strictly inside .* radius 1/sqrt\(c\) = 0.5"):
        check_in_ball(ok, "z", c=4.0)
    with pytest.raises(ValueError, match="^z: expected points strictly inside"):
        check_in_ball(torch.tensor([[1.0, 0.0]]), "z", c=1.0)  # on the boundary
    with pytest.raises(ValueError, match="^z: expected finite values"):
        check_in_ball(torch.tensor([[float("nan"), 0.0]]), "z", c=1.0)
    with pytest.raises(TypeError, match="^z: expected a real floating-point"):
        check_in_ball(torch.tensor([[0, 0]]), "z", c=1.0)
    with pytest.raises(TypeError, match="^z: expected a torch.Tensor"):
        check_in_ball([[0.1, 0.2]], "z", c=1.0)
    with pytest.raises(ValueError, match=r"^z: expected points of shape \[..., d\]"):
        check_in_ball(torch.tensor(0.1), "z", c=1.0)
