r"""Clifford algebra: batched geometric products, a CGENN block and a GCAN layer.

Geometric product of two batches of 4,096 multivectors (forward) in
Cl(3,0), Cl(3,0,1) and Cl(4,1). Peers:

- ``dense einsum``: ``einsum("...i,ijk,...k->...j", x, G, y)`` with ``G`` the
  clifford package's own ``[2^n, 2^n, 2^n]`` Cayley table (``layout.gmt``): the
  formulation CGENN's and most GA-network code use;
- ``torch-ga``: ``GeometricAlgebra(metric).geom_prod`` (Pepe et al.);
- ``clifford``: the clifford package's ``MVArray`` product, for Cl(3,0) only
  (a Python loop over numba products, orders of magnitude slower), in a case of
  its own: interleaved with the tensor kernels it evicts their data from the caches.

cliffordlayers 0.1.1 (the PyPI release) has no batched product of two
multivector batches (its kernels build weight matrices for convolutions) and no
CGENN or GCAN layers, so the layer cases compare against the same layer with
its products computed the dense way (CGENN's ``einsum("bni,nijk,bnk->bnj")``):

- ``cgenn_block``: :class:`~geonorm.clifford.MultivectorMLP` of one block
  (linear, gate, steerable geometric product, layer norm), 16 channels,
  batch 1,000, Cl(3,0), forward+backward;
- ``gcan_linear``: :class:`~geonorm.clifford.GroupActionLinear` 8 → 8 channels,
  batch 256, Cl(3,0,1) motors, forward+backward.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch

from geonorm.clifford import CliffordAlgebra, GroupActionLinear, MultivectorMLP

from .registry import Case, Runner, register

PRODUCT_BATCH = 4096
SIGNATURES = {"Cl(3,0)": (1, 1, 1), "Cl(3,0,1)": (0, 1, 1, 1), "Cl(4,1)": (1, 1, 1, 1, -1)}


@dataclass(frozen=True)
class Pair:
    metric: tuple[int, ...]
    x: torch.Tensor  # [B, 2^n]
    y: torch.Tensor  # [B, 2^n]


def _pair(metric, dtype) -> Pair:
    gen = torch.Generator().manual_seed(10)
    d = 2 ** len(metric)
    x, y = (torch.randn(PRODUCT_BATCH, d, generator=gen, dtype=torch.float64).to(dtype) for _ in range(2))
    return Pair(metric, x, y)


def _gmt(metric, like: torch.Tensor) -> torch.Tensor:
    import clifford  # ImportError: peer unavailable

    layout, _ = clifford.Cl(sig=list(metric))
    return torch.as_tensor(layout.gmt.todense(), dtype=like.dtype)  # [2^n, 2^n, 2^n]: (xy)_j = x_i G_ijk y_k


def _ours_product(p: Pair) -> Runner:
    alg = CliffordAlgebra(p.metric)
    return lambda: alg.geometric_product(p.x, p.y)


def _dense_product(p: Pair) -> Runner:
    g = _gmt(p.metric, p.x)
    return lambda: torch.einsum("...i,ijk,...k->...j", p.x, g, p.y)


def _torch_ga(p: Pair) -> Runner:
    from torch_ga import GeometricAlgebra  # ImportError: peer unavailable

    ga = GeometricAlgebra(list(p.metric))
    ga._cayley = ga._cayley.to(p.x.dtype)  # its table is built in float64
    return lambda: ga.geom_prod(p.x, p.y)


def _clifford_array(p: Pair) -> Runner:
    import clifford  # ImportError: peer unavailable

    layout, _ = clifford.Cl(sig=list(p.metric))
    xs = clifford.MVArray([layout.MultiVector(v) for v in p.x[:256].double().numpy()])
    ys = clifford.MVArray([layout.MultiVector(v) for v in p.y[:256].double().numpy()])
    xs * ys  # compile once

    def run() -> None:  # 256 of the 4,096 pairs, scaled to the batch
        for _ in range(PRODUCT_BATCH // 256):
            xs * ys

    return run


class _DenseAlgebra(CliffordAlgebra):
    """The same algebra with CGENN's dense formulation of the products (the baseline of the layer cases)."""

    def geometric_product(self, x, y):
        x, y = torch.broadcast_tensors(self.check(x, "x"), self.check(y, "y"))
        return torch.einsum("...i,ijk,...k->...j", x, self._dense(x), y)

    def right_multiplication(self, x):  # (t x)_j = t_i G_ijk x_k: R_ij = G_ijk x_k, from the dense table
        return torch.einsum("ijk,...k->...ij", self._dense(x), x)

    def left_multiplication(self, x):  # (x t)_j = x_k G_kji t_i: L_ij = x_k G_kji
        return torch.einsum("kji,...k->...ij", self._dense(x), x)

    def weighted_product(self, x, y, weight):
        partner, sign = self.tables(x)
        g = self._table("grade", x)
        w = weight[:, g[:, None], g[partner], g[None, :]] * sign  # [C, A, C']
        dense = torch.zeros(weight.shape[0], self.dim, self.dim, self.dim, dtype=x.dtype)
        a = torch.arange(self.dim)[:, None].expand(-1, self.dim)
        c = torch.arange(self.dim)[None, :].expand(self.dim, -1)
        dense[:, a, c, partner] = w  # [C, i, j(out), k]
        return torch.einsum("...ni,nijk,...nk->...nj", x, dense, y)

    def _dense(self, like):
        partner, sign = self.tables(like)
        g = torch.zeros(self.dim, self.dim, self.dim, dtype=like.dtype)
        a = torch.arange(self.dim)[:, None].expand(-1, self.dim)
        c = torch.arange(self.dim)[None, :].expand(self.dim, -1)
        g[a, c, partner] = sign
        return g


@dataclass(frozen=True)
class Features:
    x: torch.Tensor  # [B, C, 2^n]


def _features(batch, channels, dim, dtype) -> Features:
    gen = torch.Generator().manual_seed(11)
    return Features(torch.randn(batch, channels, dim, generator=gen, dtype=torch.float64).to(dtype))


def _fwd_bwd(module, f: Features) -> Runner:
    x = f.x.detach().clone().requires_grad_(True)

    def run() -> None:
        x.grad = None
        module.zero_grad(set_to_none=True)
        module(x).square().sum().backward()

    return run


def _block(algebra_cls, f: Features) -> Runner:
    torch.manual_seed(0)
    return _fwd_bwd(MultivectorMLP(algebra_cls((1, 1, 1)), 16, 16, 16, layers=1, dtype=f.x.dtype), f)


def _gcan(algebra_cls, f: Features) -> Runner:
    torch.manual_seed(0)
    return _fwd_bwd(GroupActionLinear(algebra_cls((0, 1, 1, 1)), 8, 8, dtype=f.x.dtype), f)


for _label, _metric in SIGNATURES.items():
    register(Case(f"geometric_product/fwd/{_label},B={PRODUCT_BATCH}", group="clifford",
                  setup=partial(_pair, _metric), ours=_ours_product,
                  peers={"dense einsum": _dense_product, "torch-ga": _torch_ga}))  # fmt: skip
# a case of its own: interleaved with the tensor kernels, the MVArray loop over Python objects
# evicts their data from the caches and doubles the time of whichever call follows it
register(Case(f"geometric_product/fwd/Cl(3,0),B={PRODUCT_BATCH},MVArray", group="clifford",
              setup=partial(_pair, SIGNATURES["Cl(3,0)"]), ours=_ours_product,
              peers={"clifford (MVArray)": _clifford_array}, heavy=True))  # fmt: skip

register(Case("cgenn_block/fwd+bwd/Cl(3,0),B=1000,C=16", group="clifford",
              setup=partial(_features, 1000, 16, 8), ours=partial(_block, CliffordAlgebra),
              peers={"dense einsum (CGENN)": partial(_block, _DenseAlgebra)}))  # fmt: skip
register(Case("gcan_linear/fwd+bwd/Cl(3,0,1),B=256,C=8", group="clifford",
              setup=partial(_features, 256, 8, 16), ours=partial(_gcan, CliffordAlgebra),
              peers={"dense einsum": partial(_gcan, _DenseAlgebra)}))  # fmt: skip
