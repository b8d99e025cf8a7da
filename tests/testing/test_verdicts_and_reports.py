"""No false alarm on float32-built models, no absolute loophole, one verdict per output/block."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from e3nn import o3
from torch import nn

from geonorm._numerics import cast_constants_rtol, default_tolerances
from geonorm.testing import (
    EuclideanGroup,
    IrrepsAction,
    PointCloudAction,
    TranslationGroup,
    TrivialAction,
    assert_equivariant,
    equivariance_error,
    join_groups,
)

from . import _models

F32, F64 = torch.float32, torch.float64
IN1, IN2, OUT = "2x0e+2x1o+1x2e", "1x0e+1x1o+1x2e", "2x0e+2x1o+2x2e"
FAST = {"mode": "eval", "n_samples": 2}  # one proper and one improper element


def _randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


@functools.cache
def _tp(dtype=F32, cast=None) -> o3.FullyConnectedTensorProduct:
    """A tensor product built in ``dtype`` (float32: float32 Clebsch–Gordan buffers), cast to ``cast``."""
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.set_default_dtype(dtype)
        try:
            tp = o3.FullyConnectedTensorProduct(IN1, IN2, OUT)
        finally:
            torch.set_default_dtype(previous)
    return tp if cast is None else tp.to(cast)


class _Broken(nn.Module):
    """``m(x1, x2) + scale * |y| * fixed direction``: a relative break of about ``scale``."""

    def __init__(self, m: nn.Module, scale: float) -> None:
        super().__init__()
        self.m, self.scale = m, scale
        self.irreps_in1, self.irreps_in2, self.irreps_out = m.irreps_in1, m.irreps_in2, m.irreps_out

    def forward(self, x1, x2):
        y = self.m(x1, x2)
        direction = torch.ones(y.shape[-1], dtype=y.dtype) / math.sqrt(y.shape[-1])
        return y + self.scale * y.norm(dim=-1, keepdim=True) * direction


def test_float32_built_tensor_product_passes_by_default_and_says_why():
    r = assert_equivariant(_tp(), **FAST)  # actions, inputs from irreps_in1/in2/out; float64
    assert r.cast_from == F32 and r.rtol == cast_constants_rtol(F32)
    assert 1e-10 < r.rel_error < r.rtol  # float32 constants: visible, far below the tolerance
    assert "cast up to float64" in r.report and "Clebsch" in r.report
    # the same when the user cast it: float64 buffers that hold float32 values
    r_cast = assert_equivariant(_tp(F32, cast=F64), **FAST)
    assert r_cast.cast_from == F32 and r_cast.rtol == cast_constants_rtol(F32)
    # built in float64 the tight default applies, and the error is at rounding level
    r64 = assert_equivariant(_tp(F64), **FAST)
    assert r64.cast_from is None and r64.rtol == default_tolerances(F64)["rtol"]
    assert r64.rel_error < 1e-13


@pytest.mark.parametrize("dtype", [F32, F64], ids=["float32-check", "float64-check"])
def test_relative_break_of_1e_4_still_fails(dtype):
    r = equivariance_error(_Broken(_tp(), 1e-4), dtype=dtype, **FAST)
    assert not r.passed and r.rel_error > 3e-5


def test_float_dtype_fixture_float64_case_of_a_float32_model(float_dtype):
    """The model built in the default dtype, checked in float_dtype: passes both ways."""
    assert assert_equivariant(_tp(), dtype=float_dtype, **FAST).passed


def test_tiny_output_with_relative_break_fails_even_in_float32():
    """Outputs ~1e-3, break 1e-3 relative: the old atol=1e-5 let it through in float32."""
    x = _randn(4, 6, 3, dtype=F32)
    bias = torch.tensor([1.0, 0.0, 0.0])

    def small(v):  # [B, N, 3] -> 1e-3 v plus a fixed vector of 1e-3 of its size
        return 1e-3 * (v + 1e-3 * v.norm(dim=-1, keepdim=True) * bias.to(v.dtype))

    vec = PointCloudAction(group="o3", kind="vector")
    for dtype in (F32, F64):
        r = equivariance_error(small, vec, x, dtype=dtype)
        assert not r.passed, dtype
    assert equivariance_error(lambda v: 1e-3 * v, vec, x, dtype=F32).passed
    # log of (almost) the identity cancels to zero: rounding of the inputs, passes
    eye = torch.eye(4, dtype=F64).expand(2, 4, 4)
    from geonorm.testing import CongruenceAction

    assert equivariance_error(_models.sym_logm, CongruenceAction(4), eye).passed


def test_congruence_rounding_floor_is_norm_wise_but_still_catches_breaks():
    """Matrices: the floor is sqrt(n) ||X||_2 per entry (not the entries' RMS, 0.5 for I_4),
    and a break 1000x above rounding on an output that cancels to zero still fails."""
    from geonorm.testing import CongruenceAction

    act = CongruenceAction(4)
    x = torch.diag(torch.tensor([1.0, 2.0, 3.0, 8.0], dtype=F64)).expand(2, 4, 4)
    torch.testing.assert_close(act.rounding_scale(x), torch.full((2, 4, 4), 16.0, dtype=F64))
    eye = torch.eye(4, dtype=F64).expand(2, 4, 4)
    fixed = torch.zeros(4, 4, dtype=F64)
    fixed[0, 1] = fixed[1, 0] = 1e-12  # not rotated with the input: a symmetry break

    def broken(v):
        return _models.sym_logm(v) + fixed

    r = equivariance_error(broken, act, eye)
    assert not r.passed and r.rel_error > 1e-8, r.rel_error


def test_bfloat16_defaults_are_tighter():
    tol = default_tolerances(torch.bfloat16)
    eps = torch.finfo(torch.bfloat16).eps
    assert tol["rtol"] <= 3 * eps and tol["atol"] <= 2 * eps


def test_each_output_has_its_own_verdict():
    """A huge invariant output cannot hide a broken small vector output."""
    x = _randn(3, 5, 3)

    def f(v):  # energy ~ -8000, "forces" ~1 with a constant bias of 0.1
        return {"energy": v.square().sum((-1, -2)) - 8000.0, "forces": -2 * v + 0.1,
                "aux": v.sum(-1)}

    outs = {"energy": TrivialAction(), "forces": PointCloudAction(group="o3", kind="vector")}
    r = equivariance_error(f, PointCloudAction(group="o3"), x, outs, dtype=F32)
    assert not r.passed
    by_name = {o.name: o for o in r.worst.outputs}
    assert by_name["energy"].passed and not by_name["forces"].passed
    assert by_name["forces"].rel_error > 0.01 and by_name["energy"].rel_error < 1e-6
    assert r.unchecked == ("aux",) and "not checked (no output action): aux" in r.report
    assert "forces: " in r.report and "fails only for output(s) forces" in r.report


def test_report_per_irreps_block_and_parity_hint():
    x = _randn(4, 6)

    def f(v):  # '1x1o+1x1o' -> '0e + 1o': the dot product is fine, the cross product is 1e
        a, b = v[..., :3], v[..., 3:]
        return torch.cat([(a * b).sum(-1, keepdim=True), torch.cross(a, b, dim=-1)], -1)

    r = equivariance_error(f, IrrepsAction("2x1o"), x, IrrepsAction("0e+1o"))
    assert not r.passed
    blocks = {b.name: b for b in r.worst.outputs[0].blocks}
    assert blocks["0e"].passed and blocks["0e"].rel_error < 1e-14
    assert not blocks["1o"].passed and blocks["1o"].rel_error > 0.1
    assert "0e: " in r.report and "1o: " in r.report
    assert any("improper elements (det -1)" in h and "parity" in h for h in r.hints)
    assert "hint: fails only for improper" in r.report
    assert equivariance_error(f, IrrepsAction("2x1o"), x, IrrepsAction("0e+1e")).passed


def test_block_smaller_than_rounding_of_its_output_is_not_a_false_alarm():
    """A block that is ~0 (1e-17 of the output) is judged against the output's rounding."""
    x = _randn(4, 4)

    def f(v):  # '0e+1o' -> '0e+1o': scalar kept, vector cancels to rounding noise
        return torch.cat([v[..., :1] * 1e3, (v[..., 1:] * 0.1 + v[..., 1:] * 0.2) - v[..., 1:] * 0.3],
                         -1)

    assert equivariance_error(f, IrrepsAction("0e+1o"), x).passed


def test_translation_hint_and_output_names_in_shape_errors():
    x = _randn(2, 5, 3)
    r = equivariance_error(lambda p: p.square(), PointCloudAction(group="e3"), x,
                           PointCloudAction(group="e3", kind="vector"))
    assert not r.passed and not any("translations" in h for h in r.hints)
    r = equivariance_error(lambda p: 2 * p, PointCloudAction(group="e3"), x,
                           PointCloudAction(group="e3", kind="vector"))
    assert any("fails only with translations" in h and "uncentred" in h for h in r.hints)
    with pytest.raises(ValueError, match="out_action: cannot act on 'forces'|forces"):
        equivariance_error(lambda p: {"forces": p[..., :2]}, PointCloudAction(group="o3"), x,
                           {"forces": PointCloudAction(group="o3", kind="vector")})


def test_translation_group_alone_and_joined():
    t = TranslationGroup(3)
    assert join_groups(t, EuclideanGroup(3)) == EuclideanGroup(3, translations=True)
    assert join_groups(EuclideanGroup(3, proper=True), t).name == "SE(3)"
    x = _randn(2, 5, 3)
    centred = lambda p: p - p.mean(-2, keepdim=True)  # noqa: E731
    r = assert_equivariant(centred, PointCloudAction(group="t3"), x,
                           PointCloudAction(group="t3", kind="vector"))
    assert r.group == "T(3)" and all(s.element.rotation is None for s in r.samples)
    assert not equivariance_error(lambda p: p, PointCloudAction(group="t3"), x,
                                  PointCloudAction(group="t3", kind="vector")).passed
    # T(3) leaves irreps features and vectors alone: a rotation-breaking map passes T(3)
    assert equivariance_error(torch.tanh, IrrepsAction("1o", group="t3"), _randn(3, 3)).passed


def test_e3nn_style_inference_from_irreps_attributes():
    lin = _models.linear()
    r = assert_equivariant(lin)  # irreps_in / irreps_out, random inputs
    assert "IrrepsAction(2x0e+2x1o+1x2e" in r.in_action and "1x0e+1x1o+1x2e" in r.out_action
    assert not equivariance_error(_Broken(_tp(), 1e-2), **FAST).passed
    with pytest.raises(TypeError, match="action: expected a GroupAction .or f with e3nn"):
        equivariance_error(torch.tanh)
    with pytest.raises(ValueError, match="inputs: required when action is given"):
        equivariance_error(torch.tanh, IrrepsAction("1o"))


model64 = _tp(F64)  # reached through a global only: cannot be cast


def _through_global(x1, x2):
    return model64(x1, x2)


def test_plain_functions_wrapping_modules_are_cast_or_the_mismatch_is_named():
    tp = _tp()
    acts = (IrrepsAction(IN1), IrrepsAction(IN2))
    xs = (_randn(4, tp.irreps_in1.dim, seed=1), _randn(4, 9, seed=2))
    closure = lambda a, b: tp(a, b)  # noqa: E731
    for f in (closure, tp.forward, functools.partial(tp)):
        for dtype in (F32, F64):
            r = equivariance_error(f, acts, xs, IrrepsAction(OUT), dtype=dtype, n_samples=2)
            assert r.passed, (f, dtype)
        assert equivariance_error(f, acts, xs, IrrepsAction(OUT), n_samples=1).cast_from == F32
    assert tp.weight.dtype == F32  # the caller's module is untouched
    with pytest.raises(TypeError, match="f: raised a dtype mismatch while the check ran in "
                                        "float32.*reached through a global is not cast"):
        equivariance_error(_through_global, acts, xs, IrrepsAction(OUT), dtype=F32, n_samples=1)


def test_dict_inputs_and_outputs_with_named_actions():
    pos, h = _randn(2, 4, 3, seed=1), _randn(2, 4, 2, seed=2)

    def model(data):  # a MACE-style dict in, dict out
        p, s = data["positions"], data["scalars"]
        centred = p - p.mean(-2, keepdim=True)
        return {"energy": (centred.square().sum(-1) * s[..., 0]).sum(-1),
                "forces": s[..., 1:] * centred, "stress": None}

    ins = {"positions": PointCloudAction(group="e3")}  # "scalars" left untouched
    outs = {"energy": TrivialAction(), "forces": PointCloudAction(group="e3", kind="vector")}
    r = assert_equivariant(model, ins, {"positions": pos, "scalars": h}, outs)
    assert [o.name for o in r.worst.outputs] == ["energy", "forces"]
    with pytest.raises(ValueError, match="action: expected names of the inputs"):
        equivariance_error(model, {"pos": ins["positions"]}, {"positions": pos, "scalars": h},
                           outs)
    with pytest.raises(ValueError, match="out_action: expected f's outputs to include virials"):
        equivariance_error(model, ins, {"positions": pos, "scalars": h},
                           {"virials": TrivialAction()})
