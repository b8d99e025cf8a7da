"""Tables of results: plain text for the terminal, Markdown for the docs.

One row per (case, peer): the median per-call time and interquartile range
of geonorm ("ours") and of the peer, and the median of the per-repetition
ratios ours/peer with its quartiles. Below 1 geonorm is faster, above 1 it is
slower.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator
from itertools import groupby

import torch

from .timing import CaseResult, Quartiles

__all__ = ["environment", "plain_table", "markdown_table"]

_HEADER = (
    "case", "peer", "ours", "ours IQR", "peer time", "peer IQR", "ours/peer", "ratio q1–q3",
)  # fmt: skip
_FOOTNOTE = (
    "ours/peer < 1: geonorm is faster; > 1: slower "
    "(median of per-repetition ratios, with its quartiles)."
)
_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs"), (1e-9, "ns"))


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(dtype: torch.dtype, warmup: int, repeat: int) -> str:
    """One line saying where and how the numbers were measured."""
    threads = torch.get_num_threads()
    return (
        f"{_cpu_model()} ({os.cpu_count()} cores), {platform.system()}, "
        f"Python {platform.python_version()}, torch {torch.__version__} "
        f"({threads} thread{'s' if threads != 1 else ''}), "
        f"{str(dtype).removeprefix('torch.')}, warmup {warmup}, repeat {repeat}"
    )


def _unit(seconds: float) -> tuple[float, str]:
    for scale, name in _UNITS:
        if seconds >= scale:
            return scale, name
    return _UNITS[-1]


def _time_pair(timing: Quartiles) -> tuple[str, str]:
    scale, name = _unit(timing.median)
    return f"{timing.median / scale:.3g} {name}", f"{timing.iqr / scale:.2g} {name}"


def _rows(results: list[CaseResult]) -> list[tuple[str, ...]]:
    rows = []
    for result in results:
        name, ours = result.case.name, _time_pair(result.ours)
        for peer, timed in result.peers.items():
            ratio = timed.ratio
            spread = f"{ratio.q1:.2f}–{ratio.q3:.2f}"
            rows.append((name, peer, *ours, *_time_pair(timed.time), f"{ratio.median:.2f}", spread))
        for peer in result.unavailable:
            rows.append((name, peer, *ours, "peer unavailable", "", "", ""))
    return rows


def _by_group(results: list[CaseResult]) -> Iterator[tuple[str, list[CaseResult]]]:
    for group, members in groupby(results, key=lambda result: result.case.group):
        yield group, list(members)


def plain_table(results: list[CaseResult], env: str) -> str:
    """Aligned text tables, one per group, under the environment line."""
    lines = [env, ""]
    for group, members in _by_group(results):
        table = [_HEADER, *_rows(members)]
        widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
        lines.append(f"[{group}]")
        for k, row in enumerate(table):
            pairs = enumerate(zip(row, widths, strict=True))
            cells = [c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in pairs]
            lines.append("  ".join(cells).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths))
        lines.append("")
    lines.append(_FOOTNOTE)
    return "\n".join(lines)


def markdown_table(results: list[CaseResult], env: str, command: str) -> str:
    """Markdown tables, one per group, under the command line and environment."""
    lines = [f"Measured with `{command}` on {env}.", ""]
    for group, members in _by_group(results):
        lines += [f"**{group}**", "", "| " + " | ".join(_HEADER) + " |"]
        lines.append("|" + "|".join([":--", ":--"] + ["--:"] * (len(_HEADER) - 2)) + "|")
        for name, *cells in _rows(members):
            lines.append("| " + " | ".join([f"`{name}`", *cells]) + " |")
        lines.append("")
    lines.append(_FOOTNOTE)
    return "\n".join(lines)
