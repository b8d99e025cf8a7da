"""BiMap's initialisations and parametrizations: the documented distribution, orthonormality kept."""

import itertools

import geoopt
import pytest
import torch
from scipy import stats

from geonorm.nn import BiMap
from geonorm.spd.layers import BIMAP_INITS, BIMAP_PARAMETRIZATIONS, semi_orthogonal

from .._spd import random_spd

F64 = torch.float64
EPS = torch.finfo(F64).eps


def _orthonormality_error(w: torch.Tensor) -> float:
    eye = torch.eye(w.shape[-1], dtype=w.dtype)
    return (w.mT @ w - eye).abs().max().item()


def _haar_checks(w: torch.Tensor) -> None:
    """``w``: ``[N, n, k]`` samples; fails unless they look Haar on St(n, k).

    Under Haar measure every entry squared is Beta(1/2, (n-1)/2), every entry
    is symmetric about 0, and E[W W^T] = (k/n) I. With N samples, a KS test at
    level 1e-4 per entry and 6-sigma bounds on the moments (sigma from the
    sample itself) leave a true Haar sampler a negligible chance to fail;
    the seeds are fixed, so the outcome is deterministic.
    """
    big_n, n, k = w.shape
    beta = stats.beta(0.5, (n - 1) / 2)
    for i, j in [(0, 0), (n - 1, k - 1), (n // 2, 0), (0, k - 1)]:
        entry = w[:, i, j].numpy()
        assert stats.kstest(entry**2, beta.cdf).pvalue > 1e-4, (i, j)
        # sign symmetry: the number of positive entries is Binomial(N, 1/2)
        assert stats.binomtest(int((entry > 0).sum()), big_n, 0.5).pvalue > 1e-4, (i, j)
    proj = w @ w.mT  # [N, n, n], mean (k/n) I under Haar
    mean, sem = proj.mean(0), proj.std(0) / big_n**0.5
    assert ((mean - k / n * torch.eye(n, dtype=F64)).abs() <= 6 * sem + 10 * EPS).all()


def test_default_init_is_haar_on_the_stiefel_manifold():
    torch.manual_seed(0)
    # channels=N draws N independent weights through the layer's own reset_parameters
    layer = BiMap(5, 3, channels=4000, dtype=F64)
    assert layer.init == "orthogonal"
    w = layer.weight.detach()  # [4000, 5, 3]
    assert _orthonormality_error(w) < 10 * 5 * EPS
    _haar_checks(w)


@pytest.mark.parametrize("init", ["orthogonal", "stiefel"])
def test_gaussian_inits_are_haar(init):
    w = semi_orthogonal((4000, 6, 2), init, generator=torch.Generator().manual_seed(1))
    _haar_checks(w)


def test_haar_check_rejects_unfixed_qr_signs():
    # negative control: Q of a Gaussian without the sign fix diag(R) > 0 is not Haar
    # (LAPACK's Householder QR makes W[0, 0] negative in most draws)
    g = torch.randn(4000, 5, 3, dtype=F64, generator=torch.Generator().manual_seed(2))
    with pytest.raises(AssertionError):
        _haar_checks(torch.linalg.qr(g).Q)


def test_kaiming_init_is_the_q_of_a_uniform_matrix():
    gen = torch.Generator().manual_seed(3)
    w = semi_orthogonal((7, 4), "kaiming", generator=gen)
    a = 2 * torch.rand((7, 4), dtype=F64, generator=torch.Generator().manual_seed(3)) - 1
    # W spans the columns of A with a positive triangular change of basis: A = W R
    r = w.mT @ a
    assert torch.allclose(torch.tril(r, -1), torch.zeros_like(r), atol=100 * EPS)
    assert (r.diagonal() > 0).all()
    assert torch.allclose(w @ r, a, atol=100 * EPS)


CASES = [
    dict(in_n=6, out_n=3),
    dict(in_n=3, out_n=5),  # expanding: [out_n, in_n] with orthonormal columns
    dict(in_n=6, out_n=4, channels=2, out_channels=3),
]


@pytest.mark.parametrize(
    "init, parametrization", list(itertools.product(BIMAP_INITS, BIMAP_PARAMETRIZATIONS))
)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_every_option_stays_orthonormal_under_riemannian_adam(init, parametrization, case):
    torch.manual_seed(0)
    kw = CASES[case]
    layer = BiMap(**kw, init=init, parametrization=parametrization, dtype=F64)
    assert _orthonormality_error(layer.weight) < 10 * kw["in_n"] * EPS
    lead = (kw["channels"],) if "channels" in kw else ()
    x = random_spd(kw["in_n"], torch.Generator().manual_seed(0), batch=(4,) + lead, cond=20.0)
    opt = geoopt.optim.RiemannianAdam(layer.parameters(), lr=0.1)
    start = layer.weight.detach().clone()
    steps = 20
    for _ in range(steps):
        opt.zero_grad()
        y = layer(x)
        (y.diagonal(dim1=-2, dim2=-1) ** 2).sum().backward()
        opt.step()
    w = layer.weight.detach()
    assert (w - start).abs().max() > 1e-2  # it moved
    # each step's retraction / orthogonal map is exact up to ~n eps; errors add up over steps
    assert _orthonormality_error(w) < 10 * steps * max(kw["in_n"], kw["out_n"]) * EPS
    assert torch.linalg.eigvalsh(layer(x)).min() > 0 or kw["out_n"] > kw["in_n"]


@pytest.mark.parametrize("parametrization", ["cayley", "matrix_exp"])
def test_orthogonal_parametrizations_need_no_riemannian_optimiser(parametrization):
    torch.manual_seed(0)
    layer = BiMap(6, 3, parametrization=parametrization, dtype=F64)
    assert [name for name, _ in layer.named_parameters()] == ["skew"]
    opt = torch.optim.Adam(layer.parameters(), lr=0.1)
    x = random_spd(6, torch.Generator().manual_seed(0), batch=(4,), cond=20.0)
    for _ in range(20):
        opt.zero_grad()
        layer(x).diagonal(dim1=-2, dim2=-1).pow(2).sum().backward()
        opt.step()
    assert _orthonormality_error(layer.weight.detach()) < 10 * 20 * 6 * EPS


@pytest.mark.parametrize("parametrization", BIMAP_PARAMETRIZATIONS)
def test_state_dict_round_trip(parametrization):
    torch.manual_seed(0)
    layer = BiMap(6, 3, parametrization=parametrization, dtype=F64)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)  # move it off its initial point
    layer(random_spd(6, torch.Generator().manual_seed(0), batch=(3,))).sum().backward()
    opt.step()
    fresh = BiMap(6, 3, parametrization=parametrization, dtype=F64)
    fresh.load_state_dict(layer.state_dict())
    assert torch.equal(fresh.weight, layer.weight)


def test_bad_options_name_the_argument():
    with pytest.raises(ValueError, match=r"init: expected one of 'orthogonal', 'stiefel', 'kaiming', got 'xavier'"):
        BiMap(4, 2, init="xavier")
    with pytest.raises(ValueError, match=r"parametrization: expected one of .*got 'householder'"):
        BiMap(4, 2, parametrization="householder")


@pytest.mark.parametrize("parametrization", ["cayley", "matrix_exp"])
def test_a_stiefel_state_dict_loads_into_a_parametrized_bimap(parametrization):
    torch.manual_seed(0)
    for kw in CASES:
        old = BiMap(**kw, parametrization="stiefel", dtype=F64)
        new = BiMap(**kw, parametrization=parametrization, dtype=F64)
        new.load_state_dict(old.state_dict())
        assert torch.allclose(new.weight, old.weight, atol=100 * EPS, rtol=0)
        w = new.weight.detach()
        assert _orthonormality_error(w) < 100 * EPS


@pytest.mark.parametrize("kind", ["cayley", "matrix_exp"])
def test_orthogonal_map_agrees_with_torch_parametrizations(kind):
    # the peer: torch.nn.utils.parametrizations.orthogonal with the same base and coordinates
    torch.manual_seed(0)
    ours = BiMap(6, 3, channels=2, parametrization=kind, dtype=F64)
    with torch.no_grad():
        ours.skew.normal_()
    holder = torch.nn.Linear(1, 1)
    holder.weight = torch.nn.Parameter(ours.weight.detach().clone())
    torch.nn.utils.parametrizations.orthogonal(holder, "weight", orthogonal_map=kind)
    with torch.no_grad():
        holder.parametrizations.weight[0].base.copy_(ours.base)
        holder.parametrizations.weight.original.copy_(ours.skew)
    assert torch.allclose(holder.weight, ours.weight, atol=1e3 * EPS, rtol=0)


def test_spdnet_passes_bimap_options():
    from geonorm.models import SPDNet

    net = SPDNet(5, 3, dims=(4, 3), bimap_kwargs={"parametrization": "stiefel", "init": "kaiming"})
    bimaps = [m for m in net.modules() if isinstance(m, BiMap)]
    assert [(m.init, m.parametrization) for m in bimaps] == [("kaiming", "stiefel")] * 2
    assert all(m.parametrization == "cayley" for m in SPDNet(5, 3).modules() if isinstance(m, BiMap))
