"""Log-Cholesky maps and the Lyapunov solver against scipy, with gradients."""

import pytest
import scipy.linalg as sla
import torch
from torch.autograd import gradcheck, gradgradcheck

from geonorm.linalg import cholesky_exp, cholesky_log, solve_lyapunov, sym
from geonorm.testing import spd_gradcheck

from .._spd import random_spd, spd_with_spectrum

F64 = torch.float64


def test_cholesky_log_matches_scipy_and_roundtrips():
    gen = torch.Generator().manual_seed(0)
    p = random_spd(5, gen, batch=(4,), cond=1e6)
    x = cholesky_log(p)
    assert torch.equal(x, x.tril())
    for pi, xi in zip(p, x):
        ref = torch.as_tensor(sla.cholesky(pi.numpy(), lower=True))
        expected = ref.tril(-1) + torch.diag(torch.log(torch.diagonal(ref)))
        assert torch.allclose(xi, expected, rtol=1e-10, atol=1e-12)
    assert torch.allclose(cholesky_exp(x), p, rtol=1e-10, atol=1e-10)


def test_cholesky_exp_reads_lower_triangle_only():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(3, 4, 4, generator=gen, dtype=F64)
    assert torch.allclose(cholesky_exp(x), cholesky_exp(x.tril()))
    assert torch.allclose(cholesky_log(cholesky_exp(x)), x.tril(), atol=1e-12)


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
    assert torch.allclose(g @ sol + sol @ g, v, atol=1e-9)
    for gi, vi, si in zip(g, v, sol):
        ref = torch.as_tensor(sla.solve_continuous_lyapunov(gi.numpy(), vi.numpy()))
        assert torch.allclose(si, ref, rtol=1e-8, atol=1e-10)


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
