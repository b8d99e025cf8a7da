"""Gradients of the matrix functions: gradcheck, gradgradcheck, no NaN, vs raw eigh."""

import mpmath
import pytest
import torch
from torch.autograd import gradcheck, gradgradcheck

from geonorm.linalg import (
    exp_function,
    log_function,
    power_function,
    sym,
    sym_expm,
    sym_func,
    sym_invsqrtm,
    sym_logm,
    sym_powm,
    sym_sqrtm,
    sym_sqrtm_invsqrtm,
)
from geonorm.linalg.spectral import first_divided_differences
from geonorm.testing import spd_gradcheck

from .._spd import spd_with_spectrum

F64 = torch.float64
N = 4

SPD_FUNCS = {
    "logm": sym_logm,
    "sqrtm": sym_sqrtm,
    "invsqrtm": sym_invsqrtm,
    "powm(0.3)": lambda x, check=True: sym_powm(x, 0.3, check=check),
    "powm(-1.7)": lambda x, check=True: sym_powm(x, -1.7, check=check),
    "logm(clamp)": lambda x, check=True: sym_logm(x, clamp_min=1e-3, check=check),
    "sqrt+invsqrt": lambda x, check=True: torch.cat(sym_sqrtm_invsqrtm(x, check=check), -1),
    "general": lambda x, check=True: sym_func(
        x, torch.log1p, lambda s: 1 / (1 + s), d2f=lambda s: -1 / (1 + s) ** 2, check=check
    ),
}

SPECTRA = {
    "random": torch.tensor([0.4, 0.9, 1.7, 3.0], dtype=F64),
    "identity": torch.ones(N, dtype=F64),
    "repeated": torch.tensor([0.5, 0.5, 2.0, 2.0], dtype=F64),
    "near-repeated": torch.tensor([1.0, 1.0 + 1e-9, 1.0 + 2e-9, 3.0], dtype=F64),
}


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
@pytest.mark.parametrize("name", sorted(SPD_FUNCS))
def test_gradcheck_and_gradgradcheck(name, spectrum):
    gen = torch.Generator().manual_seed(7)
    x = spd_with_spectrum(SPECTRA[spectrum], gen, batch=(2,))
    assert spd_gradcheck(lambda a: SPD_FUNCS[name](a, check=False), x, second_order=True)


@pytest.mark.parametrize("name", ["logm", "sqrtm", "powm(0.3)", "powm(-1.7)"])
def test_gradcheck_graded_cond_1e10(name):
    # A diagonal matrix with eigenvalues from 1e-10 to 1: perturbations relative
    # to each entry keep finite differences exact enough for gradcheck.
    x = torch.diag(torch.logspace(-10, 0, N, dtype=F64))
    # Scale the output to unit size so gradcheck's atol means the same for
    # X^{-1.7} (entries up to 1e17) as for log X.
    scale = 1.0 / SPD_FUNCS[name](x).abs().max()
    assert spd_gradcheck(lambda a: scale * SPD_FUNCS[name](a, check=False), x, second_order=True)


def test_expm_gradcheck_including_zero_and_repeated():
    gen = torch.Generator().manual_seed(8)
    a = torch.randn(2, N, N, generator=gen, dtype=F64)
    for s in (a + a.transpose(-1, -2), torch.zeros(2, N, N, dtype=F64), torch.eye(N, dtype=F64).repeat(2, 1, 1)):
        s = s.clone().requires_grad_()
        fn = lambda y: sym_expm(sym(y))
        assert gradcheck(fn, (s,))
        assert gradgradcheck(fn, (s,))


def _mp_directional(x: torch.Tensor, e: torch.Tensor, g: torch.Tensor, p: float | None) -> float:
    """<G, d/dt F(X + tE)> at t = 0 by a 60-digit central difference (mpmath)."""
    mpmath.mp.dps = 60
    xm, em, gm = (mpmath.matrix(t.tolist()) for t in (x, e, g))
    h = mpmath.mpf("1e-25")

    def f(t):
        vals, vecs = mpmath.eigsy(xm + t * em)
        fv = [mpmath.log(v) if p is None else v**p for v in vals]
        return vecs * mpmath.diag(fv) * vecs.T

    d = (f(h) - f(-h)) / (2 * h)
    n = x.shape[-1]
    return float(sum(gm[i, j] * d[i, j] for i in range(n) for j in range(n)))


@pytest.mark.parametrize("spectrum", ["cond1e10", "repeated-tiny"])
@pytest.mark.parametrize("p", [None, 0.5, -0.5])
def test_backward_matches_60_digit_reference(spectrum, p):
    ev = {
        "cond1e10": torch.logspace(-10, 0, N, dtype=F64),
        "repeated-tiny": torch.tensor([1e-10, 1e-10, 1.0, 1.0], dtype=F64),
    }[spectrum]
    gen = torch.Generator().manual_seed(9)
    x = spd_with_spectrum(ev, gen).requires_grad_()
    e = sym(torch.randn(N, N, generator=gen, dtype=F64)) * 1e-10
    g = sym(torch.randn(N, N, generator=gen, dtype=F64))
    out = sym_logm(x) if p is None else sym_powm(x, p)
    (grad,) = torch.autograd.grad((out * g).sum(), x)
    ours = float((grad * e).sum())
    ref = _mp_directional(x.detach(), e, g, p)
    assert torch.isfinite(grad).all()
    # The reference sees the same rounded X; the remaining gap is eigh's
    # backward-stable but not relatively accurate small eigenvalues: each is
    # off by up to ~n eps ||X||, i.e. relatively by delta = n eps ||X|| / lmin,
    # and f'(l) = p l^(p-1) (or 1/l) turns that into |p - 1| delta (or delta).
    ev_min, ev_max = float(ev.min()), float(ev.max())
    delta = N * torch.finfo(F64).eps * ev_max / ev_min
    amplification = 1.0 if p is None else max(1.0, abs(p - 1.0))
    assert abs(ours - ref) <= 2 * amplification * delta * abs(ref)


@pytest.mark.parametrize("dtype,cond", [(torch.float64, 1e10), (torch.float32, 1e5)])
@pytest.mark.parametrize("name", sorted(SPD_FUNCS))
def test_no_nan_or_inf_in_gradients(name, dtype, cond):
    gen = torch.Generator().manual_seed(10)
    spectra = [
        torch.ones(N, dtype=F64),
        torch.tensor([1.0, 1.0, 1.0, 2.0], dtype=F64),
        torch.logspace(0, -torch.log10(torch.tensor(cond)).item(), N, dtype=F64),
        torch.tensor([1 / cond, 1 / cond, 1.0, 1.0], dtype=F64),
    ]
    for ev in spectra:
        x = spd_with_spectrum(ev, gen, batch=(3,)).to(dtype).requires_grad_()
        out = SPD_FUNCS[name](x, check=False)
        (grad,) = torch.autograd.grad(out.square().sum(), x)
        assert torch.isfinite(out).all() and torch.isfinite(grad).all()


def _raw_eigh_logm(x: torch.Tensor) -> torch.Tensor:
    s, u = torch.linalg.eigh(x)
    return u @ torch.diag_embed(torch.log(s)) @ u.transpose(-1, -2)


def test_raw_eigh_autograd_gives_nan_where_ours_does_not():
    x = torch.eye(3, dtype=F64).requires_grad_()
    g = sym(torch.randn(3, 3, generator=torch.Generator().manual_seed(0), dtype=F64))
    (raw,) = torch.autograd.grad((_raw_eigh_logm(x) * g).sum(), x)
    assert not torch.isfinite(raw).all(), "raw eigh autograd was expected to fail at the identity"
    (ours,) = torch.autograd.grad((sym_logm(x) * g).sum(), x)
    # D log(I)[E] = E, so the gradient of <G, log X> at X = I is G itself.
    assert torch.allclose(ours, g, atol=1e-12)


@pytest.mark.parametrize(
    "name,function,mp_f",
    [
        ("log", log_function(), mpmath.log),
        ("exp", exp_function(), mpmath.exp),
        ("pow(0.5)", power_function(0.5), lambda x: x ** mpmath.mpf("0.5")),
        ("pow(-0.5)", power_function(-0.5), lambda x: x ** mpmath.mpf("-0.5")),
        ("pow(-1)", power_function(-1.0), lambda x: 1 / x),
        ("pow(-2.5)", power_function(-2.5), lambda x: x ** mpmath.mpf("-2.5")),
        ("pow(7)", power_function(7.0), lambda x: x**7),
    ],
)
def test_divided_differences_against_50_digits(name, function, mp_f):
    # pairs of eigenvalues on both sides of the series/quotient switch, down to equality
    mpmath.mp.dps = 50
    worst = 0.0
    for base in (1e-8, 1e-3, 0.5, 1.0, 7.0, 1e4):
        for rel in (0.0, 1e-15, 1e-9, 1e-6, 4e-4, 5e-4, 6e-4, 1e-3, 2e-3, 0.3, 3.0):
            a, b = base, base * (1 + rel)
            if name == "exp" and b > 100:
                continue
            ours = first_divided_differences(function, torch.tensor([a, b], dtype=F64))[0, 1].item()
            ma, mb = mpmath.mpf(a), mpmath.mpf(b)
            ref = float(mpmath.diff(mp_f, ma) if a == b else (mp_f(ma) - mp_f(mb)) / (ma - mb))
            worst = max(worst, abs(ours - ref) / abs(ref))
    assert worst < 1e-12, worst


@pytest.mark.parametrize("name", sorted(SPD_FUNCS))
@pytest.mark.parametrize("check", [True, False])
def test_call_without_a_graph_equals_the_recorded_call(name, check):
    # Without a gradient to record (no_grad, or an input that requires none) the matrix
    # functions skip the autograd.Function and compute the same operations directly: the
    # values must be bitwise those of the recorded call, with no graph; the checks still run.
    f = SPD_FUNCS[name]
    x = spd_with_spectrum(SPECTRA["repeated"], torch.Generator().manual_seed(4), batch=(3,))
    recorded = f(x.clone().requires_grad_(), check=check)
    assert recorded.grad_fn is not None
    plain = f(x, check=check)
    with torch.no_grad():
        no_grad = f(x.clone().requires_grad_(), check=check)
    for out in (plain, no_grad):
        assert out.grad_fn is None and not out.requires_grad
        assert torch.equal(out, recorded.detach())
    bad = x.clone()
    bad[1, 0, 1] += 1e-3  # every function checks symmetry
    if check:
        with torch.no_grad(), pytest.raises(ValueError, match="expected symmetric"):
            f(bad, check=True)


def test_forward_mode_ad_and_func_transforms_take_the_recorded_path():
    # under a dual level or a torch.func transform the input may require no gradient, yet the
    # Function's rules must apply: its exact derivative at a repeated eigenvalue, not eigh's
    import torch.autograd.forward_ad as fwad

    from geonorm.linalg.eig import _needs_graph

    x = torch.eye(3, dtype=F64)
    assert not _needs_graph(x)
    with fwad.dual_level():
        assert _needs_graph(x)
    seen = []
    torch.func.grad(lambda y: (seen.append(_needs_graph(y)) or y).sum())(x)
    assert seen == [True]


@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
def test_tensor_power_gradcheck_in_the_matrix_and_the_exponent(spectrum):
    """X^p with one learnable exponent per matrix (LieBN's scaling): gradients in X and p, and in p alone."""
    from geonorm.linalg import sym_powm_tensor

    gen = torch.Generator().manual_seed(9)
    x = spd_with_spectrum(SPECTRA[spectrum], gen, batch=(2,)).requires_grad_()
    p = torch.tensor([0.7, -1.3], dtype=F64, requires_grad=True)
    assert gradcheck(lambda a, q: sym_powm_tensor(sym(a), q, check=False), (x, p))
    assert gradcheck(lambda q: sym_powm_tensor(x.detach(), q, check=False), (p,))
    shared = torch.tensor(0.4, dtype=F64, requires_grad=True)  # one exponent for the batch
    assert gradcheck(lambda a, q: sym_powm_tensor(sym(a), q, check=False), (x, shared))
