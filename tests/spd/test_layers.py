"""SPDNet layers: BiMap on the Stiefel manifold, ReEig, LogEig/ExpEig."""

import geoopt
import pytest
import torch
from torch.autograd import gradcheck

from geonorm.linalg import sym, sym_logm
from geonorm.nn import BiMap, ExpEig, LogEig, ReEig

from .._spd import graph_reaches, random_spd, spd_with_spectrum

F64 = torch.float64


def _x(n=6, b=5, lead=(), seed=0, cond=50.0):
    return random_spd(n, torch.Generator().manual_seed(seed), batch=(b,) + lead, cond=cond)


def test_bimap_is_w_transpose_x_w_and_stays_spd():
    layer = BiMap(6, 3, dtype=F64)
    w = layer.weight
    assert torch.allclose(w.mT @ w, torch.eye(3, dtype=F64), atol=1e-12)
    x = _x()
    y = layer(x)
    assert torch.allclose(y, w.mT @ x @ w, atol=1e-12)
    assert torch.linalg.eigvalsh(y).min() > 0


def test_bimap_channels_depthwise_and_mixing():
    x = _x(lead=(3,))
    depthwise = BiMap(6, 4, channels=3, dtype=F64)
    y = depthwise(x)
    for c in range(3):
        w = depthwise.weight[c]
        assert torch.allclose(y[:, c], w.mT @ x[:, c] @ w, atol=1e-12)
    mixing = BiMap(6, 4, channels=3, out_channels=2, dtype=F64)
    y = mixing(x)
    assert y.shape == (5, 2, 4, 4)
    for d in range(2):
        expected = sum(mixing.weight[d, c].mT @ x[:, c] @ mixing.weight[d, c] for c in range(3))
        assert torch.allclose(y[:, d], expected, atol=1e-12)


def test_bimap_expanding_is_rank_deficient_until_reeig():
    layer = BiMap(3, 5, dtype=F64)
    v = layer.weight  # [5, 3] with orthonormal columns
    assert torch.allclose(v.mT @ v, torch.eye(3, dtype=F64), atol=1e-12)
    y = layer(_x(n=3))
    eig = torch.linalg.eigvalsh(y)
    assert (eig[:, :2].abs() < 1e-12).all() and (eig[:, 2:] > 0).all()
    assert torch.linalg.eigvalsh(ReEig(1e-4)(y)).min() >= 1e-4 - 1e-12


def test_stiefel_constraint_holds_after_optimizer_steps():
    torch.manual_seed(0)
    layer = BiMap(8, 4, channels=2, out_channels=3, parametrization="stiefel", dtype=F64)
    opt = geoopt.optim.RiemannianAdam(layer.parameters(), lr=0.05)
    x = _x(n=8, lead=(2,))
    target = torch.eye(4, dtype=F64)
    for _ in range(25):
        opt.zero_grad()
        (layer(x) - target).square().sum().backward()
        opt.step()
    w = layer.weight
    assert isinstance(w, geoopt.ManifoldParameter)
    assert torch.allclose(w.mT @ w, torch.eye(4, dtype=F64).expand(3, 2, 4, 4), atol=1e-10)
    assert torch.linalg.eigvalsh(layer(x)).min() > 0


def test_bimap_gradcheck_and_errors():
    layer = BiMap(4, 2, channels=2, out_channels=1, dtype=F64)
    x = _x(n=4, b=2, lead=(2,)).requires_grad_()
    assert gradcheck(lambda a: layer(sym(a)), (x,))
    with pytest.raises(ValueError, match=r"x: expected matrices of shape \[\.\.\., 4, 4\]"):
        layer(_x(n=5, lead=(2,)))
    with pytest.raises(ValueError, match="expected 2 channels"):
        layer(_x(n=4, lead=(3,)))
    with pytest.raises(ValueError, match="4-d tensor"):
        layer(_x(n=4))
    with pytest.raises(ValueError, match="out_channels: given without channels"):
        BiMap(4, 2, out_channels=3)
    with pytest.raises(ValueError, match="out_n: expected a positive int, got 0"):
        BiMap(4, 0)


def test_reeig_clamps_eigenvalues_with_a_finite_gradient():
    ev = torch.tensor([1e-6, 1e-6, 0.5, 2.0], dtype=F64)
    x = spd_with_spectrum(ev, torch.Generator().manual_seed(1), batch=(3,))
    y = ReEig(1e-2)(x)
    assert torch.allclose(torch.linalg.eigvalsh(y), torch.tensor([1e-2, 1e-2, 0.5, 2.0], dtype=F64), atol=1e-12)
    # repeated eigenvalues at the identity: gradient is the identity map (all above eps)
    eye = torch.eye(4, dtype=F64).repeat(2, 1, 1).requires_grad_()
    g = sym(torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(2), dtype=F64))
    (grad,) = torch.autograd.grad((ReEig(1e-4)(eye) * g).sum(), eye)
    assert torch.allclose(grad, g, atol=1e-12)
    # gradcheck away from the kink
    xs = spd_with_spectrum(torch.tensor([1e-3, 0.3, 1.0, 2.0], dtype=F64), torch.Generator().manual_seed(3))
    assert gradcheck(lambda a: ReEig(1e-2)(sym(a)), (xs.requires_grad_(),))


def test_reeig_matches_spd_learn():
    modules = pytest.importorskip("spd_learn.modules")
    x = _x(b=8, cond=1e4)
    ours, ref = ReEig(1e-2)(x), modules.ReEig(threshold=1e-2)(x)
    assert torch.allclose(ours, ref, atol=1e-12)


def test_logeig_vectorization_and_expeig_inverse():
    x = _x(lead=(2,))
    log = sym_logm(x)
    full, triu = LogEig("full")(x), LogEig("triu")(x)
    assert torch.allclose(full, log.flatten(-2), atol=1e-12)
    assert triu.shape == (5, 2, 21)
    assert torch.allclose(triu.norm(dim=-1), log.norm(dim=(-2, -1)), atol=1e-12)  # isometric
    assert torch.allclose(ExpEig("triu")(triu), x, atol=1e-10)
    assert torch.allclose(ExpEig("full")(full), x, atol=1e-10)
    assert torch.allclose(ExpEig()(LogEig(None)(x)), x, atol=1e-10)
    with pytest.raises(ValueError, match="vectorize"):
        LogEig("lower")


@pytest.mark.parametrize("layer", [ReEig(1e-4), LogEig(), BiMap(4, 3)])
def test_float32_no_nan(layer):
    x = torch.eye(4).repeat(3, 1, 1).requires_grad_()
    y = layer(x)
    (g,) = torch.autograd.grad(y.square().sum(), x)
    assert y.dtype == torch.float32 and torch.isfinite(y).all() and torch.isfinite(g).all()


# -- bad input: checked from the spectrum the layer computes anyway -----------------


@pytest.mark.parametrize("layer", [ReEig(), LogEig(), LogEig(clamp_min=1e-6)], ids=["ReEig", "LogEig", "LogEig(clamp)"])
def test_indefinite_input_is_rejected(layer):
    x = _x(n=4)
    with pytest.raises(ValueError, match=r"x: expected symmetric positive (semi-)?definite matrices for (ReEig|LogEig), got 5 of 5"):
        layer(-x)
    one_bad = x.clone()
    one_bad[2] = -one_bad[2]
    with pytest.raises(ValueError, match="got 1 of 5"):
        layer(one_bad)


def test_logeig_rejects_singular_and_rank_one_input_unless_clamped():
    v = torch.randn(3, 4, 1, generator=torch.Generator().manual_seed(4), dtype=F64)
    rank_one = v @ v.mT  # eigenvalues 0, 0, 0, |v|^2 up to rounding
    with pytest.raises(ValueError, match="LogEig"):
        LogEig()(rank_one)
    out = LogEig(clamp_min=1e-3)(rank_one)  # semi-definite is accepted with a floor
    assert torch.isfinite(out).all()
    assert torch.linalg.eigvalsh(ReEig(1e-3)(rank_one)).min() >= 1e-3 * (1 - 1e-12)


@pytest.mark.parametrize("layer", [ReEig(), LogEig(), ExpEig()], ids=["ReEig", "LogEig", "ExpEig"])
def test_non_symmetric_and_non_finite_input_is_rejected(layer):
    x = _x(n=4)
    skew = x.clone()
    skew[:, 0, 1] += 0.1
    with pytest.raises(ValueError, match="x: expected symmetric matrices"):
        layer(skew)
    for bad in (float("nan"), float("inf")):
        y = x.clone()
        y[1, 2, 2] = bad
        with pytest.raises(ValueError, match="x: expected finite values"):
            layer(y)


def test_expeig_vectorized_rejects_nan():
    v = torch.zeros(2, 6, dtype=F64)
    v[0, 3] = float("nan")
    with pytest.raises(ValueError, match="x: expected finite values"):
        ExpEig("triu")(v)


def test_bimap_follows_torch_dtype_policy():
    layer = BiMap(4, 3)  # float32 weight
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float32 \(the dtype of the BiMap weight\), got torch.float64"):
        layer(_x(n=4))
    assert layer.double()(_x(n=4)).dtype == F64
    # parameter-free layers keep the input's dtype
    for free in (ReEig(), LogEig(), ExpEig()):
        assert free(_x(n=4).float()).dtype == torch.float32


def test_reeig_warns_when_it_clamps_nearly_every_eigenvalue():
    volts = _x(n=4) * 1e-11  # EEG covariances in volts^2: eigenvalues ~1e-11
    with pytest.warns(UserWarning, match=r"ReEig clamped 100% of the batch's eigenvalues to eps=0.0001"):
        y = ReEig()(volts)
    assert torch.allclose(y, 1e-4 * torch.eye(4, dtype=F64).expand_as(y))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReEig()(volts * 1e12)  # microvolt scale: nothing clamped, no warning
        ReEig(warn_fraction=None)(volts)
    # a layer that clamps half of the eigenvalues (rank-deficient BiMap output) does not warn
    half = spd_with_spectrum(torch.tensor([1e-9, 1e-9, 1.0, 2.0], dtype=F64), torch.Generator().manual_seed(5), batch=(3,))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ReEig()(half)


@pytest.mark.parametrize("clamped, warns", [((4, 0), True), ((2, 2), True), ((3, 0), False), ((2, 1), False)])
def test_reeig_warning_counts_the_whole_batch_however_the_clamped_eigenvalues_are_spread(clamped, warns):
    # warn_fraction 0.5 over two 4x4 matrices with clamped[i] eigenvalues below eps: 4 of 8
    # (exactly the threshold) warns, 3 of 8 does not, wherever they sit. The cheap probe
    # read with the input check (some matrix has an eigenvalue of index ceil(w n) - 1 at
    # most eps) must hide neither threshold case: (2, 2) fails a probe one index too high.
    import warnings

    gen = torch.Generator().manual_seed(11)
    x = torch.stack([
        spd_with_spectrum(torch.tensor([1e-9] * c + [1.0 + i for i in range(4 - c)], dtype=F64), gen)
        for c in clamped
    ])
    layer = ReEig(1e-4, warn_fraction=0.5)
    if warns:
        with pytest.warns(UserWarning, match=r"ReEig clamped 50% of the batch's eigenvalues"):
            layer(x)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            layer(x)


@pytest.mark.parametrize(
    "spectrum",
    [[-2.0, 1.0, 3.0], [-5.0, -1.0, 1.0], [-3.0, -2.0, -1.0]],
    ids=["indefinite", "negative-dominated", "negative-definite"],
)
def test_reeig_rejects_indefinite_input_whichever_end_of_the_spectrum_is_larger(spectrum):
    # the semi-definite test per matrix is λ_1 >= -rtol max(|λ_1|, |λ_n|); whether the
    # largest magnitude is λ_n or λ_1 (or every eigenvalue is negative), it must fail
    gen = torch.Generator().manual_seed(12)
    good = spd_with_spectrum(torch.tensor([1.0, 2.0, 3.0], dtype=F64), gen)
    bad = spd_with_spectrum(torch.tensor(spectrum, dtype=F64), gen)
    with pytest.raises(ValueError, match=r"semi-definite matrices for ReEig, got 1 of 2 with a significantly negative"):
        ReEig()(torch.stack([good, bad]))


def test_logeig_after_reeig_reuses_its_spectrum_and_equals_the_unfused_math():
    # ReEig's output carries its eigendecomposition; LogEig on it decomposes nothing
    # again. A clone drops it, so LogEig(clone) is the unfused computation.
    eps = 0.3
    x = _x(n=5, b=4, cond=30.0).requires_grad_()
    g = torch.randn(4, 15, generator=torch.Generator().manual_seed(3), dtype=F64)
    y = ReEig(eps)(x)
    fused = LogEig("triu")(y)
    (grad_fused,) = torch.autograd.grad((fused * g).sum(), x)
    y2 = ReEig(eps)(x).clone()
    unfused = LogEig("triu")(y2)
    (grad_unfused,) = torch.autograd.grad((unfused * g).sum(), x)
    # eigh of the rounded product moves log by about cond(y) * eps (forward error)
    cond = (torch.linalg.eigvalsh(y.detach())[:, -1] / eps).max().item()
    tol = 10 * 5 * torch.finfo(F64).eps * cond
    torch.testing.assert_close(fused, unfused, rtol=0, atol=tol)
    torch.testing.assert_close(grad_fused, grad_unfused, rtol=0, atol=tol * g.abs().max().item() * cond)
    # and both are log of the clamped spectrum
    s, u = torch.linalg.eigh(x.detach())
    ref = sym_logm((u * s.clamp(min=eps).unsqueeze(-2)) @ u.mT)
    torch.testing.assert_close(LogEig(None)(ReEig(eps)(x)), ref, rtol=0, atol=tol)


def test_logeig_after_reeig_differentiates_to_reeigs_input_directly():
    # log(ReEig(X)) is one spectral function of X: its graph skips ReEig's backward node,
    # and it is exact across the clamp (eigenvalues below eps, a repeated one) and twice
    eps = 0.5
    s = torch.tensor([[0.1, 0.2, 1.0, 1.0, 3.0], [0.05, 0.45, 0.9, 2.0, 2.0]], dtype=F64)
    q = torch.linalg.qr(torch.randn(2, 5, 5, generator=torch.Generator().manual_seed(1), dtype=F64))[0]
    x = ((q * s.unsqueeze(-2)) @ q.mT).requires_grad_()
    y = ReEig(eps)(x)
    out = LogEig("triu")(y)
    assert not graph_reaches(out.grad_fn, y.grad_fn)
    assert graph_reaches(LogEig("triu")(y.clone()).grad_fn, y.grad_fn)  # a clone: the two-step graph

    def chain(x):
        return LogEig("triu")(ReEig(eps)(sym(x)))

    assert gradcheck(chain, (x,))
    assert torch.autograd.gradgradcheck(chain, (x,))


def test_reeig_output_modified_in_place_is_checked_again():
    y = ReEig(1e-4)(_x(n=4, b=3))
    y.mul_(-1.0)  # no longer what ReEig computed: the stored spectrum must not be used
    with pytest.raises(ValueError, match="positive definite"):
        LogEig()(y)
