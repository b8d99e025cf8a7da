"""Equivariant layer / RMS norm on irreps: equivariance, statistics, peers, gradients, errors."""

import importlib.util

import pytest
import torch
from e3nn import o3
from hypothesis import given
from hypothesis import strategies as st
from torch.autograd import gradcheck, gradgradcheck

from geonorm.o3.norm import (
    EquivariantLayerNorm,
    EquivariantRMSNorm,
    _irreps_norm,
    equivariant_layer_norm,
    equivariant_rms_norm,
)
from geonorm.testing import IrrepsAction, TrivialAction, assert_equivariant
from geonorm.testing.strategies import (
    deterministic_settings,
    irreps_features,
    irreps_strings,
)

F64 = torch.float64
MIXED = "3x0e+2x0o+2x1o+1x1e+2x2e+1x3o+1x1o"  # 0e, 0o, both parities of l = 1, 1o split in two
SMALL = ["4x1o", "5x0e+3x1o", "1x2e"]  # single irrep, EDGI scalars + vectors, one channel
LAYERS = {"layer": EquivariantLayerNorm, "rms": EquivariantRMSNorm}
OPTIONS = [(n, s) for n in ("component", "norm") for s in ("per_irrep", "balanced")]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _x(irreps: str, *lead: int, seed: int = 0, offset: float = 0.0) -> torch.Tensor:
    return torch.randn(*lead, o3.Irreps(irreps).dim, generator=_gen(seed), dtype=F64) + offset


def _layer(kind: str, irreps: str, seed: int = 1, **kw) -> torch.nn.Module:
    kw.setdefault("bias", True)
    layer = LAYERS[kind](irreps, dtype=F64, **kw)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=_gen(seed), dtype=F64))
    return layer


def _blocks(x: torch.Tensor, irreps: str) -> dict:
    """{(l, p): [..., mul, 2l+1]} with equal irreps merged: the blocks of the docstring."""
    out: dict = {}
    for (mul, ir), sl in zip(o3.Irreps(irreps), o3.Irreps(irreps).slices()):
        part = x[..., sl].reshape(*x.shape[:-1], mul, ir.dim)
        out[(ir.l, ir.p)] = (
            torch.cat([out[(ir.l, ir.p)], part], -2) if (ir.l, ir.p) in out else part
        )
    return out


# ---------------------------------------------------------------- equivariance


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("normalization,scope", OPTIONS)
@pytest.mark.parametrize("affine", [True, False])
def test_o3_equivariance_train_and_eval(kind, normalization, scope, affine):
    layer = _layer(kind, MIXED, normalization=normalization, scope=scope, affine=affine)
    x = _x(MIXED, 6, offset=0.5)
    assert_equivariant(layer, IrrepsAction(MIXED), x, mode="both", n_samples=2)
    if affine:  # graph mode: one rotation for every node of every segment
        batch = torch.tensor([0, 0, 1, 1, 1, 2])
        act = (IrrepsAction(MIXED), TrivialAction())
        assert_equivariant(layer, act, (x, batch), IrrepsAction(MIXED), mode="both", n_samples=2)


@pytest.mark.parametrize("irreps", SMALL)
@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("scope", ["per_irrep", "balanced"])
def test_o3_equivariance_small_irreps(irreps, kind, scope):
    layer = _layer(kind, irreps, scope=scope)
    assert_equivariant(layer, IrrepsAction(irreps), _x(irreps, 5, offset=0.5), mode="both")


@deterministic_settings(max_examples=8)
@given(
    data=st.data(),
    irreps=irreps_strings(max_l=3, max_mul=3, max_terms=4),
    kind=st.sampled_from(sorted(LAYERS)),
    options=st.sampled_from(OPTIONS),
)
def test_equivariance_property_random_irreps(data, irreps, kind, options):
    x = data.draw(irreps_features(irreps, batch_shape=(2, 3)))
    layer = _layer(kind, irreps, normalization=options[0], scope=options[1])
    assert_equivariant(layer, IrrepsAction(irreps), x, mode="both", n_samples=2)


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize("normalization", ["component", "norm"])
def test_layer_norm_statistics_per_irrep(normalization):
    irreps, eps = "4x0e+2x0o+2x1o+3x2e+1x1o", 1e-3  # 1o block: 3 channels in two runs
    x = _x(irreps, 7, offset=2.0)
    y = EquivariantLayerNorm(irreps, eps=eps, normalization=normalization, dtype=F64)(x)
    bx, by = _blocks(x, irreps), _blocks(y, irreps)
    centred = bx[(0, 1)] - bx[(0, 1)].mean((-2, -1), keepdim=True)
    torch.testing.assert_close(
        by[(0, 1)].mean((-2, -1)), torch.zeros(7, dtype=F64), atol=1e-13, rtol=0
    )
    for key in bx:
        xin = centred if key == (0, 1) else bx[key]
        per = xin.square().sum(-1) / (1 if normalization == "norm" else xin.shape[-1])
        s_in = per.mean(-1)  # sigma_b^2 of the input
        per_out = by[key].square().sum(-1) / (1 if normalization == "norm" else xin.shape[-1])
        torch.testing.assert_close(per_out.mean(-1), s_in / (s_in + eps), rtol=1e-12, atol=0)


def test_balanced_statistic_is_one_and_blocks_are_not():
    irreps, eps = "3x0e+1x0o+4x1o+2x2e+1x3o", 1e-3
    x = _x(irreps, 5) * torch.tensor([1.0] * 4 + [3.0] * 12 + [0.3] * 17, dtype=F64)
    for layer_cls in LAYERS.values():
        y = layer_cls(irreps, eps=eps, scope="balanced", dtype=F64)(x)
        bx, by = _blocks(x, irreps), _blocks(y, irreps)
        high = [k for k in bx if k[0] > 0]
        s_in = sum(bx[k].square().mean((-2, -1)) for k in high) / len(high)
        s_out = sum(by[k].square().mean((-2, -1)) for k in high) / len(high)
        torch.testing.assert_close(s_out, s_in / (s_in + eps), rtol=1e-12, atol=0)
        per_block = torch.stack([by[k].square().mean((-2, -1)) for k in high])
        assert (per_block - 1).abs().max() > 0.5  # one shared scale, not one per block
        s0o = bx[(0, -1)].square().mean((-2, -1))  # 0o keeps its own statistic
        torch.testing.assert_close(
            by[(0, -1)].square().mean((-2, -1)), s0o / (s0o + eps), rtol=1e-12, atol=0
        )


def test_rms_norm_does_not_centre():
    irreps = "6x0e+2x1o"
    x = _x(irreps, 4, offset=3.0)
    y = EquivariantRMSNorm(irreps, eps=None, dtype=F64)(x)
    torch.testing.assert_close(
        y[:, :6].square().mean(-1), torch.ones(4, dtype=F64), rtol=1e-10, atol=0
    )
    assert (y[:, :6].mean(-1) > 0.9).all()  # the offset survives: nothing was subtracted
    torch.testing.assert_close(y[:, :6] / x[:, :6], (y[:, :6] / x[:, :6])[:, :1].expand(4, 6))


def test_weights_scale_whole_vectors_and_bias_only_touches_0e():
    irreps = "2x0e+2x0o+1x1o+1x0e+2x2e"
    x = _x(irreps, 5)
    layer = _layer("layer", irreps)
    plain = EquivariantLayerNorm(irreps, affine=False, dtype=F64)
    assert layer.weight.shape == (8,) and layer.bias.shape == (3,)  # 0e channels only
    scalar_pos = torch.tensor([0, 1, 7])
    diff = layer(x) - plain(x) * layer.weight[layer.layout.channel]
    torch.testing.assert_close(
        diff[:, scalar_pos], layer.bias.expand(5, 3).detach(), atol=1e-13, rtol=0
    )
    others = torch.ones(x.shape[-1], dtype=torch.bool).index_fill(0, scalar_pos, False)
    assert diff[:, others].abs().max() < 1e-13  # no bias on 0o, 1o, 2e
    assert EquivariantLayerNorm("3x0o+1x1o").bias is None
    assert EquivariantRMSNorm(irreps).bias is None  # RMS: no bias unless asked


# ---------------------------------------------------------------- peers


def test_scalars_only_equals_torch_layer_norm_and_rms_norm():
    x = _x("12x0e", 9, offset=1.5).requires_grad_()
    for ours, peer in (
        (_layer("layer", "12x0e"), torch.nn.LayerNorm(12, eps=1e-5, dtype=F64)),
        (_layer("rms", "12x0e", bias=False), torch.nn.RMSNorm(12, eps=1e-5, dtype=F64)),
    ):
        peer.load_state_dict(ours.state_dict())
        y, y_peer = ours(x), peer(x)
        torch.testing.assert_close(y, y_peer, rtol=1e-13, atol=1e-13)
        g = torch.randn(y.shape, generator=_gen(3), dtype=F64)
        ga = torch.autograd.grad(y, [x, *ours.parameters()], g)
        gb = torch.autograd.grad(y_peer, [x, *peer.parameters()], g)
        for a, b in zip(ga, gb):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def _equiformer_v2(f, w0, b0, w, eps, lmax, centre):
    """EquiformerV2's separable S2 norm (Liao et al. 2024: layer_norm_sh, rms_norm_sh), re-derived.

    ``f`` is [N, (lmax+1)^2, C]. l = 0 (if present): torch LayerNorm (or RMS) over C. l > 0:
    sigma^2 = 1/C sum_c 1/L sum_{l=1..L} 1/(2l+1) sum_m f_{l m c}^2;
    f_l <- f_l * w_l / sqrt(sigma^2 + eps).
    """
    out = []
    if w0 is not None:
        f0 = f[:, 0]  # [N, C]
        f0 = f0 - f0.mean(-1, keepdim=True) if centre else f0
        out.append((f0 * torch.rsqrt(f0.square().mean(-1, keepdim=True) + eps) * w0 + b0)[:, None])
    start = 1 if w0 is not None else 0
    sig = sum(
        f[:, l * l - 1 + start : (l + 1) ** 2 - 1 + start].square().sum(1) / (2 * l + 1)
        for l in range(1, lmax + 1)
    )
    sig = (sig / lmax).mean(-1)  # [N]
    for l in range(1, lmax + 1):
        fl = f[:, l * l - 1 + start : (l + 1) ** 2 - 1 + start]  # [N, 2l+1, C]
        out.append(fl * torch.rsqrt(sig + eps)[:, None, None] * w[l - 1])
    return torch.cat(out, 1)


@pytest.mark.parametrize("kind", ["layer", "rms"])
def test_balanced_matches_equiformer_v2(kind):
    c, lmax, n, eps = 4, 3, 6, 1e-5
    with_scalars = kind == "layer"  # rms: the l > 0 formula alone (rms_norm_sh without l = 0)
    ls = range(0 if with_scalars else 1, lmax + 1)
    irreps = "+".join(f"{c}x{l}{'e' if l % 2 == 0 else 'o'}" for l in ls)
    rows = (lmax + 1) ** 2 - (0 if with_scalars else 1)
    f = torch.randn(n, rows, c, generator=_gen(4), dtype=F64) + 0.5
    # e3nn layout: per l, channel-major [C, 2l+1]
    x = torch.cat(
        [
            f[:, l * l - (0 if with_scalars else 1) :][:, : 2 * l + 1]
            .transpose(1, 2)
            .reshape(n, -1)
            for l in ls
        ],
        1,
    )
    layer = _layer(kind, irreps, scope="balanced", eps=eps)
    w = layer.weight.detach().view(len(ls), c)
    w0, b0 = (w[0], layer.bias.detach()) if with_scalars else (None, None)
    ref = _equiformer_v2(f, w0, b0, w[1:] if with_scalars else w, eps, lmax, centre=True)
    y = layer(x)
    ref_e3nn = torch.cat(
        [
            ref[:, l * l - (0 if with_scalars else 1) :][:, : 2 * l + 1]
            .transpose(1, 2)
            .reshape(n, -1)
            for l in ls
        ],
        1,
    )
    torch.testing.assert_close(y, ref_e3nn, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("normalization", ["component", "norm"])
def test_segment_mode_equals_e3nn_instance_norm_for_one_channel_per_irrep(normalization):
    from e3nn.nn import BatchNorm

    irreps = "1x0e+1x0o+1x1o+1x2e+1x1e"
    x = _x(irreps, 3, 5, seed=5, offset=0.7)  # 3 graphs of 5 nodes
    peer = BatchNorm(irreps, instance=True, normalization=normalization).double()
    ours = EquivariantLayerNorm(irreps, normalization=normalization, dtype=F64)
    with torch.no_grad():
        peer.weight.normal_(generator=_gen(6))
        peer.bias.normal_(generator=_gen(7))
    ours.load_state_dict(peer.state_dict(), strict=False)
    batch = torch.arange(3).repeat_interleave(5)
    torch.testing.assert_close(
        ours(x.reshape(15, -1), batch), peer(x).reshape(15, -1), rtol=1e-12, atol=1e-12
    )


# ---------------------------------------------------------------- segments


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("scope", ["per_irrep", "balanced"])
def test_segment_mode_equals_each_segment_alone(kind, scope):
    irreps = "3x0e+1x0o+2x1o+1x2e"
    x = _x(irreps, 9, seed=8, offset=1.0)
    batch = torch.tensor([2, 0, 0, 2, 1, 0, 2, 2, 1])  # unsorted; segment 3 is empty
    layer = _layer(kind, irreps, scope=scope)
    y = layer(x, batch, num_segments=4)
    torch.testing.assert_close(y, layer(x, batch))
    fn = equivariant_layer_norm if kind == "layer" else equivariant_rms_norm
    for s in range(3):
        rows = batch == s
        alone = _segment_alone(fn, x[rows], o3.Irreps(irreps), layer, scope)
        torch.testing.assert_close(y[rows], alone, rtol=1e-12, atol=1e-12)


def _segment_alone(fn, xs, irreps, layer, scope):
    """A segment normalized on its own: its n nodes as n times the channels of one sample."""
    n, parts, terms, weights, biases, ch, sc = xs.shape[0], [], [], [], [], 0, 0
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        parts.append(xs[:, sl].reshape(-1))  # node-major: [n * mul, 2l+1]
        terms.append(f"{n * mul}x{ir}")
        weights.append(layer.weight[ch : ch + mul].repeat(n))
        ch += mul
        if ir == o3.Irrep("0e"):
            biases.append(layer.bias[sc : sc + mul].repeat(n))
            sc += mul
    out = fn(torch.cat(parts), "+".join(terms), torch.cat(weights), torch.cat(biases), scope=scope)
    cols, start = [], 0
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        cols.append(out[start : start + n * mul * ir.dim].reshape(n, mul * ir.dim))
        start += n * mul * ir.dim
    return torch.cat(cols, 1)


# ---------------------------------------------------------------- gradients and numerics


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("scope", ["per_irrep", "balanced"])
def test_fast_backward_matches_composite_and_double_backward(kind, scope):
    irreps = "2x0e+1x0o+2x1o+1x2e"
    x = _x(irreps, 5, seed=9, offset=0.3).requires_grad_()
    layer = _layer(kind, irreps, scope=scope)
    w, b = layer.weight, layer.bias
    for seg in (None, torch.tensor([0, 1, 0, 1, 1])):
        fast, slow = (_norm_fn(irreps, kind, scope, seg, fast=f) for f in (True, False))
        g = torch.randn(x.shape, generator=_gen(10), dtype=F64)
        ga = torch.autograd.grad(fast(x, w, b), (x, w, b), g)
        gb = torch.autograd.grad(slow(x, w, b), (x, w, b), g)
        for a, c in zip(ga, gb):
            torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
        assert gradcheck(fast, (x, w, b))
        y_w, y_w_ref = fast(x.detach(), w, b), slow(x.detach(), w, b)  # parameters only
        for a, c in zip(
            torch.autograd.grad(y_w, (w, b), g), torch.autograd.grad(y_w_ref, (w, b), g)
        ):
            torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
    assert gradgradcheck(fast, (x, w, b))  # double backward (segment mode): the composite


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize(("normalization", "scope"), OPTIONS)
@pytest.mark.parametrize("affine", ["both", "weight", "none"])
def test_fast_backward_every_option(kind, normalization, scope, affine):
    """Split 0e and 1o blocks (several runs per slot), every option, per sample and per segment."""
    irreps = "2x0e+1x1o+1x0o+1x0e+2x1o+1x2e"
    x = _x(irreps, 6, seed=21, offset=0.7).requires_grad_()
    layer = _layer(kind, irreps, scope=scope, normalization=normalization)
    w = layer.weight if affine != "none" else None
    b = layer.bias if affine == "both" else None
    options = {"centre": kind == "layer", "eps": 1e-3, "normalization": normalization,
               "scope": scope}  # fmt: skip
    g = torch.randn(x.shape, generator=_gen(22), dtype=F64)
    for batch in (None, torch.tensor([1, 0, 1, 1, 0, 1])):

        def f(x, *params, fast):
            wb = dict(zip(("w", "b"), params))
            return _irreps_norm(x, irreps, wb.get("w", w), wb.get("b", b), batch=batch,
                                num_segments=None, fast=fast, **options)  # fmt: skip

        params = tuple(t for t in (w, b) if t is not None)
        fast, slow = f(x, *params, fast=True), f(x, *params, fast=False)
        torch.testing.assert_close(fast, slow, rtol=1e-13, atol=1e-13)
        for a, c in zip(
            torch.autograd.grad(fast, (x, *params), g), torch.autograd.grad(slow, (x, *params), g)
        ):
            torch.testing.assert_close(a, c, rtol=1e-12, atol=1e-12)
        assert gradcheck(lambda *t: f(*t, fast=True), (x, *params))


def _norm_fn(irreps, kind, scope, batch, fast):
    """The functional norm of ``kind`` with fixed options: fast path or plain composite."""
    options = {"centre": kind == "layer", "eps": 1e-3, "normalization": "component", "scope": scope}

    def f(x, w, b):
        return _irreps_norm(x, irreps, w, b, batch=batch, num_segments=None, fast=fast, **options)

    return f


@pytest.mark.parametrize("kind", sorted(LAYERS))
@pytest.mark.parametrize("scope", ["per_irrep", "balanced"])
@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_no_nan_gradient_at_zero_features(kind, scope, dtype):
    irreps = "3x0e+1x0o+2x1o+1x2e"
    layer = LAYERS[kind](irreps, scope=scope, eps=None, bias=True, dtype=dtype)
    zero_high = _x(irreps, 4).to(dtype)
    zero_high[:, 4:] = 0.0  # 0e and 0o set, every l > 0 block zero
    for x0 in (torch.zeros_like(zero_high), zero_high):
        for batch in (None, torch.tensor([0, 0, 1, 1])):
            x = x0.clone().requires_grad_()
            y = layer(x, batch)
            (y * torch.arange(15, dtype=dtype)).sum().backward()
            for t in (y, x.grad, layer.weight.grad, layer.bias.grad):
                assert torch.isfinite(t).all()
            layer.zero_grad()


def test_autocast_bfloat16_statistics_in_float32():
    irreps = "8x0e+4x1o+2x2e"
    layer = EquivariantLayerNorm(irreps)
    x = (torch.randn(6, 30, generator=_gen(11)) * 3 + 40).bfloat16().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        h = torch.nn.functional.linear(x.detach().float(), torch.eye(30))  # autocast: bf16
        yh = layer(h)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.bfloat16 and yh.dtype == torch.bfloat16
    # the float32 computation on the same (bf16) numbers, rounded once at the end
    torch.testing.assert_close(y, layer(x.float()).bfloat16(), rtol=0, atol=0)
    torch.testing.assert_close(yh, layer(h.float()).bfloat16(), rtol=0, atol=0)
    y.float().square().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad).all()


def test_module_state_dtype_and_layout_reuse():
    irreps = "2x0e+1x1o"
    layer = EquivariantLayerNorm(irreps)
    assert layer.irreps_in == layer.irreps_out == o3.Irreps(irreps)
    assert set(layer.state_dict()) == {"weight", "bias"}
    x = _x(irreps, 3)
    y64 = layer.double()(x)  # integer layout: the same numbers as a layer built in float64
    torch.testing.assert_close(y64, EquivariantLayerNorm(irreps, dtype=F64)(x), rtol=0, atol=0)
    torch.testing.assert_close(
        y64, equivariant_layer_norm(x, irreps, layer.weight, layer.bias), rtol=0, atol=0
    )
    assert layer.layout.channel.dtype == torch.long
    assert "normalization='component'" in repr(layer)


# ---------------------------------------------------------------- errors


def test_bad_input_errors():
    with pytest.raises(ValueError, match="irreps: expected an e3nn irreps string"):
        EquivariantLayerNorm("3xfoo")
    with pytest.raises(TypeError, match="irreps: expected an irreps string"):
        EquivariantLayerNorm(5)
    with pytest.raises(ValueError, match="at least one irrep"):
        EquivariantRMSNorm("0x1o")
    with pytest.raises(
        ValueError, match="normalization: expected one of 'component', 'norm', got 'l2'"
    ):
        EquivariantLayerNorm("1o", normalization="l2")
    with pytest.raises(ValueError, match="scope: expected one of"):
        equivariant_layer_norm(torch.zeros(2, 3), "1o", scope="global")
    with pytest.raises(ValueError, match="eps: expected a positive"):
        EquivariantLayerNorm("1o", eps=-1.0)
    layer = EquivariantLayerNorm("2x0e+1x1o")
    with pytest.raises(
        ValueError, match=r"x: expected shape \[\.\.\., 5\] \(irreps 2x0e\+1x1o\), got \[4, 6\]"
    ):
        layer(torch.zeros(4, 6))
    with pytest.raises(TypeError, match="x: expected a real floating-point"):
        layer(torch.zeros(4, 5, dtype=torch.long))
    with pytest.raises(
        TypeError, match=r"batch: expected an int64 or int32 tensor.*got dtype torch.int16"
    ):
        layer(torch.zeros(4, 5), torch.zeros(4, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"batch: expected a vector \[N\]"):
        layer(torch.zeros(4, 5), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected shape \[N, dim\] with N = len\(batch\) = 3"):
        layer(torch.zeros(4, 5), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="non-negative"):
        layer(torch.zeros(2, 5), torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="num_segments: expected a positive int"):
        layer(torch.zeros(2, 5), torch.tensor([0, 1]), num_segments=0)
    with pytest.raises(ValueError, match=r"weight: expected shape \[3\]"):
        equivariant_layer_norm(torch.zeros(2, 5), "2x0e+1x1o", torch.ones(5))
    with pytest.raises(ValueError, match="layout was built for normalization='component'"):
        equivariant_rms_norm(torch.zeros(2, 5), layer.layout, normalization="norm")


def test_graph_ids_checked_against_num_segments_and_int32_accepted():
    layer = EquivariantLayerNorm("2x0e+1x1o")
    x = _x("2x0e+1x1o", 10)
    ids = torch.tensor([0] * 5 + [5] * 5)
    with pytest.raises(ValueError, match=r"batch: expected segment ids in 0 \.\. 2 "
                                         r"\(num_segments=3\), got ids 0 \.\. 5"):
        layer(x, ids, num_segments=3)  # was a raw IndexError
    with pytest.raises(ValueError, match=r"got ids -1 \.\. 1"):
        layer(x[:3], torch.tensor([0, -1, 1]), num_segments=2)
    b64 = torch.tensor([0] * 5 + [1] * 5)
    ref = layer(x, b64, num_segments=2)
    torch.testing.assert_close(layer(x, b64.int(), num_segments=2), ref, rtol=0, atol=0)
    torch.testing.assert_close(layer(x, b64.int()), ref, rtol=0, atol=0)
    torch.testing.assert_close(
        equivariant_rms_norm(x, "2x0e+1x1o", batch=b64.int()),
        equivariant_rms_norm(x, "2x0e+1x1o", batch=b64), rtol=0, atol=0)


def test_torchscript_unsupported_as_documented():
    from pathlib import Path

    with pytest.raises(Exception):
        torch.jit.script(EquivariantLayerNorm("2x0e+1x1o"))
    text = (Path(__file__).resolve().parents[2] / "docs" / "o3_norm.md").read_text()
    assert "`torch.jit.script` is not supported" in text
    assert "int32" in text and "num_segments" in text
    layer, x = EquivariantLayerNorm("2x0e+1x1o"), _x("2x0e+1x1o", 4).float()
    exported = torch.export.export(layer, (x,))
    torch.testing.assert_close(exported.module()(x), layer(x))


# ---------------------------------------------------------------- torch.compile


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_eager_aot_and_inductor():
    irreps = "4x0e+1x0o+3x1o+2x2e"
    layer = _layer("layer", irreps, scope="balanced").float()
    x = _x(irreps, 6).float().requires_grad_()
    batch = torch.tensor([0, 0, 1, 1, 1, 1])
    y_ref = layer(x)
    (g_ref,) = torch.autograd.grad(y_ref.square().sum(), x)
    for backend in ("eager", "inductor"):
        compiled = torch.compile(layer, backend=backend, fullgraph=True)
        y = compiled(x)
        (g,) = torch.autograd.grad(y.square().sum(), x)
        torch.testing.assert_close(y, y_ref)
        torch.testing.assert_close(g, g_ref)
    seg = torch.compile(
        layer, backend="aot_eager", fullgraph=True
    )  # inductor: ~40 s for this graph
    torch.testing.assert_close(seg(x, batch, num_segments=2), layer(x, batch))


def test_escnn_layers_import_without_escnn():
    from geonorm.o3 import escnn_norm  # escnn is imported only when a layer is built

    if importlib.util.find_spec("escnn") is None:
        with pytest.raises(ImportError, match=r"pip install 'geonorm\[escnn\]'"):
            escnn_norm.FieldLayerNorm(None)
