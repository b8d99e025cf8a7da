"""MobiusAction: ball isometries form a group action, and the kit's checks use it."""

from __future__ import annotations

import math

import pytest
import torch

from geonorm.hyperbolic import distance, frechet_mean, gyromidpoint, project
from geonorm.testing import (
    EuclideanGroup,
    GroupElement,
    MobiusAction,
    MobiusGroup,
    assert_equivariant,
    assert_invariant,
    join_groups,
)
from ..hyperbolic import ball_points

F64 = torch.float64


@pytest.mark.parametrize("proper", [False, True])
def test_samples_are_ball_isometries(proper):
    c = 2.0
    action = MobiusAction(4, c=c, proper=proper)
    elements = action.sample(6, torch.Generator().manual_seed(0))
    dets = [g.det for g in elements]
    assert dets == ([1.0] * 6 if proper else [-1.0, 1.0] * 3)
    x, y = ball_points((7, 4), c, seed=1), ball_points((7, 4), c, seed=2)
    for g in elements:
        o, a = g.rotation, g.extra["mobius"]
        assert torch.allclose(o @ o.T, torch.eye(4, dtype=F64), atol=1e-14)
        assert 0.05 < math.sqrt(c) * float(a.norm()) < 1.0
        gx, gy = action.act(g, x), action.act(g, y)
        assert torch.allclose(distance(gx, gy, c=c), distance(x, y, c=c), rtol=1e-12, atol=0)
        # the origin goes to a: the translation part is really there
        assert torch.allclose(action.act(g, torch.zeros(4, dtype=F64)), a, atol=1e-15)


def test_compose_is_the_group_law():
    c = 0.7
    action = MobiusAction(3, c=c)
    g, h = action.sample(2, torch.Generator().manual_seed(3))
    x = ball_points((9, 3), c, seed=4)
    gh = action.compose(g, h)
    assert torch.allclose(action.act(g, action.act(h, x)), action.act(gh, x), atol=1e-13)
    assert gh.det == g.det * h.det
    # translations alone do not compose to a translation: the gyration is visible
    t = [GroupElement(rotation=torch.eye(3, dtype=F64), extra=e.extra) for e in (g, h)]
    rot = action.compose(*t).rotation
    assert float((rot - torch.eye(3, dtype=F64)).abs().max()) > 1e-3


def test_assert_equivariant_passes_ball_means_and_catches_the_euclidean_mean():
    c = 1.0
    action = MobiusAction(3, c=c)
    x = ball_points((10, 3), c, seed=5)
    assert_equivariant(lambda z: gyromidpoint(z, c=c), action, x)
    assert_equivariant(lambda z: frechet_mean(z, c=c), action, x)

    def euclidean_centre(z):
        return project(z.mean(0), c=c)

    with pytest.raises(AssertionError, match="Equivariance check FAILED"):
        assert_equivariant(euclidean_centre, action, x)
    # the Euclidean mean *is* O(d)-equivariant: only the translations break it
    assert_equivariant(euclidean_centre, MobiusAction(3, c=c, translation_scale=1e-12), x,
                       rtol=1e-9, atol=0.0)


def test_assert_invariant_on_distances():
    c = 3.0
    x = ball_points((6, 2), c, seed=6)
    assert_invariant(lambda z: distance(z[:-1], z[1:], c=c), MobiusAction(2, c=c), x)
    with pytest.raises(AssertionError):
        assert_invariant(lambda z: (z[:-1] - z[1:]).norm(dim=-1), MobiusAction(2, c=c), x)


def test_group_joins_and_errors():
    group = MobiusGroup(3, c=1.0, proper=True)
    assert join_groups(group, EuclideanGroup(3)) == MobiusGroup(3, c=1.0)
    with pytest.raises(ValueError, match="groups: cannot share one element"):
        join_groups(group, EuclideanGroup(3, translations=True))
    action = MobiusAction(3)
    with pytest.raises(ValueError, match="needs a group element with a 'mobius' component"):
        action.act(GroupElement(rotation=torch.eye(3, dtype=F64)), torch.zeros(2, 3))
    g = action.sample(1)[0]
    with pytest.raises(ValueError, match=r"^x: expected shape \[..., 3\]"):
        action.act(g, torch.zeros(2, 4))
    with pytest.raises(ValueError, match="^c: expected a finite positive"):
        MobiusAction(3, c=-1.0)
    with pytest.raises(ValueError, match="^dim: expected a positive int"):
        MobiusAction(0)
