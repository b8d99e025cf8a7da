"""GauntTensorProduct as an e3nn drop-in: weights, any irreps, instructions, dropped irreps."""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import pytest
import torch
from e3nn import o3

from geonorm.o3 import GauntTensorProduct
from geonorm.testing import IrrepsAction, TrivialAction, assert_equivariant

F64 = torch.float64
DOCS = Path(__file__).resolve().parents[2] / "docs"


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _e3nn(tp: GauntTensorProduct, path_weight=lambda p: p.path_weight) -> o3.TensorProduct:
    """e3nn's TensorProduct from tp.instructions (has_weight False, path_weight as given)."""
    ins = [(p.i_in1, p.i_in2, p.i_out, p.connection_mode, False, path_weight(p))
           for p in tp.instructions]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    try:
        return o3.TensorProduct(tp.irreps_in1, tp.irreps_in2, tp.irreps_out, ins,
                                irrep_normalization="none", path_normalization="none")
    finally:
        torch.set_default_dtype(previous)


@pytest.mark.parametrize("irreps, channelwise", [("3x0e+3x1o+3x2e", True), ("2x0e+2x1o", False)])
def test_instructions_rebuild_the_product_in_e3nn_with_path_weight_factor_squared(irreps, channelwise):
    """docs/gaunt.md: e3nn applies sqrt(path_weight), so the path weight is the factor squared."""
    tp = GauntTensorProduct(irreps, irreps, channelwise=channelwise, dtype=F64)
    assert all(not p.has_weight for p in tp.instructions)
    x1, x2 = _randn(5, tp.irreps_in1.dim, seed=1), _randn(5, tp.irreps_in2.dim, seed=2)
    y = tp(x1, x2)
    scale = float(y.abs().max())
    assert float((_e3nn(tp)(x1, x2) - y).abs().max()) < 1e-12 * scale
    # with path_weight equal to the factor itself (what the docs used to say) it is wrong
    wrong = _e3nn(tp, lambda p: math.sqrt(p.path_weight))(x1, x2)
    assert float((wrong - y).abs().max()) > 0.1 * scale
    text = (DOCS / "gaunt.md").read_text()
    assert "square root" in text and re.search(r"path_weight.{0,80}square", text, re.S)


def test_per_sample_weights_follow_e3nns_conventions_and_are_equivariant():
    """A convolution: mixed multiplicities times edge harmonics, radial weights per edge."""
    ir1, sh = "4x0e+2x1o+1x2e", "0e+1o+2e"
    tp = GauntTensorProduct(ir1, sh, lmax_out=2, shared_weights=False, dtype=F64)
    assert (tp.internal_weights, tp.shared_weights, tp.weights) == (False, False, "factorized")
    assert tp.weight_numel == 4 * 3 + 1 * 3 + 4 * 3 and not list(tp.parameters())
    assert {p.connection_mode for p in tp.instructions} == {"uvu"}
    x1, x2 = _randn(6, tp.irreps_in1.dim, seed=3), _randn(6, 9, seed=4)
    w = _randn(6, tp.weight_numel, seed=5)
    y = tp(x1, x2, w)
    # each sample's weights act as internal weights of that value would
    for i in (0, 5):
        inner = GauntTensorProduct(ir1, sh, lmax_out=2, weights="factorized", dtype=F64)
        with torch.no_grad():
            for name, v in tp.weight_views(w[i]).items():
                getattr(inner, name).copy_(v)
        torch.testing.assert_close(y[i], inner(x1[i], x2[i]), rtol=1e-12, atol=1e-12)
    # the weights are invariant: equivariant to 1e-10 in float64
    acts = (IrrepsAction(tp.irreps_in1), IrrepsAction(tp.irreps_in2), TrivialAction())
    r = assert_equivariant(tp, acts, (x1, x2, w), IrrepsAction(tp.irreps_out), rtol=1e-10)
    assert r.rel_error < 1e-12
    # shared external weights: one vector for all samples
    shared = GauntTensorProduct(ir1, sh, lmax_out=2, internal_weights=False, dtype=F64)
    torch.testing.assert_close(shared(x1, x2, w[2]), tp(x1, x2, w[2].expand(6, -1)))
    # chunked batches give the same per-sample result (the backend splits large batches)
    big = _randn(3000, tp.irreps_in1.dim, seed=6)
    wb = _randn(3000, tp.weight_numel, seed=7)
    sh_b = _randn(3000, 9, seed=8)
    torch.testing.assert_close(tp(big, sh_b, wb)[-3:], tp(big[-3:], sh_b[-3:], wb[-3:]))


@pytest.mark.parametrize("backend", ["grid", "fft"])
def test_any_irreps_equal_the_padded_uniform_product(backend):
    """8x0e+4x1o+2x2e (and repeated irreps) = the uniform product of the zero-padded input."""
    ir = "3x0e+2x1o+1x2e+1x0e"  # 0e twice, mixed multiplicities
    tp = GauntTensorProduct(ir, "4x0e+4x1o", backend=backend, dtype=F64)
    ref = GauntTensorProduct("4x0e+4x1o+4x2e", "4x0e+4x1o", backend=backend, dtype=F64)
    assert tp.irreps_out == ref.irreps_out
    x, x2 = _randn(3, o3.Irreps(ir).dim, seed=9), _randn(3, 16, seed=10)
    padded = torch.zeros(3, 4 + 12 + 20, dtype=F64)  # [B, 4x0e | 4x1o | 4x2e]
    padded[:, 0:3], padded[:, 3] = x[:, 0:3], x[:, 14]  # 0e channels: 3 then the last 1x0e
    padded[:, 4:10] = x[:, 3:9]  # two 1o channels
    padded[:, 16:21] = x[:, 9:14]  # one 2e channel
    torch.testing.assert_close(tp(x, x2), ref(padded, x2), rtol=1e-12, atol=1e-12)
    assert_equivariant(tp, (IrrepsAction(ir), IrrepsAction("4x0e+4x1o")), (x, x2),
                       IrrepsAction(tp.irreps_out), rtol=1e-10)


def test_unreachable_requested_irreps_warn():
    with pytest.warns(UserWarning, match=r"filter_ir_out: 1e requested but no Gaunt path.*"
                                         r"l1 \+ l2 \+ l3 even"):
        tp = GauntTensorProduct("1o", "1o", filter_ir_out=["0e", "1e"])
    assert str(tp.irreps_out) == "1x0e"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        GauntTensorProduct("1o", "1o", filter_ir_out=["0e", "2e"])  # all reachable: silent


def test_weight_argument_errors():
    tp = GauntTensorProduct("2x0e+2x1o", "0e+1o", shared_weights=False)
    x1, x2 = torch.randn(3, 8), torch.randn(3, 4)
    with pytest.raises(TypeError, match=r"weight: expected a tensor \[\.\.\., 12\]"):
        tp(x1, x2)
    with pytest.raises(ValueError, match=r"weight: expected shape \[\.\.\., 12\].*got \[3, 11\]"):
        tp(x1, x2, torch.randn(3, 11))
    with pytest.raises(ValueError, match=r"weight: expected leading dimensions broadcastable"):
        tp(x1, x2, torch.randn(4, 12))
    with pytest.raises(ValueError, match=r"weight: expected None \(the weights are internal"):
        GauntTensorProduct("1o", "1o", weights=True)(torch.randn(3), torch.randn(3),
                                                     torch.randn(3))
    with pytest.raises(TypeError, match="shared_weights: expected True, False or None"):
        GauntTensorProduct("1o", "1o", shared_weights="no")


def test_torchscript_unsupported_as_documented_export_and_compile_work():
    tp = GauntTensorProduct("2x0e+2x1o", "0e+1o", shared_weights=False, dtype=F64)
    x1, x2, w = _randn(4, 8, seed=11), _randn(4, 4, seed=12), _randn(4, tp.weight_numel, seed=13)
    with pytest.raises(Exception):
        torch.jit.script(tp)
    text = (DOCS / "gaunt.md").read_text()
    assert "`torch.jit.script` is not supported" in text
    exported = torch.export.export(tp, (x1, x2, w))
    torch.testing.assert_close(exported.module()(x1, x2, w), tp(x1, x2, w))
    compiled = torch.compile(tp, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x1, x2, w), tp(x1, x2, w))
