"""Spectral pair operators T_phi(P)[W]: values against their definition, gradients against finite differences."""

import pytest
import torch

from geonorm.linalg.operator import BW_EXP_FACTOR, BW_FROM_IDENTITY, BW_TO_IDENTITY, apply_pair_operator

F64 = torch.float64
FUNCTIONS = [BW_TO_IDENTITY, BW_FROM_IDENTITY, BW_EXP_FACTOR]


def _spd(*shape, n, seed, repeated=False):
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(*shape, n, n, generator=gen, dtype=F64))
    s = torch.rand(*shape, n, generator=gen, dtype=F64) + 0.5
    if repeated:  # a repeated eigenvalue: the divided differences' limit case
        s[..., 1] = s[..., 0]
    return (q * s.unsqueeze(-2)) @ q.mT


def _sym(*shape, n, seed):
    a = torch.randn(*shape, n, n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    return a + a.mT


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
def test_matches_the_definition(fn):
    p, w = _spd(3, n=4, seed=0), _sym(3, n=4, seed=1)
    a, u = torch.linalg.eigh(p)
    ref = u @ (fn.phi(a.unsqueeze(-1), a.unsqueeze(-2)) * (u.mT @ w @ u)) @ u.mT
    assert torch.allclose(apply_pair_operator(p, w, fn), ref, rtol=0, atol=1e-12)


# p's batch against w's: the same batch, one p for a batch of w (a batch norm's mean), one p per channel
SHAPES = [((2,), (2,)), ((), (3,)), ((2,), (3, 2))]


@pytest.mark.parametrize("fn", FUNCTIONS, ids=lambda f: f.name)
@pytest.mark.parametrize("p_batch, w_batch", SHAPES)
@pytest.mark.parametrize("repeated", [False, True])
def test_gradcheck_with_broadcast_and_repeated_eigenvalues(fn, p_batch, w_batch, repeated):
    p = _spd(*p_batch, n=3, seed=2, repeated=repeated).requires_grad_()
    w = _sym(*w_batch, n=3, seed=3).requires_grad_()
    # the derivative in p is taken along symmetric directions: symmetrize inside the function
    f = lambda p, w: apply_pair_operator(0.5 * (p + p.mT), w, fn)  # noqa: E731
    assert torch.autograd.gradcheck(f, (p, w))


def test_broadcast_p_gradient_is_the_sum_over_the_batch():
    """The reduced path (one p, many w) equals summing per-sample gradients of an expanded p."""
    p, w = _spd(n=4, seed=4), _sym(5, n=4, seed=5)
    g = _sym(5, n=4, seed=6)
    shared = p.clone().requires_grad_()
    apply_pair_operator(shared, w, BW_TO_IDENTITY).backward(g)
    expanded = p.expand(5, 4, 4).clone().requires_grad_()  # same batch as w: the general path
    apply_pair_operator(expanded, w, BW_TO_IDENTITY).backward(g)
    # rounding of a few n x n products per sample, summed over the batch (eigenvalues in [0.5, 1.5])
    tol = 64 * 4 * torch.finfo(F64).eps * float(g.abs().sum() * w.abs().max())
    assert torch.allclose(shared.grad, expanded.grad.sum(0), rtol=0, atol=tol)


@pytest.mark.parametrize("p_batch, w_batch", SHAPES)
def test_a_batch_given_in_another_basis_equals_rotating_it_first(p_batch, w_batch):
    """``basis=O`` applies the operator to O w Oᵀ: the same value and gradients in p and w."""
    p = _spd(*p_batch, n=3, seed=7, repeated=True)
    o, _ = torch.linalg.qr(torch.randn(*p_batch, 3, 3, generator=torch.Generator().manual_seed(8), dtype=F64))
    w, g = _sym(*w_batch, n=3, seed=9), _sym(*w_batch, n=3, seed=10)
    grads = []
    for given in ("rotated", "basis"):
        pp, ww = p.clone().requires_grad_(), w.clone().requires_grad_()
        if given == "rotated":
            out = apply_pair_operator(pp, o @ ww @ o.mT, BW_EXP_FACTOR)
        else:
            out = apply_pair_operator(pp, ww, BW_EXP_FACTOR, basis=o)
        out.backward(g)
        grads.append((out.detach(), pp.grad, ww.grad))
    # a few 3 x 3 products apart, on entries of order one (eigenvalues in [0.5, 1.5], |w|, |g| <= ~5)
    tol = 64 * torch.finfo(F64).eps * 25
    for want, got in zip(*grads):
        assert torch.allclose(got, want, rtol=0, atol=tol)
    p_req = p.clone().requires_grad_()
    w_req = w.clone().requires_grad_()
    f = lambda p, w: apply_pair_operator(0.5 * (p + p.mT), w, BW_TO_IDENTITY, basis=o)  # noqa: E731
    assert torch.autograd.gradcheck(f, (p_req, w_req))
