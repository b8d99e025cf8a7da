"""Matrix functions agree with scipy.linalg to 1e-10 in float64."""

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

from .._spd import random_spd, spd_with_spectrum

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
    x = spd_with_spectrum(SPECTRA[spectrum](n), gen, batch=(3,))
    for xi, logm, sq, isq in zip(x, sym_logm(x), sym_sqrtm(x), sym_invsqrtm(x)):
        xn = xi.numpy()
        assert _rel(logm, sla.logm(xn)) < 1e-10
        assert _rel(sq, sla.sqrtm(xn)) < 1e-10
        assert _rel(isq, sla.fractional_matrix_power(xn, -0.5)) < 1e-10
    for p in (-2.5, -1.0, 0.3, 1.7):
        for xi, xp in zip(x, sym_powm(x, p)):
            assert _rel(xp, sla.fractional_matrix_power(xi.numpy(), p)) < 1e-10


@pytest.mark.parametrize("n", [1, 4, 9])
def test_expm_against_scipy(n):
    gen = torch.Generator().manual_seed(10 + n)
    a = torch.randn(4, n, n, generator=gen, dtype=torch.float64)
    s = a + a.transpose(-1, -2)
    for si, e in zip(s, sym_expm(s)):
        assert _rel(e, sla.expm(si.numpy())) < 1e-10


def test_exp_log_roundtrip_and_shared_eigh():
    gen = torch.Generator().manual_seed(3)
    x = random_spd(6, gen, batch=(2, 3), cond=1e4)
    assert torch.allclose(sym_expm(sym_logm(x)), x, rtol=1e-10, atol=1e-10)
    sq, isq = sym_sqrtm_invsqrtm(x)
    eye = torch.eye(6, dtype=torch.float64)
    assert torch.allclose(sq @ isq, eye.expand_as(x), atol=1e-10)
    assert torch.allclose(sq @ sq, x, rtol=1e-10, atol=1e-10)


def test_general_function_matches_named():
    gen = torch.Generator().manual_seed(4)
    x = random_spd(5, gen, batch=(3,), cond=50.0)
    general = sym_func(x, torch.log, torch.reciprocal, positive=True)
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
