"""Command line: ``python -m benchmarks [names...] [options]``."""

from __future__ import annotations

import argparse
import shlex
import sys

import torch

from .registry import Case, load_cases
from .report import environment, markdown_table, plain_table
from .timing import MIN_SAMPLE_S, CaseResult, measure

__all__ = ["main"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Time geonorm side by side with its peers and print ratios.",
    )
    add = parser.add_argument
    add("names", nargs="*", help="groups (linalg) or cases (see --list); default: all")
    add("--filter", metavar="SUBSTR", help="keep cases whose group/name contains SUBSTR")
    add("--repeat", type=int, default=50, metavar="R", help="timed repetitions (default 50)")
    add("--warmup", type=int, default=5, metavar="W", help="untimed calls first (default 5)")
    add("--dtype", choices=sorted(_DTYPES), default="float64")
    add(
        "--threads", type=int, default=1, metavar="T",
        help="torch.set_num_threads(T) (default 1, as torch.utils.benchmark does)",
    )  # fmt: skip
    add("--markdown", action="store_true", help="print Markdown tables")
    add(
        "--budget", type=float, default=60.0, metavar="S",
        help="stop a case's repetitions after S seconds (at least 3 done; default 60)",
    )  # fmt: skip
    add("--quick", action="store_true", help="smoke test: 1 warm-up call, 2 repetitions, no heavy cases")
    add("--list", action="store_true", help="list the selected cases and exit")
    return parser


def _case_id(case: Case) -> str:
    return f"{case.group}/{case.name}"


def _select(parser: argparse.ArgumentParser, names: list[str], substring: str | None) -> list[Case]:
    cases = load_cases()
    known = {c.group for c in cases} | {_case_id(c) for c in cases}
    for name in names:
        if name not in known:
            parser.error(f"unknown group or case {name!r}; try --list")
    if names:
        cases = [c for c in cases if c.group in names or _case_id(c) in names]
    if substring:
        cases = [c for c in cases if substring in _case_id(c)]
    if not cases:
        parser.error(f"no case matches --filter {substring!r}; try --list")
    return cases


def _run(cases: list[Case], args: argparse.Namespace) -> list[CaseResult]:
    results = []
    for k, case in enumerate(cases, 1):
        print(f"[{k}/{len(cases)}] {_case_id(case)}", file=sys.stderr, flush=True)
        result = measure(
            case,
            dtype=_DTYPES[args.dtype],
            warmup=args.warmup,
            repeat=args.repeat,
            min_sample_s=0.0 if args.quick else MIN_SAMPLE_S,
            budget_s=args.budget,
        )
        if result.repetitions < args.repeat:
            print(f"    {result.repetitions} repetitions (--budget {args.budget:g} s)", file=sys.stderr)
        for peer, reason in result.unavailable.items():
            print(f"    {peer}: peer unavailable ({reason})", file=sys.stderr)
        results.append(result)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run the selected cases and print their table; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    args = parser.parse_args(argv)
    if args.quick:
        args.warmup, args.repeat = 1, 2
    if args.repeat < 2 or args.warmup < 0 or args.threads < 1:
        parser.error("--repeat must be at least 2, --warmup at least 0, --threads at least 1")
    torch.set_num_threads(args.threads)
    cases = _select(parser, args.names, args.filter)
    if args.quick:
        cases = [c for c in cases if not c.heavy]
    if args.list:
        print("\n".join(f"{_case_id(c)}  peers: {', '.join(c.peers)}" for c in cases))
        return 0
    results = _run(cases, args)
    env = environment(_DTYPES[args.dtype], args.warmup, args.repeat)
    if args.markdown:
        command = shlex.join(["python", "-m", "benchmarks", *argv])
        print(markdown_table(results, env, command))
    else:
        print(plain_table(results, env))
    return 0
