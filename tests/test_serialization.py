"""Every public module survives ``torch.save(model)`` / ``torch.load`` and ``copy.deepcopy``.

A module that pickles badly (a local closure, a lambda attribute) breaks
checkpointing of whole models, DataParallel replicas and hyper-parameter
searches that deep-copy a template. Each case builds a module, runs it once
(so lazily built state exists), saves the whole module, loads it back and
deep-copies it, and checks the copies compute exactly what the original does.
"""

from __future__ import annotations

import copy
import io

import pytest
import torch

import geonorm.nn as gnn
from geonorm.models import SPDNet

from ._spd import random_spd

F64 = torch.float64


def _spd(n: int = 4, b: int = 6, lead: tuple[int, ...] = ()) -> torch.Tensor:
    return random_spd(n, torch.Generator().manual_seed(0), batch=(b,) + lead, cond=10.0)


def _irreps_input(irreps: str, b: int = 5) -> torch.Tensor:
    from e3nn import o3

    return torch.randn(b, o3.Irreps(irreps).dim, generator=torch.Generator().manual_seed(1), dtype=F64)


# name -> (factory, input factory); the factories use float64 throughout
CASES = {
    "BiMap": (lambda: gnn.BiMap(4, 3, dtype=F64), _spd),
    "ReEig": (lambda: gnn.ReEig(1e-2), _spd),
    "LogEig": (lambda: gnn.LogEig("triu", clamp_min=1e-6), _spd),
    "ExpEig": (lambda: gnn.ExpEig("triu"), lambda: gnn.LogEig()(_spd())),
    "Covariance": (
        lambda: gnn.Covariance(shrinkage="oas"),
        lambda: torch.randn(3, 4, 40, generator=torch.Generator().manual_seed(2), dtype=F64),
    ),
    "SPDNet": (lambda: SPDNet(4, 3, dims=(3,), batchnorm="lie-aim", dtype=F64), _spd),
    "LieBatchNorm": (lambda: gnn.LieBatchNorm(4, "lcm", theta=0.5, dtype=F64), _spd),
    "SPDBatchNorm": (lambda: gnn.SPDBatchNorm(4, dtype=F64), _spd),
    "BuresWassersteinBatchNorm": (lambda: gnn.BuresWassersteinBatchNorm(4, dtype=F64), _spd),
    "RiemannianBatchNorm": (lambda: gnn.RiemannianBatchNorm("lem", 4, dtype=F64), _spd),
    "EquivariantLayerNorm": (
        lambda: gnn.EquivariantLayerNorm("4x0e+2x1o", dtype=F64),
        lambda: _irreps_input("4x0e+2x1o"),
    ),
    "EquivariantRMSNorm": (
        lambda: gnn.EquivariantRMSNorm("4x0e+2x1o", dtype=F64),
        lambda: _irreps_input("4x0e+2x1o"),
    ),
    "GauntTensorProduct": (
        lambda: gnn.GauntTensorProduct("2x0e+2x1o", "2x0e+2x1o", lmax_out=1, dtype=F64),
        lambda: (_irreps_input("2x0e+2x1o"), _irreps_input("2x0e+2x1o")),
    ),
}
NEEDS_ESCNN = {"FieldInstanceNorm", "FieldLayerNorm"}


def _ball_points(shape: tuple[int, ...]) -> torch.Tensor:
    """Points well inside the unit Poincare ball, last dimension the ball's."""
    v = torch.randn(shape, generator=torch.Generator().manual_seed(3), dtype=F64)
    return 0.5 * v / (1.0 + v.norm(dim=-1, keepdim=True))


CASES["PoincareBatchNorm"] = (lambda: gnn.PoincareBatchNorm(3, dtype=F64), lambda: _ball_points((6, 3)))
CASES["PoincareBatchNorm2d"] = (
    lambda: gnn.PoincareBatchNorm2d(4, dtype=F64),
    lambda: _ball_points((2, 3, 3, 4)).permute(0, 3, 1, 2),
)
CASES["PoincareLinear"] = (lambda: gnn.PoincareLinear(3, 4, dtype=F64), lambda: _ball_points((6, 3)))
CASES["PoincareConv2d"] = (
    lambda: gnn.PoincareConv2d(4, 4, 3, stride=2, padding=1, dtype=F64),
    lambda: _ball_points((2, 5, 5, 4)).permute(0, 3, 1, 2),
)
CASES["PoincareReLU"] = (lambda: gnn.PoincareReLU(dim=1, dtype=F64), lambda: _ball_points((2, 3, 3, 4)).permute(0, 3, 1, 2))
CASES["PoincareResidualBlock"] = (
    lambda: gnn.PoincareResidualBlock(4, 8, stride=2, dtype=F64),
    lambda: _ball_points((2, 4, 4, 4)).permute(0, 3, 1, 2),
)
CASES["FrameAveraging"] = (
    lambda: gnn.FrameAveraging(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2, dtype=F64))),
    lambda: torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(4), dtype=F64),
)


def _multivectors(dim: int, channels: int = 3) -> torch.Tensor:
    return torch.randn(2, channels, dim, generator=torch.Generator().manual_seed(5), dtype=F64)


def _cl3():
    from geonorm.clifford import CliffordAlgebra

    return CliffordAlgebra((1, 1, 1))


def _pga():
    from geonorm.clifford import CliffordAlgebra

    return CliffordAlgebra((0, 1, 1, 1))


CASES["MultivectorLinear"] = (lambda: gnn.MultivectorLinear(_cl3(), 3, 2, dtype=F64), lambda: _multivectors(8))
CASES["SteerableGeometricProduct"] = (lambda: gnn.SteerableGeometricProduct(_cl3(), 3, dtype=F64),
                                      lambda: _multivectors(8))  # fmt: skip
CASES["MultivectorSiLU"] = (lambda: gnn.MultivectorSiLU(_cl3(), 3, dtype=F64), lambda: _multivectors(8))
CASES["MultivectorLayerNorm"] = (lambda: gnn.MultivectorLayerNorm(_cl3(), 3, dtype=F64), lambda: _multivectors(8))
CASES["GroupActionLinear"] = (lambda: gnn.GroupActionLinear(_pga(), 3, 2, dtype=F64), lambda: _multivectors(16))
CASES["MultivectorScalarGate"] = (lambda: gnn.MultivectorScalarGate(_pga(), 3, dtype=F64), lambda: _multivectors(16))


def _call(module: torch.nn.Module, inp):
    return module(*inp) if isinstance(inp, tuple) else module(inp)


def test_every_public_module_has_a_case():
    public = {name for name in gnn.__all__ if isinstance(getattr(gnn, name), type)}
    assert public - NEEDS_ESCNN <= set(CASES), sorted(public - NEEDS_ESCNN - set(CASES))


@pytest.mark.parametrize("name", sorted(CASES))
def test_save_load_and_deepcopy(name):
    make, make_input = CASES[name]
    torch.manual_seed(0)
    module = make()
    inp = make_input()
    _call(module, inp)  # one training step: running statistics move
    module.eval()
    expected = _call(module, inp)
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    copied = copy.deepcopy(module)
    for other in (loaded, copied):
        assert type(other) is type(module)
        assert torch.equal(_call(other, inp), expected)
        state, ref = other.state_dict(), module.state_dict()
        assert state.keys() == ref.keys() and all(torch.equal(state[k], ref[k]) for k in ref)


def test_sequential_spdnet_stack_pickles():
    # the report of the issue: torch.save(nn.Sequential(BiMap(4, 3), ReEig()), f)
    model = torch.nn.Sequential(gnn.BiMap(4, 3, dtype=F64), gnn.ReEig(), gnn.LogEig())
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    x = _spd()
    assert torch.equal(loaded(x), model(x))
