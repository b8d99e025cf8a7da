"""The one set of argument checks (geonorm._checks): wording, bools, tolerances at the boundary."""

import pytest
import torch

from geonorm._checks import (
    check_dtype_matches,
    check_int,
    check_positive_spectrum,
    check_real,
    check_symmetric,
)
from geonorm._numerics import semidefinite_rtol, symmetry_rtol
from geonorm.linalg import sym_logm
from geonorm.nn import BiMap, LogEig, ReEig
from geonorm.spd import AffineInvariant, delay_embed

DTYPES = [torch.float32, torch.float64]


def test_check_int_one_wording_and_no_bools():
    assert check_int(3, "n") == 3 and check_int(None, "n", allow_none=True) is None
    for bad in (0, True, 2.0, "3"):
        with pytest.raises(ValueError, match=r"n: expected a positive int, got"):
            check_int(bad, "n")
    with pytest.raises(ValueError, match=r"lmax: expected a non-negative int, got -1"):
        check_int(-1, "lmax", minimum=0)
    with pytest.raises(ValueError, match=r"in_n: expected a positive int, got 0"):
        BiMap(0, 2)
    with pytest.raises(ValueError, match=r"order: expected a positive int, got True"):
        delay_embed(torch.zeros(1, 1, 5), order=True, lag=1)
    with pytest.raises(ValueError, match=r"karcher_steps: expected a positive int, got 0"):
        AffineInvariant(karcher_steps=0)


def test_check_real_rejects_bools_and_bad_ranges():
    assert check_real(1, "eps", low=0.0, low_open=True) == 1.0
    for bad in (True, False, "0.1", torch.tensor(0.1)):
        with pytest.raises(TypeError, match=r"momentum: expected a real number, got"):
            check_real(bad, "momentum", low=0.0, high=1.0)
    with pytest.raises(ValueError, match=r"eps: expected a finite real number in \(0, inf\), got 0.0"):
        check_real(0.0, "eps", low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"tol: expected a finite real number in \[0, inf\), got nan"):
        check_real(float("nan"), "tol", low=0.0)
    with pytest.raises(ValueError, match=r"momentum: expected a finite real number in \(0, 1\], got 1.5"):
        check_real(1.5, "momentum", low=0.0, high=1.0, low_open=True)
    # callers in the SPD room
    with pytest.raises(TypeError, match=r"eps: expected a real number, got bool"):
        ReEig(eps=True)
    with pytest.raises(TypeError, match=r"tol: expected a real number, got bool"):
        AffineInvariant(tol=True)


def test_check_dtype_matches_follows_torch_and_autocast():
    x = torch.ones(2, 2, dtype=torch.float64)
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float32 \(the dtype of w\), got torch.float64"):
        check_dtype_matches(x, "x", torch.float32, "w")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert check_dtype_matches(x, "x", torch.float32, "w") is x


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_symmetry_tolerance_just_under_and_just_over(dtype):
    # max|X - X^T| <= rtol * max(max|X|, 1): at scale 4 the allowed asymmetry is 4 rtol.
    # Just under (0.7x) passes, just over (1.5x) fails: a check 10x looser or
    # tighter than symmetry_rtol fails one of the two.
    rtol = symmetry_rtol(dtype)
    base = torch.tensor([[4.0, 0.5, 0.0], [0.5, 2.0, 0.1], [0.0, 0.1, 1.0]], dtype=torch.float64)
    for factor, passes in ((0.7, True), (1.5, False)):
        x = base.clone()
        x[0, 1] += factor * rtol * 4.0
        x = x.to(dtype)
        asym = float((x - x.T).abs().max())
        assert abs(asym - factor * rtol * 4.0) < 0.05 * rtol * 4.0  # the dtype kept the offset
        for check in (lambda m: check_symmetric(m, "x"), sym_logm, LogEig(), ReEig()):
            if passes:
                check(x)
            else:
                with pytest.raises(ValueError, match="symmetric"):
                    check(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_semidefinite_tolerance_just_under_and_just_over(dtype):
    rtol = semidefinite_rtol(dtype)
    for factor, passes in ((0.5, True), (2.0, False)):
        s = torch.tensor([[-factor * rtol * 3.0, 1.0, 3.0]], dtype=dtype)
        if passes:
            check_positive_spectrum(s, "x", semidefinite=True)
        else:
            with pytest.raises(ValueError, match=r"x: expected symmetric positive semi-definite"):
                check_positive_spectrum(s, "x", semidefinite=True)
    with pytest.raises(ValueError, match=r"got 1 of 2 with a non-positive eigenvalue \(smallest 0.000e\+00\)"):
        check_positive_spectrum(torch.tensor([[0.0, 1.0], [1.0, 2.0]], dtype=dtype), "x")
    with pytest.raises(ValueError, match="x: expected finite values"):
        check_positive_spectrum(torch.tensor([[float("nan"), 1.0]], dtype=dtype), "x")
