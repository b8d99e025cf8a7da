"""Interleaved timing of one case: every implementation, repetition by repetition.

Each repetition times every implementation once, in an order rotated by one
position per repetition, so drift and bursts of machine noise fall on all of
them alike and no implementation always runs first (with a cold cache) or
last. Reported times are per call: medians and quartiles over the
repetitions; the ratio ours/peer is formed within each repetition and then
summarised the same way.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from dataclasses import dataclass

import torch

from .registry import Case, Runner

__all__ = ["Quartiles", "PeerResult", "CaseResult", "measure", "MIN_SAMPLE_S"]

# A timed sample repeats a fast call until it lasts at least this long, so
# per-sample overhead (the timer, the loop) stays far below the time measured.
MIN_SAMPLE_S = 1e-3


@dataclass(frozen=True)
class Quartiles:
    """Median and quartiles of repeated measurements (per-call seconds, or ratios)."""

    q1: float
    median: float
    q3: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @classmethod
    def of(cls, values: list[float]) -> Quartiles:
        q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
        return cls(q1=q1, median=median, q3=q3)


@dataclass(frozen=True)
class PeerResult:
    """A peer's per-call time and the paired ratio ours/peer.

    ``ratio`` is taken repetition by repetition (ours and the peer timed in
    the same round), so noise that lasts a round cancels out of it.
    """

    time: Quartiles
    ratio: Quartiles


@dataclass(frozen=True)
class CaseResult:
    """Timings of one case; ``unavailable`` maps a peer to why it could not run."""

    case: Case
    ours: Quartiles
    peers: dict[str, PeerResult]
    unavailable: dict[str, str]
    repetitions: int


def _sample(run: Runner, number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        run()
    return (time.perf_counter() - start) / number


def measure(
    case: Case,
    *,
    dtype: torch.dtype,
    warmup: int,
    repeat: int,
    min_sample_s: float = MIN_SAMPLE_S,
    budget_s: float = math.inf,
) -> CaseResult:
    """Time ``case`` for ours and each available peer, interleaved.

    Parameters
    ----------
    case : Case
        The case to run.
    dtype : torch.dtype
        Passed to the case's setup.
    warmup : int
        Untimed calls of every implementation before timing.
    repeat : int
        Timed repetitions (at least 2, for the quartiles).
    min_sample_s : float
        Calls per sample are chosen, from one timed call of the fastest
        implementation, so that a sample lasts at least this long; ``0``
        times single calls.
    budget_s : float
        Stop repeating once the timed repetitions have taken this long (after
        at least 3 of them), so a case whose peer takes seconds per call ends
        in bounded time; the number done is reported.
    """
    if repeat < 2:
        raise ValueError(f"repeat: expected at least 2, got {repeat}")
    inputs = case.setup(dtype)
    runners: dict[str, Runner] = {"ours": case.ours(inputs)}
    unavailable: dict[str, str] = {}
    for label, impl in case.peers.items():
        try:
            runners[label] = impl(inputs)
        except ImportError as exc:
            unavailable[label] = str(exc)
    labels = list(runners)
    for _ in range(warmup):
        for label in labels:
            runners[label]()
    fastest = min(_sample(runners[label], 1) for label in labels)
    number = max(1, math.ceil(min_sample_s / fastest)) if min_sample_s > 0 else 1
    samples: dict[str, list[float]] = {label: [] for label in labels}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    start = time.perf_counter()
    try:
        for rep in range(repeat):
            shift = rep % len(labels)
            for label in labels[shift:] + labels[:shift]:
                samples[label].append(_sample(runners[label], number))
            if rep >= 2 and time.perf_counter() - start > budget_s:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    ours = samples.pop("ours")
    peers = {
        label: PeerResult(
            time=Quartiles.of(values),
            ratio=Quartiles.of([a / b for a, b in zip(ours, values, strict=True)]),
        )
        for label, values in samples.items()
    }
    return CaseResult(
        case=case, ours=Quartiles.of(ours), peers=peers, unavailable=unavailable, repetitions=len(ours)
    )
