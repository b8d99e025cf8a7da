"""FieldLayerNorm / FieldInstanceNorm on escnn GeometricTensors (needs escnn; skipped without).

escnn pins numpy < 2, so it lives in its own environment; see docs/o3_norm.md:

    /work/venvs/escnn/bin/python -m pytest -p no:cacheprovider tests/o3/test_escnn_norm.py
"""

import numpy as np
import pytest
import torch

escnn = pytest.importorskip("escnn")
from escnn import gspaces
from escnn import nn as enn

from geonorm.o3.escnn_norm import FieldInstanceNorm, FieldLayerNorm

F64 = torch.float64
MODES = ["layer", "instance"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _c8_type():
    gs = gspaces.rot2dOnR2(8)
    g = gs.fibergroup
    reps = [gs.trivial_repr] * 2 + [gs.regular_repr] * 3 + [g.irrep(1)] * 2 + [g.irrep(4)]
    reps += [g.quotient_representation(2), gs.regular_repr]  # interleaved types
    return enn.FieldType(gs, reps)


def _so2_type():
    gs = gspaces.rot2dOnR2(-1, maximum_frequency=4)
    g = gs.fibergroup
    return enn.FieldType(
        gs, [gs.trivial_repr, g.irrep(1), g.irrep(2), g.bl_regular_representation(3)] * 2
    )


def _so3_type():
    gs = gspaces.rot3dOnR3()
    g = gs.fibergroup
    reps = (
        [gs.trivial_repr] * 2 + [g.irrep(1)] * 2 + [g.irrep(2), g.bl_regular_representation(2)] * 2
    )
    return enn.FieldType(gs, reps)


def _o3_type():
    gs = gspaces.flipRot3dOnR3()
    g = gs.fibergroup  # irrep (j, l): j = 1 flips sign under inversion; (1, 0) is a pseudoscalar
    reps = [
        gs.trivial_repr,
        g.irrep(1, 0),
        g.irrep(0, 1),
        g.irrep(1, 1),
        g.bl_regular_representation(1),
    ] * 2
    return enn.FieldType(gs, reps)


TYPES = {"C8": _c8_type, "SO(2)": _so2_type, "SO(3)": _so3_type, "O(3)": _o3_type}


def _layer(t, mode, seed=1, **kw):
    layer = FieldLayerNorm(t, mode=mode, dtype=F64, **kw)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(seed), dtype=F64))
    return layer


def _input(t, batch=3, size=4, seed=0, offset=1.0):
    shape = (batch, t.size, *[size] * t.gspace.dimensionality)
    return t(torch.randn(shape, generator=_gen(seed), dtype=F64) + offset)


def _elements(t, k=12):
    els = list(t.testing_elements)
    return els[:: max(1, len(els) // k)]


@pytest.mark.parametrize("name", sorted(TYPES))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("normalization", ["component", "norm"])
def test_equivariance_on_fibres_train_and_eval(name, mode, normalization):
    t = TYPES[name]()
    layer = _layer(t, mode, normalization=normalization)
    x = _input(t)
    for train in (True, False):
        layer.train(train)
        y = layer(x)
        for g in _elements(t):
            err = (layer(x.transform_fibers(g)).tensor - y.transform_fibers(g).tensor).abs().max()
            assert err < 1e-12, (g, float(err))


@pytest.mark.parametrize("mode", MODES)
def test_equivariance_with_grid_rotation(mode):
    t = _c8_type()  # multiples of 90 degrees permute the pixels exactly
    layer = _layer(t, mode)
    x = _input(t, size=5)
    for g in (t.fibergroup.element(2), t.fibergroup.element(4), t.fibergroup.element(6)):
        err = (layer(x.transform(g)).tensor - layer(x).transform(g).tensor).abs().max()
        assert err < 1e-12


def _trivial_coordinates(rep):
    """Rows of Q^{-1} that read the trivial irreps of ``rep`` (escnn's change of basis)."""
    rows, pos = [], 0
    for irrep_id in rep.irreps:
        irrep = rep.group.irrep(*irrep_id)
        if irrep.is_trivial():
            rows += list(range(pos, pos + irrep.size))
        pos += irrep.size
    q_inv = np.asarray(rep.change_of_basis_inv)
    return q_inv[rows], q_inv[[i for i in range(rep.size) if i not in rows]]


@pytest.mark.parametrize("name", ["C8", "SO(3)"])
def test_only_trivial_parts_are_centred_and_statistics_are_one(name):
    t, eps = TYPES[name](), 1e-3
    x = _input(t, offset=2.0)
    layer = FieldLayerNorm(t, eps=eps, dtype=F64)  # weights 1, bias 0
    y = layer(x)
    groups: dict = {}
    offset = 0
    for rep in t.representations:
        groups.setdefault(rep.name, []).append((rep, slice(offset, offset + rep.size)))
        offset += rep.size
    for fields in groups.values():
        rep = fields[0][0]
        triv, rest = (torch.tensor(m, dtype=F64) for m in _trivial_coordinates(rep))
        xs = torch.stack([x.tensor[:, sl] for _, sl in fields], 1).flatten(3)  # [B, F, n, P]
        ys = torch.stack([y.tensor[:, sl] for _, sl in fields], 1).flatten(3)
        if triv.shape[0]:  # trivial coordinates of the output have mean zero per sample
            t_out = torch.einsum("jn,bfnp->bfjp", triv, ys)
            assert t_out.mean((1, 2, 3)).abs().max() < 1e-12
        if rest.shape[0]:  # the others are only rescaled, by one factor per sample
            r_in, r_out = (torch.einsum("jn,bfnp->bfjp", rest, v) for v in (xs, ys))
            ratio = r_out / r_in
            torch.testing.assert_close(ratio, ratio.flatten(1)[:, :1, None, None].expand_as(ratio))
        s_in = _centred_stat(xs, triv)
        s_out = ys.square().sum(2).mean((1, 2)) / rep.size
        torch.testing.assert_close(s_out, s_in / (s_in + eps), rtol=1e-10, atol=0)


def _centred_stat(xs, triv):
    """sigma^2 of a type: trivial coordinates centred by their mean, then mean ||x_f||^2 / n."""
    if triv.shape[0]:
        t_in = torch.einsum("jn,bfnp->bfjp", triv, xs)
        mu = t_in.mean((1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
        xs = xs - torch.einsum("jn,bfjp->bfnp", triv, mu.expand_as(t_in))
    return xs.square().sum(2).mean((1, 2)) / xs.shape[2]


def test_instance_mode_normalizes_each_field_alone():
    t = _c8_type()
    x = _input(t, offset=0.5)
    y = FieldInstanceNorm(t, eps=1e-12, dtype=F64)(x)
    offset = 0
    for rep in t.representations:
        field = y.tensor[:, offset : offset + rep.size].flatten(2)  # [B, n, P]
        torch.testing.assert_close(
            field.square().sum(1).mean(-1) / rep.size, torch.ones(3, dtype=F64)
        )
        offset += rep.size


def test_bias_only_on_trivial_fields_and_weight_per_field():
    t = _c8_type()
    layer = _layer(t, "layer")
    plain = FieldLayerNorm(t, affine=False, dtype=F64)
    assert layer.weight.shape == (len(t.representations),) and layer.bias.shape == (2,)
    x = _input(t)
    w = torch.cat([layer.weight[f].expand(r.size) for f, r in enumerate(t.representations)])
    diff = layer(x).tensor - plain(x).tensor * w.view(1, -1, 1, 1)
    torch.testing.assert_close(diff[:, :2], layer.bias.detach().view(1, 2, 1, 1).expand(3, 2, 4, 4))
    assert diff[:, 2:].abs().max() < 1e-12


def test_escnn_module_protocol_and_errors():
    t = _c8_type()
    layer = FieldLayerNorm(t)
    assert isinstance(layer, enn.EquivariantModule)
    model = enn.SequentialModule(enn.R2Conv(t, t, 3, padding=1), layer)
    assert model(t(torch.randn(2, t.size, 6, 6))).shape == (2, t.size, 6, 6)
    assert layer.evaluate_output_shape((2, t.size, 6, 6)) == (2, t.size, 6, 6)
    assert len(layer.check_equivariance()) == 8
    instance = FieldInstanceNorm(t)
    assert instance.mode == "instance" and isinstance(instance, enn.EquivariantModule)
    with pytest.raises(TypeError, match="in_type: expected an escnn.nn.FieldType"):
        FieldLayerNorm("8x0e")
    with pytest.raises(ValueError, match="mode: expected one of 'layer', 'instance'"):
        FieldLayerNorm(t, mode="batch")
    with pytest.raises(TypeError, match="input: expected an escnn GeometricTensor"):
        layer(torch.zeros(1, t.size, 3, 3))
    other = enn.FieldType(t.gspace, [t.gspace.trivial_repr] * t.size)
    with pytest.raises(ValueError, match="input: expected field type"):
        layer(other(torch.zeros(1, t.size, 3, 3)))


def test_double_precision_tables_survive_dtype_casts():
    t = _so3_type()
    layer = FieldLayerNorm(t).double()  # tables stay float64 through .float() / .double()
    layer.float().double()
    x = _input(t)
    for g in _elements(t, 4):
        err = (
            (layer(x.transform_fibers(g)).tensor - layer(x).transform_fibers(g).tensor).abs().max()
        )
        assert err < 1e-12
