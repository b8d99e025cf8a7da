"""The Daleckii–Krein forward differential and its inverse, against independent references."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.autograd import gradcheck

from geonorm.linalg import exp_function, log_function, power_function, sym
from geonorm.linalg.spectral import first_divided_differences
from geonorm.linalg.differential import spectral_differential, spectral_differential_inverse

from .._spd import random_spd, spd_with_spectrum

F64 = torch.float64
EPS = torch.finfo(F64).eps
N = 4

# scipy matrix functions, independent of geonorm's eigendecomposition path
SCIPY = {
    "log": (log_function(), scipy.linalg.logm),
    "exp": (exp_function(), scipy.linalg.expm),
    "pow(0.5)": (power_function(0.5), scipy.linalg.sqrtm),
    "pow(-0.7)": (power_function(-0.7), lambda a: scipy.linalg.fractional_matrix_power(a, -0.7)),
}


def _sym_direction(gen, batch=()):
    v = torch.randn(*batch, N, N, generator=gen, dtype=F64)
    return sym(v)


@pytest.mark.parametrize("name", sorted(SCIPY))
def test_differential_matches_central_difference_of_scipy(name):
    fn, f_scipy = SCIPY[name]
    gen = torch.Generator().manual_seed(1)
    p = random_spd(N, gen, cond=10.0)
    v = _sym_direction(gen)
    h = 1e-4
    pn, vn = p.numpy(), v.numpy()
    fd = (np.real(f_scipy(pn + h * vn)) - np.real(f_scipy(pn - h * vn))) / (2 * h)
    got = spectral_differential(p, v, fn).numpy()
    # central difference: truncation h^2 |D^3 f| |v|^3 / 6 (|D^3 f| <= 2 e^10 ... but here
    # the spectrum is in [1, 10], so |D^3 f| <= 6 for log and the powers, e^10 for exp),
    # plus rounding eps |f(P)| / h; scipy's own forward error is about cond * eps.
    third = np.exp(10.0 + h * np.abs(vn).sum()) if name == "exp" else 6.0
    scale = np.abs(np.real(f_scipy(pn))).max()
    tol = h**2 * third * np.abs(vn).sum() ** 3 / 6 + 10 * EPS * scale / h
    assert np.abs(got - fd).max() <= tol


def test_differential_matches_jvp_of_matrix_exp():
    # torch.linalg.matrix_exp is a Padé implementation, independent of eigh
    gen = torch.Generator().manual_seed(2)
    a = sym(torch.randn(3, N, N, generator=gen, dtype=F64))
    v = _sym_direction(gen, (3,))
    _, ref = torch.func.jvp(torch.linalg.matrix_exp, (a,), (v,))
    got = spectral_differential(a, v, exp_function())
    # forward error of both: about n * eps * ||exp(a)|| * ||v|| (a is well conditioned)
    tol = 50 * N * EPS * torch.linalg.matrix_exp(a).abs().amax() * v.abs().amax()
    assert (got - ref).abs().max() <= tol


def test_differential_of_log_matches_jvp_of_eigh_log_on_distinct_spectrum():
    gen = torch.Generator().manual_seed(3)
    ev = torch.tensor([0.5, 1.0, 2.0, 4.0], dtype=F64)  # well separated: eigh's jvp is accurate
    p = spd_with_spectrum(ev, gen, (2,))
    v = _sym_direction(gen, (2,))

    def logm_eigh(x):
        s, u = torch.linalg.eigh(x)
        return (u * torch.log(s).unsqueeze(-2)) @ u.transpose(-1, -2)

    _, ref = torch.func.jvp(logm_eigh, (p,), (v,))
    got = spectral_differential(p, v, log_function())
    cond = float(ev.max() / ev.min())
    # eigenvector error eps / gap (gap 0.5) times the Loewner entries (<= 1/min eigenvalue)
    tol = 50 * cond * EPS / 0.5 / float(ev.min()) * v.abs().amax()
    assert (got - ref).abs().max() <= tol


def test_differentials_match_pyriemann_ddlogm_ddexpm():
    from pyriemann.geometry.base import ddexpm, ddlogm

    gen = torch.Generator().manual_seed(4)
    p = random_spd(N, gen, cond=100.0)
    v = _sym_direction(gen)
    cond = 100.0
    got_log = spectral_differential(p, v, log_function()).numpy()
    got_exp = spectral_differential(p, v, exp_function()).numpy()
    ref_log = ddlogm(v.numpy(), p.numpy())
    ref_exp = ddexpm(v.numpy(), p.numpy())
    scale = np.abs(v.numpy()).max()
    assert np.abs(got_log - ref_log).max() <= 50 * cond * EPS * scale
    exp_scale = scale * np.exp(float(torch.linalg.eigvalsh(p).max()))
    assert np.abs(got_exp - ref_exp).max() <= 50 * cond * EPS * exp_scale


@pytest.mark.parametrize("name", sorted(SCIPY))
@pytest.mark.parametrize("spectrum", ["distinct", "repeated", "identity"])
def test_inverse_differential_inverts(name, spectrum):
    fn = SCIPY[name][0]
    gen = torch.Generator().manual_seed(5)
    ev = {
        "distinct": torch.tensor([0.3, 1.0, 2.5, 7.0]),
        "repeated": torch.tensor([2.0, 2.0, 2.0, 5.0]),
        "identity": torch.ones(N),
    }[spectrum].to(F64)
    p = spd_with_spectrum(ev, gen, (3,))
    v = _sym_direction(gen, (3,))
    w = spectral_differential(p, v, fn)
    back = spectral_differential_inverse(p, w, fn)
    # the kernel and its reciprocal are exact to a few eps; the rotations cost n eps each;
    # the ratio of the largest to the smallest divided difference amplifies them
    lw = first_divided_differences(fn, ev).abs()
    spread = float(lw.max() / lw.min())
    assert (back - v).abs().max() <= 50 * N * spread * EPS * v.abs().amax()


def test_differential_at_identity_is_derivative_times_direction():
    v = _sym_direction(torch.Generator().manual_seed(6))
    eye = torch.eye(N, dtype=F64)
    got = spectral_differential(2.0 * eye, v, power_function(0.5))
    torch.testing.assert_close(got, 0.5 * 2.0**-0.5 * v, rtol=4 * EPS, atol=0)


def test_broadcasts_one_base_point_over_a_batch():
    gen = torch.Generator().manual_seed(7)
    p = random_spd(N, gen, cond=5.0)
    v = _sym_direction(gen, (2, 3))
    got = spectral_differential(p, v, log_function())
    assert got.shape == (2, 3, N, N)
    # A batched and a single matmul may round differently (different BLAS
    # kernels), so equal up to a few rounding errors of each n-term product.
    single = spectral_differential(p, v[1, 2], log_function())
    torch.testing.assert_close(got[1, 2], single, rtol=0, atol=4 * N * EPS * float(single.abs().max()))


def _at(root, e):
    """SPD point root (I + sym e) root, a chart around root^2 for gradcheck."""
    return sym(root @ (torch.eye(N, dtype=F64) + sym(e)) @ root)


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("spectrum", ["distinct", "identity"])
def test_gradcheck_in_point_and_direction(inverse, spectrum):
    gen = torch.Generator().manual_seed(8)
    ev = torch.tensor([0.5, 1.0, 1.5, 3.0]) if spectrum == "distinct" else torch.ones(N)
    root = spd_with_spectrum(ev.to(F64).sqrt(), gen)  # symmetric square root of the base point
    op = spectral_differential_inverse if inverse else spectral_differential
    e = torch.zeros(N, N, dtype=F64, requires_grad=True)
    v = _sym_direction(gen).requires_grad_(True)
    for fn in (log_function(), power_function(-0.7), exp_function()):
        assert gradcheck(lambda e_, v_: op(_at(root, e_), sym(v_), fn, check=False), (e, v))


def test_bad_input_names_the_argument():
    p = torch.eye(3, dtype=F64)
    with pytest.raises(ValueError, match="^v: expected matrices of size 3"):
        spectral_differential(p, torch.zeros(2, 2, dtype=F64), log_function())
    with pytest.raises(ValueError, match="^p: expected symmetric positive definite"):
        spectral_differential(-p, p, log_function())
    with pytest.raises(ValueError, match="^w: expected symmetric"):
        spectral_differential_inverse(p, torch.triu(torch.ones(3, 3, dtype=F64)), log_function())
    with pytest.raises(TypeError, match="^p: expected a torch.Tensor"):
        spectral_differential(np.eye(3), p, log_function())
