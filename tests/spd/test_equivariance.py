"""Orthogonal-congruence equivariance of SPD batch norm, checked with geonorm.testing.

The Log-Euclidean, Bures–Wasserstein and affine-invariant (parallel-transport)
batch norms commute with :math:`X \\mapsto Q X Q^\\top` when the bias is the
identity (its initial value) — in train mode, and in eval mode whenever the
running mean is a fixed point of the action (here the identity). LieBN's AIM
translation by the Cholesky factor and the Log-Cholesky metric depend on the
basis, so those layers are not equivariant: the kit must say so.
"""

import pytest
import torch

from geonorm.nn import BuresWassersteinBatchNorm, LieBatchNorm, SPDBatchNorm
from geonorm.spd import AffineInvariant, RiemannianBatchNorm
from geonorm.testing import CongruenceAction, assert_equivariant, equivariance_error

from .._spd import random_spd

N = 4
EQUIVARIANT = {
    "spdnetbn": lambda: SPDBatchNorm(N),
    "aim-transport(theta=0.5)": lambda: RiemannianBatchNorm(AffineInvariant(theta=0.5, translation="sqrt"), N),
    "lie-lem(beta=0.2)": lambda: LieBatchNorm(N, "lem", beta=0.2),
    "gbw(theta=0.5)": lambda: BuresWassersteinBatchNorm(N, theta=0.5),
}
NOT_EQUIVARIANT = {
    "lie-aim (Cholesky)": lambda: LieBatchNorm(N, "aim"),
    "lie-lcm": lambda: LieBatchNorm(N, "lcm"),
}


def _batch(channels=None):
    lead = (8,) if channels is None else (8, channels)
    return random_spd(N, torch.Generator().manual_seed(0), batch=lead, cond=30.0)


@pytest.mark.parametrize("name", sorted(EQUIVARIANT))
def test_congruence_equivariance_train_and_eval(name):
    layer = EQUIVARIANT[name]()
    result = assert_equivariant(layer, CongruenceAction(N, group="on"), _batch(), mode="both", n_samples=3)
    assert result.rel_error < 1e-9


def test_congruence_equivariance_with_channels():
    layer = LieBatchNorm(N, "lem", channels=2)
    assert_equivariant(layer, CongruenceAction(N, group="on"), _batch(channels=2), n_samples=2)


@pytest.mark.parametrize("name", sorted(NOT_EQUIVARIANT))
def test_basis_dependent_layers_are_reported(name):
    result = equivariance_error(NOT_EQUIVARIANT[name](), CongruenceAction(N, group="on"), _batch(), mode="train")
    assert not result.passed and result.rel_error > 1e-3
