"""Log, exp, parallel transport and inner product at any base point, for every SPD geometry."""

from __future__ import annotations

import warnings

import geoopt
import numpy as np
import pytest
import torch
from torch.autograd import gradcheck

from geonorm.linalg import sym
from geonorm.spd import (
    AffineInvariant,
    BuresWasserstein,
    GeneralizedBuresWasserstein,
    LogCholesky,
    LogEuclidean,
)
from geonorm.spd.tangent import (
    aim_exp,
    aim_inner,
    aim_log,
    aim_transport,
    bw_exp,
    bw_inner,
    bw_log,
    bw_transport,
    lcm_exp,
    lcm_inner,
    lcm_log,
    lcm_transport,
    lem_exp,
    lem_inner,
    lem_log,
    lem_transport,
)
from geonorm.spd.tangent_bw import bw_christoffel

from .._spd import random_spd, spd_with_spectrum

F64 = torch.float64
EPS = torch.finfo(F64).eps
N = 4
COND = 10.0  # condition number of the random test points


def _metric(n: int = N) -> torch.Tensor:
    return random_spd(n, torch.Generator().manual_seed(99), cond=3.0)


def _geometry(name: str, theta: float, alpha: float = 1.0, beta: float = 0.0, n: int = N):
    """(log, exp, transport, inner) with their keyword arguments bound, and the class."""
    if name == "aim":
        kw = {"theta": theta}
        maps = (aim_log, aim_exp, aim_transport, lambda x, u, v: aim_inner(x, u, v, theta=theta, alpha=alpha, beta=beta))
        cls = AffineInvariant(theta=theta, alpha=alpha, beta=beta)
    elif name == "lem":
        kw = {}
        maps = (lem_log, lem_exp, lem_transport, lambda x, u, v: lem_inner(x, u, v, alpha=alpha, beta=beta))
        cls = LogEuclidean(alpha=alpha, beta=beta)
    elif name == "lcm":
        kw = {"theta": theta}
        maps = (lcm_log, lcm_exp, lcm_transport, lambda x, u, v: lcm_inner(x, u, v, theta=theta, alpha=alpha, beta=beta))
        cls = LogCholesky(theta=theta, alpha=alpha, beta=beta)
    elif name == "bw":
        kw = {"theta": theta}
        maps = (bw_log, bw_exp, bw_transport, lambda x, u, v: bw_inner(x, u, v, theta=theta))
        cls = BuresWasserstein(theta=theta)
    elif name == "gbw":
        m = _metric(n)
        kw = {"theta": theta, "metric": m}
        maps = (bw_log, bw_exp, bw_transport, lambda x, u, v: bw_inner(x, u, v, theta=theta, metric=m))
        cls = GeneralizedBuresWasserstein(n, theta=theta, learn_metric=False, dtype=F64)
        cls.metric.copy_(m)
    else:  # pragma: no cover
        raise KeyError(name)
    log, exp, transport, inner = maps
    return (
        lambda x, y: log(x, y, **kw),
        lambda x, v: exp(x, v, **kw),
        lambda x, y, v, **extra: transport(x, y, v, **kw, **extra),
        inner,
        cls,
    )


CASES = [(g, t) for g in ("aim", "lcm", "bw", "gbw") for t in (1.0, 0.5)] + [("lem", 1.0)]
IDS = [f"{g}-theta{t:g}" for g, t in CASES]


def _points(seed: int, batch=(2,)):
    gen = torch.Generator().manual_seed(seed)
    x = random_spd(N, gen, batch, cond=COND)
    y = random_spd(N, gen, batch, cond=COND)
    v = sym(torch.randn(*batch, N, N, generator=gen, dtype=F64))
    return x, y, v


def _tol(theta: float = 1.0) -> float:
    """Forward error of maps built from eigendecompositions of x, y and x^{-1/2} y x^{-1/2}:
    each costs about n * cond * eps relative; the congruence has condition <= cond(x) cond(y);
    a power theta changes the conditions to cond^|theta| (<= cond here). A factor 10 covers
    the handful of matrix products in each map."""
    return 10 * N * COND**2 * EPS


def _close(a, b, tol):
    scale = max(float(b.detach().abs().max()), 1.0)
    err = float((a - b).detach().abs().max())
    assert err <= tol * scale, f"error {err:.3e} > {tol * scale:.3e}"


@pytest.mark.parametrize(("name", "theta"), CASES, ids=IDS)
def test_exp_inverts_log_and_log_inverts_exp(name, theta):
    log, exp, _, _, _ = _geometry(name, theta)
    x, y, v = _points(1)
    _close(exp(x, log(x, y)), y, _tol(theta))
    small = 0.3 * v  # inside the injectivity domain for every geometry (BW: I + L_x[v] > 0)
    _close(log(x, exp(x, small)), small, _tol(theta))


@pytest.mark.parametrize(("name", "theta"), CASES, ids=IDS)
def test_norm_of_log_is_the_distance(name, theta):
    log, _, _, inner, cls = _geometry(name, theta)
    x, y, _ = _points(2)
    lxy = log(x, y)
    d2 = cls.distance(x, y) ** 2
    _close(inner(x, lxy, lxy), d2, _tol(theta))


@pytest.mark.parametrize("name", ["aim", "lem", "lcm"])
@pytest.mark.parametrize(("alpha", "beta"), [(2.0, 0.0), (1.0, 0.3), (0.5, -0.1)])
def test_alpha_beta_change_the_norm_not_the_log(name, alpha, beta):
    # alpha, beta leave the Levi-Civita connection unchanged (Thanwerdas & Pennec 2019), so the
    # log of the standard metric must have (alpha, beta)-norm equal to the (alpha, beta)-distance
    log, _, transport, inner, cls = _geometry(name, 0.5 if name != "lem" else 1.0, alpha, beta)
    x, y, v = _points(3)
    lxy = log(x, y)
    _close(inner(x, lxy, lxy), cls.distance(x, y) ** 2, _tol())
    t = transport(x, y, v)
    _close(inner(y, t, t), inner(x, v, v), _tol())


@pytest.mark.parametrize(("name", "theta"), CASES, ids=IDS)
def test_transport_is_an_isometry_fixes_x_and_reverses_the_log(name, theta):
    log, _, transport, inner, _ = _geometry(name, theta)
    x, y, u = _points(4)
    w = _points(5)[2]
    bw = name in ("bw", "gbw")
    extra = {"steps": 16} if bw else {}
    tu, tw = transport(x, y, u, **extra), transport(x, y, w, **extra)
    tol = _tol(theta)
    if bw:
        # RK4 has global error ~ C steps^-4: the change from 8 to 16 steps bounds the error
        # at 16 steps (Richardson: err(16) ~ |T8 - T16| / 15)
        coarse = transport(x, y, u, steps=8)
        tol = tol + float((coarse - tu).abs().max() / tu.abs().max())
    _close(inner(y, tu, tw), inner(x, u, w), tol)
    _close(transport(x, x, u), u, _tol(theta))
    _close(transport(x, y, log(x, y), **extra), -log(y, x), tol)


def test_bw_transport_converges_with_order_four():
    _, _, transport, _, _ = _geometry("gbw", 0.5)
    x, y, v = _points(6)
    t4, t8, t16 = (transport(x, y, v, steps=s) for s in (4, 8, 16))
    # successive differences of a scheme of order k shrink by 2^k: 16 for RK4
    ratio = float((t4 - t8).abs().max() / (t8 - t16).abs().max())
    assert 12.0 < ratio < 20.0


def test_bw_transport_along_commuting_points_is_exact():
    # diagonal matrices form a flat totally geodesic family (coordinates sqrt(P)):
    # a diagonal v at p is moved to v * sqrt(q / p)
    p = torch.diag(torch.tensor([0.5, 1.0, 2.0, 8.0], dtype=F64))
    q = torch.diag(torch.tensor([3.0, 1.0, 0.2, 9.0], dtype=F64))
    v = torch.diag(torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=F64))
    got = bw_transport(p, q, v, steps=8)
    want = v * torch.sqrt(q / p.clamp(min=1e-300)).nan_to_num(0.0)
    _close(got, want, 20 * EPS)


def test_bw_christoffel_matches_the_koszul_formula_of_an_independent_metric():
    # g_P(U, V) = 1/2 vec(U)^T (I kron P + P kron I)^{-1} vec(V), by a dense solve
    gen = torch.Generator().manual_seed(7)
    n = 3
    p = random_spd(n, gen, cond=5.0)
    xs = [sym(torch.randn(n, n, generator=gen, dtype=F64)) for _ in range(3)]
    eye = torch.eye(n, dtype=F64)

    def g(pt, u, v):
        op = torch.kron(eye, pt) + torch.kron(pt, eye)
        return 0.5 * torch.dot(u.reshape(-1), torch.linalg.solve(op, v.reshape(-1)))

    def dg(direction, u, v):
        return torch.func.jvp(lambda pt: g(pt, u, v), (p,), (direction,))[1]

    a, b, c = xs
    gamma = bw_christoffel(p, a, b)
    lhs = g(p, gamma, c)
    rhs = 0.5 * (dg(a, b, c) + dg(b, a, c) - dg(c, a, b))
    assert abs(float(lhs - rhs)) <= 100 * 5.0**2 * EPS * max(abs(float(rhs)), 1.0)


@pytest.mark.parametrize(("name", "theta"), CASES, ids=IDS)
def test_log_and_exp_at_identity_match_the_geometry_classes(name, theta):
    log, exp, _, _, cls = _geometry(name, theta)
    _, y, v = _points(8)
    eye = torch.eye(N, dtype=F64).expand_as(y)
    _close(log(eye, y), cls.log_identity(y), _tol(theta))
    _close(exp(eye, 0.3 * v), cls.exp_identity(0.3 * v), _tol(theta))


def test_aim_agrees_with_geoopt_and_pyriemann():
    from pyriemann.geometry.tangentspace import exp_map_riemann, log_map_riemann

    man = geoopt.SymmetricPositiveDefinite(default_metric="AIM")  # g_x(u, v) = tr(x^-1 u x^-1 v)
    x, y, v = _points(9, batch=())
    tol = _tol()
    _close(aim_log(x, y), man.logmap(x, y), tol)
    _close(aim_exp(x, v), man.expmap(x, v), tol)
    _close(aim_transport(x, y, v), man.transp(x, y, v), tol)
    _close(aim_inner(x, v, y), man.inner(x, v, y), tol)
    # pyRiemann whitens unless C12=True (log) / Cm12=True (exp)
    ref_log = log_map_riemann(y.numpy(), x.numpy(), C12=True)
    _close(aim_log(x, y), torch.from_numpy(ref_log), tol)
    ref_exp = exp_map_riemann(v.numpy(), x.numpy(), Cm12=True)
    _close(aim_exp(x, v), torch.from_numpy(ref_exp), tol)


def test_flat_and_bw_logs_agree_with_pyriemann():
    from pyriemann.geometry.tangentspace import (
        exp_map_logeuclid,
        exp_map_wasserstein,
        log_map_logchol,
        log_map_logeuclid,
        log_map_wasserstein,
    )

    x, y, v = _points(10, batch=())
    xn, yn, vn = x.numpy(), y.numpy(), v.numpy()
    tol = _tol()
    _close(lem_log(x, y), torch.from_numpy(log_map_logeuclid(yn, xn)), tol)
    _close(lem_exp(x, v), torch.from_numpy(exp_map_logeuclid(vn, xn)), tol)
    _close(lcm_log(x, y), torch.from_numpy(log_map_logchol(yn, xn)), tol)
    _close(bw_log(x, y), torch.from_numpy(log_map_wasserstein(yn, xn)), tol)
    small = 0.3 * v
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = exp_map_wasserstein(small.numpy(), xn)
    _close(bw_exp(x, small), torch.from_numpy(ref), tol)


def test_broadcasting_one_base_point_per_channel():
    gen = torch.Generator().manual_seed(11)
    mean = random_spd(N, gen, (2,), cond=COND)  # [C, n, n]
    batch = random_spd(N, gen, (5, 2), cond=COND)  # [B, C, n, n]
    for log in (aim_log, lem_log, lcm_log, bw_log):
        out = log(mean, batch)
        assert out.shape == (5, 2, N, N)
        _close(out[3, 1], log(mean[1], batch[3, 1]), _tol())
    v = sym(torch.randn(5, 2, N, N, generator=gen, dtype=F64))
    for transport in (aim_transport, lem_transport, lcm_transport, bw_transport):
        out = transport(mean, batch, v)
        _close(out[3, 1], transport(mean[1], batch[3, 1], v[3, 1]), _tol())


REPEATED = {
    "identity": torch.ones(N, dtype=F64),
    "equal": torch.tensor([2.0, 2.0, 2.0, 5.0], dtype=F64),
}


@pytest.mark.parametrize(("name", "theta"), CASES, ids=IDS)
@pytest.mark.parametrize("spectrum", sorted(REPEATED))
def test_repeated_eigenvalue_base_points_give_finite_values_and_gradients(name, theta, spectrum):
    log, exp, transport, _, _ = _geometry(name, theta)
    gen = torch.Generator().manual_seed(12)
    x = spd_with_spectrum(REPEATED[spectrum], gen).requires_grad_(True)
    y = spd_with_spectrum(REPEATED[spectrum], gen).requires_grad_(True)  # same spectrum, other basis
    v = sym(torch.randn(N, N, generator=gen, dtype=F64)).requires_grad_(True)
    outs = [log(x, y), exp(x, 0.3 * v), transport(x, y, v)]
    loss = sum((o * o).sum() for o in outs)
    grads = torch.autograd.grad(loss, (x, y, v))
    assert all(bool(torch.isfinite(t).all()) for t in (*outs, *grads))
    # and the transport at x = y is still the identity there
    _close(transport(x, x, v), v, _tol(theta))


def _at(root, e):
    """The SPD point root (I + sym e) root: a chart around root^2 for gradcheck."""
    return sym(root @ (torch.eye(root.shape[-1], dtype=F64) + sym(e)) @ root)


@pytest.mark.parametrize(("name", "theta"), CASES, ids=IDS)
def test_gradcheck_log_exp_transport(name, theta):
    n = 2
    log, exp, transport, _, _ = _geometry(name, theta, n=n)
    gen = torch.Generator().manual_seed(13)
    rx = spd_with_spectrum(torch.tensor([0.8, 1.5], dtype=F64), gen)
    ry = spd_with_spectrum(torch.tensor([1.0, 1.0], dtype=F64), gen)  # repeated
    ex = torch.zeros(n, n, dtype=F64, requires_grad=True)
    ey = torch.zeros(n, n, dtype=F64, requires_grad=True)
    v = (0.3 * sym(torch.randn(n, n, generator=gen, dtype=F64))).requires_grad_(True)
    extra = {"steps": 2} if name in ("bw", "gbw") else {}
    assert gradcheck(lambda a, b: log(_at(rx, a), _at(ry, b)), (ex, ey))
    assert gradcheck(lambda a, w: exp(_at(rx, a), sym(w)), (ex, v))
    assert gradcheck(lambda a, b, w: transport(_at(rx, a), _at(ry, b), sym(w), **extra), (ex, ey, v))


def test_bad_input_names_the_argument():
    x, y, v = _points(14, batch=())
    with pytest.raises(ValueError, match="^y: expected symmetric positive definite"):
        aim_log(x, -y)
    with pytest.raises(ValueError, match="^x: expected symmetric positive definite"):
        lem_transport(-x, y, v)
    with pytest.raises(ValueError, match="^v: expected symmetric matrices"):
        lcm_exp(x, torch.triu(v) + 1.0)
    with pytest.raises(ValueError, match="^metric: expected symmetric positive definite"):
        bw_log(x, y, metric=-x)
    with pytest.raises(ValueError, match="^theta: expected a finite non-zero float"):
        bw_exp(x, v, theta=0.0)
    with pytest.raises(ValueError, match="^steps: expected a positive int"):
        bw_transport(x, y, v, steps=0)
    with pytest.raises(TypeError, match="^x: expected a torch.Tensor"):
        aim_exp(np.eye(N), v)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_is_computed_in_float32_and_cast_back(dtype):
    x, y, v = _points(15)
    # round the inputs first, so that only float32 compute and the final rounding remain
    xr, yr, vr = (t.to(dtype) for t in (x, y, v))
    x64, y64, v64 = (t.double() for t in (xr, yr, vr))
    eps32 = torch.finfo(torch.float32).eps
    for f in (
        lambda a, b, w: aim_log(a, b, theta=0.5),
        lambda a, b, w: lem_exp(a, 0.3 * w),
        lambda a, b, w: lcm_transport(a, b, w, theta=0.5),
        lambda a, b, w: bw_transport(a, b, w, metric=a, steps=4),
    ):
        out = f(xr, yr, vr)
        assert out.dtype == dtype
        tol = torch.finfo(dtype).eps + 10 * N * COND**2 * eps32  # output rounding + float32 compute
        _close(out.double(), f(x64, y64, v64), tol)
