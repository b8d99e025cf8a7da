"""float16, bfloat16 and CPU autocast: every SPD geometry and layer computes in float32.

The numerics page promises that half-precision input is computed in float32
and returned in the input's dtype. Each case compares the half path with the
float64 path on the same (already rounded) input, so the only differences
are the roundings of results to the half format.

Tolerance: a step hands its result to the next one in the input's dtype,
rounded to relative eps/2; the layers and geometry steps below hand over at
most four such results (encode, mean, normalize, decode), each amplified by
at most the condition number cond(x) = COND of what follows (the matrix
functions involved have relative condition numbers <= cond(x) on these
inputs). So the relative error is at most 4 * (eps/2) * COND = 2 COND eps of
the half format; the float32 work adds n COND eps_32 ~ 1e-5, negligible.
"""

import pytest
import torch

from geonorm.models import SPDNet
from geonorm.nn import (
    BiMap,
    BuresWassersteinBatchNorm,
    Covariance,
    ExpEig,
    LieBatchNorm,
    LogEig,
    ReEig,
    SPDBatchNorm,
)
from geonorm.spd import (
    AffineInvariant,
    BuresWasserstein,
    GeneralizedBuresWasserstein,
    LogCholesky,
    LogEuclidean,
)

from .._spd import random_spd, rel_error

F64 = torch.float64
HALF = [torch.float16, torch.bfloat16]
N, COND = 4, 10.0


def _x() -> torch.Tensor:
    return random_spd(N, torch.Generator().manual_seed(0), batch=(8,), cond=COND)


def _tol(dtype: torch.dtype) -> float:
    return 2 * COND * torch.finfo(dtype).eps


MODULES = {
    "LieBN-aim": lambda: LieBatchNorm(N, "aim"),
    "LieBN-aim(theta=0.5)": lambda: LieBatchNorm(N, "aim", theta=0.5),
    "LieBN-lem": lambda: LieBatchNorm(N, "lem"),
    "LieBN-lcm": lambda: LieBatchNorm(N, "lcm"),
    "SPDBN": lambda: SPDBatchNorm(N),
    "GBWBN": lambda: BuresWassersteinBatchNorm(N),
    "BiMap": lambda: BiMap(N, 3),
    "ReEig": lambda: ReEig(0.5),
    "LogEig": lambda: LogEig(),
    "ExpEig": lambda: ExpEig(),
    "SPDNet(lie-aim)": lambda: SPDNet(N, 3, dims=(3,), batchnorm="lie-aim"),
}

GEOMETRIES = {
    "aim": AffineInvariant,
    "aim-sqrt": lambda: AffineInvariant(translation="sqrt"),
    "lem": LogEuclidean,
    "lcm": LogCholesky,
    "bw": BuresWasserstein,
    "gbw": lambda: GeneralizedBuresWasserstein(N),
}


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_in_half_precision(name, dtype):
    x = _x().to(dtype)
    torch.manual_seed(0)
    module = MODULES[name]().to(dtype)
    torch.manual_seed(0)
    reference = MODULES[name]().double()
    inp = 0.3 * x if name == "ExpEig" else x  # exp of a unit-scale input stays in range
    y = module(inp)
    assert y.dtype == dtype
    assert rel_error(y.detach().double(), reference(inp.double()).detach()) <= _tol(dtype)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_covariance_in_half_precision(dtype):
    signals = torch.randn(3, N, 64, generator=torch.Generator().manual_seed(1), dtype=F64).to(dtype)
    out = Covariance(shrinkage="oas")(signals)
    assert out.dtype == dtype
    # a sum of T products rounded once to the output format (the sums run in the
    # half format's own accumulation, at most T eps relative; T = 64)
    assert rel_error(out.double(), Covariance(shrinkage="oas")(signals.double())) <= 64 * torch.finfo(dtype).eps


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_geometries_in_half_precision(name, dtype):
    x = _x().to(dtype)
    g, g64 = GEOMETRIES[name](), GEOMETRIES[name]()
    if isinstance(g, torch.nn.Module):
        g, g64 = g.to(dtype), g64.double()
    mean = g.frechet_mean(x)
    dist = g.distance(x[0], x[1:])
    assert mean.dtype == dtype and dist.dtype == dtype
    assert rel_error(mean.double(), g64.frechet_mean(x.double())) <= _tol(dtype)
    assert rel_error(dist.double(), g64.distance(x[0].double(), x[1:].double())) <= _tol(dtype)


@pytest.mark.parametrize("dtype", HALF, ids=str)
@pytest.mark.parametrize("name", ["LieBN-aim", "LieBN-lem", "SPDBN", "LogEig", "ReEig"])
def test_cpu_autocast_keeps_spectral_work_in_float32(name, dtype):
    # float32 input inside autocast: the result is float32 and as accurate as the
    # float32 path (n cond eps_32 with the constant of tests/_spd.py), not as the
    # half format
    x = _x().float()
    with torch.autocast("cpu", dtype=dtype):
        y = MODULES[name]()(x)
    assert y.dtype == torch.float32
    reference = MODULES[name]().double()(x.double())
    assert rel_error(y.detach().double(), reference.detach()) <= 16 * N * COND * torch.finfo(torch.float32).eps
