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

- ``layer_norm_compiled``: the same layer norm at the issue's size under
  ``torch.compile`` (inductor, default mode), against ``torch.nn.LayerNorm``
  in eager mode and compiled; marked heavy (``--quick`` skips it: compiling
  takes some ten seconds);
- ``interaction_block``: a NequIP-style interaction block (Batzner et al., 2022)
  on 16 graphs of 64 nodes, each node receiving messages from 16 random nodes
  of its graph, node irreps ``64x0e+32x1o+16x2e``: self-interaction
  ``o3.Linear``, spherical harmonics (``lmax = 2``) of the edge vectors, a
  ``"uvu"`` ``o3.TensorProduct`` with per-edge weights from a radial MLP on
  an 8-function Bessel-like basis, scatter-sum to the nodes, ``o3.Linear``,
  e3nn's ``Gate`` and a residual; ours puts an
  :class:`~geonorm.o3.norm.EquivariantLayerNorm` after the gate (before the
  residual), the peer is the same block, same weights, without it. The ratio
  is the cost of the norm inside a real layer.

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
IRREPS = ("64x0e+32x1o+16x2e", "128x0e+64x1o+32x2e", "64x0e+64x1o+64x2e+64x3o")


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


def _torch_layer_norm(inputs: IrrepsInputs, *, backward: bool, compiled: bool = False) -> Runner:
    layer = torch.nn.LayerNorm(inputs.x.shape[-1], dtype=inputs.x.dtype)
    return _timed(torch.compile(layer) if compiled else layer, inputs, backward)


def _ours_compiled(inputs: IrrepsInputs, *, backward: bool) -> Runner:
    layer = EquivariantLayerNorm(inputs.irreps, dtype=inputs.x.dtype)
    return _timed(torch.compile(layer), inputs, backward)


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

for _mode, _backward in (("fwd", False), ("fwd+bwd", True)):
    register(
        Case(
            f"layer_norm_compiled/{_mode}/{IRREPS[0]}",
            group="o3_norm",
            setup=partial(_setup, IRREPS[0], seed=0),
            ours=partial(_ours_compiled, backward=_backward),
            peers={
                "torch LayerNorm": partial(_torch_layer_norm, backward=_backward),
                "torch LayerNorm, compiled": partial(
                    _torch_layer_norm, backward=_backward, compiled=True
                ),
            },
            heavy=True,
        )
    )


BLOCK_IRREPS = "64x0e+32x1o+16x2e"
BLOCK_NODES, BLOCK_GRAPHS, NEIGHBOURS = 1024, 16, 16


@dataclass(frozen=True)
class GraphInputs:
    """Node features and positions, edges within each graph, a fixed upstream gradient."""

    x: torch.Tensor  # [BLOCK_NODES, dim]
    pos: torch.Tensor  # [BLOCK_NODES, 3]
    src: torch.Tensor  # [edges], sender of each edge
    dst: torch.Tensor  # [edges], receiver of each edge
    grad: torch.Tensor  # [BLOCK_NODES, dim]


def _graph_setup(dtype: torch.dtype, seed: int = 7) -> GraphInputs:
    gen = torch.Generator().manual_seed(seed)
    per = BLOCK_NODES // BLOCK_GRAPHS
    dim = o3.Irreps(BLOCK_IRREPS).dim
    pos = torch.randn(BLOCK_NODES, 3, generator=gen, dtype=torch.float64) * 1.5
    dst = torch.arange(BLOCK_NODES).repeat_interleave(NEIGHBOURS)  # [edges]
    shift = torch.randint(1, per, (dst.shape[0],), generator=gen)  # never the node itself
    src = dst - dst % per + (dst % per + shift) % per  # a node of the same graph
    x = torch.randn(BLOCK_NODES, dim, generator=gen, dtype=torch.float64)
    g = torch.randn(BLOCK_NODES, dim, generator=gen, dtype=torch.float64)
    return GraphInputs(x.to(dtype), pos.to(dtype), src, dst, g.to(dtype))


class InteractionBlock(torch.nn.Module):
    """NequIP-style convolution + gate + residual, with an optional norm after the gate."""

    def __init__(self, irreps: str, *, norm: bool, dtype: torch.dtype) -> None:
        from e3nn.math import soft_one_hot_linspace
        from e3nn.nn import FullyConnectedNet, Gate

        super().__init__()
        self._basis = soft_one_hot_linspace
        irreps, self.sh = o3.Irreps(irreps), o3.Irreps.spherical_harmonics(2)
        mid, instructions = [], []
        for i, (mul, ir_in) in enumerate(irreps):
            for j, (_, ir_sh) in enumerate(self.sh):
                for ir_out in ir_in * ir_sh:
                    if ir_out in irreps:  # the degrees and parities of the features
                        instructions.append((i, j, len(mid), "uvu", True))
                        mid.append((mul, ir_out))
        self.self_interaction = o3.Linear(irreps, irreps)
        self.tp = o3.TensorProduct(
            irreps, self.sh, o3.Irreps(mid), instructions,
            shared_weights=False, internal_weights=False,
        )  # fmt: skip
        self.radial = FullyConnectedNet([8, 32, self.tp.weight_numel], torch.nn.functional.silu)
        scalars = o3.Irreps([(m, ir) for m, ir in irreps if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps if ir.l > 0])
        self.gate = Gate(
            scalars, [torch.nn.functional.silu],
            o3.Irreps(f"{gated.num_irreps}x0e"), [torch.sigmoid], gated,
        )  # fmt: skip
        self.linear = o3.Linear(o3.Irreps(mid), self.gate.irreps_in)
        self.norm = EquivariantLayerNorm(irreps) if norm else None
        self.to(dtype)

    def forward(self, x, pos, src, dst):
        vec = pos[src] - pos[dst]  # [edges, 3]
        sh = o3.spherical_harmonics(self.sh, vec, normalize=True, normalization="component")
        emb = self._basis(
            vec.norm(dim=1), 0.0, 5.0, 8, basis="smooth_finite", cutoff=True
        ) * 8**0.5  # [edges, 8]
        messages = self.tp(self.self_interaction(x)[src], sh, self.radial(emb))  # [edges, mid]
        agg = x.new_zeros(x.shape[0], messages.shape[1]).index_add(0, dst, messages)
        out = self.gate(self.linear(agg / NEIGHBOURS**0.5))  # [nodes, dim]
        return x + (out if self.norm is None else self.norm(out))


def _block(inputs: GraphInputs, *, norm: bool, backward: bool) -> Runner:
    with torch.random.fork_rng():  # the same weights with and without the norm
        torch.manual_seed(0)
        block = InteractionBlock(BLOCK_IRREPS, norm=norm, dtype=inputs.x.dtype)
    args = (inputs.pos, inputs.src, inputs.dst)
    if not backward:

        def run_fwd() -> None:
            with torch.no_grad():
                block(inputs.x, *args)

        return run_fwd
    leaf = inputs.x.detach().clone().requires_grad_(True)

    def run() -> None:
        leaf.grad = None
        block.zero_grad(set_to_none=True)
        block(leaf, *args).backward(inputs.grad)

    return run


for _mode, _backward in (("fwd", False), ("fwd+bwd", True)):
    register(
        Case(
            f"interaction_block/{_mode}/{BLOCK_IRREPS}",
            group="o3_norm",
            setup=_graph_setup,
            ours=partial(_block, norm=True, backward=_backward),
            peers={"same block without norm": partial(_block, norm=False, backward=_backward)},
        )
    )
