"""GCAN: every action term stays an isometry after arbitrary parameter updates; equivariance; errors."""

from __future__ import annotations

import pytest
import torch

from geonorm.clifford import CliffordAlgebra, GroupActionLinear, MultivectorScalarGate
from geonorm.clifford.gcan import normalize_versor, pga_point_coordinates, pga_points

F64 = torch.float64
PGA = CliffordAlgebra((0, 1, 1, 1))


def scramble(layer, steps=3, seed=0):
    """A few Adam steps on a random objective: parameters far from the initialisation."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(layer.parameters(), lr=0.5)
    x = torch.randn(4, layer.in_channels, layer.algebra.dim, generator=gen, dtype=F64)
    for _ in range(steps):
        loss = (layer(x) * torch.randn(4, layer.out_channels, layer.algebra.dim, generator=gen, dtype=F64)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # and a raw, unnormalised jump of the versor parameters
        layer.action.add_(torch.randn(layer.action.shape, generator=gen, dtype=F64))
    return layer


@pytest.mark.parametrize("parametrization", ["exp", "normalize"])
def test_pga_motor_terms_are_rigid_motions_after_updates(parametrization):
    layer = scramble(GroupActionLinear(PGA, 2, 3, parametrization=parametrization, dtype=F64))
    a = layer.versors()  # [3, 2, 16]
    one = torch.zeros(16, dtype=F64)
    one[0] = 1
    assert torch.allclose(PGA.geometric_product(a, PGA.reverse(a)), one.expand_as(a), rtol=0, atol=1e-12)
    x = torch.randn(7, 3, dtype=F64, generator=torch.Generator().manual_seed(1))
    p = pga_points(PGA, x)
    for term in a.reshape(-1, 16):
        y = pga_point_coordinates(PGA, PGA.geometric_product(PGA.geometric_product(term, p), PGA.reverse(term)))
        assert torch.allclose(torch.cdist(y, y), torch.cdist(x, x), rtol=0, atol=1e-12)
        assert (y - x).abs().max() > 1e-3  # a real motion, translations included
    # the layer on points (one channel per term, unit weights) is the weighted sum of the moved points
    with torch.no_grad():
        layer.weight.fill_(1.0)
    out = layer(p.unsqueeze(-2).expand(-1, 2, -1))
    moved = PGA.geometric_product(PGA.geometric_product(a, p[:, None, None]), PGA.reverse(a)).sum(-2)
    assert torch.allclose(out, moved, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sig,parametrization", [((1, 1, 1), "exp"), ((1, 1, 1), "normalize"), ((1, 1, 1, 1, -1), "exp")])
def test_terms_preserve_the_quadratic_form(sig, parametrization):
    alg = CliffordAlgebra(sig)
    layer = scramble(GroupActionLinear(alg, 2, 2, parametrization=parametrization, bias=True, dtype=F64))
    x = torch.randn(3, 2, alg.dim, dtype=F64, generator=torch.Generator().manual_seed(2))
    a = layer.versors()
    for term in a.reshape(-1, alg.dim):
        moved = alg.geometric_product(alg.geometric_product(term, x), alg.reverse(term))
        q0, q1 = alg.grade_quadratic_forms(x), alg.grade_quadratic_forms(moved)
        # rounding of two products and a square: ~ dim eps (|a|_1^2 |x|_1)^2 (boosts make |a|_1 large)
        scale = (float(term.detach().abs().sum()) ** 2 * float(x.abs().sum(-1).max())) ** 2
        assert (q1 - q0).abs().max() <= 64 * alg.dim * torch.finfo(F64).eps * scale


def test_scalar_gate_is_invariant_and_gradcheck():
    gate = MultivectorScalarGate(PGA, 2, dtype=F64)
    x = torch.randn(3, 2, 16, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(gate, (x,))
    # the scalar part is motor-invariant, so the gate commutes with every motor sandwich
    with torch.no_grad():
        gate.a.fill_(1.7)
        gate.b.fill_(-0.3)
        motor = GroupActionLinear(PGA, 1, 1, dtype=F64).versors()[0, 0]
        move = lambda t: PGA.geometric_product(PGA.geometric_product(motor, t), PGA.reverse(motor))  # noqa: E731
        assert torch.allclose(gate(move(x)), move(gate(x)), rtol=0, atol=1e-13)
    layer = GroupActionLinear(PGA, 2, 1, dtype=F64)  # exp of small bivectors: no squarings
    assert torch.autograd.gradcheck(layer, (x[:1].detach().requires_grad_(),), fast_mode=True)


def test_errors():
    with pytest.raises(ValueError, match="parametrization: expected one of exp, normalize, got 'cayley'"):
        GroupActionLinear(PGA, 2, 2, parametrization="cayley")
    with pytest.raises(ValueError, match="parametrization: 'normalize' needs"):
        GroupActionLinear(CliffordAlgebra((1, 1, 1, 1, -1)), 2, 2, parametrization="normalize")
    with pytest.raises(ValueError, match=r"x: expected shape \[..., 2, 16\]"):
        GroupActionLinear(PGA, 2, 2)(torch.zeros(3, 3, 16))
    with pytest.raises(ValueError, match="a: expected versors with a positive squared norm"):
        normalize_versor(PGA, torch.zeros(16))
    with pytest.raises(ValueError, match=r"algebra: expected Cl\(3,0,1\)"):
        pga_points(CliffordAlgebra((1, 1, 1)), torch.zeros(3))
