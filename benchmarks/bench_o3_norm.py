r"""Equivariant layer norm on irreps: geonorm against torch.nn.LayerNorm and e3nn's instance norm.

Features are 4096 nodes of the irreps ``128x0e+64x1o+32x2e`` (dim 480) and
``64x0e+64x1o+64x2e+64x3o`` (dim 1024). Two comparisons, forward (``fwd``) and
forward+backward with a fixed upstream gradient (``fwd+bwd``):

- ``layer_norm``: :class:`~geonorm.o3.norm.EquivariantLayerNorm` (per sample,
  ``scope="per_irrep"``) against ``torch.nn.LayerNorm(dim)`` on a tensor of the
  same size. The peer is not equivariant; it is the speed of light for a
  per-sample normalization (one fused kernel each way);
- ``rms_norm``: :class:`~geonorm.o3.norm.EquivariantRMSNorm` against
  ``torch.nn.RMSNorm(dim)`` (forward+backward only). On CPU, torch fuses only
  the RMSNorm forward; its backward is composite;
- ``graph_norm``: the layer norm in segment mode (``forward(x, batch)``, 64
  graphs of 64 nodes, statistics over all nodes of a graph) against
  ``e3nn.nn.BatchNorm(irreps, instance=True)`` on the same data viewed as
  ``[64, 64, dim]`` (per-graph statistics over nodes). e3nn normalizes each
  channel separately and geonorm each irrep block, so the work is comparable
  but the outputs differ (they agree when every irrep has one channel; see
  the tests).

Both geonorm modules run with their default affine parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from e3nn import o3

from geonorm.o3.norm import EquivariantLayerNorm, EquivariantRMSNorm

from .registry import Case, Runner, register

NODES = 4096
GRAPHS = 64
IRREPS = ("128x0e+64x1o+32x2e", "64x0e+64x1o+64x2e+64x3o")


@dataclass(frozen=True)
class IrrepsInputs:
    """Node features, a fixed upstream gradient and the graph of each node."""

    irreps: str
    x: torch.Tensor  # [NODES, dim]
    grad: torch.Tensor  # [NODES, dim]
    batch: torch.Tensor  # [NODES], GRAPHS equal segments


def _setup(irreps: str, dtype: torch.dtype, seed: int) -> IrrepsInputs:
    gen = torch.Generator().manual_seed(seed)
    dim = o3.Irreps(irreps).dim
    x = torch.randn(NODES, dim, generator=gen, dtype=torch.float64) + 0.5
    g = torch.randn(NODES, dim, generator=gen, dtype=torch.float64)
    batch = torch.arange(GRAPHS).repeat_interleave(NODES // GRAPHS)
    return IrrepsInputs(irreps, x.to(dtype), g.to(dtype), batch)


def _timed(op, inputs: IrrepsInputs, backward: bool, view=None) -> Runner:
    x = inputs.x if view is None else inputs.x.view(view)
    grad = inputs.grad if view is None else inputs.grad.view(view)
    if not backward:

        def run_fwd() -> None:
            with torch.no_grad():
                op(x)

        return run_fwd
    leaf = x.detach().clone().requires_grad_(True)

    def run() -> None:
        leaf.grad = None
        op(leaf).backward(grad)

    return run


def _ours(inputs: IrrepsInputs, *, backward: bool, graph: bool, rms: bool = False) -> Runner:
    layer = (EquivariantRMSNorm if rms else EquivariantLayerNorm)(
        inputs.irreps, dtype=inputs.x.dtype
    )
    if graph:
        return _timed(lambda x: layer(x, inputs.batch, num_segments=GRAPHS), inputs, backward)
    return _timed(layer, inputs, backward)


def _torch_layer_norm(inputs: IrrepsInputs, *, backward: bool) -> Runner:
    layer = torch.nn.LayerNorm(inputs.x.shape[-1], dtype=inputs.x.dtype)
    return _timed(layer, inputs, backward)


def _torch_rms_norm(inputs: IrrepsInputs, *, backward: bool) -> Runner:
    layer = torch.nn.RMSNorm(inputs.x.shape[-1], eps=1e-5, dtype=inputs.x.dtype)
    return _timed(layer, inputs, backward)


def _e3nn_instance_norm(inputs: IrrepsInputs, *, backward: bool) -> Runner:
    from e3nn.nn import BatchNorm  # ImportError: peer unavailable

    layer = BatchNorm(inputs.irreps, instance=True).to(inputs.x.dtype)
    return _timed(layer, inputs, backward, view=(GRAPHS, NODES // GRAPHS, -1))


for _seed, _irreps in enumerate(IRREPS):
    for _mode, _backward in (("fwd", False), ("fwd+bwd", True)):
        register(
            Case(
                f"layer_norm/{_mode}/{_irreps}",
                group="o3_norm",
                setup=partial(_setup, _irreps, seed=_seed),
                ours=partial(_ours, backward=_backward, graph=False),
                peers={"torch LayerNorm": partial(_torch_layer_norm, backward=_backward)},
            )
        )
        if _backward:
            register(
                Case(
                    f"rms_norm/{_mode}/{_irreps}",
                    group="o3_norm",
                    setup=partial(_setup, _irreps, seed=_seed),
                    ours=partial(_ours, backward=_backward, graph=False, rms=True),
                    peers={"torch RMSNorm": partial(_torch_rms_norm, backward=_backward)},
                )
            )
        register(
            Case(
                f"graph_norm/{_mode}/{_irreps}",
                group="o3_norm",
                setup=partial(_setup, _irreps, seed=_seed),
                ours=partial(_ours, backward=_backward, graph=True),
                peers={"e3nn instance BatchNorm": partial(_e3nn_instance_norm, backward=_backward)},
            )
        )
