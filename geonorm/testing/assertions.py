r"""Equivariance and invariance checks: :func:`equivariance_error` and the asserts.

For sampled group elements :math:`g`, compare :math:`f(g \cdot x)` with
:math:`g \cdot f(x)`:

.. math::

    \text{rel}(g) = \frac{\|f(g \cdot x) - g \cdot f(x)\|}
                         {\max(\|g \cdot f(x)\|, \text{tiny})},
    \qquad
    \text{abs}(g) = \max_i |f(g \cdot x) - g \cdot f(x)|_i ,

Frobenius norms over all outputs. A sample passes when
:math:`\text{rel} \le \text{rtol}` or :math:`\text{abs} \le \text{atol}`.

How the check runs
------------------
* In ``dtype`` (float64 by default): floating inputs are cast, and a module
  is deep-copied and cast — the caller's module is never touched.
* Modules are checked in ``"train"`` mode, ``"eval"`` mode or ``"both"``. In
  train mode :math:`f(x)` and :math:`f(g \cdot x)` are computed on the same
  batch (batch statistics see the same samples, transformed), each by a fresh
  copy of the module, so running statistics updated by one call do not leak
  into the other. Both calls start from the same random seed (torch's RNG is
  forked and restored), so dropout draws the same mask.
* Elements are drawn from ``group`` (default: the join of the input and
  output actions' groups) with a seeded generator: ``generator=None`` means
  seed 0, so a check is reproducible by default.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Callable, Sequence

import torch
from torch import nn

from .._checks import check_int
from .._numerics import default_tolerances, tiny_for
from .actions import GroupAction, JointAction, TrivialAction, as_action
from .groups import Group, join_groups
from .result import EquivarianceResult, SampleError

Tensor = torch.Tensor

__all__ = ["equivariance_error", "assert_equivariant", "assert_invariant"]

_MODES = ("train", "eval", "both")


def _generator(generator: torch.Generator | int | None) -> torch.Generator:
    if generator is None:
        return torch.Generator().manual_seed(0)
    if isinstance(generator, bool) or not isinstance(generator, (int, torch.Generator)):
        raise TypeError(
            f"generator: expected a torch.Generator, an int seed or None, "
            f"got {type(generator).__name__}"
        )
    if isinstance(generator, int):
        return torch.Generator().manual_seed(generator)
    return generator


def _cast(x: Any, dtype: torch.dtype) -> Any:
    if isinstance(x, Tensor) and x.is_floating_point():
        return x.detach().to(dtype)
    return x


def _outputs(y: Any, what: str) -> list[Tensor]:
    ys = list(y) if isinstance(y, (tuple, list)) else [y]
    for i, t in enumerate(ys):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"f: expected {what} to return a Tensor or a tuple of Tensors, "
                f"got {type(t).__name__} at position {i}"
            )
    return [t.detach() for t in ys]


def _subject(f: Callable) -> str:
    if isinstance(f, nn.Module):
        return type(f).__name__
    return getattr(f, "__name__", None) or type(f).__name__


class _Runner:
    """Calls ``f`` on fresh float64 copies with a fixed RNG seed."""

    def __init__(self, f: Callable, dtype: torch.dtype) -> None:
        if not callable(f):
            raise TypeError(f"f: expected a callable or an nn.Module, got {type(f).__name__}")
        self.module = copy.deepcopy(f).to(dtype) if isinstance(f, nn.Module) else None
        self.f = f

    def __call__(self, args: Sequence[Any], mode: str, seed: int) -> Any:
        devices = sorted({a.device.index or 0 for a in args if isinstance(a, Tensor) and a.is_cuda})
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            if self.module is None:
                return self.f(*args)
            m = copy.deepcopy(self.module)
            m.train(mode == "train")
            return m(*args)


def _compare(ys: list[Tensor], refs: list[Tensor], dtype: torch.dtype):
    if len(ys) != len(refs):
        raise ValueError(f"out_action: produced {len(refs)} outputs, f returned {len(ys)}")
    num, den, worst_abs, per, finite = 0.0, 0.0, 0.0, [], True
    for i, (y, r) in enumerate(zip(ys, refs, strict=True)):
        if y.shape != r.shape:
            raise ValueError(
                f"out_action: g·f(x) has shape {list(r.shape)} at output {i} but "
                f"f(g·x) has shape {list(y.shape)}"
            )
        y64, r64 = y.double(), r.double()
        finite = finite and bool(torch.isfinite(y64).all()) and bool(torch.isfinite(r64).all())
        d = float(torch.linalg.vector_norm(y64 - r64)) ** 2 if y.numel() else 0.0
        n = float(torch.linalg.vector_norm(r64)) ** 2 if y.numel() else 0.0
        per.append(math.sqrt(d) / max(math.sqrt(n), tiny_for(dtype)))
        num, den = num + d, den + n
        if y.numel():
            worst_abs = max(worst_abs, float((y64 - r64).abs().max()))
    if not finite:
        return math.inf, math.inf, tuple(math.inf for _ in per)
    return math.sqrt(num) / max(math.sqrt(den), tiny_for(dtype)), worst_abs, tuple(per)


def equivariance_error(
    f: Callable,
    action: GroupAction | Sequence[GroupAction],
    inputs: Tensor | Sequence[Any],
    out_action: GroupAction | Sequence[GroupAction] | None = None,
    *,
    n_samples: int = 4,
    generator: torch.Generator | int | None = None,
    mode: str = "both",
    group: Group | None = None,
    dtype: torch.dtype = torch.float64,
    rtol: float | None = None,
    atol: float | None = None,
) -> EquivarianceResult:
    r"""Measure how far ``f`` is from equivariant: :math:`f(g x)` vs :math:`g f(x)`.

    Parameters
    ----------
    f : nn.Module or callable
        Called as ``f(*inputs)``; returns a Tensor or a tuple of Tensors.
    action : GroupAction or tuple of GroupAction
        Action on the input (a tuple: one per input, sharing one element).
    inputs : Tensor or tuple
        One input tensor, or a tuple of inputs (non-floating entries and
        non-tensors are passed through unchanged; act on them with
        :class:`~geonorm.testing.TrivialAction`).
    out_action : GroupAction or tuple of GroupAction, optional
        Action on the output(s); default ``action`` (single input only).
    n_samples : int
        Number of group elements drawn.
    generator : torch.Generator or int, optional
        Source of the elements; ``None`` means seed 0.
    mode : {"train", "eval", "both"}
        Mode(s) a module is checked in (ignored for plain functions).
    group : Group, optional
        Group to sample from; default the join of the actions' groups.
    dtype : torch.dtype
        Dtype the check runs in.
    rtol, atol : float, optional
        Pass thresholds; default ``default_tolerances(dtype)``.

    Returns
    -------
    EquivarianceResult
        Worst relative and absolute error, the element that produced it, the
        error of every sample and a readable :attr:`~EquivarianceResult.report`.

    Examples
    --------
    >>> from geonorm.testing import IrrepsAction
    >>> r = equivariance_error(lambda x: 2 * x, IrrepsAction("0e+1o"), torch.randn(5, 4))
    >>> r.passed, r.rel_error < 1e-12
    (True, True)
    """
    in_act = as_action(action)
    single = not isinstance(inputs, (tuple, list))
    args = [inputs] if single else list(inputs)
    if not single and not isinstance(in_act, JointAction):
        if len(args) != 1:
            raise ValueError(
                f"action: expected a tuple of {len(args)} actions (one per input), "
                f"got a single {type(in_act).__name__}"
            )
        in_act = JointAction(in_act)
    if out_action is None:
        if not single:
            raise ValueError("out_action: required when f takes a tuple of inputs, got None")
        out_act = in_act
    else:
        out_act = as_action(out_action)
    check_int(n_samples, "n_samples")
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {', '.join(_MODES)}, got {mode!r}")
    tol = default_tolerances(dtype)
    rtol = tol["rtol"] if rtol is None else float(rtol)
    atol = tol["atol"] if atol is None else float(atol)
    gen = _generator(generator)
    run = _Runner(f, dtype)
    sample_group = group if group is not None else join_groups(in_act.group, out_act.group)
    if not isinstance(sample_group, Group):
        raise TypeError(f"group: expected a Group or None, got {type(sample_group).__name__}")
    elements = sample_group.sample(n_samples, gen, dtype)

    args = [_cast(a, dtype) for a in args]
    modes = ("function",) if run.module is None else (
        ("train", "eval") if mode == "both" else (mode,)
    )

    def act_in(g):
        if isinstance(in_act, JointAction):
            return list(in_act.act(g, tuple(args)))
        return [in_act.act(g, args[0])]

    def act_out(g, ys: list[Tensor]) -> list[Tensor]:
        if isinstance(out_act, JointAction):
            if len(ys) != len(out_act):
                raise ValueError(
                    f"out_action: expected f to return {len(out_act)} outputs, got {len(ys)}"
                )
            return list(out_act.act(g, tuple(ys)))
        if len(ys) != 1 and not isinstance(out_act, TrivialAction):
            raise ValueError(
                f"out_action: f returned {len(ys)} outputs; expected a tuple of "
                f"{len(ys)} actions, got a single {type(out_act).__name__}"
            )
        return [out_act.act(g, y) for y in ys]

    samples = []
    for m in modes:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        ys = _outputs(run(args, m, seed), "f(x)")
        for i, g in enumerate(elements):
            y_gx = _outputs(run(act_in(g), m, seed), "f(g·x)")
            rel, abs_err, per = _compare(y_gx, act_out(g, ys), dtype)
            ok = math.isfinite(rel) and (rel <= rtol or abs_err <= atol)
            samples.append(SampleError(m, i, g, rel, abs_err, per, ok))
    return EquivarianceResult(
        samples=tuple(samples),
        rtol=rtol,
        atol=atol,
        subject=_subject(f),
        group=str(sample_group),
        in_action=repr(in_act),
        out_action=repr(out_act),
        dtype=dtype,
    )


def assert_equivariant(
    f: Callable,
    action: GroupAction | Sequence[GroupAction],
    inputs: Tensor | Sequence[Any],
    out_action: GroupAction | Sequence[GroupAction] | None = None,
    **kwargs: Any,
) -> EquivarianceResult:
    """Raise ``AssertionError`` with the report unless ``f`` is equivariant.

    Same arguments as :func:`equivariance_error`; returns its result on success.

    Examples
    --------
    >>> from geonorm.testing import PointCloudAction
    >>> centre = lambda x: x - x.mean(dim=-2, keepdim=True)
    >>> _ = assert_equivariant(centre, PointCloudAction(group="e3"), torch.randn(2, 6, 3),
    ...                        PointCloudAction(group="e3", kind="vector"))
    >>> assert_equivariant(torch.tanh, PointCloudAction(group="e3"), torch.randn(2, 6, 3))
    Traceback (most recent call last):
    ...
    AssertionError: Equivariance check FAILED for tanh...
    """
    result = equivariance_error(f, action, inputs, out_action, **kwargs)
    if not result.passed:
        raise AssertionError(result.report)
    return result


def assert_invariant(
    f: Callable,
    action: GroupAction | Sequence[GroupAction],
    inputs: Tensor | Sequence[Any],
    **kwargs: Any,
) -> EquivarianceResult:
    """Raise ``AssertionError`` unless ``f(g·x) == f(x)`` (trivial output action).

    Examples
    --------
    >>> from geonorm.testing import CongruenceAction
    >>> x = torch.randn(3, 4, 4, dtype=torch.float64)
    >>> _ = assert_invariant(lambda s: torch.linalg.eigvalsh(s + s.mT), CongruenceAction(4), x)
    """
    return assert_equivariant(f, action, inputs, TrivialAction(), **kwargs)
