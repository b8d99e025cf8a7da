"""The result of an equivariance check: errors per sample, the worst one, a report."""

from __future__ import annotations

import dataclasses
import math

import torch

from .elements import GroupElement

__all__ = ["SampleError", "EquivarianceResult"]


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
        :math:`\|f(g x) - g f(x)\| / \max(\|g f(x)\|, \text{tiny})` over all
        outputs (Frobenius norms); ``inf`` if an output is not finite.
    abs_error : float
        :math:`\max |f(g x) - g f(x)|` over all entries.
    output_rel_errors : tuple of float
        The relative error of each output separately.
    passed : bool
        ``rel_error <= rtol`` or ``abs_error <= atol``.
    """

    mode: str
    index: int
    element: GroupElement
    rel_error: float
    abs_error: float
    output_rel_errors: tuple[float, ...]
    passed: bool


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
    """

    samples: tuple[SampleError, ...]
    rtol: float
    atol: float
    subject: str
    group: str
    in_action: str
    out_action: str
    dtype: torch.dtype

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
        if len(w.output_rel_errors) > 1:
            per = ", ".join(_num(e) for e in w.output_rel_errors)
            lines.append(f"  relative error per output: {per}")
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
