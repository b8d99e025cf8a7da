"""Log-Cholesky maps and the Lyapunov solver against scipy, with gradients."""

import pytest
import scipy.linalg as sla
import torch
from torch.autograd import gradcheck, gradgradcheck

from geonorm.linalg import cholesky_exp, cholesky_log, solve_lyapunov, sym
from geonorm.testing import spd_gradcheck

from .._spd import random_spd, rel_error, rounding_bound, spd_with_spectrum

F64 = torch.float64


def test_cholesky_log_matches_scipy_and_roundtrips():
    gen = torch.Generator().manual_seed(0)
    cond = 1e6
    p = random_spd(5, gen, batch=(4,), cond=cond)
    x = cholesky_log(p)
    assert torch.equal(x, x.tril())
    for pi, xi in zip(p, x):
        ref = torch.as_tensor(sla.cholesky(pi.numpy(), lower=True))
        # Cholesky factors of P + dP with |dP| <= n eps |P| (both codes) differ by
        # |dL| / |L| <~ cond(P) n eps (Sun 1991; Higham 2002, Thm 10.8): compare the
        # factors normwise at that bound. The log of the diagonal has absolute error
        # |dL_ii| / L_ii, bounded by the same relative error of each row.
        expected = ref.tril(-1) + torch.diag(torch.log(torch.diagonal(ref)))
        ours_factor = xi.tril(-1) + torch.diag(torch.exp(torch.diagonal(xi)))
        assert rel_error(ours_factor, ref) <= rounding_bound(5, cond)
        assert (torch.diagonal(xi) - torch.diagonal(expected)).abs().max() <= rounding_bound(5, cond)
    # L L^T is a backward-stable product: |L L^T - P| <= n eps |L|^2 = n eps |P| (no cond).
    assert rel_error(cholesky_exp(x), p) <= rounding_bound(5)


def test_cholesky_exp_reads_lower_triangle_only():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 4, generator=gen, dtype=F64)
    assert torch.allclose(cholesky_exp(x), cholesky_exp(x.tril()))
    # refactorizing P = L L^T recovers L to cond(P) n eps relative (see above)
    p = cholesky_exp(x)
    for pi, xi, back in zip(p, x, cholesky_log(p)):
        cond = float(torch.linalg.cond(pi))
        factor = xi.tril(-1) + torch.diag(torch.exp(torch.diagonal(xi)))
        back_factor = back.tril(-1) + torch.diag(torch.exp(torch.diagonal(back)))
        assert rel_error(back_factor, factor) <= rounding_bound(4, cond)


@pytest.mark.parametrize(
    "spectrum",
    [torch.ones(4, dtype=F64), torch.tensor([0.5, 0.5, 2.0, 2.0], dtype=F64), torch.logspace(-10, 0, 4, dtype=F64)],
    ids=["identity", "repeated", "cond1e10"],
)
def test_cholesky_gradients(spectrum):
    gen = torch.Generator().manual_seed(2)
    p = spd_with_spectrum(spectrum, gen, batch=(2,)) if spectrum[0] > 1e-3 else torch.diag(spectrum)
    assert spd_gradcheck(lambda a: cholesky_log(a, check=False), p, second_order=True)
    x = torch.randn(2, 4, 4, generator=gen, dtype=F64, requires_grad=True)
    assert gradcheck(cholesky_exp, (x,))


@pytest.mark.parametrize("cond", [1.0, 10.0, 1e8])
def test_lyapunov_matches_scipy(cond):
    gen = torch.Generator().manual_seed(3)
    g = random_spd(5, gen, batch=(3,), cond=cond)
    v = torch.randn(3, 5, 5, generator=gen, dtype=F64)
    sol = solve_lyapunov(g, v)
    for gi, vi, si in zip(g, v, sol):
        # Backward error: the residual of a stable solver is |GL + LG - V| <~ n eps
        # |G|_2 |L| (twice: two products), whatever the conditioning.
        residual = (gi @ si + si @ gi - vi).norm()
        assert residual <= 2 * rounding_bound(5) * torch.linalg.matrix_norm(gi, 2) * si.norm()
        # Forward error: L -> GL + LG has eigenvalues l_i + l_j, so its condition
        # number is l_max / l_min = cond(G), and each solver's relative error is
        # at most cond(G) n eps (up to the constant). At cond = 1e8 that is
        # ~1e-7: an rtol of 1e-8 held only on some BLAS builds.
        ref = torch.as_tensor(sla.solve_continuous_lyapunov(gi.numpy(), vi.numpy()))
        assert rel_error(si, ref) <= rounding_bound(5, cond)


@pytest.mark.parametrize(
    "spectrum",
    [torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64), torch.ones(4, dtype=F64), torch.tensor([1.0, 1.0, 3.0, 3.0], dtype=F64)],
    ids=["distinct", "identity", "repeated"],
)
def test_lyapunov_gradients(spectrum):
    gen = torch.Generator().manual_seed(4)
    g = spd_with_spectrum(spectrum, gen, batch=(2,)).requires_grad_()
    v = torch.randn(2, 4, 4, generator=gen, dtype=F64, requires_grad=True)
    fn = lambda a, b: solve_lyapunov(sym(a), b, check=False)
    assert gradcheck(fn, (g, v))
    assert gradgradcheck(fn, (g, v))
    out = fn(g, v)
    grads = torch.autograd.grad(out.square().sum(), (g, v))
    assert all(torch.isfinite(t).all() for t in grads)
