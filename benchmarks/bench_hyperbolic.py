r"""Poincaré-ball batch norm against hypll's ``HBatchNorm``.

Forward+backward in train mode, batch 256, dim 16 and 64 (run with
``--dtype float32`` for the issue's figures), curvature c = 1 on both sides
(hypll's ``Curvature(v)`` is ``softplus(v)``, so it gets ``v = log(e - 1)``).
Peers:

- ``hypll``: ``hypll.nn.HBatchNorm(use_midpoint=...)`` for the same mean;
- ``geonorm frechet`` (on the midpoint cases): geonorm's own Fréchet-mean
  layer, so ``ours/peer`` there is the midpoint/Fréchet speed ratio.

Targets (issue #8): at most 0.5x hypll for the midpoint, 0.7x for Fréchet.

Poincaré layers (issue #9), forward+backward, same weights' shapes and c = 1:

- ``poincare-fc``: :class:`geonorm.nn.PoincareLinear` vs ``hypll.nn.HLinear``
  (batch 256, 64 -> 64);
- ``poincare-conv``: :class:`geonorm.nn.PoincareConv2d` vs
  ``hypll.nn.HConvolution2d`` (``[32, 16, 16, 16]``, 3x3, padding 1,
  16 -> 16). Target: at most 0.7x hypll;
- ``poincare-resnet``: one forward+backward of
  :class:`geonorm.models.PoincareResNet` (depth 8, widths 8/16/32, batch 32,
  28x28) with midpoint batch norm; peer: the same network with Fréchet
  batch norm (``ours/peer`` = midpoint / Fréchet step time).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Callable

import torch

from .inputs import MatrixInputs, random_ball
from .modes import forward_backward
from .registry import Case, register

BATCH = 256
SIZES = (16, 64)


def _ours(mean: str) -> Callable[[], Callable]:
    def make():
        from geonorm.nn import PoincareBatchNorm

        holder: dict[str, torch.nn.Module] = {}

        def op(x: torch.Tensor) -> torch.Tensor:
            if "m" not in holder:
                holder["m"] = PoincareBatchNorm(x.shape[-1], c=1.0, mean=mean, dtype=x.dtype)
            return holder["m"](x)

        return op

    return make


def _hypll(mean: str) -> Callable[[], Callable]:
    def make():
        from hypll.manifolds.poincare_ball import Curvature, PoincareBall  # ImportError: unavailable
        from hypll.nn import HBatchNorm
        from hypll.tensors import ManifoldTensor

        manifold = PoincareBall(c=Curvature(math.log(math.e - 1.0)))  # softplus -> c = 1
        holder: dict[str, torch.nn.Module] = {}

        def op(x: torch.Tensor) -> torch.Tensor:
            if "m" not in holder:
                holder["m"] = HBatchNorm(x.shape[-1], manifold=manifold, use_midpoint=mean == "midpoint").to(x.dtype)
            return holder["m"](ManifoldTensor(x, manifold=manifold)).tensor

        return op

    return make


for _mean in ("midpoint", "frechet"):
    for _d in SIZES:
        _peers = {"hypll": forward_backward(_hypll(_mean))}
        if _mean == "midpoint":
            _peers["geonorm frechet"] = forward_backward(_ours("frechet"))
        register(
            Case(
                name=f"poincare-bn-{_mean}/fwd+bwd/d={_d}",
                group="hyperbolic",
                setup=partial(random_ball, BATCH, _d, seed=_d),
                ours=forward_backward(_ours(_mean)),
                peers=_peers,
            )
        )


# -- Poincaré layers (issue #9) ---------------------------------------------------------
FC_BATCH, FC_DIM = 256, 64
CONV_SHAPE = (32, 16, 16, 16)  # [B, C, H, W]


def _hypll_unit_ball():
    from hypll.manifolds.poincare_ball import Curvature, PoincareBall  # ImportError: unavailable

    return PoincareBall(c=Curvature(math.log(math.e - 1.0)))  # softplus -> c = 1


def _ball_maps(dtype: torch.dtype, *, seed: int) -> MatrixInputs:
    b, c, h, w = CONV_SHAPE
    flat = random_ball(b * h * w, c, dtype, seed=seed, radius=0.6)
    to_map = lambda t: t.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()  # noqa: E731 [B, C, H, W]
    return MatrixInputs(to_map(flat.x), to_map(flat.grad))


def _ours_fc():
    from geonorm.nn import PoincareLinear

    holder: dict[str, torch.nn.Module] = {}

    def op(x):
        if "m" not in holder:
            torch.manual_seed(0)
            holder["m"] = PoincareLinear(FC_DIM, FC_DIM, id_init=False, dtype=x.dtype)
        return holder["m"](x)

    return op


def _hypll_fc():
    from hypll.nn import HLinear
    from hypll.tensors import ManifoldTensor

    manifold = _hypll_unit_ball()
    holder: dict[str, torch.nn.Module] = {}

    def op(x):
        if "m" not in holder:
            torch.manual_seed(0)
            holder["m"] = HLinear(FC_DIM, FC_DIM, manifold=manifold)
            holder["m"].z.tensor.data = holder["m"].z.tensor.data.to(x.dtype)
            holder["m"].bias.data = holder["m"].bias.data.to(x.dtype)
        return holder["m"](ManifoldTensor(x, manifold=manifold)).tensor

    return op


def _ours_conv():
    from geonorm.nn import PoincareConv2d

    holder: dict[str, torch.nn.Module] = {}

    def op(x):
        if "m" not in holder:
            torch.manual_seed(0)
            holder["m"] = PoincareConv2d(x.shape[1], x.shape[1], 3, padding=1, id_init=False, dtype=x.dtype)
        return holder["m"](x)

    return op


def _hypll_conv():
    from hypll.nn import HConvolution2d
    from hypll.tensors import ManifoldTensor

    manifold = _hypll_unit_ball()
    holder: dict[str, torch.nn.Module] = {}

    def op(x):
        if "m" not in holder:
            torch.manual_seed(0)
            m = HConvolution2d(x.shape[1], x.shape[1], 3, manifold=manifold, padding=1, id_init=False)
            m.weights.tensor.data = m.weights.tensor.data.to(x.dtype)
            m.bias.data = m.bias.data.to(x.dtype)
            holder["m"] = m
        return holder["m"](ManifoldTensor(x, manifold=manifold, man_dim=1)).tensor

    return op


def _images(dtype: torch.dtype, *, seed: int) -> MatrixInputs:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(32, 1, 28, 28, generator=gen, dtype=torch.float64)
    grad = torch.randn(32, 10, generator=gen, dtype=torch.float64)
    return MatrixInputs(x.to(dtype), grad.to(dtype))


def _resnet(bn: str):
    def make():
        from geonorm.models import PoincareResNet

        holder: dict[str, torch.nn.Module] = {}

        def op(x):
            if "m" not in holder:
                torch.manual_seed(0)
                holder["m"] = PoincareResNet(depth=8, widths=(8, 16, 32), bn=bn, dtype=x.dtype)
            return holder["m"](x)

        return op

    return make


register(Case(
    name=f"poincare-fc/fwd+bwd/{FC_DIM}->{FC_DIM}",
    group="hyperbolic",
    setup=partial(random_ball, FC_BATCH, FC_DIM, seed=1),
    ours=forward_backward(_ours_fc),
    peers={"hypll": forward_backward(_hypll_fc)},
))
register(Case(
    name="poincare-conv/fwd+bwd/16x16x16-3x3",
    group="hyperbolic",
    setup=partial(_ball_maps, seed=2),
    ours=forward_backward(_ours_conv),
    peers={"hypll": forward_backward(_hypll_conv)},
))
register(Case(
    name="poincare-resnet-midpoint/fwd+bwd/depth=8",
    group="hyperbolic",
    setup=partial(_images, seed=3),
    ours=forward_backward(_resnet("midpoint")),
    peers={"geonorm frechet": forward_backward(_resnet("frechet"))},
))
