r"""Equivariance and invariance checks: :func:`equivariance_error` and the asserts.

For sampled group elements :math:`g`, compare :math:`y = f(g \cdot x)` with
:math:`r = g \cdot f(x)`, output by output:

.. math::

    \text{rel}(g) = \frac{\|y - r\|}
        {\max(\|r\|, \|y\|, \text{atol}\sqrt{n} / \text{rtol})},

Frobenius norms over the output's :math:`n` entries, and the same per block
of an output whose action names blocks (each irrep of an
:class:`~geonorm.testing.IrrepsAction`; for a block, the floor is at least
:math:`16\,\epsilon \max(\|r\|, \|y\|)`, the rounding level of its whole
output). A sample passes when every output and every block has
:math:`\text{rel} \le \text{rtol}`, i.e. :math:`\|y - r\| \le
\max(\text{rtol} \cdot \text{size}, \text{atol}\sqrt{n})`. Outputs are judged
separately, so an energy of :math:`-8000` cannot hide a wrong force. The
default ``atol`` is :math:`4\epsilon` times the root mean square of the
inputs' rounding scales (:meth:`~geonorm.testing.GroupAction.rounding_scale`:
the entries' magnitudes, or :math:`\sqrt{n}\,\|X\|_2` for matrices under
:class:`~geonorm.testing.CongruenceAction`) — the rounding level of an output
that cancels to zero, such as :math:`\log I` — not a fixed number: a small
output (``1e-3``) with a relative break (``1e-3``) fails even in float32.

How the check runs
------------------
* In ``dtype`` (float64 by default): floating inputs are cast, and a module
  is deep-copied and cast — the caller's module is never touched. A plain
  function closing over modules (or a bound method, a ``functools.partial``)
  is rebuilt around cast copies of them.
* A model built in a less precise dtype (float32) and cast up keeps that
  dtype's rounding in its constants (e3nn's Clebsch–Gordan buffers), so its
  default ``rtol`` is :func:`geonorm._numerics.cast_constants_rtol` of that
  dtype (``1.2e-5`` for float32), still far below a ``1e-4`` relative break;
  the report says so.
* Modules are checked in ``"train"`` mode, ``"eval"`` mode or ``"both"``. In
  train mode :math:`f(x)` and :math:`f(g \cdot x)` are computed on the same
  batch (batch statistics see the same samples, transformed), each by a fresh
  copy of the module, so running statistics updated by one call do not leak
  into the other. Both calls start from the same random seed (torch's RNG is
  forked and restored), so dropout draws the same mask.
* Elements are drawn from ``group`` (default: the join of the input and
  output actions' groups) with a seeded generator: ``generator=None`` means
  seed 0, so a check is reproducible by default.
* With ``action=None`` the actions come from e3nn-style attributes of ``f``
  (``irreps_in`` or ``irreps_in1`` / ``irreps_in2``, and ``irreps_out``) as in
  ``e3nn.util.test.assert_equivariant``; with ``inputs=None`` too, a random
  batch of 4 samples is drawn for them.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping, Sequence

import torch

from .._checks import check_int
from .._numerics import cast_constants_rtol, default_tolerances, machine_eps, tiny_for
from ._running import Runner
from ._structure import Inputs, input_actions, named_outputs, out_actions
from .actions import GroupAction, JointAction, TrivialAction
from .elements import GroupElement
from .groups import Group, join_groups
from .result import BlockError, EquivarianceResult, OutputError, SampleError

Tensor = torch.Tensor

__all__ = ["equivariance_error", "assert_equivariant", "assert_invariant"]

_MODES = ("train", "eval", "both")
# A block is judged against at least this many epsilons of its output's norm.
_BLOCK_ROUNDING = 16.0
# Default atol: this many epsilons of the inputs' root mean square (the rounding
# level of an output that cancels to zero, such as log(I)).
_ROUNDING_ATOL = 4.0


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


def _fresh(values: list[Any]) -> list[Any]:
    """Detached copies of the floating inputs (``f`` may call ``requires_grad_`` on them)."""
    return [v.detach().clone() if isinstance(v, Tensor) and v.is_floating_point() else v
            for v in values]


def _subject(f: Callable) -> str:
    if isinstance(f, torch.nn.Module):
        return type(f).__name__
    return getattr(f, "__name__", None) or type(f).__name__


def _irreps_actions(f: Callable):
    """(input actions, output action or None) from e3nn ``irreps_*`` attributes of ``f``."""
    from .euclidean import IrrepsAction  # e3nn is imported only when inference is needed

    def act(irreps):
        return TrivialAction() if irreps is None else IrrepsAction(irreps)

    out = getattr(f, "irreps_out", None)
    out_act = None if out is None else act(out)
    if hasattr(f, "irreps_in1") and hasattr(f, "irreps_in2"):
        return (act(f.irreps_in1), act(f.irreps_in2)), out_act
    irreps_in = getattr(f, "irreps_in", None)
    if irreps_in is None:
        raise TypeError(
            f"action: expected a GroupAction (or f with e3nn attributes irreps_in or "
            f"irreps_in1/irreps_in2 to infer it from), got None and a {type(f).__name__} "
            "without them"
        )
    if isinstance(irreps_in, (list, tuple)) and not hasattr(irreps_in, "dim"):  # not an Irreps
        return tuple(act(i) for i in irreps_in), out_act
    return act(irreps_in), out_act


def _random_inputs(actions, gen: torch.Generator, dtype: torch.dtype):
    """A batch of 4 random features for each inferred irreps action."""
    acts = actions if isinstance(actions, tuple) else (actions,)
    xs = []
    for a in acts:
        if not hasattr(a, "irreps"):
            raise ValueError(
                "inputs: required when an input has no irreps (an irreps_in entry is None), "
                "got None"
            )
        xs.append(torch.randn(4, a.irreps.dim, generator=gen, dtype=dtype))
    return xs[0] if not isinstance(actions, tuple) else tuple(xs)


def _norm(t: Tensor) -> float:
    return float(torch.linalg.vector_norm(t)) if t.numel() else 0.0


def _judge(name: str, y: Tensor, r: Tensor, action: GroupAction, rtol: float, atol: float,
           eps: float) -> OutputError:
    """Relative error and verdict of one output and of each of its blocks (module notes)."""
    if y.shape != r.shape:
        raise ValueError(
            f"out_action: g·f(x) has shape {list(r.shape)} at {name} but "
            f"f(g·x) has shape {list(y.shape)}"
        )
    y64, r64 = y.double(), r.double()
    if not (bool(torch.isfinite(y64).all()) and bool(torch.isfinite(r64).all())):
        return OutputError(name, math.inf, math.inf, False)
    d = y64 - r64
    size = max(_norm(r64), _norm(y64))
    tiny = tiny_for(torch.float64)
    zero = atol * math.sqrt(max(d.numel(), 1))  # below this difference counts as rounding
    rel = _norm(d) / max(size, zero / rtol, tiny)
    abs_err = float(d.abs().max()) if d.numel() else 0.0
    blocks = []
    spec = action.blocks() if hasattr(action, "blocks") else None
    if spec and len(spec) > 1 and d.ndim >= 1:
        floor = _BLOCK_ROUNDING * eps * size  # the rounding level of the whole output
        for bname, sl in spec:
            db, rb, yb = d[..., sl], r64[..., sl], y64[..., sl]
            zero_b = max(floor, atol * math.sqrt(max(db.numel(), 1)))
            e = _norm(db) / max(_norm(rb), _norm(yb), zero_b / rtol, tiny)
            blocks.append(BlockError(bname, e, e <= rtol))
    ok = rel <= rtol and all(b.passed for b in blocks)
    return OutputError(name, rel, abs_err, ok, tuple(blocks))


def _input_scale(values: list[Any], actions: list[GroupAction]) -> float:
    """Root mean square of the inputs' rounding scales (1 if none or all zero).

    Each floating input contributes its action's
    :meth:`~geonorm.testing.GroupAction.rounding_scale` (``|x|`` by default).
    """
    total, count = 0.0, 0
    for v, a in zip(values, actions, strict=True):
        if isinstance(v, Tensor) and v.is_floating_point() and v.numel():
            total += float(a.rounding_scale(v.detach()).double().square().sum())
            count += v.numel()
    rms = math.sqrt(total / count) if count else 0.0
    return rms if rms > 0 and math.isfinite(rms) else 1.0


def _hints(samples: list[SampleError]) -> list[str]:
    hints = []
    failed = [s for s in samples if not s.passed]
    if not failed:
        return hints
    with_rot = [s for s in samples if s.element.rotation is not None]
    if with_rot and all(s.element.rotation is not None for s in failed):
        bad_det = {s.element.det for s in failed}
        good_proper = any(s.passed and s.element.det > 0 for s in with_rot)
        if bad_det == {-1.0} and good_proper:
            hints.append(
                "fails only for improper elements (det -1), proper rotations pass: likely a "
                "parity label (e.g. 1o declared where the output is 1e, a cross product), or "
                "a vector/pseudovector mix-up"
            )
    modes = {s.mode for s in samples}
    bad_modes = {s.mode for s in failed}
    if len(modes) > 1 and len(bad_modes) == 1:
        (m,) = bad_modes
        other = (modes - bad_modes).pop()
        hints.append(f"fails only in {m} mode ({other} mode passes)")
    outputs = {o.name for s in samples for o in s.outputs}
    bad_out = {o.name for s in failed for o in s.outputs if not o.passed}
    if len(outputs) > 1 and bad_out and bad_out != outputs:
        hints.append(f"fails only for output(s) {', '.join(sorted(bad_out))}")
    return hints


def equivariance_error(
    f: Callable,
    action: GroupAction | Sequence[GroupAction] | Mapping[str, GroupAction] | None = None,
    inputs: Tensor | Sequence[Any] | Mapping[str, Any] | None = None,
    out_action: GroupAction | Sequence[GroupAction] | Mapping[str, GroupAction] | None = None,
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
        Called as ``f(x)`` (one tensor), ``f(*inputs)`` (a tuple) or
        ``f(inputs)`` (a dict); returns a Tensor, a tuple of Tensors or a dict
        of Tensors.
    action : GroupAction, tuple or dict of GroupAction, optional
        Action on the input: one per tuple entry (sharing one element), or a
        dict ``{input name: action}`` for dict inputs (inputs it does not
        name are passed unchanged). ``None``: inferred from ``f.irreps_in``
        or ``f.irreps_in1`` / ``f.irreps_in2`` (e3nn modules).
    inputs : Tensor, tuple or dict, optional
        The inputs (non-floating entries and non-tensors are passed through
        unchanged; act on them with :class:`~geonorm.testing.TrivialAction`).
        ``None``: a random batch of 4 for inferred irreps actions.
    out_action : GroupAction, tuple or dict of GroupAction, optional
        Action on the output(s): one per tuple entry, or ``{output name:
        action}`` for dict outputs (``{"energy": TrivialAction(), "forces":
        PointCloudAction(kind="vector")}``); outputs it does not name are
        listed as unchecked. Default: from ``f.irreps_out`` if ``f`` has it,
        else ``action`` (single input only).
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
    rtol : float, optional
        Pass threshold of every output's (and block's) relative error; default
        ``default_tolerances(dtype)["rtol"]``, raised to
        ``cast_constants_rtol(d)`` for a model built in a less precise ``d``.
    atol : float, optional
        Absolute difference per entry that counts as rounding; default
        :math:`4\epsilon` times the inputs' root mean square (see the module
        notes). A large ``atol`` lets small outputs through: set it knowingly.

    Returns
    -------
    EquivarianceResult
        Per sample, output and block: the relative errors and verdicts, the
        element of the worst sample, hints, and a readable
        :attr:`~EquivarianceResult.report`.

    Examples
    --------
    >>> from geonorm.testing import IrrepsAction
    >>> r = equivariance_error(lambda x: 2 * x, IrrepsAction("0e+1o"), torch.randn(5, 4))
    >>> r.passed, r.rel_error < 1e-12
    (True, True)
    """
    check_int(n_samples, "n_samples")
    rtol_default = rtol is None
    if mode not in _MODES:
        raise ValueError(f"mode: expected one of {', '.join(_MODES)}, got {mode!r}")
    gen = _generator(generator)
    run = Runner(f, dtype)
    inferred_out = None
    if action is None:
        action, inferred_out = _irreps_actions(f)
        if inputs is None:
            inputs = _random_inputs(action, gen, dtype)
    elif out_action is None and getattr(f, "irreps_out", None) is not None:
        from .euclidean import IrrepsAction

        inferred_out = IrrepsAction(f.irreps_out)
    if inputs is None:
        raise ValueError("inputs: required when action is given, got None")
    inp = Inputs(inputs)
    in_acts = input_actions(action, inp)
    if out_action is None:
        out_action = inferred_out
    if out_action is None:
        if inp.kind != "tensor":
            raise ValueError("out_action: required when f takes a tuple of inputs, got None")
        out_action = in_acts[0]
    out_spec = out_actions(out_action)
    out_list = list(out_spec.values()) if isinstance(out_spec, dict) else [out_spec]
    values = [_cast(v, dtype) for v in inp.values]
    rtol = default_tolerances(dtype)["rtol"] if rtol is None else float(rtol)
    eps = machine_eps(dtype)
    if run.cast_from is not None:
        eps = machine_eps(run.cast_from)
        rtol = max(rtol, cast_constants_rtol(run.cast_from)) if rtol_default else rtol
    if atol is None:
        atol = _ROUNDING_ATOL * eps * _input_scale(values, in_acts)
    atol = float(atol)
    if group is not None and not isinstance(group, Group):
        raise TypeError(f"group: expected a Group or None, got {type(group).__name__}")
    sample_group = group if group is not None else join_groups(
        *(a.group for a in in_acts), *(a.group for a in out_list))
    elements = sample_group.sample(n_samples, gen, dtype)
    modes = ("function",) if not run.is_module else (
        ("train", "eval") if mode == "both" else (mode,)
    )

    def call(fn, vals):
        return inp.call(fn, vals)

    def act_in(g) -> list[Any]:
        return [a.act(g, v) for a, v in zip(in_acts, values, strict=True)]

    def reference(g, ys) -> list[tuple[str, Tensor, Tensor, GroupAction]]:
        out = []
        for name, y, a in ys:
            try:
                out.append((name, y, a.act(g, y), a))
            except (ValueError, TypeError) as err:
                raise type(err)(
                    f"out_action: cannot act on {name} of f (shape {list(y.shape)}) with "
                    f"{a!r}: {err}"
                ) from err
        return out

    def evaluate(m, seed, g, ys) -> tuple[list[OutputError], list[str]]:
        y_gx, _ = named_outputs(run(_fresh(act_in(g)), m, seed, call), out_spec, "f(g·x)")
        refs = reference(g, ys)
        if [n for n, *_ in y_gx] != [n for n, *_ in refs]:
            raise ValueError(
                f"f: returned outputs {[n for n, *_ in y_gx]} for g·x but "
                f"{[n for n, *_ in refs]} for x"
            )
        return [_judge(n, y, r, a, rtol, atol, eps)
                for (n, y, _), (_, _, r, a) in zip(y_gx, refs, strict=True)]

    samples: list[SampleError] = []
    unchecked: list[str] = []
    translation_hint: list[str] = []
    for m in modes:
        seed = int(torch.randint(0, 2**62, (1,), generator=gen))
        ys, unchecked = named_outputs(run(_fresh(values), m, seed, call), out_spec, "f(x)")
        for i, g in enumerate(elements):
            outs = evaluate(m, seed, g, ys)
            rel = max(o.rel_error for o in outs)
            abs_err = max(o.abs_error for o in outs)
            ok = all(o.passed for o in outs)
            samples.append(SampleError(m, i, g, rel, abs_err,
                                       tuple(o.rel_error for o in outs), ok, tuple(outs)))
        bad = [s for s in samples if s.mode == m and not s.passed]
        if bad and not translation_hint:
            translation_hint = _split_translation(bad[0].element, lambda g: all(
                o.passed for o in evaluate(m, seed, g, ys)))
    return EquivarianceResult(
        samples=tuple(samples),
        rtol=rtol,
        atol=atol,
        subject=_subject(f),
        group=str(sample_group),
        in_action=repr(in_acts[0] if inp.kind == "tensor" else (
            dict(zip(inp.keys, in_acts, strict=True)) if inp.kind == "dict"
            else JointAction(*in_acts))),
        out_action=repr(out_spec),
        dtype=dtype,
        cast_from=run.cast_from,
        hints=tuple(_hints(samples) + translation_hint),
        unchecked=tuple(unchecked),
    )


def _split_translation(g: GroupElement, passes: Callable[[GroupElement], bool]) -> list[str]:
    """Re-check a failing E(d) element as its rotation part and its translation part."""
    if g.translation is None or g.rotation is None:
        return []
    rest = {"permutation": g.permutation, "extra": g.extra}
    rot_ok = passes(GroupElement(rotation=g.rotation, **rest))
    eye = torch.eye(g.rotation.shape[0], dtype=g.rotation.dtype)
    tr_ok = passes(GroupElement(rotation=eye, translation=g.translation, **rest))
    if rot_ok and not tr_ok:
        return ["fails only with translations (the same element without its translation "
                "passes): likely uncentred positions; use relative positions x_i - x_j or "
                "subtract the centroid"]
    if tr_ok and not rot_ok:
        return ["fails for the rotation part; translations alone pass"]
    return []


def assert_equivariant(
    f: Callable,
    action: GroupAction | Sequence[GroupAction] | Mapping[str, GroupAction] | None = None,
    inputs: Tensor | Sequence[Any] | Mapping[str, Any] | None = None,
    out_action: GroupAction | Sequence[GroupAction] | Mapping[str, GroupAction] | None = None,
    **kwargs: Any,
) -> EquivarianceResult:
    """Raise ``AssertionError`` with the report unless ``f`` is equivariant.

    Same arguments as :func:`equivariance_error`; returns its result on success.
    ``assert_equivariant(module)`` infers the actions and inputs of an e3nn
    module from its ``irreps_in`` / ``irreps_out`` attributes.

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
    action: GroupAction | Sequence[GroupAction] | Mapping[str, GroupAction],
    inputs: Tensor | Sequence[Any] | Mapping[str, Any],
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
