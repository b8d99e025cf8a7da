r"""Frame averaging: overhead over the backbone alone, and against frame-averaging-pytorch.

Clouds of 32 points in 3-D, batch 16, a DeepSets backbone (per-point MLP of
width 64, mean pooling, per-point head; about 13k parameters), E(3) frames
(8 per cloud) and equivariant position outputs. Forward (``fwd``) and
forward+backward of the output sum (``fwd+bwd``, gradients for the parameters
and the positions). Peers:

- ``backbone on 8x batch``: the same backbone on inputs already folded to
  :math:`8\times` the batch (``[128, 32, 3]``): the cost frame averaging cannot
  avoid. ``ours/peer`` is then the overhead of the frames (covariance, eigh,
  moving inputs into the frames and outputs back, the average); issue #12's
  target is at most 1.3x;
- ``frame-averaging-pytorch``: ``FrameAverage(backbone, dim=3)`` on the same
  positions. It differentiates through ``torch.linalg.eigh`` (whose backward
  is unstable at repeated eigenvalues) and does not add the centroid back;
  geonorm's frames are detached and it also checks for degenerate clouds.

``.../vel`` cases give the backbone a velocity input too (geonorm moves it into
each frame; frame-averaging-pytorch has no such input, so only the
``backbone on 8x batch`` peer runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from geonorm.nn import FrameAveraging

from .registry import Case, Runner, register

BATCH, POINTS, FRAMES = 16, 32, 8


class DeepSets(nn.Module):
    """Per-point MLP, mean pooling, per-point head: ``[B, N, 3k] -> [B, N, 3]``."""

    def __init__(self, inputs: int, hidden: int = 64) -> None:
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(3 * inputs, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.rho = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.SiLU(), nn.Linear(hidden, 3))

    def forward(self, x: torch.Tensor, *vectors: torch.Tensor) -> torch.Tensor:
        h = self.phi(torch.cat([x, *vectors], -1))  # [B, N, H]
        pooled = h.mean(1, keepdim=True).expand_as(h)  # [B, N, H]
        return self.rho(torch.cat([h, pooled], -1))  # [B, N, 3]


@dataclass(frozen=True)
class CloudInputs:
    x: torch.Tensor  # [BATCH, POINTS, 3]
    v: torch.Tensor | None  # [BATCH, POINTS, 3] velocities, or None
    folded: tuple[torch.Tensor, ...]  # inputs already in 8 frames: [BATCH * 8, POINTS, 3] each


def _setup(velocities: bool, dtype: torch.dtype) -> CloudInputs:
    gen = torch.Generator().manual_seed(12)
    spread = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)  # distinct principal axes
    x = torch.randn(BATCH, POINTS, 3, generator=gen, dtype=torch.float64) * spread  # [B, N, 3]
    v = torch.randn(BATCH, POINTS, 3, generator=gen, dtype=torch.float64) if velocities else None
    folded = tuple(t.repeat_interleave(FRAMES, 0).to(dtype) for t in (x, v) if t is not None)
    return CloudInputs(x.to(dtype), None if v is None else v.to(dtype), folded)


def _backbone(inputs: CloudInputs) -> DeepSets:
    torch.manual_seed(0)
    return DeepSets(1 + (inputs.v is not None)).to(inputs.x.dtype)


def _timed(call, leaves: tuple[torch.Tensor, ...], backward: bool) -> Runner:
    if not backward:

        def run_fwd() -> None:
            with torch.no_grad():
                call(*leaves)

        return run_fwd
    leaves = tuple(t.detach().clone().requires_grad_(True) for t in leaves)

    def run() -> None:
        for t in leaves:
            t.grad = None
        call(*leaves).sum().backward()

    return run


def _ours(inputs: CloudInputs, *, backward: bool) -> Runner:
    vectors = ("vector",) if inputs.v is not None else ()
    fa = FrameAveraging(_backbone(inputs), group="E3", output="positions", vectors=vectors)
    leaves = (inputs.x,) if inputs.v is None else (inputs.x, inputs.v)
    return _timed(fa, leaves, backward)


def _folded_backbone(inputs: CloudInputs, *, backward: bool) -> Runner:
    return _timed(_backbone(inputs), inputs.folded, backward)


def _fa_pytorch(inputs: CloudInputs, *, backward: bool) -> Runner:
    from frame_averaging_pytorch import FrameAverage  # ImportError: peer unavailable

    fa = FrameAverage(_backbone(inputs), dim=3)
    return _timed(fa, (inputs.x,), backward)


for _mode, _backward in (("fwd", False), ("fwd+bwd", True)):
    for _vel, _suffix in ((False, ""), (True, "/vel")):
        _peers = {"backbone on 8x batch": partial(_folded_backbone, backward=_backward)}
        if not _vel:  # frame-averaging-pytorch has no velocity input
            _peers["frame-averaging-pytorch"] = partial(_fa_pytorch, backward=_backward)
        register(
            Case(
                f"frame_average/{_mode}/B={BATCH},N={POINTS}{_suffix}",
                group="frames",
                setup=partial(_setup, _vel),
                ours=partial(_ours, backward=_backward),
                peers=_peers,
            )
        )
