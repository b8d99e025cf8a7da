"""Poincaré FC / convolution / activation / residual layers: ball membership, loop reference, hypll, init, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from geonorm._numerics import ball_margin
from geonorm.hyperbolic import (
    PoincareConv2d,
    PoincareLinear,
    PoincareReLU,
    PoincareResidualBlock,
    beta_concat,
    conv_output_size,
    expmap0,
    logmap0,
    mobius_add,
    poincare_fc,
    poincare_relu,
    poincare_residual,
)
from . import ball_points

F64 = torch.float64
EPS64 = torch.finfo(F64).eps


def _sc_norm(y: torch.Tensor, c: float, dim: int = -1) -> torch.Tensor:
    return math.sqrt(c) * y.double().norm(dim=dim)


def _near_boundary(shape, c, dtype, seed=0):
    """Points with sqrt(c)|x| spread over (0.9, 1 - margin): the hardest inputs the ball holds."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(*shape, generator=g, dtype=F64)
    r = 0.9 + (0.1 - 2 * ball_margin(dtype)) * torch.rand(*shape[:-1], 1, generator=g, dtype=F64)
    return (d / d.norm(dim=-1, keepdim=True) * r / math.sqrt(c)).to(dtype)


# -- outputs stay strictly inside the ball ------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("c", [0.1, 1.0, 4.0])
def test_fc_keeps_outputs_inside_the_ball_near_the_boundary(dtype, c):
    torch.manual_seed(0)
    layer = PoincareLinear(6, 5, c=c, id_init=False, dtype=dtype)
    with torch.no_grad():  # large weights and offsets: outputs far out, sinh(sqrt(c) v) overflows without care
        layer.weight.mul_(40.0)
        layer.bias.normal_(0.0, 2.0)
    x = _near_boundary((64, 6), c, dtype)
    y = layer(x)
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert (_sc_norm(y, c) <= 1.0 - ball_margin(dtype) * (1 - 1e-3)).all()
    assert (_sc_norm(y, c) > 0.99).any()  # the test reaches the boundary region


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_conv_relu_and_residual_keep_outputs_inside_the_ball(dtype):
    c = 1.0
    torch.manual_seed(1)
    conv = PoincareConv2d(3, 4, 3, stride=2, padding=1, id_init=False, c=c, dtype=dtype)
    with torch.no_grad():
        conv.weight.mul_(30.0)
    x = _near_boundary((2, 5, 5, 3), c, dtype).permute(0, 3, 1, 2)  # [B, C, H, W]
    y = conv(x)
    assert y.shape == (2, 4, 3, 3) and torch.isfinite(y).all()
    assert (_sc_norm(y, c, 1) <= 1.0 - ball_margin(dtype) * (1 - 1e-3)).all()
    r = poincare_relu(y, c=c, dim=1)
    s = poincare_residual(y, y, c=c, dim=1)
    for out in (r, s):
        assert torch.isfinite(out).all() and (_sc_norm(out, c, 1) < 1.0).all()


# -- the convolution is the FC layer on beta-concatenated patches ----------------------
def _conv_by_loop(x, conv):
    """Independent reference: gather each patch pixel by pixel, beta-concatenate, apply the FC map."""
    b, ch, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
    ho, wo = conv_output_size(h, kh, sh, ph), conv_output_size(w, kw, sw, pw)
    out = torch.empty(b, conv.out_channels, ho, wo, dtype=x.dtype)
    origin = torch.zeros(b, ch, dtype=x.dtype)
    for i in range(ho):
        for j in range(wo):
            pixels = []
            for di in range(kh):
                for dj in range(kw):
                    r, s = i * sh - ph + di, j * sw - pw + dj
                    inside = 0 <= r < h and 0 <= s < w
                    pixels.append(x[:, :, r, s] if inside else origin)  # [B, C]
            patch = beta_concat(pixels, c=conv.c)  # [B, K*C], pixel-major
            k = kh * kw
            patch = patch.reshape(b, k, ch).transpose(1, 2).reshape(b, ch * k)  # to channel-major
            out[:, :, i, j] = poincare_fc(patch, conv.weight, conv.bias, c=conv.c)
    return out


@pytest.mark.parametrize("kernel,stride,padding,hw", [((3, 3), 1, 1, (5, 6)), ((3, 2), 2, 1, (7, 6)), ((1, 1), 2, 0, (5, 5))])
def test_conv_equals_the_fc_layer_applied_patch_by_patch(kernel, stride, padding, hw):
    torch.manual_seed(2)
    conv = PoincareConv2d(3, 4, kernel, stride=stride, padding=padding, c=0.7, id_init=False, dtype=F64)
    with torch.no_grad():
        conv.weight.mul_(5.0)
        conv.bias.normal_(0.0, 0.3)
    x = ball_points((2, *hw, 3), 0.7, radius=0.9, seed=3).permute(0, 3, 1, 2).contiguous()
    y = conv(x)
    ref = _conv_by_loop(x, conv)
    assert y.shape == ref.shape == (2, 4, conv_output_size(hw[0], kernel[0], stride, padding),
                                    conv_output_size(hw[1], kernel[1], stride, padding))
    # a few hyperbolic functions of moderate arguments: error a few hundred eps at unit scale
    assert torch.allclose(y, ref, rtol=0, atol=1e3 * EPS64)


def test_output_size_is_the_standard_formula_for_stride_two():
    # (H + 2p - k) // s + 1: for H = 8, k = 3, p = 1, s = 2 that is 4 (the Poincaré ResNet
    # code's (H - k + 1 + 2p) // s gives 3)
    conv = PoincareConv2d(2, 2, 3, stride=2, padding=1)
    assert conv(torch.zeros(1, 2, 8, 8)).shape[-2:] == (4, 4)
    assert torch.nn.Conv2d(2, 2, 3, stride=2, padding=1)(torch.zeros(1, 2, 8, 8)).shape[-2:] == (4, 4)


# -- agreement with hypll -------------------------------------------------------------
def _hypll_ball(c: float):
    hb = pytest.importorskip("hypll.manifolds.poincare_ball")
    # hypll's curvature is softplus(value): pass the inverse softplus of c
    value = c + math.log(-math.expm1(-c))
    curvature = hb.Curvature(value=value)
    curvature.value.data = torch.tensor(value, dtype=F64)  # hypll stores float32: sqrt(c) would be too
    ball = hb.PoincareBall(c=curvature)
    return ball, float(ball.c())  # the c hypll actually uses


@pytest.mark.parametrize("c", [0.1, 1.0, 2.5])
def test_fc_agrees_with_hypll_hlinear(c):
    from hypll.nn import HLinear
    from hypll.tensors import ManifoldTensor

    ball, c_used = _hypll_ball(c)
    peer = HLinear(5, 4, manifold=ball)
    torch.manual_seed(4)
    layer = PoincareLinear(5, 4, c=c_used, id_init=False, dtype=F64)
    with torch.no_grad():
        layer.bias.normal_(0.0, 0.5)
        peer.z.tensor.data = layer.weight.detach().clone()  # float64 (HLinear.double() refuses)
        peer.bias.data = layer.bias.detach().clone()
    x = ball_points((16, 5), c_used, radius=0.8, seed=5)
    theirs = peer(ManifoldTensor(x, manifold=ball, man_dim=-1)).tensor
    assert torch.allclose(layer(x), theirs, rtol=1e3 * EPS64, atol=1e3 * EPS64)


def test_conv_agrees_with_hypll_hconvolution2d():
    from hypll.nn import HConvolution2d
    from hypll.tensors import ManifoldTensor

    ball, c_used = _hypll_ball(1.0)
    peer = HConvolution2d(3, 4, 3, manifold=ball, stride=1, padding=1)
    torch.manual_seed(5)
    conv = PoincareConv2d(3, 4, 3, padding=1, c=c_used, id_init=False, dtype=F64)
    with torch.no_grad():
        conv.bias.normal_(0.0, 0.3)
        peer.weights.tensor.data = conv.weight.detach().clone()
        peer.bias.data = conv.bias.detach().clone()
    x = ball_points((2, 5, 5, 3), c_used, radius=0.8, seed=6).permute(0, 3, 1, 2).contiguous()
    theirs = peer(ManifoldTensor(x, manifold=ball, man_dim=1)).tensor
    assert torch.allclose(conv(x), theirs, rtol=1e3 * EPS64, atol=1e3 * EPS64)


# -- identity initialisation ------------------------------------------------------------
def test_identity_init_maps_origin_to_origin_and_is_near_identity_on_small_inputs():
    fc = PoincareLinear(6, 6, c=1.0, dtype=F64)
    conv = PoincareConv2d(6, 6, 3, padding=1, c=1.0, dtype=F64)
    with torch.no_grad():
        assert fc(torch.zeros(3, 6, dtype=F64)).abs().max() == 0
        assert conv(torch.zeros(1, 6, 4, 4, dtype=F64)).abs().max() == 0
        # FC with weight I/2: w = lambda_x x and 1 + sqrt(1 + c|w|^2) = lambda_x, so y = x exactly
        x = ball_points((64, 6), 1.0, radius=0.9, seed=7)
        assert torch.allclose(fc(x), x, rtol=0, atol=100 * EPS64)
        errors = {}
        for scale in (1e-1, 1e-2, 1e-3):
            xm = scale * ball_points((2, 4, 4, 6), 1.0, radius=1.0, seed=8).permute(0, 3, 1, 2)
            errors[scale] = float(((conv(xm) - xm).norm(dim=1) / xm.norm(dim=1)).max())
    # conv (centre tap I / 2beta): y = x (1 + O(|patch|^2)), the 9 pixels of the patch entering the
    # conformal factor: relative error below 2 * 9 * scale^2, falling 100x per 10x
    for scale, err in errors.items():
        assert err <= 18 * scale**2, (scale, err)
    assert errors[1e-2] < 2e-2 * errors[1e-1] and errors[1e-3] < 2e-2 * errors[1e-2]


def test_identity_init_of_the_paper_for_fc_and_hnn_init_otherwise():
    fc = PoincareLinear(3, 5)
    assert torch.equal(fc.weight[:, :3], 0.5 * torch.eye(3))
    assert (fc.weight[:, 3:] != 0).all()  # extra outputs drawn, not dead zeros
    assert torch.equal(PoincareLinear(5, 3).weight, 0.5 * torch.eye(5, 3))
    torch.manual_seed(0)
    big = PoincareLinear(200, 100, id_init=False)
    assert abs(float(big.weight.detach().std()) - (2 * 200 * 100) ** -0.5) < 0.05 * (2 * 200 * 100) ** -0.5


# -- gradients ---------------------------------------------------------------------------
def test_gradcheck_fc_conv_relu_residual():
    torch.manual_seed(9)
    x = ball_points((3, 4), 0.8, radius=0.7, seed=10).requires_grad_(True)
    w = (0.4 * torch.randn(4, 3, dtype=F64)).requires_grad_(True)
    r = (0.2 * torch.randn(3, dtype=F64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b, d: poincare_fc(a, b, d, c=0.8), (x, w, r))
    conv = PoincareConv2d(2, 3, 2, stride=2, padding=1, c=0.8, id_init=False, dtype=F64)
    xm = ball_points((1, 3, 3, 2), 0.8, radius=0.7, seed=11).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    assert torch.autograd.gradcheck(conv, (xm,))
    assert torch.autograd.gradcheck(lambda a: poincare_relu(a, c=0.8, dim=1), (xm,))
    y = ball_points((1, 3, 3, 2), 0.8, radius=0.7, seed=12).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: poincare_residual(a, b, c=0.8, dim=1), (xm, y))


def _value_and_grads(f, inputs, upstream):
    out = f(*inputs)
    return out, torch.autograd.grad(out, inputs, upstream)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("scale", [0.4, 60.0])  # 60: rows whose sinh overflows, outputs on the margin sphere
def test_fused_fc_backward_agrees_with_autograd_of_the_composite(bias, scale):
    # With a float curvature the FC map runs as one autograd.Function with a written-out
    # backward; with a curvature that needs a gradient, as the composite of its formulas
    # differentiated by autograd. Both must agree to rounding, values and gradients.
    c = 0.8
    shrink = torch.tensor([[0.005], [0.02], [0.2], [1.0], [1.0], [1.0]], dtype=F64)  # small and saturated rows
    x = (shrink * ball_points((6, 4), c, radius=0.95, seed=20)).requires_grad_(True)
    gen = torch.Generator().manual_seed(21)
    w = (scale * torch.randn(4, 5, generator=gen, dtype=F64)).requires_grad_(True)
    inputs = (x, w)
    if bias:
        inputs += ((0.3 * torch.randn(5, generator=gen, dtype=F64)).requires_grad_(True),)
    upstream = torch.randn(6, 5, generator=gen, dtype=F64)
    c_grad = torch.tensor(c, dtype=F64, requires_grad=True)
    fused, g_fused = _value_and_grads(lambda *a: poincare_fc(*a, c=c), inputs, upstream)
    comp, g_comp = _value_and_grads(lambda *a: poincare_fc(*a, c=c_grad), inputs, upstream)
    assert torch.allclose(fused, comp, rtol=1e-12, atol=1e-14)
    # saturated rows have a true gradient ~e^{-M}; the composite leaves rounding there
    # (eps times an O(|w|) chain factor), hence the absolute floor
    for a, b in zip(g_fused, g_comp, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10 * max(1.0, float(b.abs().max())))
    conv = PoincareConv2d(3, 4, 3, padding=1, c=c, id_init=False, dtype=F64)
    conv_comp = PoincareConv2d(3, 4, 3, padding=1, c=c, id_init=False, learnable_curvature=True, dtype=F64)
    conv_comp.load_state_dict(conv.state_dict(), strict=False)
    xm = ball_points((2, 5, 5, 3), c, radius=0.9, seed=22).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
    up = torch.randn(2, 4, 5, 5, generator=gen, dtype=F64)
    fused, g_fused = _value_and_grads(lambda a, _w: conv(a), (xm, conv.weight), up)
    comp, g_comp = _value_and_grads(lambda a, _w: conv_comp(a), (xm, conv_comp.weight), up)
    assert torch.allclose(fused, comp, rtol=1e-12, atol=1e-14)
    for a, b in zip(g_fused, g_comp, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-10 * max(1.0, float(b.abs().max())))


def test_learnable_shared_curvature_gets_a_gradient():
    fc = PoincareLinear(3, 3, learnable_curvature=True, dtype=F64)
    act = PoincareReLU(ball=fc.geometry.ball)
    x = ball_points((4, 3), 1.0, seed=13)
    act(fc(x)).sum().backward()
    assert fc.geometry.ball.isp_c.grad is not None and fc.geometry.ball.isp_c.grad != 0
    assert abs(float(fc.c.detach()) - 1.0) < 1e-12


# -- relu and residual are the paper's maps ---------------------------------------------------
def test_relu_and_residual_match_their_definitions():
    x = ball_points((5, 4), 1.0, seed=14)
    y = ball_points((5, 4), 1.0, seed=15)
    assert torch.allclose(poincare_relu(x, c=1.0), expmap0(torch.relu(logmap0(x, c=1.0)), c=1.0), atol=10 * EPS64)
    assert torch.allclose(poincare_residual(x, y, c=1.0), mobius_add(x, y, c=1.0), atol=10 * EPS64)
    xm, ym = x.T.reshape(1, 4, 5, 1), y.T.reshape(1, 4, 5, 1)  # channels on dim 1
    assert torch.allclose(poincare_residual(xm, ym, c=1.0, dim=1)[0, :, :, 0].T, mobius_add(x, y, c=1.0), atol=10 * EPS64)


def test_residual_block_downsamples_and_stays_in_the_ball():
    torch.manual_seed(16)
    block = PoincareResidualBlock(4, 8, stride=2, bn="frechet", dtype=F64)
    x = ball_points((2, 6, 6, 4), 1.0, radius=0.5, seed=17).permute(0, 3, 1, 2)
    y = block(x)
    assert y.shape == (2, 8, 3, 3) and (_sc_norm(y, 1.0, 1) < 1).all()
    assert block.bn1.geometry.ball is block.conv1.geometry.ball  # one shared ball


# -- bad input ---------------------------------------------------------------------------------
def test_bad_inputs_raise_clear_errors():
    fc, conv = PoincareLinear(3, 2), PoincareConv2d(3, 2, 3)
    with pytest.raises(TypeError, match="x: expected a real floating-point tensor"):
        fc(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="x: expected a torch.Tensor"):
        conv([[0.0]])
    with pytest.raises(ValueError, match=r"x: expected points of shape \[..., 3\]"):
        fc(torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"x: expected shape \[B, 3, H, W\]"):
        conv(torch.zeros(1, 2, 5, 5))
    with pytest.raises(ValueError, match="strictly inside the Poincaré ball"):
        fc(torch.tensor([[1.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="strictly inside the Poincaré ball"):
        conv(torch.full((1, 3, 4, 4), 0.7))
    with pytest.raises(ValueError, match="x: expected H, W"):
        conv(torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="finite"):
        fc(torch.tensor([[float("nan"), 0.0, 0.0]]))
    with pytest.raises(ValueError, match="kernel_size"):
        PoincareConv2d(3, 2, 0)
    with pytest.raises(ValueError, match="c: expected a finite positive"):
        PoincareLinear(3, 2, c=-1.0)
    with pytest.raises(ValueError, match="bn"):
        PoincareResidualBlock(3, 3, bn="batch")
