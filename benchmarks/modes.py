"""Turn a tensor operation into a timed ``Impl``: forward only, or forward+backward."""

from __future__ import annotations

from typing import Callable

import torch

from .inputs import MatrixInputs
from .registry import Impl, Runner

Op = Callable[[torch.Tensor], torch.Tensor]
# Builds the op when the case runs; a peer's import goes here (ImportError
# then marks the peer unavailable instead of failing the run).
OpFactory = Callable[[], Op]

__all__ = ["Op", "OpFactory", "forward", "forward_backward", "MODES"]


def forward(make_op: OpFactory) -> Impl:
    """Time ``op(x)`` on an input that does not require grad."""

    def build(inputs: MatrixInputs) -> Runner:
        op, x = make_op(), inputs.x
        return lambda: op(x)

    return build


def forward_backward(make_op: OpFactory) -> Impl:
    """Time ``op(x).backward(grad)`` with a fixed upstream gradient."""

    def build(inputs: MatrixInputs) -> Runner:
        op, grad = make_op(), inputs.grad
        leaf = inputs.x.detach().clone().requires_grad_(True)

        def run() -> None:
            leaf.grad = None
            op(leaf).backward(grad)

        return run

    return build


MODES: dict[str, Callable[[OpFactory], Impl]] = {
    "fwd": forward,
    "fwd+bwd": forward_backward,
}
