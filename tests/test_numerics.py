"""The numerical constants and helpers in geonorm._numerics."""

import pytest
import torch

from geonorm._numerics import (
    compute_dtype,
    default_tolerances,
    eps_for,
    loewner_rtol,
    safe_sqrt,
    symmetry_rtol,
)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES)
def test_eps_is_representable_and_above_roundoff(dtype):
    eps = eps_for(dtype)
    assert eps > torch.finfo(dtype).eps
    assert torch.tensor(1.0, dtype=dtype) / torch.tensor(eps, dtype=dtype) < torch.finfo(dtype).max
    assert 0 < loewner_rtol(dtype) < 1 and 0 < symmetry_rtol(dtype) < 1
    assert set(default_tolerances(dtype)) == {"rtol", "atol"}


def test_compute_dtype_and_errors():
    assert compute_dtype(torch.bfloat16) is torch.float32
    assert compute_dtype(torch.float32) is torch.float32
    with pytest.raises(TypeError, match="dtype: expected one of"):
        eps_for(torch.int32)


def test_safe_sqrt_gradient_is_finite_at_zero():
    x = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    y = safe_sqrt(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all()
    assert g[0] == 0 and torch.isclose(g[1], torch.tensor(0.25, dtype=torch.float64))
