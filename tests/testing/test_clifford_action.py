"""CliffordAction: versors act as a group by the twisted sandwich, and the kit's checks use it."""

from __future__ import annotations

import pytest
import torch

from geonorm.clifford import CliffordAlgebra
from geonorm.testing import CliffordAction, CliffordGroup, assert_equivariant, equivariance_error, join_groups

F64 = torch.float64


@pytest.mark.parametrize("sig", [(1, 1, 1), (0, 1, 1, 1), (1, -1, -1, -1)])
def test_samples_form_a_group_action(sig):
    alg = CliffordAlgebra(sig)
    action = CliffordAction(alg)
    g, h = action.sample(2, torch.Generator().manual_seed(0))
    # elements alternate parity: a reflection, then a rotation
    assert alg.parity(torch.stack([g.extra["versor"], h.extra["versor"]])).tolist() == [True, False]
    x = torch.randn(5, alg.dim, dtype=F64, generator=torch.Generator().manual_seed(1))
    gh = action.compose(g, h)
    assert torch.allclose(action.act(gh, x), action.act(g, action.act(h, x)), rtol=0, atol=1e-12)
    # linear and multiplicative: rho(w)(x y) = rho(w)(x) rho(w)(y)
    y = torch.randn(5, alg.dim, dtype=F64, generator=torch.Generator().manual_seed(2))
    lhs = action.act(g, alg.geometric_product(x, y))
    rhs = alg.geometric_product(action.act(g, x), action.act(g, y))
    assert torch.allclose(lhs, rhs, rtol=0, atol=1e-11)


def test_reflections_and_rotations_are_orthogonal_maps_of_vectors():
    alg = CliffordAlgebra((1, 1, 1))
    action = CliffordAction(alg, max_factors=3)
    vec = alg.grade_slices()[1]
    eye = torch.eye(3, dtype=F64)
    for i, g in enumerate(action.sample(6, torch.Generator().manual_seed(3))):
        m = torch.stack([action.act(g, alg.embed(eye[j], 1))[vec] for j in range(3)], 1)  # [3, 3] columns
        assert torch.allclose(m.T @ m, eye, atol=1e-13)
        assert round(float(torch.linalg.det(m))) == (-1 if i % 2 == 0 else 1)


def test_the_check_catches_a_broken_layer():
    alg = CliffordAlgebra((1, 1, 1))
    action = CliffordAction(alg)
    x = torch.randn(4, 3, alg.dim, dtype=F64, generator=torch.Generator().manual_seed(4))
    # correct: grade-wise scaling by invariants, the geometric product
    assert_equivariant(lambda t: t * alg.quadratic_form(t).unsqueeze(-1), action, x)
    assert_equivariant(lambda t: alg.geometric_product(t, t), action, x)
    # broken: a bias on a vector blade (only the scalar part may carry one)
    with pytest.raises(AssertionError, match="grade 1: .* FAIL"):
        assert_equivariant(lambda t: t + alg.basis_vector(0, dtype=t.dtype), action, x)
    # broken: a gate on one coordinate of the vector part instead of an invariant
    assert not equivariance_error(lambda t: t * torch.sigmoid(t[..., 1:2]), action, x).passed
    # broken only for reflections: the pseudoscalar part of a product is a pseudoscalar
    proper = equivariance_error(lambda t: t * t[..., 7:8], CliffordAction(alg, proper=True), x)
    improper = equivariance_error(lambda t: t * t[..., 7:8], action, x)
    assert proper.passed and not improper.passed


def test_join_and_errors():
    alg = CliffordAlgebra((1, 1, 1))
    assert join_groups(CliffordGroup(alg, proper=True), CliffordGroup(alg)) == CliffordGroup(alg)
    with pytest.raises(TypeError, match="algebra: expected a CliffordAlgebra"):
        CliffordGroup((1, 1, 1))
    with pytest.raises(ValueError, match=r"x: expected a multivector tensor of shape \[..., 8\]"):
        CliffordAction(alg).act(CliffordAction(alg).sample(1)[0], torch.zeros(3, 4))
