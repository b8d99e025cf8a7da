"""Command line: check a user's model for equivariance.

.. code-block:: text

    python -m geonorm.testing check pkg.module:factory --group o3 \\
        --irreps-in "8x0e+4x1o" --irreps-out "4x0e+2x1o" [--mode both] [--samples 4]
    python -m geonorm.testing check pkg.module:factory --group e3 --points 10 --output vector
    python -m geonorm.testing check pkg.module:factory --group on --n 5
    python -m geonorm.testing check pkg.module:factory --group perm --set-size 6 --output invariant
    python -m geonorm.testing check pkg.module:factory --group e3 --points 6 --batch 3 \\
        --input positions --input irreps:8x0e+4x1o --input batch --output irreps:4x0e+2x1o

``factory`` is a callable taking no arguments that returns an ``nn.Module``
or a function (an ``nn.Module`` instance is used as is). With one input the
CLI builds a random batch for the group (irreps features ``[batch, dim]``,
point clouds ``[batch, N, 3]``, SPD matrices ``[batch, n, n]``, sets
``[batch, M, F]`` permuted along axis 1). With ``--input`` (repeated, in the
order the model takes them) it builds a graph batch of ``--batch`` molecules
of ``--points`` atoms stored atom-wise, as torch_geometric does:
``positions`` and ``vectors`` ``[B N, 3]``, ``irreps:SPEC`` ``[B N, dim]``,
``species:K`` ``[B N]`` (integers below K) and ``batch`` ``[B N]`` (the
molecule of each atom); ``--output`` (repeated for several outputs) is
``invariant``, ``vector``, ``pseudovector``, ``position`` or ``irreps:SPEC``.
It runs :func:`~geonorm.testing.equivariance_error` in ``--dtype`` (float64
by default) and prints its report.

Exit status: 0 if the check passes, 1 if it fails (or the factory or the
model raises), 2 for a usage error (bad options, a target that cannot be
imported). The same entry point is installed as ``geonorm-check``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from typing import Any, Sequence

import torch
from e3nn import o3

from .actions import GroupAction, PermutationAction, TrivialAction
from .assertions import equivariance_error
from .euclidean import CongruenceAction, IrrepsAction, PointCloudAction

__all__ = ["main", "build_parser"]

_GROUPS = ("o3", "so3", "e3", "se3", "t3", "on", "son", "perm")
_OUTPUTS = ("equivariant", "invariant", "vector", "pseudovector")
_GRAPH_OUTPUTS = ("invariant", "vector", "pseudovector", "position", "irreps:SPEC")
_INPUTS = ("positions", "vectors", "irreps:SPEC", "species:K", "batch")
_DTYPES = ("float32", "float64")


class _UsageError(Exception):
    pass


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``argparse`` parser of ``python -m geonorm.testing``."""
    parser = argparse.ArgumentParser(
        prog="python -m geonorm.testing",
        description="Equivariance checks for geonorm and user models.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="check")
    p = sub.add_parser(
        "check",
        help="check a model built by pkg.module:factory",
        description="Check f(g·x) == g·f(x) on random inputs and sampled group elements.",
    )
    p.add_argument("target", help="pkg.module:factory (a no-argument callable returning the model)")
    p.add_argument("--group", required=True, choices=_GROUPS, help="symmetry group")
    p.add_argument("--irreps-in", help="input irreps (o3/so3), e.g. '8x0e+4x1o'")
    p.add_argument("--irreps-out", help="output irreps (o3/so3; default: --irreps-in)")
    p.add_argument("--points", type=_positive, help="points per cloud (e3/se3, or o3/so3 clouds)")
    p.add_argument("--n", type=_positive, help="matrix size for on/son (SPD inputs)")
    p.add_argument("--set-size", type=_positive, help="set size for perm")
    p.add_argument("--features", type=_positive, default=4, help="features per set element (perm)")
    p.add_argument(
        "--output", action="append", metavar="KIND",
        help="how the output transforms: like the input (default), invariant, "
             "or as vectors/pseudovectors (point clouds); with --input: one of "
             f"{', '.join(_GRAPH_OUTPUTS)}, repeated for several outputs",
    )
    p.add_argument(
        "--input", action="append", metavar="KIND",
        help=f"an input of a graph-batch model ({', '.join(_INPUTS)}), repeated in the "
             "order the model takes them",
    )
    p.add_argument("--dtype", choices=_DTYPES, default="float64",
                   help="dtype the check runs in (default float64)")
    p.add_argument("--batch", type=_positive, default=4, help="batch size (default 4)")
    p.add_argument("--samples", type=_positive, default=4, help="group elements (default 4)")
    p.add_argument("--mode", choices=("train", "eval", "both"), default="both")
    p.add_argument("--seed", type=int, default=0, help="seed of inputs and elements")
    p.add_argument("--rtol", type=float, help="relative tolerance (default for --dtype)")
    p.add_argument("--atol", type=float,
                   help="absolute difference per entry counted as rounding (default 4 eps "
                        "times the inputs' root mean square)")
    return parser


def _load(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise _UsageError(f"target: expected 'pkg.module:factory', got {target!r}")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        raise _UsageError(f"target: cannot import module {module_name!r} ({err})") from None
    finally:
        if added:
            sys.path.remove(cwd)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise _UsageError(f"target: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise _UsageError(f"target: expected a callable factory, got {type(obj).__name__}")
    return obj


def _irreps(text: str, name: str) -> o3.Irreps:
    try:
        return o3.Irreps(text)
    except Exception:
        raise _UsageError(
            f"{name}: expected an irreps string like '4x0e+2x1o', got {text!r}"
        ) from None


def _graph_setup(args: argparse.Namespace, gen: torch.Generator):
    """Several inputs stored atom-wise: ``--batch`` molecules of ``--points`` atoms."""
    group = args.group
    if group not in ("o3", "so3", "e3", "se3", "t3"):
        raise _UsageError(f"--input: only for the Euclidean groups o3, so3, e3, se3, t3, "
                          f"got --group {group}")
    if args.points is None:
        raise _UsageError("--points: required with --input (atoms per molecule)")
    if args.irreps_in or args.irreps_out or args.n is not None or args.set_size is not None:
        raise _UsageError("--irreps-in/--irreps-out/--n/--set-size: not used with --input "
                          "(use --input irreps:SPEC and --output irreps:SPEC)")
    n = args.batch * args.points
    xs: list = []
    acts: list[GroupAction] = []
    for spec in args.input:
        kind, _, arg = spec.partition(":")
        if kind == "positions" and not arg:
            xs.append(torch.randn(n, 3, generator=gen, dtype=torch.float64))
            acts.append(PointCloudAction(group=group))
        elif kind == "vectors" and not arg:
            xs.append(torch.randn(n, 3, generator=gen, dtype=torch.float64))
            acts.append(PointCloudAction(group=group, kind="vector"))
        elif kind == "irreps" and arg:
            ir = _irreps(arg, "--input")
            xs.append(torch.randn(n, ir.dim, generator=gen, dtype=torch.float64))
            acts.append(IrrepsAction(ir, group=group))
        elif kind == "species" and arg.isdigit() and int(arg) > 0:
            xs.append(torch.randint(0, int(arg), (n,), generator=gen))
            acts.append(TrivialAction())
        elif kind == "batch" and not arg:
            xs.append(torch.arange(args.batch).repeat_interleave(args.points))
            acts.append(TrivialAction())
        else:
            raise _UsageError(f"--input: expected one of {', '.join(_INPUTS)}, got {spec!r}")
    outs: list[GroupAction] = []
    for spec in args.output or ["invariant"]:
        kind, _, arg = spec.partition(":")
        if kind == "invariant" and not arg:
            outs.append(TrivialAction())
        elif kind in ("vector", "pseudovector", "position") and not arg:
            outs.append(PointCloudAction(group=group, kind=kind))
        elif kind == "irreps" and arg:
            outs.append(IrrepsAction(_irreps(arg, "--output"), group=group))
        else:
            raise _UsageError(
                f"--output: expected one of {', '.join(_GRAPH_OUTPUTS)} with --input, got {spec!r}"
            )
    out_act: Any = outs[0] if len(outs) == 1 else tuple(outs)
    return tuple(xs), tuple(acts), out_act


def _setup(args: argparse.Namespace, gen: torch.Generator):
    """Inputs and (input, output) actions for the chosen group."""
    if args.input:
        return _graph_setup(args, gen)
    outputs = args.output or ["equivariant"]
    if len(outputs) > 1 or outputs[0] not in _OUTPUTS:
        raise _UsageError(
            f"--output: expected one of {', '.join(_OUTPUTS)} (several outputs need --input), "
            f"got {' '.join(outputs)}"
        )
    group, b, out = args.group, args.batch, outputs[0]
    if group == "t3":
        raise _UsageError("--group t3: only with --input (graph inputs)")
    point_only = out in ("vector", "pseudovector")
    if group in ("o3", "so3", "e3", "se3"):
        if args.irreps_in is not None and args.points is not None:
            raise _UsageError("--irreps-in and --points: expected one of them, got both")
        if group in ("e3", "se3") and args.points is None:
            raise _UsageError(f"--points: required for --group {group}")
        if args.points is None and args.irreps_in is None:
            raise _UsageError(f"--irreps-in or --points: one is required for --group {group}")
        if args.n is not None or args.set_size is not None:
            raise _UsageError(f"--n/--set-size: not used with --group {group}")
        if args.points is None:
            ir_in = _irreps(args.irreps_in, "--irreps-in")
            ir_out = _irreps(args.irreps_out or args.irreps_in, "--irreps-out")
            if point_only:
                raise _UsageError(f"--output {out}: only for point clouds (--points)")
            x = torch.randn(b, ir_in.dim, generator=gen, dtype=torch.float64)
            in_act: GroupAction = IrrepsAction(ir_in, group=group)
            out_act: GroupAction = IrrepsAction(ir_out, group=group)
        else:
            x = torch.randn(b, args.points, 3, generator=gen, dtype=torch.float64)
            in_act = PointCloudAction(group=group)
            kind = out if point_only else "position"
            if args.irreps_out is not None:
                if point_only:
                    raise _UsageError(f"--output {out} and --irreps-out: expected one of them")
                out_act = IrrepsAction(_irreps(args.irreps_out, "--irreps-out"), group=group)
            else:
                out_act = PointCloudAction(group=group, kind=kind)
    else:
        if args.irreps_in or args.irreps_out or args.points is not None:
            raise _UsageError(f"--irreps-in/--irreps-out/--points: not used with --group {group}")
        if point_only:
            raise _UsageError(f"--output {out}: only for point clouds (--points)")
        if group in ("on", "son"):
            if args.n is None:
                raise _UsageError(f"--n: required for --group {group}")
            a = torch.randn(b, args.n, args.n, generator=gen, dtype=torch.float64)
            eye = torch.eye(args.n, dtype=torch.float64)
            x = a @ a.mT / args.n + 0.5 * eye  # [batch, n, n] SPD, well conditioned
            in_act = out_act = CongruenceAction(args.n, group=group)
        else:
            if args.set_size is None:
                raise _UsageError("--set-size: required for --group perm")
            x = torch.randn(b, args.set_size, args.features, generator=gen, dtype=torch.float64)
            in_act = out_act = PermutationAction(args.set_size, dim=1)
    if out == "invariant":
        out_act = TrivialAction()
    return x, in_act, out_act


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status (0 pass, 1 fail, 2 usage error)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return int(exc.code or 0)
    try:
        gen = torch.Generator().manual_seed(args.seed)
        x, in_act, out_act = _setup(args, gen)
        factory = _load(args.target)
    except _UsageError as err:
        print(f"{parser.prog} check: error: {err}", file=sys.stderr)
        return 2
    try:
        model = factory if isinstance(factory, torch.nn.Module) else factory()
        if not callable(model):
            raise TypeError(f"factory returned a non-callable {type(model).__name__}")
        result = equivariance_error(
            model, in_act, x, out_act, n_samples=args.samples, generator=gen,
            mode=args.mode, rtol=args.rtol, atol=args.atol, dtype=getattr(torch, args.dtype),
        )
    except Exception as err:
        what = f"{type(err).__name__}: {err}"
        print(f"{args.target}: FAILED: the check raised {what}", file=sys.stderr)
        print(traceback.format_exc(limit=-3), file=sys.stderr)
        return 1
    print(result.report)
    return 0 if result.passed else 1
