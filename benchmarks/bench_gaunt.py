r"""Gaunt tensor product against e3nn's Clebsch–Gordan tensor products.

Every case multiplies two batches of 1024 samples of ``32 x (0e + 1o + 2e +
... + lmax)`` features channel by channel (``"uuu"``), keeps output degrees
up to ``lmax``, and times forward+backward with a fixed upstream gradient.
Peers:

- ``e3nn, same paths``: ``e3nn.o3.TensorProduct`` with one ``"uuu"``
  instruction per path :math:`(l_1, l_2, l_3)`, :math:`l_1 + l_2 + l_3` even,
  :math:`l_3 \le l_{\max}`: exactly the couplings the Gaunt product computes;
- ``e3nn, all paths``: the same with the odd paths too (outputs ``1e``,
  ``2o``, … as well): the full channelwise tensor product users run today.

The ``gaunt_fft`` cases time the FFT backend against the grid backend (the
default, timed in ``gaunt_tp``), without e3nn.

The ``gaunt_conv`` cases time the product a MACE/NequIP convolution uses:
node features of mixed multiplicities ``32x0e+16x1o+8x2e+...`` (halved per
degree, at least 4) on 2048 edges times the edge's spherical harmonics
``0e+1o+...`` (one channel), with per-edge weights ``[edges, weight_numel]``
(a radial MLP's output), output degrees up to ``lmax``. Peers:
``e3nn.o3.TensorProduct`` with ``"uvu"`` instructions, ``shared_weights=False``
and ``internal_weights=False`` (a free weight per path and channel, as
NequIP and MACE use), on the same even paths and on all paths. The outputs
are not the same function — e3nn keeps one output block per path with its
own weight, Gaunt sums the paths of a channel with factorized weights — so
this is the cost of the layer a user would put in that place, not of one
computation done two ways.

The e3nn peers are slow (about 14 s per call at lmax = 10 on one core), so run
this group with few repetitions::

    python -m benchmarks gaunt --dtype float32 --repeat 5 --warmup 1 --markdown

Cases at lmax >= 6 are marked heavy (``--quick`` skips them) and every case
stops after ``--budget`` seconds of repetitions. ``python -m
benchmarks.bench_gaunt [same options]`` runs the group and also fits the
growth exponents of the times in lmax.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

import torch

from geonorm.o3.gaunt import GauntTensorProduct

from .registry import Case, Runner, register

BATCH = 1024
CHANNELS = 32
LMAX = (2, 4, 6, 8, 10)
HEAVY_LMAX = 6  # e3nn takes seconds per call from here on


def irreps(lmax: int) -> str:
    """``32x0e+32x1o+32x2e+...`` up to ``lmax``."""
    return "+".join(f"{CHANNELS}x{l}{'eo'[l % 2]}" for l in range(lmax + 1))


@dataclass(frozen=True)
class GauntInputs:
    """Two feature batches, the upstream gradient of the output, and ``lmax``."""

    x1: torch.Tensor  # [batch, dim]
    x2: torch.Tensor  # [batch, dim]
    grad: torch.Tensor  # [batch, dim_out]
    lmax: int


def setup(lmax: int, dtype: torch.dtype) -> GauntInputs:
    gen = torch.Generator().manual_seed(lmax)
    dim = (lmax + 1) ** 2 * CHANNELS
    x1, x2, grad = (torch.randn(BATCH, dim, generator=gen, dtype=torch.float64) for _ in range(3))
    return GauntInputs(x1.to(dtype), x2.to(dtype), grad.to(dtype), lmax)


def _fwd_bwd(layer: Callable, inputs: GauntInputs) -> Runner:
    a = inputs.x1.detach().clone().requires_grad_(True)
    b = inputs.x2.detach().clone().requires_grad_(True)

    def run() -> None:
        a.grad = b.grad = None
        layer(a, b).backward(inputs.grad)

    return run


def ours(inputs: GauntInputs, backend: str = "grid") -> Runner:
    ir = irreps(inputs.lmax)
    layer = GauntTensorProduct(
        ir, ir, lmax_out=inputs.lmax, backend=backend, dtype=inputs.x1.dtype
    )
    return _fwd_bwd(layer, inputs)


def e3nn_uuu(inputs: GauntInputs, odd_paths: bool) -> Runner:
    from e3nn import o3  # ImportError: peer unavailable

    ir = o3.Irreps(irreps(inputs.lmax))
    outs, paths = [], []
    for i1, (_, a) in enumerate(ir):
        for i2, (_, b) in enumerate(ir):
            for l3 in range(abs(a.l - b.l), min(a.l + b.l, inputs.lmax) + 1):
                if odd_paths or (a.l + b.l + l3) % 2 == 0:
                    out = o3.Irrep(l3, a.p * b.p)
                    if out not in outs:
                        outs.append(out)
                    paths.append((i1, i2, out))
    outs = sorted(outs)
    irreps_out = o3.Irreps([(CHANNELS, o) for o in outs])
    instructions = [(i1, i2, outs.index(o), "uuu", False) for i1, i2, o in paths]
    tp = o3.TensorProduct(ir, ir, irreps_out, instructions).to(inputs.x1.dtype)
    grad = torch.randn(
        BATCH, irreps_out.dim, generator=torch.Generator().manual_seed(1), dtype=inputs.x1.dtype
    )
    return _fwd_bwd(tp, GauntInputs(inputs.x1, inputs.x2, grad, inputs.lmax))


EDGES = 2048
CONV_LMAX = (2, 3, 4)


def conv_irreps(lmax: int) -> str:
    """Mixed multiplicities ``32x0e+16x1o+8x2e+4x3o+...`` up to ``lmax``."""
    return "+".join(f"{max(4, 32 >> l)}x{l}{'eo'[l % 2]}" for l in range(lmax + 1))


@dataclass(frozen=True)
class ConvInputs:
    """Node features per edge, edge harmonics, per-edge weights (built by each layer)."""

    x1: torch.Tensor  # [edges, dim1]
    x2: torch.Tensor  # [edges, (lmax + 1)^2]
    lmax: int
    dtype: torch.dtype


def conv_setup(lmax: int, dtype: torch.dtype) -> ConvInputs:
    from e3nn import o3

    gen = torch.Generator().manual_seed(100 + lmax)
    dim1 = o3.Irreps(conv_irreps(lmax)).dim
    x1 = torch.randn(EDGES, dim1, generator=gen, dtype=torch.float64)
    x2 = torch.randn(EDGES, (lmax + 1) ** 2, generator=gen, dtype=torch.float64)
    return ConvInputs(x1.to(dtype), x2.to(dtype), lmax, dtype)


def _conv_runner(layer: Callable, numel: int, dim_out: int, inputs: ConvInputs) -> Runner:
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(EDGES, numel, generator=gen, dtype=torch.float64).to(inputs.dtype)
    grad = torch.randn(EDGES, dim_out, generator=gen, dtype=torch.float64).to(inputs.dtype)
    a = inputs.x1.detach().clone().requires_grad_(True)
    b = inputs.x2.detach().clone().requires_grad_(True)
    w.requires_grad_(True)

    def run() -> None:
        a.grad = b.grad = w.grad = None
        layer(a, b, w).backward(grad)

    return run


def ours_conv(inputs: ConvInputs) -> Runner:
    sh = "+".join(f"{l}{'eo'[l % 2]}" for l in range(inputs.lmax + 1))
    layer = GauntTensorProduct(conv_irreps(inputs.lmax), sh, lmax_out=inputs.lmax,
                               shared_weights=False, dtype=inputs.dtype)
    return _conv_runner(layer, layer.weight_numel, layer.irreps_out.dim, inputs)


def e3nn_uvu(inputs: ConvInputs, odd_paths: bool) -> Runner:
    from e3nn import o3  # ImportError: peer unavailable

    ir1 = o3.Irreps(conv_irreps(inputs.lmax))
    ir2 = o3.Irreps.spherical_harmonics(inputs.lmax)
    outs, ins = [], []
    for i1, (mul, a) in enumerate(ir1):
        for i2, (_, b) in enumerate(ir2):
            for l3 in range(abs(a.l - b.l), min(a.l + b.l, inputs.lmax) + 1):
                if odd_paths or (a.l + b.l + l3) % 2 == 0:
                    outs.append((mul, o3.Irrep(l3, a.p * b.p)))
                    ins.append((i1, i2, len(outs) - 1, "uvu", True))
    tp = o3.TensorProduct(ir1, ir2, o3.Irreps(outs), ins, shared_weights=False,
                          internal_weights=False).to(inputs.dtype)
    return _conv_runner(tp, tp.weight_numel, tp.irreps_out.dim, inputs)


def _cases() -> Iterator[Case]:
    for lmax in LMAX:
        yield Case(
            name=f"gaunt_tp/fwd+bwd/lmax={lmax}",
            group="gaunt",
            setup=partial(setup, lmax),
            ours=ours,
            peers={
                "e3nn, same paths": partial(e3nn_uuu, odd_paths=False),
                "e3nn, all paths": partial(e3nn_uuu, odd_paths=True),
            },
            heavy=lmax >= HEAVY_LMAX,
        )
    for lmax in LMAX:
        yield Case(
            name=f"gaunt_fft/fwd+bwd/lmax={lmax}",
            group="gaunt",
            setup=partial(setup, lmax),
            ours=partial(ours, backend="fft"),
            peers={"geonorm grid backend": ours},
            heavy=lmax >= HEAVY_LMAX,
        )


    for lmax in CONV_LMAX:
        yield Case(
            name=f"gaunt_conv/fwd+bwd/lmax={lmax}",
            group="gaunt",
            setup=partial(conv_setup, lmax),
            ours=ours_conv,
            peers={
                "e3nn uvu, same paths": partial(e3nn_uvu, odd_paths=False),
                "e3nn uvu, all paths": partial(e3nn_uvu, odd_paths=True),
            },
        )


CASES = [register(case) for case in _cases()]


def growth_exponents(results) -> dict[str, tuple[float, float]]:
    r"""Least-squares slope of :math:`\log t` against :math:`\log l_{\max}` per implementation.

    Returns ``{label: (slope over all lmax, slope over lmax >= 6)}`` for the
    ``gaunt_tp`` and ``gaunt_fft`` cases (``nan`` where fewer than two points).
    The grid backend appears twice: timed beside e3nn, whose multi-gigabyte
    intermediates at large lmax also slow down whatever runs next, and timed
    beside the FFT backend.
    """
    series: dict[str, list[tuple[int, float]]] = {}
    for result in results:
        op, _, size = result.case.name.split("/")
        if op == "gaunt_conv":
            continue
        lmax = int(size.split("=")[1])
        label = "geonorm grid" if op == "gaunt_tp" else "geonorm fft"
        series.setdefault(label, []).append((lmax, result.ours.median))
        for peer, timed in result.peers.items():
            # the grid backend is timed twice: beside e3nn (gaunt_tp) and beside fft
            name = "geonorm grid (beside fft)" if peer == "geonorm grid backend" else peer
            series.setdefault(name, []).append((lmax, timed.time.median))

    def slope(points: list[tuple[int, float]]) -> float:
        if len(points) < 2:
            return math.nan
        xs = [math.log(l) for l, _ in points]
        ys = [math.log(t) for _, t in points]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)

    return {
        label: (slope(pts), slope([p for p in pts if p[0] >= 6]))
        for label, pts in series.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Run the gaunt cases, print the Markdown table and the fitted exponents."""
    import argparse
    import shlex
    import sys

    from .report import environment, markdown_table
    from .timing import measure

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_gaunt")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    results = []
    for k, case in enumerate(CASES, 1):
        print(f"[{k}/{len(CASES)}] {case.group}/{case.name}", file=sys.stderr, flush=True)
        results.append(measure(case, dtype=dtype, warmup=args.warmup, repeat=args.repeat))
    env = environment(dtype, args.warmup, args.repeat)
    command = shlex.join(["python", "-m", "benchmarks.bench_gaunt", *(argv or sys.argv[1:])])
    print(markdown_table(results, env, command))
    span = f"lmax {min(LMAX)}-{max(LMAX)}"
    print(f"\n| implementation | exponent, {span} | exponent, lmax >= 6 |\n|:--|--:|--:|")
    for label, (full, high) in growth_exponents(results).items():
        print(f"| {label} | {full:.2f} | {high:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
