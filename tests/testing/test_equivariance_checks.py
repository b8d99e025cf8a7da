"""The checks pass equivariant models and catch broken ones, with a useful report."""

from __future__ import annotations

import math

import pytest
import torch
from e3nn import nn as e3nn_nn
from torch import nn

from geonorm.testing import (
    CongruenceAction,
    ComposedAction,
    EquivarianceResult,
    IrrepsAction,
    PermutationAction,
    PointCloudAction,
    TrivialAction,
    assert_equivariant,
    assert_invariant,
    equivariance_error,
    group_from_name,
)

from . import _models

F64 = torch.float64


def _randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _spd(batch: int, n: int, seed: int = 0) -> torch.Tensor:
    a = _randn(batch, n, n, seed=seed)
    return a @ a.mT / n + 0.5 * torch.eye(n, dtype=F64)


A_IN, A_OUT = IrrepsAction(_models.IRREPS_IN), IrrepsAction(_models.IRREPS_OUT)
X_IRREPS = _randn(6, A_IN.irreps.dim, dtype=torch.float32)


# --------------------------------------------------------------------------- passes


def test_e3nn_linear_passes_in_both_modes_in_float64():
    r = assert_equivariant(_models.linear(), A_IN, X_IRREPS, A_OUT, n_samples=4)
    assert isinstance(r, EquivarianceResult) and r.passed and bool(r)
    assert len(r.samples) == 8 and {s.mode for s in r.samples} == {"train", "eval"}
    assert {s.element.det for s in r.samples} == {1.0, -1.0}
    assert r.dtype == F64 and r.rel_error < 1e-13
    # built in float32: the default rtol allows for float32-rounded constants, and says so
    assert r.cast_from == torch.float32 and r.rtol == 100 * torch.finfo(torch.float32).eps
    assert "cast up to float64" in r.report
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        lin64 = _models.linear()  # built in float64 (not float32 values cast with .double())
    finally:
        torch.set_default_dtype(previous)
    r64 = assert_equivariant(lin64, A_IN, X_IRREPS, A_OUT)
    assert r64.cast_from is None and r64.rtol == 1e-9  # the float64 default
    # atol: 4 eps of the inputs' root mean square (rounding level of an output cancelling to 0)
    rms = float(X_IRREPS.double().square().mean().sqrt())
    assert r64.atol == pytest.approx(4 * torch.finfo(F64).eps * rms, rel=1e-12)


def test_norm_gate_and_e3nn_batchnorm_and_irreps_dropout_pass():
    assert_equivariant(_models.gated(), A_IN, X_IRREPS)
    assert_equivariant(e3nn_nn.BatchNorm(_models.IRREPS_IN), A_IN, X_IRREPS)
    # train-mode dropout draws the same mask for f(x) and f(g·x)
    assert_equivariant(e3nn_nn.Dropout(_models.IRREPS_IN, 0.5), A_IN, X_IRREPS, mode="train")


def test_user_module_is_left_untouched():
    bn = e3nn_nn.BatchNorm(_models.IRREPS_IN).eval()
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    assert_equivariant(bn, A_IN, X_IRREPS, mode="both")
    assert not bn.training
    for k, v in bn.state_dict().items():
        assert v.dtype == before[k].dtype and torch.equal(v, before[k]), k
    assert X_IRREPS.dtype == torch.float32


def test_spd_log_is_congruence_equivariant_and_spectrum_invariant():
    x = _spd(3, 4)
    assert_equivariant(_models.sym_logm, CongruenceAction(4), x)
    assert_invariant(lambda s: torch.logdet(s), CongruenceAction(4, group="son"), x)


def test_deepsets_equivariant_and_sum_pool_invariant():
    x = _randn(3, 5, 4)
    perm = PermutationAction(5, dim=1)
    assert_equivariant(_models.deepsets(), perm, x)
    assert_invariant(lambda s: s.sum(dim=1), perm, x)


def test_centring_is_e3_equivariant_from_positions_to_vectors():
    x = _randn(2, 7, 3)
    vec = PointCloudAction(group="e3", kind="vector")
    r = assert_equivariant(_models.centre, PointCloudAction(group="e3"), x, vec)
    assert r.element.translation is not None
    # the same map also commutes with permuting the points: E(3) × S(7)
    both_in = ComposedAction(PermutationAction(7), PointCloudAction(group="e3"))
    both_out = ComposedAction(PermutationAction(7), vec)
    assert str(assert_equivariant(_models.centre, both_in, x, both_out).group) == "S(7) × E(3)"
    # irreps outputs share the E(3) element and ignore its translation
    assert_equivariant(_models.centre, PointCloudAction(group="e3"), x, IrrepsAction("1o"))


def test_several_inputs_and_outputs():
    def step(pos, vel, h):  # [B, N, 3], [B, N, 3], [B, N, 2]
        speed = (vel * vel).sum(-1, keepdim=True)  # [B, N, 1]
        return pos + h[..., :1] * vel, h + speed

    pos, vel, h = _randn(2, 5, 3, seed=1), _randn(2, 5, 3, seed=2), _randn(2, 5, 2, seed=3)
    ins = (PointCloudAction(group="e3"), PointCloudAction(group="e3", kind="vector"),
           TrivialAction())
    outs = (PointCloudAction(group="e3"), TrivialAction())
    r = assert_equivariant(step, ins, (pos, vel, h), outs)
    assert len(r.worst.output_rel_errors) == 2
    assert_invariant(lambda p, v: ((p - p.mean(-2, keepdim=True)) ** 2).sum(), ins[:2], (pos, vel))


# --------------------------------------------------------------------------- catches


def test_catches_bias_on_vector_irrep():
    x = _randn(5, 4)
    with pytest.raises(AssertionError, match="Equivariance check FAILED for VectorBias"):
        assert_equivariant(_models.vector_bias(), IrrepsAction("1x0e+1x1o"), x)


def test_catches_coordinatewise_nonlinearity_on_positions():
    with pytest.raises(AssertionError, match="FAILED for tanh"):
        assert_equivariant(torch.tanh, PointCloudAction(group="se3"), _randn(2, 5, 3))


def test_catches_ignored_parity_only_under_improper_elements():
    x = _randn(4, 6)
    a_in = IrrepsAction("1x1o+1x1o", group="so3")
    assert_equivariant(_models.cross_product, a_in, x, IrrepsAction("1o", group="so3"))
    r = equivariance_error(_models.cross_product, IrrepsAction("1x1o+1x1o"), x, IrrepsAction("1o"))
    assert not r.passed
    assert r.element.det == -1.0
    assert all((s.element.det == -1.0) != s.passed for s in r.samples)
    # declared correctly as a pseudovector it passes O(3)
    assert_equivariant(_models.cross_product, IrrepsAction("1x1o+1x1o"), x, IrrepsAction("1e"))


def test_catches_spd_function_that_is_not_congruence_equivariant():
    with pytest.raises(AssertionError, match="FAILED for add_fixed_matrix"):
        assert_equivariant(_models.add_fixed_matrix, CongruenceAction(3), _spd(2, 3))


def test_catches_order_dependent_set_function():
    with pytest.raises(AssertionError, match="FAILED"):
        assert_equivariant(_models.cumsum_factory(), PermutationAction(5, dim=1), _randn(2, 5, 3))


def test_catches_train_mode_only_break():
    m, a, x = _models.train_only_break(), IrrepsAction("1o"), _randn(8, 3, dtype=torch.float32)
    assert equivariance_error(m, a, x, mode="eval").passed
    r = equivariance_error(m, a, x, mode="both")
    assert not r.passed and r.worst.mode == "train"
    assert all(s.passed == (s.mode == "eval") for s in r.samples)
    assert "mode train" in r.report
    # running statistics of the caller's module did not move
    assert torch.equal(m.bn.running_mean, torch.zeros(3)) and int(m.bn.num_batches_tracked) == 0


def test_catches_elementwise_dropout_on_vectors_in_train_mode():
    m = nn.Dropout(0.5)
    assert equivariance_error(m, IrrepsAction("4x1o"), _randn(4, 12), mode="eval").passed
    assert not equivariance_error(m, IrrepsAction("4x1o"), _randn(4, 12), mode="train").passed


# --------------------------------------------------------------------------- result, options


def test_report_and_result_fields():
    r = equivariance_error(torch.tanh, PointCloudAction(group="e3"), _randn(2, 4, 3), n_samples=3)
    assert len(r.sample_errors) == 3 and r.rel_error == max(r.sample_errors)
    assert r.worst.rel_error == r.rel_error and r.abs_error >= r.worst.abs_error > 0
    text = str(r)
    for piece in ("FAILED", "group E(3)", "rotation matrix of the worst element", "translation:",
                  "<-- FAIL", "rtol 1.0e-09", "mode(s) function"):
        assert piece in text, piece


def test_non_finite_output_fails():
    r = equivariance_error(lambda x: x / 0.0, IrrepsAction("1o"), _randn(2, 3))
    assert not r.passed and math.isinf(r.rel_error) and "non-finite" in r.report


def test_deterministic_and_seeded():
    args = (torch.tanh, PointCloudAction(group="e3"), _randn(2, 4, 3))
    assert equivariance_error(*args).sample_errors == equivariance_error(*args).sample_errors
    a = equivariance_error(*args, generator=1).sample_errors
    b = equivariance_error(*args, generator=torch.Generator().manual_seed(1)).sample_errors
    assert a == b != equivariance_error(*args).sample_errors


def test_tolerances_dtype_and_group_options():
    x = _randn(3, 4, 4)
    almost = lambda s: s + 1e-6 * torch.diag(torch.arange(4.0, dtype=s.dtype))  # noqa: E731
    assert not equivariance_error(almost, CongruenceAction(4), x).passed
    assert equivariance_error(almost, CongruenceAction(4), x, rtol=1e-3).passed
    r = equivariance_error(lambda s: s, CongruenceAction(4), x, dtype=torch.float32)
    assert r.passed and r.rtol == 1e-4 and r.dtype == torch.float32
    r = equivariance_error(_models.cross_product, IrrepsAction("1x1o+1x1o"), _randn(2, 6),
                           IrrepsAction("1o"), group=group_from_name("so3"))
    assert r.passed and r.group == "SO(3)"


def test_argument_errors():
    a, x = IrrepsAction("1o"), _randn(2, 3)
    with pytest.raises(ValueError, match="mode: expected one of train, eval, both, got 'test'"):
        equivariance_error(torch.sin, a, x, mode="test")
    with pytest.raises(ValueError, match="n_samples: expected a positive int"):
        equivariance_error(torch.sin, a, x, n_samples=0)
    with pytest.raises(TypeError, match="generator: expected a torch.Generator"):
        equivariance_error(torch.sin, a, x, generator="seed")
    with pytest.raises(TypeError, match="action: expected a GroupAction"):
        equivariance_error(torch.sin, "o3", x)
    with pytest.raises(TypeError, match="f: expected a callable"):
        equivariance_error(3, a, x)
    with pytest.raises(ValueError, match="action: expected a tuple of 2 actions"):
        equivariance_error(torch.add, a, (x, x), a)
    with pytest.raises(ValueError, match="out_action: required"):
        equivariance_error(torch.add, (a, a), (x, x))
    with pytest.raises(ValueError, match="out_action: cannot act on output of f .shape \\[2\\]"):
        equivariance_error(lambda v: v.sum(-1), a, x)  # output is not a 1o feature
    with pytest.raises(TypeError, match="f: expected f\\(x\\) to return a Tensor"):
        equivariance_error(lambda v: "nope", a, x)
    with pytest.raises(ValueError, match="out_action: f returned 2 outputs"):
        equivariance_error(lambda v: (v, v), a, x)
