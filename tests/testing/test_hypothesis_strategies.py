"""Hypothesis strategies generate what they promise (derandomized, few examples)."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import o3
from hypothesis import given
from hypothesis import strategies as st

from geonorm.linalg import sym_logm
from geonorm.testing import CongruenceAction, EuclideanGroup, IrrepsAction, assert_equivariant
from geonorm.testing.strategies import (
    deterministic_settings,
    group_elements,
    irreps_features,
    irreps_strings,
    orthogonal_matrices,
    point_clouds,
    rotations,
    spd_matrices,
)

F64 = torch.float64


def _cond(x: torch.Tensor) -> torch.Tensor:
    ev = torch.linalg.eigvalsh(x)
    return ev[..., -1] / ev[..., 0]


@deterministic_settings(max_examples=8)
@given(spd_matrices(st.integers(2, 6), batch_shape=(2,), min_condition=1e8, max_condition=1e12))
def test_spd_ill_conditioned(x):
    assert x.dtype == F64 and x.shape[0] == 2 and x.shape[-1] == x.shape[-2]
    assert torch.equal(x, x.mT)
    assert bool((torch.linalg.cholesky_ex(x).info == 0).all())
    kappa = _cond(x)
    assert bool((kappa > 1e8 * 0.99).all()) and bool((kappa < 1e12 * 1.01).all())


@deterministic_settings(max_examples=8)
@given(spd_matrices(st.integers(2, 5), max_condition=1e4, repeated_eigenvalues=True, scale=2.0))
def test_spd_repeated_eigenvalues(x):
    ev = torch.linalg.eigvalsh(x)
    gaps = ev[1:] - ev[:-1]
    assert bool((gaps <= 1e-10 * ev[-1]).any())  # some eigenvalue has multiplicity >= 2
    assert float(ev[0]) > 0
    # scale is the geometric midpoint √(λmin λmax) of the spectrum
    assert abs(math.sqrt(float(ev[0] * ev[-1])) - 2.0) < 1e-9 * float(ev[-1])


def test_spd_argument_errors():
    with pytest.raises(ValueError, match="max_condition: expected 1 <= min_condition"):
        spd_matrices(3, max_condition=1e13)
    with pytest.raises(ValueError, match="scale: expected a positive float"):
        spd_matrices(3, scale=0.0)
    with pytest.raises(ValueError, match="batch_shape: expected a tuple"):
        spd_matrices(3, batch_shape=(-1,))

    @deterministic_settings(max_examples=1)
    @given(spd_matrices(1, repeated_eigenvalues=True))
    def draw(x):
        pass

    with pytest.raises(ValueError, match="repeated_eigenvalues: needs n >= 3"):
        draw()


@deterministic_settings(max_examples=6)
@given(spd_matrices(4, batch_shape=(2,), max_condition=1e4))
def test_property_logm_congruence_equivariant(x):
    assert_equivariant(sym_logm, CongruenceAction(4), x, n_samples=2)


@deterministic_settings(max_examples=10)
@given(rotations(group="o3"), rotations(), orthogonal_matrices(st.integers(1, 5), proper=False))
def test_rotations_and_orthogonal(r, proper, q):
    for m in (r, proper, q):
        n = m.shape[-1]
        torch.testing.assert_close(m @ m.T, torch.eye(n, dtype=F64), rtol=0, atol=1e-13)
    assert float(torch.linalg.det(proper)) > 0 and float(torch.linalg.det(q)) < 0


def test_o3_rotations_draw_both_determinants():
    dets = set()

    @deterministic_settings(max_examples=10)
    @given(rotations(group="o3"))
    def collect(r):
        dets.add(round(float(torch.linalg.det(r))))

    collect()
    assert dets == {-1, 1}


@deterministic_settings(max_examples=10)
@given(irreps_strings(max_l=2, max_mul=2, max_terms=3, parity="odd"))
def test_irreps_strings(s):
    irreps = o3.Irreps(s)
    assert irreps.lmax <= 2 and all(ir.p == -1 for _, ir in irreps)
    assert 1 <= len(irreps) <= 3 and all(1 <= mul <= 2 for mul, _ in irreps)


@deterministic_settings(max_examples=5)
@given(st.data())
def test_irreps_features_from_drawn_irreps(data):
    s = data.draw(irreps_strings())
    x = data.draw(irreps_features(s, batch_shape=(2, 3), dtype=torch.float32))
    assert x.shape == (2, 3, o3.Irreps(s).dim) and x.dtype == torch.float32
    g = data.draw(group_elements(IrrepsAction(s)))
    assert_equivariant(lambda v: 2.0 * v, IrrepsAction(s), x, n_samples=1)
    assert g.rotation.shape == (3, 3)


@deterministic_settings(max_examples=3)
@given(
    point_clouds(st.integers(2, 5), batch_shape=(2,)),
    group_elements(EuclideanGroup(3, translations=True)),
)
def test_point_clouds_and_elements(x, g):
    assert x.shape[0] == 2 and x.shape[-1] == 3
    assert g.translation is not None and g.translation.dtype == F64


def test_settings_are_deterministic():
    s = deterministic_settings(7)
    assert s.derandomize and s.deadline is None and s.max_examples == 7 and s.database is None
