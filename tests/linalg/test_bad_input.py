"""Bad input gets a clear ValueError/TypeError, never a silent NaN."""

import pytest
import torch

from geonorm.linalg import (
    cholesky_exp,
    cholesky_log,
    solve_lyapunov,
    sym_expm,
    sym_invsqrtm,
    sym_logm,
    sym_powm,
    sym_sqrtm,
)

FUNCS = [sym_logm, sym_sqrtm, sym_invsqrtm, sym_expm, lambda x: sym_powm(x, 0.5), cholesky_log]


@pytest.mark.parametrize("fn", FUNCS)
def test_non_square(fn):
    with pytest.raises(ValueError, match=r"square matrices.*got shape \[2, 3\]"):
        fn(torch.ones(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="square"):
        fn(torch.ones(3, dtype=torch.float64))


@pytest.mark.parametrize("fn", FUNCS)
def test_non_symmetric(fn):
    x = torch.eye(3, dtype=torch.float64)
    x[0, 1] = 0.5
    with pytest.raises(ValueError, match="symmetric"):
        fn(x)


@pytest.mark.parametrize("fn", FUNCS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite(fn, bad):
    x = torch.eye(3, dtype=torch.float64)
    x[1, 1] = bad
    with pytest.raises(ValueError, match="finite"):
        fn(x)


@pytest.mark.parametrize(
    "fn",
    [sym_logm, sym_sqrtm, sym_invsqrtm, cholesky_log]
    # every branch of sym_powm: eigendecomposition, identity, repeated squaring
    + [lambda x, p=p: sym_powm(x, p) for p in (-2.0, 1, 2, 0.5)],
)
def test_not_positive_definite(fn):
    x = torch.diag(torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="positive definite"):
        fn(x)


def test_wrong_types():
    with pytest.raises(TypeError, match="torch.Tensor"):
        sym_logm([[1.0]])
    with pytest.raises(TypeError, match="floating-point"):
        sym_logm(torch.eye(2, dtype=torch.int64))
    with pytest.raises(TypeError, match="p: expected a Python int or float"):
        sym_powm(torch.eye(2), torch.tensor(0.5))


def test_lyapunov_checks():
    g = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="v: expected trailing shape"):
        solve_lyapunov(g, torch.ones(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="g: expected symmetric positive definite"):
        solve_lyapunov(-g, torch.ones(3, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match="x: expected finite"):
        cholesky_exp(torch.full((2, 2), float("nan")))
