"""SPD geometries against independent references, metric axioms and invariances."""

import geoopt
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

try:  # pyRiemann >= 0.12 moved these; older releases only have pyriemann.utils
    from pyriemann.geometry.distance import distance_logeuclid, distance_riemann, distance_wasserstein
    from pyriemann.geometry.mean import mean_logeuclid, mean_riemann, mean_wasserstein
except ImportError:  # pragma: no cover
    from pyriemann.utils.distance import distance_logeuclid, distance_riemann, distance_wasserstein
    from pyriemann.utils.mean import mean_logeuclid, mean_riemann, mean_wasserstein

from geonorm.spd import (
    AffineInvariant,
    BuresWasserstein,
    GeneralizedBuresWasserstein,
    LogCholesky,
    LogEuclidean,
    available_geometries,
    get_geometry,
)

from .._spd import random_orthogonal, random_spd, rel_error, rounding_bound

F64 = torch.float64
N = 5
PROPERTY = settings(max_examples=15, derandomize=True, deadline=None)


def _batch(seed: int, b: int = 12, cond: float = 50.0, spread: float = 0.5) -> torch.Tensor:
    scales = torch.logspace(-spread, spread, b, dtype=F64).reshape(b, 1, 1)
    return random_spd(N, torch.Generator().manual_seed(seed), batch=(b,), cond=cond) * scales


def _gbw_with_metric(theta: float = 1.0) -> GeneralizedBuresWasserstein:
    g = GeneralizedBuresWasserstein(N, theta=theta, dtype=F64)
    with torch.no_grad():
        g.metric.copy_(random_spd(N, torch.Generator().manual_seed(99), cond=5.0))
    return g


GEOMETRIES = {
    "aim": lambda: AffineInvariant(),
    "aim(theta=0.5,alpha=2,beta=0.3)": lambda: AffineInvariant(theta=0.5, alpha=2.0, beta=0.3),
    "aim-sqrt": lambda: AffineInvariant(translation="sqrt", beta=-0.1),
    "lem(alpha=2,beta=-0.1)": lambda: LogEuclidean(alpha=2.0, beta=-0.1),
    "lcm(theta=0.7)": lambda: LogCholesky(theta=0.7, beta=0.2),
    "bw": lambda: BuresWasserstein(),
    "bw(theta=0.5)": lambda: BuresWasserstein(theta=0.5),
    "gbw(M)": lambda: _gbw_with_metric(theta=0.7),
}


# -- independent references ------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Convergence not reached")
def test_means_match_pyriemann():
    x = _batch(0)
    xn = x.numpy()
    cases = [
        (AffineInvariant(), mean_riemann(xn, tol=1e-14, maxiter=200)),
        (LogEuclidean(), mean_logeuclid(xn)),
        (BuresWasserstein(karcher_steps=500, tol=1e-15), mean_wasserstein(xn, tol=1e-15, maxiter=1000)),
    ]
    for geometry, ref in cases:
        ours = geometry.frechet_mean(x)
        assert torch.allclose(ours, torch.as_tensor(ref), rtol=1e-9, atol=1e-10), type(geometry).__name__


@pytest.mark.filterwarnings("ignore:Convergence not reached")
def test_aim_mean_of_a_widely_spread_batch_matches_pyriemann():
    # Eigenvalues from 1e-2 to 1e2 in random directions: a unit Karcher step
    # overshoots here, and without the step-size control the flow wanders off
    # (relative error ~2 instead of ~1e-12).
    x = random_spd(N, torch.Generator().manual_seed(3), batch=(12,), cond=1e4) * 1e-2
    ev = torch.linalg.eigvalsh(x)
    assert ev.min() < 1.01e-2 and ev.max() > 0.99e2
    g = AffineInvariant(karcher_steps=100)  # the default 50 leave 7e-8 here (linear rate ~0.75)
    ours = g.frechet_mean(x)
    ref = mean_riemann(x.numpy(), tol=1e-12, maxiter=300)
    # Rounding: each step takes log(G^-1/2 X_b G^-1/2), a matrix of condition number
    # <= cond(X_b) cond(G); the AIM Frechet function is 1-strongly geodesically
    # convex (non-positive curvature), so the fixed point moves by no more than
    # the gradient error, and the relative Frobenius error of G is at most that
    # distance. Stopping: a flow stops once its gradient norm is at most its tol,
    # so the point before the last step is within tol of the minimiser, and the
    # point after it (a step of at most tol) within 2 tol.
    kappa = float(torch.linalg.cond(x).max() * torch.linalg.cond(ours))
    assert rel_error(ours, ref) <= rounding_bound(N, kappa) + 2 * g.tol + 2e-12


def test_weighted_means_match_pyriemann():
    x = _batch(1)
    w = torch.linspace(0.2, 2.0, x.shape[0], dtype=F64)
    wn = (w / w.sum()).numpy()
    assert torch.allclose(
        AffineInvariant().frechet_mean(x, w), torch.as_tensor(mean_riemann(x.numpy(), sample_weight=wn, tol=1e-14)),
        rtol=1e-9, atol=1e-10,
    )
    # exp(sum_b w_b log X_b): each log has absolute error <~ n eps cond(X_b) (its Loewner
    # matrix peaks at 1/l_min, times |X_b| = l_max), which exp turns into the same
    # relative error of the mean; every X_b of _batch has cond 50.
    lem = LogEuclidean().frechet_mean(x, w)
    assert rel_error(lem, mean_logeuclid(x.numpy(), sample_weight=wn)) <= rounding_bound(N, 50.0)


def test_distances_match_pyriemann_and_geoopt():
    x = _batch(2, b=6)
    a, b = x[:3], x[3:]
    spd = geoopt.SymmetricPositiveDefinite()
    for i in range(3):
        ai, bi = a[i].numpy(), b[i].numpy()
        assert torch.isclose(AffineInvariant().distance(a[i], b[i]), torch.tensor(distance_riemann(ai, bi), dtype=F64))
        assert torch.isclose(LogEuclidean().distance(a[i], b[i]), torch.tensor(distance_logeuclid(ai, bi), dtype=F64))
        assert torch.isclose(
            BuresWasserstein().distance(a[i], b[i]), torch.tensor(distance_wasserstein(ai, bi), dtype=F64)
        )
    assert torch.allclose(AffineInvariant().distance(a, b), spd.dist(a, b))


def test_maps_at_identity_match_geoopt():
    x = _batch(3, b=4)
    eye = torch.eye(N, dtype=F64).expand_as(x)
    spd = geoopt.SymmetricPositiveDefinite()
    g = AffineInvariant()
    assert torch.allclose(g.log_identity(x), spd.logmap(eye, x), atol=1e-12)
    v = g.log_identity(x)
    assert torch.allclose(g.exp_identity(v), spd.expmap(eye, v), atol=1e-12)
    assert torch.allclose(g.inner_identity(v, v), spd.inner(eye, v))


def test_theta_deformation_is_the_pullback():
    # d_theta(P, Q) = d(P^theta, Q^theta) / |theta|, the mean is (mean of P^theta)^(1/theta).
    x = _batch(4, b=6)
    for theta in (0.5, -1.5):
        g, base = AffineInvariant(theta=theta), AffineInvariant()
        xt = torch.linalg.matrix_power(x, 2) if theta == 2 else g.encode(x)
        assert torch.allclose(g.distance(x[0], x[1]), base.distance(xt[0], xt[1]) / abs(theta))
        assert torch.allclose(g.encode(g.frechet_mean(x)), base.frechet_mean(xt), atol=1e-10)


# -- metric axioms and maps, every geometry -------------------------------------------


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_metric_axioms_and_maps(name):
    g = GEOMETRIES[name]()
    x, y, z = _batch(5, b=3)
    assert torch.isclose(g.distance(x, y), g.distance(y, x), rtol=1e-10)
    assert g.distance(x, x) < 1e-6 and g.distance(x, y) > 1e-3
    assert g.distance(x, z) <= g.distance(x, y) + g.distance(y, z) + 1e-10
    # log/exp at the identity are inverse, and |Log_I x| = d(I, x)
    eye = torch.eye(N, dtype=F64)
    v = g.log_identity(x)
    assert torch.allclose(v, v.transpose(-1, -2), atol=1e-12)
    assert torch.allclose(g.exp_identity(v), x, atol=1e-10)
    assert torch.isclose(torch.sqrt(g.inner_identity(v, v)), g.distance(eye, x), rtol=1e-9)
    # geodesics: endpoints and constant speed d(x, gamma(t)) = t d(x, y)
    assert torch.allclose(g.geodesic(x, y, 0.0), x, atol=1e-10)
    assert torch.allclose(g.geodesic(x, y, 1.0), y, atol=1e-10)
    for t in (0.25, 0.6):
        assert torch.isclose(g.distance(x, g.geodesic(x, y, t)), t * g.distance(x, y), rtol=1e-8)
    # variance is the mean squared distance to the mean
    batch = _batch(6, b=7)
    mean = g.frechet_mean(batch)
    var = g.variance(g.encode(batch), g.encode(mean))
    assert torch.isclose(var, g.distance(mean, batch).square().mean(), rtol=1e-9)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_mean_is_the_frechet_minimiser(name):
    g = GEOMETRIES[name]()
    batch = _batch(7, b=8)
    mean = g.frechet_mean(batch, steps=200)
    cost = g.distance(mean, batch).square().sum()
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):  # any nearby point is worse
        e = torch.randn(N, N, generator=gen, dtype=F64)
        other = g.exp_identity(g.log_identity(mean) + 1e-3 * (e + e.T))
        assert g.distance(other, batch).square().sum() > cost


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_centring_moves_the_mean_to_the_identity(name):
    g = GEOMETRIES[name]()
    # Bures-Wasserstein centring maps tangent vectors by an isometry T_mu -> T_I and
    # then applies Exp_I, which is injective only where I + V/2 > 0: keep the batch
    # inside that domain.
    z = g.encode(_batch(8, cond=4.0, spread=0.15) if "bw" in name else _batch(8))
    mean = g.mean(z, steps=200)
    centred = g.centre(z, mean)
    assert torch.allclose(g.mean(centred, steps=200), g.neutral(N, dtype=F64), atol=1e-9)
    assert torch.isclose(g.variance(centred), g.variance(z, mean), rtol=1e-9)
    # scaling about the identity scales the variance by factor^2; bias moves the mean to the point
    assert torch.isclose(g.variance(g.scale(centred, torch.tensor(0.5, dtype=F64))), 0.25 * g.variance(centred), rtol=1e-8)
    point = g.encode(random_spd(N, torch.Generator().manual_seed(1), cond=3.0))
    moved = g.bias(centred, point)
    assert torch.allclose(g.mean(moved, steps=200), point, atol=1e-9)


def test_aim_two_point_closed_form_and_warm_start():
    g = AffineInvariant()
    pair = _batch(9, b=2)
    closed = g.mean(pair)
    flowed = g.mean(pair, init=pair.mean(0), steps=100)
    assert torch.allclose(closed, flowed, atol=1e-12)
    batch = _batch(10)
    exact = g.mean(batch, steps=200)
    assert torch.allclose(g.mean(batch, init=exact, steps=1), exact, atol=1e-12)
    one_step = AffineInvariant(karcher_steps=1).mean(batch)
    assert not torch.allclose(one_step, exact, atol=1e-6)


# -- invariances as property tests ---------------------------------------------------


@st.composite
def _spd_pair_and_matrix(draw, orthogonal: bool):
    seed = draw(st.integers(0, 2**31 - 1))
    cond = draw(st.sampled_from([1.0, 10.0, 1e4]))
    gen = torch.Generator().manual_seed(seed)
    x = random_spd(N, gen, batch=(2,), cond=cond)
    if orthogonal:
        a = random_orthogonal(N, gen)
    else:
        a = torch.randn(N, N, generator=gen, dtype=F64) + 3 * torch.eye(N, dtype=F64)
    return x[0], x[1], a


@PROPERTY
@given(_spd_pair_and_matrix(orthogonal=False), st.sampled_from([(1.0, 0.0), (2.0, 0.5), (1.0, -0.15)]))
def test_aim_distance_is_gl_invariant(data, alpha_beta):
    x, y, a = data
    g = AffineInvariant(alpha=alpha_beta[0], beta=alpha_beta[1])
    d = g.distance(x, y)
    assert torch.isclose(g.distance(a @ x @ a.T, a @ y @ a.T), d, rtol=1e-7)
    assert torch.isclose(g.distance(torch.linalg.inv(x), torch.linalg.inv(y)), d, rtol=1e-7)


@PROPERTY
@given(_spd_pair_and_matrix(orthogonal=True), st.sampled_from(["lem", "bw", "aim-theta"]))
def test_orthogonally_invariant_distances(data, name):
    x, y, q = data
    g = {"lem": LogEuclidean(beta=0.2), "bw": BuresWasserstein(theta=0.5), "aim-theta": AffineInvariant(theta=-0.7)}[name]
    # atol: sqrt of a rounding-level squared distance for coinciding points
    assert torch.isclose(g.distance(q @ x @ q.T, q @ y @ q.T), g.distance(x, y), rtol=1e-8, atol=1e-6)


def test_lcm_is_not_orthogonally_invariant():
    x, y = _batch(11, b=2)
    q = random_orthogonal(N, torch.Generator().manual_seed(3))
    g = LogCholesky()
    assert not torch.isclose(g.distance(q @ x @ q.T, q @ y @ q.T), g.distance(x, y), rtol=1e-3)


# -- registry and parameter errors -------------------------------------------------


def test_registry():
    assert available_geometries() == ["aim", "bw", "gbw", "lcm", "lem", "poincare"]
    assert isinstance(get_geometry("LEM", alpha=2.0), LogEuclidean)
    g = AffineInvariant()
    assert get_geometry(g) is g
    with pytest.raises(ValueError, match=r"geometry: expected one of .*got 'riemann'"):
        get_geometry("riemann")
    with pytest.raises(TypeError, match="instance"):
        get_geometry(g, theta=2.0)


def test_bad_metric_parameters():
    with pytest.raises(ValueError, match="alpha: expected alpha > 0"):
        AffineInvariant(alpha=0.0)
    with pytest.raises(ValueError, match="theta: expected a finite non-zero"):
        LogCholesky(theta=0.0)
    with pytest.raises(ValueError, match=r"beta: expected beta > -alpha/n"):
        AffineInvariant(beta=-0.5).check_dimension(2)
    with pytest.raises(ValueError, match="translation"):
        AffineInvariant(translation="eig")
    with pytest.raises(ValueError, match="karcher_steps"):
        BuresWasserstein(karcher_steps=0)
    with pytest.raises(ValueError, match="weights: expected shape"):
        AffineInvariant().frechet_mean(_batch(0, b=3), torch.ones(4, dtype=F64))
    with pytest.raises(ValueError, match="weights: expected finite non-negative"):
        LogEuclidean().frechet_mean(_batch(0, b=3), torch.tensor([1.0, -1.0, 1.0], dtype=F64))


def test_no_nan_for_hard_inputs():
    gen = torch.Generator().manual_seed(12)
    eye = torch.eye(N, dtype=F64)
    hard = [
        eye.expand(4, N, N).clone(),
        random_spd(N, gen, batch=(4,), cond=1e10),
        torch.diag(torch.tensor([1e-5, 1e-5, 1.0, 1.0, 1.0], dtype=F64)).expand(4, N, N).clone(),
    ]
    for name, make in GEOMETRIES.items():
        g = make()
        for x in hard:
            x = x.clone().requires_grad_()
            out = g.frechet_mean(x) + g.distance(x[0], x[1:]).sum() + g.log_identity(x).sum()
            (grad,) = torch.autograd.grad(out.sum(), x)
            assert torch.isfinite(out).all() and torch.isfinite(grad).all(), name


def test_spd_manifold_transport_equals_geoopts():
    # the bias's manifold transports through a Cholesky factor; geoopt's through
    # three eigendecompositions: the same map, E v Eᵀ with E = (y x⁻¹)^½
    import geoopt

    from geonorm.spd import SPDManifold

    gen = torch.Generator().manual_seed(11)
    cond = 20.0
    x = random_spd(5, gen, batch=(3,), cond=cond)
    y = random_spd(5, gen, batch=(3,), cond=cond)
    v = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64)
    v = v + v.mT
    ref = geoopt.SymmetricPositiveDefinite().transp(x, y, v)
    ours = SPDManifold().transp(x, y, v)
    # E has condition about cond; each side's rounding is about cond^2 * eps relative
    tol = 10 * cond**2 * torch.finfo(torch.float64).eps
    torch.testing.assert_close(ours, ref, rtol=0, atol=tol * ref.abs().max().item())
    from geonorm.nn import LieBatchNorm

    assert isinstance(LieBatchNorm(3, dtype=torch.float64).bias.manifold, SPDManifold)


def test_spd_manifold_retr_transp_equals_retr_then_transport():
    # one Cholesky factor and one eigendecomposition for geoopt's retraction
    # y = x + u + u x⁻¹ u / 2 and the transport to y; steps of every size
    import geoopt

    from geonorm.spd import SPDManifold

    gen = torch.Generator().manual_seed(12)
    cond = 20.0
    x = random_spd(5, gen, batch=(3,), cond=cond)
    v = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64)
    v = v + v.mT
    for step in (1e-6, 1e-2, 1.0, 30.0):
        u = step * x @ v @ x  # a tangent vector at x of size ~step relative to x
        y, moved = SPDManifold().retr_transp(x, u, v)
        ref_y = geoopt.SymmetricPositiveDefinite().retr(x, u)
        ref_v = geoopt.SymmetricPositiveDefinite().transp(x, ref_y, v)
        assert torch.linalg.eigvalsh(y).min() > 0
        # y = L (I + A + A²/2) Lᵀ: rounding ~ cond(x) eps relative to |y|. The
        # transport factor E = (y x⁻¹)^½ has cond(E)² <= cond(x) cond(y), and
        # E v Eᵀ carries eps cond(E)² relative rounding on either side.
        eps = torch.finfo(torch.float64).eps
        cond_y = float(torch.linalg.cond(ref_y).max())
        torch.testing.assert_close(y, ref_y, rtol=0, atol=10 * cond * eps * ref_y.abs().max().item())
        tol = 10 * cond * cond_y * eps
        torch.testing.assert_close(moved, ref_v, rtol=0, atol=tol * ref_v.abs().max().item())


def test_spd_manifold_inner_equals_geoopts_and_its_cached_factor_goes_stale():
    import geoopt

    from geonorm.spd import SPDManifold

    gen = torch.Generator().manual_seed(13)
    cond = 30.0
    x = random_spd(4, gen, batch=(3,), cond=cond)
    u, v = (torch.randn(3, 4, 4, generator=gen, dtype=torch.float64) for _ in range(2))
    u, v = u + u.mT, v + v.mT
    m, ref = SPDManifold(), geoopt.SymmetricPositiveDefinite()
    # tr(x⁻¹ u x⁻¹ v) through x⁻¹ (eigh) or L⁻¹ (Cholesky): rounding ~ cond(x)² eps relative
    tol = 10 * cond**2 * torch.finfo(torch.float64).eps
    for args in ((u,), (u, v)):
        want = ref.inner(x, *args, keepdim=True)
        torch.testing.assert_close(m.component_inner(x, *args), want, rtol=tol, atol=0)
    x.mul_(4.0)  # in place: the factor kept for x is stale; x⁻¹ scales by 1/4, the inner by 1/16
    torch.testing.assert_close(m.inner(x, u), ref.inner(x, u), rtol=tol, atol=0)
    # a point that needs a gradient gets one through the inner (nothing cached)
    p = x.clone().requires_grad_()
    m.inner(p, u).sum().backward()
    q = p.detach().clone().requires_grad_()
    ref.inner(q, u).sum().backward()
    torch.testing.assert_close(p.grad, q.grad, rtol=tol, atol=0)


@pytest.mark.parametrize("mean_cond, repeated", [(20.0, False), (1e6, False), (1.0, True)])
def test_bw_centring_in_the_means_eigenbasis_matches_log_and_isometry(mean_cond, repeated):
    """The constant-mean fast path equals Log_mu followed by the pair operator (the path with a mean gradient)."""
    from geonorm.linalg.operator import BW_TO_IDENTITY, apply_pair_operator

    gen = torch.Generator().manual_seed(3)
    mean = torch.eye(N, dtype=F64) * 2.0 if repeated else random_spd(N, gen, cond=mean_cond)
    z = random_spd(N, gen, batch=(6,), cond=20.0)
    ref = apply_pair_operator(mean, BuresWasserstein._bw_log(z, mean), BW_TO_IDENTITY)
    fast = BuresWasserstein._log_tangent_at_identity(z, mean)
    # both are backward stable in mu's and z's square roots: kappa(mu)^(1/2) * kappa(z)^(1/2) amplifies rounding
    assert rel_error(fast, ref) <= rounding_bound(N, (mean_cond * 20.0) ** 0.5)
    if mean_cond <= 20.0:  # central differences of step 1e-6 resolve the Jacobian only when well conditioned
        zg = z.clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda t: BuresWasserstein._log_tangent_at_identity(0.5 * (t + t.mT), mean), (zg,))
    # per-channel means broadcast against a batch of channels
    means = torch.stack([mean, random_spd(N, gen, cond=5.0)])  # [2, n, n]
    zs = random_spd(N, gen, batch=(4, 2), cond=5.0)
    ref = apply_pair_operator(means, BuresWasserstein._bw_log(zs, means), BW_TO_IDENTITY)
    assert rel_error(BuresWasserstein._log_tangent_at_identity(zs, means), ref) <= rounding_bound(N, (mean_cond * 5.0) ** 0.5)


def test_gbw_forward_scope_shares_the_roots_and_equals_separate_calls(monkeypatch):
    """Inside one batch-norm forward M^(±1/2) are computed once per grad mode; output and gradients are those of separate calls."""
    import contextlib

    import geonorm.spd.bw as bw_module
    from geonorm.nn import BuresWassersteinBatchNorm

    gen = torch.Generator().manual_seed(11)
    x = random_spd(N, gen, batch=(6,), cond=10.0).requires_grad_()
    grad = random_spd(N, gen, batch=(6,), cond=10.0)
    metric = random_spd(N, gen, cond=5.0)
    calls = []
    roots = bw_module.sym_sqrtm_invsqrtm
    monkeypatch.setattr(bw_module, "sym_sqrtm_invsqrtm", lambda *a, **k: calls.append(1) or roots(*a, **k))
    results, counts = [], []
    for share in (True, False):
        bn = BuresWassersteinBatchNorm(N, dtype=F64).train()
        with torch.no_grad():
            bn.geometry.metric.copy_(metric)
        if not share:
            bn.geometry.forward_scope = contextlib.nullcontext
        calls.clear()
        y = bn(x)
        counts.append(len(calls))
        gx, gm = torch.autograd.grad(y, (x, bn.geometry.metric), grad)
        results.append((y.detach(), gx, gm, bn.running_mean.clone()))
        assert bn.geometry._shared_roots is None  # the scope is closed after the forward
    # input, bias and output with a graph, the running mean's two without (detached): 1 shared, 5 separate
    assert counts == [1, 5]
    for shared, separate in zip(*results):
        assert rel_error(shared, separate) <= rounding_bound(N, 50.0)


def test_gbw_forward_scope_gives_a_graph_after_a_call_without_grad_mode():
    """Roots shared from a no-grad call would cut the gradient to M: a later call with grad mode makes its own."""
    g = GeneralizedBuresWasserstein(N, dtype=F64)
    like = torch.zeros(1, dtype=F64)
    with g.forward_scope():
        with torch.no_grad():
            plain = g._roots(like)
        graph = g._roots(like)
        again = g._roots(like)
        with torch.no_grad():
            detached = g._roots(like)
    assert all(r.grad_fn is None for r in plain + detached)
    assert all(r.grad_fn is not None for r in graph) and again[0] is graph[0]
    assert all(torch.equal(a, b) for a, b in zip(graph, detached))


def test_gbw_forward_scope_closes_on_error():
    from geonorm.nn import BuresWassersteinBatchNorm

    bn = BuresWassersteinBatchNorm(N, dtype=F64).train()
    bad = -torch.eye(N, dtype=F64).expand(4, N, N)
    with pytest.raises(ValueError):
        bn(bad)
    assert bn.geometry._shared_roots is None


def test_gbw_metric_roots_follow_every_update_of_the_metric():
    """The cached eigendecomposition of M is recomputed after in-place updates, reassignment and dtype changes."""
    g = GeneralizedBuresWasserstein(N, dtype=F64)
    x = random_spd(N, torch.Generator().manual_seed(4), batch=(3,), cond=10.0)

    def fresh(metric):
        s, u = torch.linalg.eigh(metric)
        isq = (u * s.rsqrt().unsqueeze(-2)) @ u.mT
        return isq @ x.to(metric.dtype) @ isq

    before = g.encode(x)
    assert rel_error(before, x) <= rounding_bound(N)  # M = I
    with torch.no_grad():  # an optimizer step writes in place
        g.metric.copy_(random_spd(N, torch.Generator().manual_seed(5), cond=5.0))
    assert rel_error(g.encode(x), fresh(g.metric)) <= rounding_bound(N, 5.0)
    g.metric.data = random_spd(N, torch.Generator().manual_seed(6), cond=5.0)  # new storage
    assert rel_error(g.encode(x), fresh(g.metric)) <= rounding_bound(N, 5.0)
    g32 = g.encode(x.float())
    assert g32.dtype == torch.float32
    assert rel_error(g32.double(), fresh(g.metric)) <= rounding_bound(N, 5.0, torch.float32)
