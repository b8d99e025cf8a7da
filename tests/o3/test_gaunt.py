"""Gaunt tensor product: coefficients, agreement with e3nn, equivariance, gradients, errors.

The references are independent of geonorm's implementation: e3nn's
``spherical_harmonics`` integrated by Gauss–Legendre quadrature, sympy's
Wigner 3j symbols, and ``e3nn.o3.TensorProduct`` with one weighted
instruction per even path.
"""

import math
from functools import cache

import numpy as np
import pytest
import torch
from e3nn import o3
from sympy.physics.wigner import wigner_3j

from geonorm.o3 import _gaunt_backends, _gaunt_basis
from geonorm.o3.gaunt import (
    GauntTensorProduct,
    gaunt_coefficients,
    gaunt_tensor_product,
)
from geonorm.testing import IrrepsAction, assert_equivariant, equivariance_error

F64 = torch.float64
BACKENDS = ("grid", "fft")
NORMS = ("component", "integral", "norm")


def _irreps(lmax, mul, pseudo=False):
    return "+".join(f"{mul}x{l}{'eo'[(l + pseudo) % 2]}" for l in range(lmax + 1))


def _randn(*shape, seed=0, dtype=F64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _scale(l, normalization):
    return {"integral": 1.0, "component": math.sqrt(4 * math.pi)}.get(
        normalization, math.sqrt(4 * math.pi / (2 * l + 1))
    )


@cache
def _e3nn_sh_grid(lmax, normalization):
    """e3nn's harmonics on an exact quadrature grid: weights [G], values [G, (lmax+1)^2]."""
    n = 3 * lmax // 2 + 2
    z, w = np.polynomial.legendre.leggauss(n)
    n_phi = 3 * lmax + 1
    theta, phi = np.meshgrid(np.arccos(z), 2 * np.pi * np.arange(n_phi) / n_phi, indexing="ij")
    xyz = np.stack([np.sin(theta) * np.sin(phi), np.cos(theta), np.sin(theta) * np.cos(phi)], -1)
    y = o3.spherical_harmonics(
        list(range(lmax + 1)), torch.tensor(xyz.reshape(-1, 3)), True, normalization=normalization
    )
    weights = torch.tensor(np.repeat(w, n_phi) * 2 * np.pi / n_phi)
    return weights, y


def _quadrature_gaunt(l1, l2, l3, normalization):
    weights, y = _e3nn_sh_grid(max(l1, l2, l3), normalization)
    ys = [y[:, l * l : (l + 1) ** 2] for l in (l1, l2, l3)]
    g = torch.einsum("g,gi,gj,gk->ijk", weights, *ys)
    return g / torch.einsum("g,gk,gk->k", weights, ys[2], ys[2])


def _path_weight(l1, l2, l3, normalization):
    """Gaunt = weight * e3nn wigner_3j (the closed form derived in geonorm.o3.gaunt)."""
    three_j = abs(float(wigner_3j(l1, l2, l3, 0, 0, 0)))
    integral = math.sqrt((2 * l1 + 1) * (2 * l2 + 1) * (2 * l3 + 1) / (4 * math.pi)) * three_j
    return integral * _scale(l1, normalization) * _scale(l2, normalization) / _scale(l3, normalization)


def _e3nn_reference(tp: GauntTensorProduct):
    """e3nn TensorProduct with one weighted instruction per even path, in float64."""
    mode = "uuu" if tp.channelwise else "uvuv"
    outs = [ir for _, ir in tp.irreps_out]
    instructions, weights = [], []
    for i1, (_, a) in enumerate(tp.irreps_in1):
        for i2, (_, b) in enumerate(tp.irreps_in2):
            for i3, c in enumerate(outs):
                even = (a.l + b.l + c.l) % 2 == 0
                if c.p == a.p * b.p and abs(a.l - b.l) <= c.l <= a.l + b.l and even:
                    instructions.append((i1, i2, i3, mode, True))
                    weights.append(_path_weight(a.l, b.l, c.l, tp.normalization))
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        ref = o3.TensorProduct(
            tp.irreps_in1, tp.irreps_in2, tp.irreps_out, instructions,
            irrep_normalization="none", path_normalization="none",
        )  # fmt: skip
    finally:
        torch.set_default_dtype(previous)
    with torch.no_grad():
        ref.weight.copy_(torch.cat([w * torch.ones(math.prod(i.path_shape), dtype=F64)
                                    for w, i in zip(weights, ref.instructions)]))  # fmt: skip
    return ref


# --------------------------------------------------------------------------- basis


def test_harmonics_are_e3nns():
    lmax = 11  # the highest degree e3nn 0.4.4 (the oldest supported) implements
    gen = torch.Generator().manual_seed(0)
    beta = torch.rand(40, generator=gen, dtype=F64) * math.pi
    alpha = torch.rand(40, generator=gen, dtype=F64) * 2 * math.pi
    xyz = torch.stack([beta.sin() * alpha.sin(), beta.cos(), beta.sin() * alpha.cos()], -1)
    ref = o3.spherical_harmonics(list(range(lmax + 1)), xyz, True, normalization="integral")
    p = _gaunt_basis.legendre(lmax, beta.cos().numpy())  # [l, m, n]
    ours = []
    a = alpha.numpy()
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            az = {True: np.sqrt(2) * np.sin(-m * a), False: np.sqrt(2) * np.cos(m * a)}[m < 0]
            ours.append(p[l, abs(m)] * (az if m else 1.0))
    np.testing.assert_allclose(np.stack(ours, -1), ref.numpy(), atol=1e-12)


@pytest.mark.parametrize("normalization", NORMS)
def test_gaunt_coefficients_equal_quadrature_of_e3nn_harmonics(normalization):
    for l1 in range(5):
        for l2 in range(5):
            for l3 in range(9):
                ours = gaunt_coefficients(l1, l2, l3, normalization=normalization)
                ref = _quadrature_gaunt(l1, l2, l3, normalization)
                torch.testing.assert_close(ours, ref, atol=1e-12, rtol=0)


def test_gaunt_is_positive_multiple_of_wigner_3j():
    for l1, l2, l3 in [(1, 1, 2), (2, 2, 2), (3, 2, 3), (4, 3, 5), (6, 4, 8), (8, 8, 8)]:
        g = gaunt_coefficients(l1, l2, l3, normalization="integral")
        c = o3.wigner_3j(l1, l2, l3, dtype=F64)
        torch.testing.assert_close(g, _path_weight(l1, l2, l3, "integral") * c, atol=1e-13, rtol=0)
    for l1, l2, l3 in [(1, 1, 1), (2, 1, 2), (3, 3, 3)]:  # odd l1 + l2 + l3: no coupling
        assert gaunt_coefficients(l1, l2, l3).abs().max() == 0


def test_theta_fourier_series_is_exact_and_sparse():
    lmax = 10
    t = _gaunt_basis.theta_fourier(lmax)  # [l, m, u]
    theta = np.linspace(0.1, 6.2, 17)
    u = np.arange(-lmax, lmax + 1)
    series = (t[..., None] * np.exp(1j * u[:, None] * theta)).sum(-2)  # [l, m, n]
    sign = np.sign(np.sin(theta)) ** np.arange(lmax + 1)[None, :, None]
    np.testing.assert_allclose(series, _gaunt_basis.legendre(lmax, np.cos(theta)) * sign, atol=1e-13)
    # u = -l, -l+2, ..., l, except u = 0 in the sine series of odd m: O(L^3) in all
    count = sum(l + 1 - (l % 2 == 0 and m % 2 == 1) for l in range(lmax + 1) for m in range(l + 1))
    assert np.count_nonzero(t) == count


# --------------------------------------------------------------------------- the product


@pytest.mark.parametrize("backend", BACKENDS)
def test_product_of_functions_pointwise(backend):
    # Defining property: sum_lm z_lm Y_lm(r) = f1(r) f2(r) when nothing is truncated.
    tp = GauntTensorProduct(_irreps(3, 2), "2x0e+2x2e+2x3o", backend=backend, dtype=F64)
    x1, x2 = _randn(3, tp.irreps_in1.dim, seed=1), _randn(3, tp.irreps_in2.dim, seed=2)
    r = _randn(7, 3, seed=3)

    def values(x, irreps):  # [batch, points, channels]
        total = 0
        for (mul, ir), s in zip(irreps, irreps.slices()):
            y = o3.spherical_harmonics(ir.l, r, True, normalization="component")  # [points, 2l+1]
            total = total + (x[:, s].reshape(3, 1, mul, ir.dim) * y[None, :, None]).sum(-1)
        return total

    torch.testing.assert_close(
        values(tp(x1, x2), tp.irreps_out), values(x1, tp.irreps_in1) * values(x2, tp.irreps_in2),
        atol=1e-12, rtol=1e-12,
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
def test_equals_e3nn_tensor_product_up_to_l8(backend, dtype):
    irreps = _irreps(8, 2)
    tp = GauntTensorProduct(irreps, irreps, lmax_out=8, backend=backend, dtype=dtype)
    ref = _reference_l8()
    x1, x2 = _randn(3, tp.irreps_in1.dim, seed=4), _randn(3, tp.irreps_in2.dim, seed=5)
    want = ref(x1, x2)
    got = tp(x1.to(dtype), x2.to(dtype)).double()
    err = (got - want).abs().max() / want.abs().max()
    assert err < (1e-10 if dtype == F64 else 1e-5), float(err)


@cache
def _reference_l8():
    return _e3nn_reference(GauntTensorProduct(_irreps(8, 2), _irreps(8, 2), lmax_out=8))


@pytest.mark.parametrize(
    "irreps_in1, irreps_in2, kwargs",
    [
        (_irreps(4, 3), _irreps(3, 3), {"normalization": "integral"}),  # full output, lmax 7
        ("2x0e+2x1o+2x1e+2x2e+2x0o", "2x0o+2x1o+2x2o", {"lmax_out": 3}),  # both parity classes
        ("2x0e+2x1e+2x2o", "2x1o+2x2e", {"normalization": "norm"}),  # input 1 mixed
        (_irreps(3, 2), _irreps(2, 3, pseudo=True), {"channelwise": False}),  # uvuv
        ("3x2e+3x0e", "3x1o", {"filter_ir_out": ["1o", "3o"]}),  # any order, filter
    ],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_equals_e3nn_for_parities_layouts_and_normalizations(irreps_in1, irreps_in2, kwargs, backend):
    tp = GauntTensorProduct(irreps_in1, irreps_in2, backend=backend, dtype=F64, **kwargs)
    x1, x2 = _randn(4, tp.irreps_in1.dim, seed=6), _randn(4, tp.irreps_in2.dim, seed=7)
    want = _e3nn_reference(tp)(x1, x2).detach()
    torch.testing.assert_close(tp(x1, x2), want, atol=1e-12 * float(want.abs().max()), rtol=0)


def test_output_irreps_follow_the_parity_rule():
    # 1o x 1o: 0e and 2e only, the cross product (1e) has l1 + l2 + l3 odd.
    assert str(GauntTensorProduct("1o", "1o").irreps_out) == "1x0e+1x2e"
    assert str(GauntTensorProduct("1e", "1o").irreps_out) == "1x0o+1x2o"
    assert str(GauntTensorProduct("0e+1e", "0o").irreps_out) == "1x0o+1x1o"  # 1e x 0o -> 1o
    assert str(GauntTensorProduct("2x0e+2x1o", "2x1o", channelwise=False).irreps_out) == "4x0e+4x1o+4x2e"


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncation_and_filter_select_from_the_full_product(backend):
    full = GauntTensorProduct(_irreps(3, 2), _irreps(2, 2), backend=backend, dtype=F64)
    x1, x2 = _randn(5, full.irreps_in1.dim, seed=8), _randn(5, full.irreps_in2.dim, seed=9)
    y = full(x1, x2)
    cut = GauntTensorProduct(_irreps(3, 2), _irreps(2, 2), lmax_out=2, backend=backend, dtype=F64)
    torch.testing.assert_close(cut(x1, x2), y[:, : cut.irreps_out.dim], atol=1e-13, rtol=0)
    sel = GauntTensorProduct(
        _irreps(3, 2), _irreps(2, 2), filter_ir_out=["1o", "4e"], backend=backend, dtype=F64
    )
    blocks = zip(full.irreps_out, full.irreps_out.slices())
    keep = torch.cat([y[:, s] for (_, ir), s in blocks if str(ir) in ("1o", "4e")], -1)
    torch.testing.assert_close(sel(x1, x2), keep, atol=1e-13, rtol=0)


def test_weights_scale_inputs_and_outputs_per_channel_and_irrep():
    ir1, ir2 = "2x0e+2x1o+2x2e", "2x0e+2x1o"
    tp = GauntTensorProduct(ir1, ir2, weights="factorized", dtype=F64)
    plain = GauntTensorProduct(ir1, ir2, dtype=F64)
    assert {n for n, _ in tp.named_parameters()} == {"weight_in1", "weight_in2", "weight_out"}
    assert GauntTensorProduct(ir1, ir2, weights=True).weight_out.shape == (2, 4)  # 0e 1o 2e 3o
    with torch.no_grad():
        for w in tp.parameters():
            w.copy_(_randn(*w.shape, seed=w.numel()))

    def scaled(x, irreps, w):  # weight [mul, irrep] on x [batch, dim]
        blocks = enumerate(zip(irreps, irreps.slices()))
        return torch.cat(
            [(x[:, s].view(-1, mul, ir.dim) * w[:, i, None]).flatten(1) for i, ((mul, ir), s) in blocks],
            dim=-1,
        )

    x1, x2 = _randn(3, 18, seed=10), _randn(3, 8, seed=11)
    inner = plain(scaled(x1, tp.irreps_in1, tp.weight_in1), scaled(x2, tp.irreps_in2, tp.weight_in2))
    want = scaled(inner, tp.irreps_out, tp.weight_out)
    torch.testing.assert_close(tp(x1, x2), want, atol=1e-12, rtol=0)


def test_functional_equals_module_and_uvuv_pairs_channels():
    x1, x2 = _randn(2, 3, 12, seed=12), _randn(3, 9, seed=13)  # leading dims broadcast
    tp = GauntTensorProduct("3x0e+3x1o", "3x1o", channelwise=False, backend="fft", dtype=F64)
    y = tp(x1, x2)
    assert y.shape == (2, 3, tp.irreps_out.dim)
    functional = gaunt_tensor_product(x1, x2, "3x0e+3x1o", "3x1o", channelwise=False)
    torch.testing.assert_close(y, functional, atol=1e-12, rtol=0)
    # output channel u * 3 + v is the product of channel u of x1 and channel v of x2
    pair = gaunt_tensor_product(x1[..., [1, 6, 7, 8]], x2[..., [6, 7, 8]], "0e+1o", "1o")  # u=1, v=2
    blocks = zip(tp.irreps_out, tp.irreps_out.slices())
    got = torch.cat([y[..., s].reshape(2, 3, 9, ir.dim)[..., 5, :] for (_, ir), s in blocks], -1)
    torch.testing.assert_close(got, pair, atol=1e-12, rtol=0)


# --------------------------------------------------------------------------- equivariance


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channelwise", [True, False])
def test_o3_equivariance_with_improper_rotations(backend, channelwise):
    ir1, ir2 = "2x0e+2x1o+2x1e+2x2e+2x3o+2x0o", "2x0o+2x1o+2x2e+2x2o"
    tp = GauntTensorProduct(ir1, ir2, channelwise=channelwise, backend=backend, weights="factorized")
    with torch.no_grad():
        for w in tp.parameters():
            w.copy_(_randn(*w.shape, seed=3, dtype=w.dtype))
    x = (_randn(6, tp.irreps_in1.dim, seed=14), _randn(6, tp.irreps_in2.dim, seed=15))
    actions = (IrrepsAction(tp.irreps_in1), IrrepsAction(tp.irreps_in2))
    result = assert_equivariant(tp, actions, x, IrrepsAction(tp.irreps_out), n_samples=6)
    assert any(float(torch.det(s.element.rotation)) < 0 for s in result.samples)  # improper included
    # The parity label matters: p3 = p1 p2 flipped is caught by the improper elements.
    wrong = o3.Irreps([(mul, (ir.l, -ir.p)) for mul, ir in tp.irreps_out])
    assert not equivariance_error(tp, actions, x, IrrepsAction(wrong), n_samples=6).passed


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channelwise", [True, False])
def test_gradcheck_float64(backend, channelwise):
    tp = GauntTensorProduct(
        "2x0e+2x1o+2x2e", "2x0o+2x1e",
        channelwise=channelwise, backend=backend, weights="factorized", dtype=F64,
    )  # fmt: skip
    x1 = _randn(2, tp.irreps_in1.dim, seed=16).requires_grad_(True)
    x2 = _randn(2, tp.irreps_in2.dim, seed=17).requires_grad_(True)
    names = ["weight_in1", "weight_in2", "weight_out"]

    def f(a, b, *ws):
        return torch.func.functional_call(tp, dict(zip(names, ws)), (a, b))

    ws = [1 + 0.1 * _randn(*getattr(tp, n).shape, seed=i) for i, n in enumerate(names)]
    ws = [w.requires_grad_(True) for w in ws]
    assert torch.autograd.gradcheck(f, (x1, x2, *ws))


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (("3x0e+3x1q", "3x0e"), {}, r"irreps_in1: expected an e3nn irreps string.*got '3x0e\+3x1q'"),
        (("4x0e+4x1o", "2x0e+2x1o"), {}, r"irreps_in2: expected 4 channels .* or 1 \(broadcast\) with channelwise=True, got 2 in 2x0e\+2x1o"),
        (("0x0e", "1o"), {}, r"irreps_in1: expected at least one irrep with a positive multiplicity"),
        (("1o", "1o"), {"shared_weights": False, "internal_weights": True}, r"internal_weights: expected False with shared_weights=False"),
        (("1o", "1o"), {"internal_weights": False, "weights": False}, r"weights: expected 'out' or 'factorized' with internal_weights=False"),
        (("1o", "1o"), {"lmax_out": -1}, r"lmax_out: expected a non-negative int or None, got -1"),
        (("1o", "1o"), {"backend": "cg"}, r"backend: expected one of 'fft', 'grid', got 'cg'"),
        (("1o", "1o"), {"normalization": "unit"}, r"normalization: expected one of .*got 'unit'"),
        (("1o", "1o"), {"weights": "paths"}, r"weights: expected False, True, 'out' or 'factorized', got 'paths'"),
        (("1o", "1o"), {"filter_ir_out": ["1e"]}, r"filter_ir_out: expected to keep at least one output irrep.*got none"),
        (("1o", "1o"), {"filter_ir_out": ["1x"]}, r"filter_ir_out: expected irreps like '0e'.*got '1x'"),
    ],
)
def test_constructor_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GauntTensorProduct(*args, **kwargs)


def test_forward_errors():
    tp = GauntTensorProduct("2x0e+2x1o", "2x1o")
    with pytest.raises(ValueError, match=r"x1: expected shape \[\.\.\., 8\] \(irreps_in1 = 2x0e\+2x1o\), got \[3, 7\]"):
        tp(torch.randn(3, 7), torch.randn(3, 6))
    with pytest.raises(ValueError, match=r"x2: expected shape \[\.\.\., 6\] \(irreps_in2 = 2x1o\), got \[3, 8\]"):
        tp(torch.randn(3, 8), torch.randn(3, 8))
    with pytest.raises(ValueError, match=r"x2: expected leading dimensions broadcastable with x1's \[3\], got \[4\]"):
        tp(torch.randn(3, 8), torch.randn(4, 6))
    with pytest.raises(TypeError, match=r"x2: expected the dtype of x1 \(torch.float32\), got torch.float64"):
        tp(torch.randn(3, 8), torch.randn(3, 6, dtype=F64))
    with pytest.raises(TypeError, match=r"x1: expected a real floating-point tensor"):
        tp(torch.ones(3, 8, dtype=torch.long), torch.randn(3, 6))


# --------------------------------------------------------------------------- precomputation


def test_conversion_matrices_are_sparse_and_cubic():
    def nnz(lmax, backend):
        irreps = _irreps(lmax, 1)
        tp = GauntTensorProduct(irreps, irreps, lmax_out=lmax, backend=backend)
        return sum(int(torch.count_nonzero(getattr(tp, n))) for n in ("synth1", "synth2", "proj"))

    for backend in BACKENDS:
        counts = {lmax: nnz(lmax, backend) for lmax in (4, 8, 16)}
        assert counts[16] <= 12 * 16**3, counts  # O(L^3) nonzeros, small constant
        growth = math.log(counts[16] / counts[8]) / math.log(2)
        assert 2.5 < growth < 3.3, counts  # cubic, not quartic (dense SH -> grid is L^4)


def test_precomputation_is_cached_and_buffers_not_persistent():
    _gaunt_basis.theta_fourier.cache_clear()
    irreps = _irreps(5, 2)
    a = GauntTensorProduct(irreps, irreps, backend="fft", weights=True)
    misses = _gaunt_basis.theta_fourier.cache_info().misses
    b = GauntTensorProduct(irreps, irreps, backend="fft", weights=True)
    assert _gaunt_basis.theta_fourier.cache_info().misses == misses  # nothing rebuilt
    arrays = _gaunt_backends.backend_arrays
    assert arrays(a._layout, "component", "fft") is arrays(b._layout, "component", "fft")
    assert list(a.state_dict()) == ["weight_out"]
    assert a.proj.dtype == torch.float32 and a.index1.dtype == torch.long


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtype_conversion_is_exact_and_half_precision_runs(backend):
    irreps = _irreps(4, 2)
    x1, x2 = _randn(3, 50, seed=18), _randn(3, 50, seed=19)
    ref = GauntTensorProduct(irreps, irreps, backend=backend, dtype=F64)(x1, x2)
    tp = GauntTensorProduct(irreps, irreps, backend=backend)  # float32 buffers
    torch.testing.assert_close(tp(x1, x2), ref, atol=1e-13, rtol=0)  # float64 input: exact matrices
    torch.testing.assert_close(tp.double()(x1, x2), ref, atol=1e-13, rtol=0)  # .double() re-derives
    assert tp.proj.dtype == F64
    y = tp.half()(x1.half(), x2.half())
    assert y.dtype == torch.float16 and torch.isfinite(y).all()
    assert tp(torch.zeros(0, 50), torch.zeros(0, 50)).shape == (0, tp.irreps_out.dim)


@pytest.mark.parametrize("normalization", NORMS)
def test_path_weight_closed_form_is_the_squared_norm_of_the_coefficients(normalization):
    """The addition-theorem formula for ||G||_F^2 equals the dense coefficients' sum of squares."""
    from geonorm.o3.gaunt import _gaunt_path_weight

    for l1 in range(5):
        for l2 in range(5):
            for l3 in range(9):
                g = gaunt_coefficients(l1, l2, l3, normalization=normalization).numpy()
                ref = float((g * g).sum())
                ours = _gaunt_path_weight(l1, l2, l3, normalization)
                assert abs(ours - ref) <= 1e-12 * max(ref, 1.0), (l1, l2, l3, ours, ref)
