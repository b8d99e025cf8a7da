"""The result of an equivariance check: errors per sample, the worst one, a report."""

from __future__ import annotations

import dataclasses
import math

import torch

from .elements import GroupElement

__all__ = ["BlockError", "OutputError", "SampleError", "EquivarianceResult"]


@dataclasses.dataclass(frozen=True, eq=False)
class BlockError:
    r"""Error of one block of one output (an irrep of an irreps feature, e.g. ``"1o"``).

    ``rel_error`` is :math:`\|d_b\| / \max(\|r_b\|, \|y_b\|, s_b)` with
    :math:`d_b = y_b - r_b` over the block's entries, :math:`y = f(g x)`,
    :math:`r = g f(x)`, and the floor
    :math:`s_b = \max(\epsilon / \text{rtol} \cdot \|r\|, \text{atol} \sqrt{n_b})`:
    a block far smaller than its output is judged against the rounding of the
    whole output, not against its own size.
    """

    name: str
    rel_error: float
    passed: bool


@dataclasses.dataclass(frozen=True, eq=False)
class OutputError:
    r"""Error and verdict of one output (a tensor of a tuple, a key of a dict).

    ``rel_error`` is :math:`\|y - r\| / \max(\|r\|, \|y\|, \text{atol}\sqrt{n})`
    over the output's :math:`n` entries; it passes when it and every block's
    relative error are at most ``rtol``. Outputs are judged separately, so a
    large output (an energy) cannot hide an error in a small one (forces).
    """

    name: str
    rel_error: float
    abs_error: float
    passed: bool
    blocks: tuple[BlockError, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class SampleError:
    r"""Error of one group element in one mode.

    Attributes
    ----------
    mode : str
        ``"train"``, ``"eval"`` or ``"function"`` (``f`` is not a module).
    index : int
        Index of the element among the sampled ones.
    element : GroupElement
        The element ``g``.
    rel_error : float
        The largest relative error of the outputs (see :class:`OutputError`);
        ``inf`` if an output is not finite.
    abs_error : float
        :math:`\max |f(g x) - g f(x)|` over all entries (reported, not judged).
    output_rel_errors : tuple of float
        The relative error of each output separately.
    passed : bool
        Whether every output and every block passed.
    outputs : tuple of OutputError
        Per output: its errors, its blocks and its verdict.
    """

    mode: str
    index: int
    element: GroupElement
    rel_error: float
    abs_error: float
    output_rel_errors: tuple[float, ...]
    passed: bool
    outputs: tuple[OutputError, ...] = ()


@dataclasses.dataclass(frozen=True, eq=False)
class EquivarianceResult:
    """Outcome of :func:`~geonorm.testing.equivariance_error`.

    ``bool(result)`` is :attr:`passed`; ``str(result)`` is :attr:`report`.

    Attributes
    ----------
    samples : tuple of SampleError
        One entry per (mode, element), in the order they were evaluated.
    rtol, atol : float
        The tolerances a sample passes with.
    subject : str
        What was checked (the module's class name or the function's name).
    group : str
        The group sampled from.
    in_action, out_action : str
        The actions on inputs and outputs.
    dtype : torch.dtype
        The dtype the check ran in.
    cast_from : torch.dtype or None
        The dtype the model's parameters and buffers were cast up from (a
        float32-built model checked in float64, also when its user called
        ``.double()``: float64 tensors holding only float32 values), else ``None``.
    hints : tuple of str
        What the failing samples have in common (improper elements only,
        translations only, one mode only), as plain sentences.
    unchecked : tuple of str
        Outputs of ``f`` that no output action named (dict outputs).
    """

    samples: tuple[SampleError, ...]
    rtol: float
    atol: float
    subject: str
    group: str
    in_action: str
    out_action: str
    dtype: torch.dtype
    cast_from: torch.dtype | None = None
    hints: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()

    @property
    def worst(self) -> SampleError:
        """The sample with the largest relative error (non-finite first)."""
        return max(self.samples, key=lambda s: (not s.passed, s.rel_error))

    @property
    def rel_error(self) -> float:
        """Worst relative error over all samples and modes."""
        return max(s.rel_error for s in self.samples)

    @property
    def abs_error(self) -> float:
        """Worst absolute error over all samples and modes."""
        return max(s.abs_error for s in self.samples)

    @property
    def element(self) -> GroupElement:
        """The group element of the worst sample."""
        return self.worst.element

    @property
    def sample_errors(self) -> list[float]:
        """Relative error of every sample, in evaluation order."""
        return [s.rel_error for s in self.samples]

    @property
    def passed(self) -> bool:
        """Whether every sample passed."""
        return all(s.passed for s in self.samples)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def report(self) -> str:
        """A readable multi-line report of the check."""
        w = self.worst
        modes = ", ".join(dict.fromkeys(s.mode for s in self.samples))
        n = len({s.index for s in self.samples})
        lines = [
            f"Equivariance check {'passed' if self.passed else 'FAILED'} for {self.subject}",
            f"  group {self.group}; {n} sample(s); mode(s) {modes}; {_dtype(self.dtype)}; "
            f"rtol {self.rtol:.1e}, atol {self.atol:.1e}",
            f"  inputs:  {self.in_action}",
            f"  outputs: {self.out_action}",
            f"  worst relative error {_num(w.rel_error)} (absolute {_num(w.abs_error)}) "
            f"in mode {w.mode}, sample {w.index}: {w.element.describe()}",
        ]
        if self.cast_from is not None:
            lines.append(
                f"  note: the model's parameters/buffers hold {_dtype(self.cast_from)} values, "
                f"cast up to {_dtype(self.dtype)}; constants rounded in {_dtype(self.cast_from)} "
                "(e3nn's Clebsch–Gordan buffers) bound how equivariant it can be, so the default "
                f"rtol is {self.rtol:.1e}; build the model in {_dtype(self.dtype)} for the "
                "tighter check"
            )
        if w.outputs:
            lines.append("  per output (worst sample; relative error, verdict):")
            for o in _worst_outputs(self.samples):
                blocks = ", ".join(f"{b.name}: {_num(b.rel_error)}" + ("" if b.passed else " FAIL")
                                   for b in o.blocks)
                verdict = "ok" if o.passed else "FAIL"
                lines.append(f"    {o.name}: {_num(o.rel_error)} {verdict}"
                             + (f"  [{blocks}]" if len(o.blocks) > 1 else ""))
        elif len(w.output_rel_errors) > 1:
            per = ", ".join(_num(e) for e in w.output_rel_errors)
            lines.append(f"  relative error per output: {per}")
        if self.unchecked:
            lines.append(f"  not checked (no output action): {', '.join(self.unchecked)}")
        lines.extend(f"  hint: {h}" for h in self.hints)
        lines.extend(_matrix_lines(w.element))
        lines.append("  samples:")
        lines.append(f"    {'mode':<8} {'#':>3}  {'rel error':>9}  {'abs error':>9}  element")
        for s in self.samples:
            flag = "" if s.passed else "   <-- FAIL"
            lines.append(
                f"    {s.mode:<8} {s.index:>3}  {_num(s.rel_error):>9}  "
                f"{_num(s.abs_error):>9}  {s.element.describe()}{flag}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report


def _worst_outputs(samples) -> list[OutputError]:
    """For each output name, its entry in the sample where it did worst."""
    worst: dict[str, OutputError] = {}
    for s in samples:
        for o in s.outputs:
            cur = worst.get(o.name)
            if cur is None or (not o.passed, o.rel_error) > (not cur.passed, cur.rel_error):
                worst[o.name] = o
    return list(worst.values())


def _num(x: float) -> str:
    return "non-finite" if not math.isfinite(x) else f"{x:.2e}"


def _dtype(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _matrix_lines(g: GroupElement) -> list[str]:
    out = []
    if g.rotation is not None and g.rotation.shape[0] <= 4:
        rows = g.rotation.detach().double().cpu().tolist()
        out.append("  rotation matrix of the worst element:")
        out.extend("    [" + ", ".join(f"{v:+.6f}" for v in row) + "]" for row in rows)
    if g.translation is not None and g.translation.shape[0] <= 4:
        vals = ", ".join(f"{v:+.6f}" for v in g.translation.detach().double().cpu().tolist())
        out.append(f"  translation: [{vals}]")
    return out
