"""Inputs and outputs of a checked function: a tensor, a tuple, or a dict of tensors.

``f`` is called as ``f(x)`` (one tensor), ``f(*xs)`` (a tuple or list) or
``f(d)`` (a dict, as MACE and NequIP models take). Actions mirror the inputs:
one action, a tuple (or :class:`~geonorm.testing.JointAction`), or a dict
``{name: action}`` whose missing names are left untouched. Outputs are named
``"output"``, ``"output 0"``, ``"output 1"``, … or by their dict keys, and each
is judged on its own.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import torch

from .actions import GroupAction, JointAction, TrivialAction, as_action

Tensor = torch.Tensor

__all__ = ["Inputs", "input_actions", "named_outputs", "out_actions"]


class Inputs:
    """The inputs as a flat list ``values`` and how to call ``f`` with them."""

    def __init__(self, inputs: Any) -> None:
        if isinstance(inputs, Mapping):
            self.kind, self.keys, self.values = "dict", list(inputs), list(inputs.values())
        elif isinstance(inputs, (tuple, list)):
            self.kind, self.keys, self.values = "tuple", None, list(inputs)
        else:
            self.kind, self.keys, self.values = "tensor", None, [inputs]

    def call(self, f: Callable, values: list[Any]) -> Any:
        if self.kind == "dict":
            return f(dict(zip(self.keys, values, strict=True)))
        if self.kind == "tuple":
            return f(*values)
        return f(values[0])


def input_actions(action: Any, inp: Inputs) -> list[GroupAction]:
    """One action per entry of ``inp.values``."""
    if inp.kind == "dict":
        if not isinstance(action, Mapping):
            raise TypeError(
                f"action: expected a dict {{input name: GroupAction}} for dict inputs, "
                f"got {type(action).__name__}"
            )
        unknown = sorted(set(action) - set(inp.keys))
        if unknown:
            raise ValueError(
                f"action: expected names of the inputs ({', '.join(map(str, inp.keys))}), "
                f"got unknown {', '.join(map(str, unknown))}"
            )
        return [as_action(action[k]) if k in action else TrivialAction() for k in inp.keys]
    act = as_action(action)
    if inp.kind == "tensor":
        return [act]
    if isinstance(act, JointAction):
        if len(act) != len(inp.values):
            raise ValueError(
                f"action: expected a tuple of {len(inp.values)} actions (one per input), "
                f"got {len(act)}"
            )
        return list(act.actions)
    if len(inp.values) != 1:
        raise ValueError(
            f"action: expected a tuple of {len(inp.values)} actions (one per input), "
            f"got a single {type(act).__name__}"
        )
    return [act]


def out_actions(out_action: Any) -> GroupAction | dict[str, GroupAction]:
    """``out_action`` as one action (possibly joint) or a dict of actions."""
    if isinstance(out_action, Mapping):
        if not out_action:
            raise ValueError("out_action: expected at least one named output action, got {}")
        return {k: as_action(v) for k, v in out_action.items()}
    return as_action(out_action)


def _tensor(t: Any, name: str, what: str) -> Tensor:
    if not isinstance(t, Tensor):
        raise TypeError(
            f"f: expected {what} to return a Tensor, a tuple or a dict of Tensors, "
            f"got {type(t).__name__} at {name}"
        )
    return t.detach()


def named_outputs(y: Any, spec, what: str) -> tuple[list[tuple[str, Tensor, GroupAction]], list[str]]:
    """``[(name, tensor, action)]`` for the outputs the spec names, and the unchecked names."""
    if isinstance(spec, dict):
        if not isinstance(y, Mapping):
            raise TypeError(
                f"out_action: a dict of output actions needs f to return a dict, "
                f"got {type(y).__name__}"
            )
        missing = [k for k in spec if k not in y or y[k] is None]
        if missing:
            raise ValueError(
                f"out_action: expected f's outputs to include {', '.join(map(str, missing))}, "
                f"got keys {', '.join(map(str, y))}"
            )
        named = [(str(k), _tensor(y[k], repr(k), what), a) for k, a in spec.items()]
        unchecked = [str(k) for k in y if k not in spec and isinstance(y[k], Tensor)]
        return named, unchecked
    if isinstance(y, Mapping):
        if not isinstance(spec, TrivialAction):
            raise TypeError(
                f"out_action: f returned a dict ({', '.join(map(str, y))}); expected a dict "
                f"{{output name: GroupAction}}, got a single {type(spec).__name__}"
            )
        return [(str(k), _tensor(v, repr(k), what), spec) for k, v in y.items()
                if v is not None], []
    ys = list(y) if isinstance(y, (tuple, list)) else [y]
    several = isinstance(y, (tuple, list))
    names = [f"output {i}" if several else "output" for i in range(len(ys))]
    tensors = [_tensor(t, n, what) for t, n in zip(ys, names, strict=True)]
    if isinstance(spec, JointAction):
        if len(ys) != len(spec):
            raise ValueError(
                f"out_action: expected f to return {len(spec)} outputs, got {len(ys)}"
            )
        return list(zip(names, tensors, spec.actions, strict=True)), []
    if len(ys) != 1 and not isinstance(spec, TrivialAction):
        raise ValueError(
            f"out_action: f returned {len(ys)} outputs; expected a tuple of "
            f"{len(ys)} actions, got a single {type(spec).__name__}"
        )
    return [(n, t, spec) for n, t in zip(names, tensors, strict=True)], []
