"""Matrix functions agree with scipy.linalg in float64, to the rounding their
conditioning allows (``tests/_spd.py``: error <~ kappa_F n eps, kappa_F from the
Loewner matrix of the spectrum)."""

import numpy as np
import pytest
import scipy.linalg as sla
import torch

from geonorm.linalg import (
    sym_expm,
    sym_func,
    sym_invsqrtm,
    sym_logm,
    sym_powm,
    sym_sqrtm,
    sym_sqrtm_invsqrtm,
)

from .._spd import function_condition, random_spd, rel_error, rounding_bound, spd_with_spectrum

SPECTRA = {
    "well": lambda n: torch.linspace(0.5, 3.0, n, dtype=torch.float64),
    "cond1e4": lambda n: torch.logspace(-2, 2, n, dtype=torch.float64),
    "repeated": lambda n: torch.tensor([0.3] * (n // 2) + [2.0] * (n - n // 2), dtype=torch.float64),
    "identity": lambda n: torch.ones(n, dtype=torch.float64),
}


def _rel(a: torch.Tensor, b: np.ndarray) -> float:
    """Frobenius error relative to max(|b|, 1) (logm of the identity is zero)."""
    b = torch.as_tensor(np.real(b))
    return float((a - b).norm() / b.norm().clamp_min(1.0))


@pytest.mark.filterwarnings("ignore:logm result may be inaccurate")
@pytest.mark.parametrize("spectrum", sorted(SPECTRA))
@pytest.mark.parametrize("n", [1, 3, 8])
def test_against_scipy(spectrum, n):
    gen = torch.Generator().manual_seed(n)
    ev = SPECTRA[spectrum](n)
    x = spd_with_spectrum(ev, gen, batch=(3,))
    power = lambda p: (lambda s: s**p, lambda s: p * s ** (p - 1))  # noqa: E731
    tol_log = rounding_bound(n, function_condition(ev, torch.log, torch.reciprocal))
    tol_sqrt = rounding_bound(n, function_condition(ev, *power(0.5)))
    tol_isqrt = rounding_bound(n, function_condition(ev, *power(-0.5)))
    for xi, logm, sq, isq in zip(x, sym_logm(x), sym_sqrtm(x), sym_invsqrtm(x)):
        xn = xi.numpy()
        assert _rel(logm, sla.logm(xn)) <= tol_log
        assert _rel(sq, sla.sqrtm(xn)) <= tol_sqrt
        assert _rel(isq, sla.fractional_matrix_power(xn, -0.5)) <= tol_isqrt
    for p in (-2.5, -1.0, 0.3, 1.7):
        tol = rounding_bound(n, function_condition(ev, *power(p)))
        for xi, xp in zip(x, sym_powm(x, p)):
            assert _rel(xp, sla.fractional_matrix_power(xi.numpy(), p)) <= tol


@pytest.mark.parametrize("n", [1, 4, 9])
def test_expm_against_30_digits(n):
    # Reference: mpmath's expm at 30 digits, not scipy.linalg.expm, whose squaring
    # phase amplifies rounding by up to |A| e^(|A| - l_max) for symmetric A with
    # negative eigenvalues (Higham, "Functions of Matrices", 2008, sec. 10.3):
    # 5x the bound below on one of these matrices.
    mpmath = pytest.importorskip("mpmath")
    gen = torch.Generator().manual_seed(10 + n)
    a = torch.randn(4, n, n, generator=gen, dtype=torch.float64)
    s = a + a.transpose(-1, -2)
    for si, e in zip(s, sym_expm(s)):
        with mpmath.workdps(30):
            ref = np.array(mpmath.expm(mpmath.matrix(si.tolist())).tolist(), dtype=float)
        tol = rounding_bound(n, function_condition(torch.linalg.eigvalsh(si), torch.exp, torch.exp))
        assert _rel(e, ref) <= tol


def test_exp_log_roundtrip_and_shared_eigh():
    gen = torch.Generator().manual_seed(3)
    cond = 1e4
    x = random_spd(6, gen, batch=(2, 3), cond=cond)
    # U exp(log(L)) U^T and (U L^1/2 U^T)^2 reassemble X from one eigendecomposition
    # of X + dX, |dX| <= n eps |X|: the error is relative to |X|, without cond.
    # X^1/2 X^-1/2 = I up to the absolute error of X^-1/2 times |X^1/2|, which is
    # n eps sqrt(cond) (relative error of X^-1/2 ~ n eps, |X^-1/2||X^1/2| = sqrt(cond)).
    assert rel_error(sym_expm(sym_logm(x)), x) <= rounding_bound(6)
    sq, isq = sym_sqrtm_invsqrtm(x)
    eye = torch.eye(6, dtype=torch.float64)
    assert (sq @ isq - eye).norm(dim=(-2, -1)).max() <= rounding_bound(6, cond**0.5)
    assert rel_error(sq @ sq, x) <= rounding_bound(6)


def test_general_function_matches_named():
    gen = torch.Generator().manual_seed(4)
    x = random_spd(5, gen, batch=(3,), cond=50.0)
    general = sym_func(x, torch.log, torch.reciprocal, positive=True)
    # the same eigendecomposition on both paths: only the scalar log differs (none)
    assert torch.allclose(general, sym_logm(x), rtol=1e-12, atol=1e-12)


def test_half_precision_computed_in_float32():
    gen = torch.Generator().manual_seed(5)
    x64 = random_spd(4, gen, batch=(2,), cond=5.0)
    for dtype in (torch.float16, torch.bfloat16):
        out = sym_logm(x64.to(dtype))
        assert out.dtype == dtype
        ref = sym_logm(x64.to(dtype).to(torch.float64))
        assert torch.allclose(out.double(), ref, atol=2e-2)


def test_clamp_min_meaning():
    # Eigenvalues below clamp_min are raised to it before the function is applied.
    x = torch.diag(torch.tensor([-1.0, 1e-9, 2.0], dtype=torch.float64))
    out = sym_logm(x, clamp_min=1e-4)
    expected = torch.log(torch.tensor([1e-4, 1e-4, 2.0], dtype=torch.float64))
    assert torch.allclose(torch.diagonal(out), expected)
    with pytest.raises(ValueError, match="clamp_min"):
        sym_logm(x, clamp_min=0.0)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_integer_powers_by_matrix_products_equal_the_spectral_power(k):
    # sym_powm(x, k) for integer k is a matrix product: compare it, and its
    # gradient, with the eigendecomposition path; it still rejects non-SPD input
    from geonorm.linalg import apply_spectral
    from geonorm.linalg.spectral import power_function

    cond = 30.0
    x = random_spd(5, torch.Generator().manual_seed(k), batch=(4,), cond=cond).requires_grad_()
    g = torch.randn(4, 5, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ours = sym_powm(x, float(k))
    (spectral,) = apply_spectral(x, [power_function(float(k))])
    # forward error of either: about k * cond * eps relative (the k-th power amplifies it)
    tol = 10 * k * cond * torch.finfo(torch.float64).eps
    torch.testing.assert_close(ours, spectral, rtol=tol, atol=tol * ours.abs().max().item())
    (g1,) = torch.autograd.grad((ours * g).sum(), x)
    (g2,) = torch.autograd.grad((spectral * g).sum(), x)
    torch.testing.assert_close(g1, g2, rtol=tol, atol=tol * g2.abs().max().item())
    with pytest.raises(ValueError, match="positive definite"):
        sym_powm(-x.detach(), float(k))
